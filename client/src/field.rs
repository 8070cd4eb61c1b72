//! The `field` projection: one top-level key of a JSON value, taken out as text, exactly as the extension's
//! `&field=<key>` answers it.
//!
//! It is here so that a client holding a whole value can pick several fields out of it after one read (the exec
//! wrapper reads each secret once, however many of its fields the environment names). The rule, the same on both
//! sides: a JSON string is its text; any other JSON value (a number, `true`, an object) is its JSON text, as written.
//! Errors name the field, never the value.

use std::borrow::Cow;
use std::collections::HashMap;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::value::RawValue;
use zeroize::Zeroizing;

/// Why a field could not be taken out of a value. It names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The value is not a JSON object (a plain string, a JSON array, not JSON at all).
    #[error("the value is not a JSON object, so it has no field {0:?}")]
    NotAnObject(String),
    /// The object has no such top-level key.
    #[error("the value has no field {0:?}")]
    NoSuchField(String),
}

/// The top-level keys of a JSON object, each with its raw value borrowed from the text.
#[derive(Deserialize)]
struct Object<'a>(#[serde(borrow)] HashMap<Cow<'a, str>, &'a RawValue>);

/// The value of the top-level key `field` of the JSON object `json`: a string as its text, anything else as its JSON.
///
/// ```
/// use secretcache_client::field::{project, FieldError};
/// use secretcache_client::ExposeSecret;
///
/// let secret = r#"{"username":"app","password":"s3cr3t","port":5432}"#;
/// assert_eq!(project(secret, "password")?.expose_secret(), "s3cr3t");
/// assert_eq!(project(secret, "port")?.expose_secret(), "5432");
/// assert_eq!(project(secret, "host").unwrap_err(), FieldError::NoSuchField("host".into()));
/// # Ok::<(), FieldError>(())
/// ```
pub fn project(json: &str, field: &str) -> Result<SecretString, FieldError> {
    let object: Object =
        serde_json::from_str(json).map_err(|_| FieldError::NotAnObject(field.to_owned()))?;
    let raw = object
        .0
        .get(field)
        .ok_or_else(|| FieldError::NoSuchField(field.to_owned()))?;
    // An escaped string is unescaped into a buffer of its own; it is wiped once copied into the secret.
    let text: Zeroizing<String> = match serde_json::from_str::<Cow<str>>(raw.get()) {
        Ok(text) => Zeroizing::new(text.into_owned()),
        Err(_) => Zeroizing::new(raw.get().to_owned()),
    };
    Ok(SecretString::from(text.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_field_is_its_text_or_its_json() {
        let json = r#"{"username":"app","password":"p\"w\u00e9","port":5432,"tags":[1, 2],"on":true,"n":null,"o":{"a":1}}"#;
        for (field, expected) in [
            ("username", "app"),
            ("password", "p\"w\u{e9}"),
            ("port", "5432"),
            ("tags", "[1, 2]"),
            ("on", "true"),
            ("n", "null"),
            ("o", r#"{"a":1}"#),
        ] {
            assert_eq!(
                project(json, field).expect(field).expose_secret(),
                expected,
                "{field}"
            );
        }
    }

    #[test]
    fn a_missing_field_or_a_value_that_is_not_an_object_names_the_field_only() {
        let json = r#"{"password":"hunter2"}"#;
        assert_eq!(
            project(json, "Password").expect_err("keys are case-sensitive"),
            FieldError::NoSuchField("Password".into())
        );
        for not_an_object in [
            "hunter2",
            "\"hunter2\"",
            "[\"hunter2\"]",
            "",
            "{\"a\":",
            "42",
        ] {
            let e = project(not_an_object, "password").expect_err(not_an_object);
            assert_eq!(e, FieldError::NotAnObject("password".into()));
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }
}
