//! Response bodies beyond the cached one: a field of a JSON value as text, and batch bodies.
//!
//! Each is built from the cached body's bytes, borrowing where JSON allows, and written into a [`SecretBody`] so the
//! new buffer is wiped like the cached one when it is dropped:
//! - [`project`]: the value of one top-level key of a JSON `SecretString` (or parameter `Value`), for shell scripts and
//!   clients without a JSON parser;
//! - [`secret_batch`]: BatchGetSecretValue's shape, `{"SecretValues":[...],"Errors":[...]}`, each value in the same
//!   shape as `/secretsmanager/get` answers it;
//! - [`parameter_batch`]: GetParameters' shape, `{"Parameters":[...],"InvalidParameters":[...]}`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::error::{ProjectionError, UpstreamError};
use crate::secret::SecretBody;

/// Which body a projection reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GetSecretValue: its `SecretString`.
    Secret,
    /// GetParameter: its `Parameter.Value`.
    Parameter,
}

#[derive(Deserialize)]
struct SecretDoc<'a> {
    #[serde(rename = "SecretString", borrow)]
    secret_string: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ParameterDoc<'a> {
    #[serde(rename = "Parameter", borrow)]
    parameter: Option<ParameterValue<'a>>,
}

#[derive(Deserialize)]
struct ParameterValue<'a> {
    #[serde(rename = "Value", borrow)]
    value: Option<Cow<'a, str>>,
}

/// The top-level keys of a JSON object, each with its raw value borrowed from the text.
#[derive(Deserialize)]
struct Object<'a>(#[serde(borrow)] HashMap<Cow<'a, str>, &'a RawValue>);

/// The value of `field` in the JSON object held by `body`'s secret string (or parameter value): a string as its
/// text, anything else as its JSON.
pub fn project(body: &SecretBody, kind: Kind, field: &str) -> Result<SecretBody, ProjectionError> {
    let bytes = body.bytes();
    let not_object = || ProjectionError::NotAnObject(field.to_owned());
    // The inner JSON is escaped inside the outer string, so it is unescaped into a buffer wiped on drop.
    let inner: Zeroizing<String> = match kind {
        Kind::Secret => serde_json::from_slice::<SecretDoc>(&bytes)
            .ok()
            .and_then(|d| d.secret_string)
            .map(|s| Zeroizing::new(s.into_owned())),
        Kind::Parameter => serde_json::from_slice::<ParameterDoc>(&bytes)
            .ok()
            .and_then(|d| d.parameter)
            .and_then(|p| p.value)
            .map(|s| Zeroizing::new(s.into_owned())),
    }
    .ok_or_else(not_object)?;
    let object: Object = serde_json::from_str(&inner).map_err(|_| not_object())?;
    let raw = object
        .0
        .get(field)
        .ok_or_else(|| ProjectionError::NoSuchField(field.to_owned()))?;
    let mut out = Vec::with_capacity(raw.get().len());
    match serde_json::from_str::<Cow<str>>(raw.get()) {
        Ok(text) => out.extend_from_slice(text.as_bytes()),
        Err(_) => out.extend_from_slice(raw.get().as_bytes()),
    }
    Ok(SecretBody::new(out))
}

/// One id's answer in a batch: the body to include (the whole one, or a projection), or why there is none.
#[derive(Debug)]
pub enum Item<'a> {
    /// A value: its body as served by the single-value route.
    Value(&'a SecretBody),
    /// A field of it (`field=`), with what the upstream said about the secret.
    Field {
        /// The projected value.
        value: SecretBody,
        /// The secret's ARN.
        arn: Option<&'a str>,
        /// Its name.
        name: Option<&'a str>,
        /// Its version.
        version: Option<&'a str>,
    },
    /// The upstream's error for this id, or a projection that failed.
    Error {
        /// An AWS-style error code.
        code: &'a str,
        /// Its message (never a value).
        message: String,
    },
}

impl<'a> Item<'a> {
    /// The item for an upstream error.
    pub fn from_error(e: &'a UpstreamError) -> Self {
        let message = match e {
            UpstreamError::NotFound { message, .. }
            | UpstreamError::AccessDenied { message, .. }
            | UpstreamError::InvalidRequest { message, .. }
            | UpstreamError::Throttled { message, .. } => message.clone(),
            UpstreamError::Internal(_) => "internal error; see the extension's log".to_owned(),
            other => other.to_string(),
        };
        Self::Error {
            code: e.code(),
            message,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SecretError<'a> {
    secret_id: &'a str,
    error_code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FieldValue<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    name: Option<&'a str>,
    version_id: Option<&'a str>,
    field: &'a str,
    value: &'a str,
}

/// `{"SecretValues":[...],"Errors":[...]}` for `items`, one per id in `ids`, in order.
pub fn secret_batch(ids: &[String], items: &[Item<'_>], field: Option<&str>) -> SecretBody {
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<Vec<u8>> = Vec::new();
    for (id, item) in ids.iter().zip(items) {
        match item {
            Item::Value(body) => values.push(body.bytes().to_vec()),
            Item::Field {
                value,
                arn,
                name,
                version,
            } => {
                let text = String::from_utf8_lossy(&value.bytes()).into_owned();
                let text = Zeroizing::new(text);
                values.push(json(&FieldValue {
                    arn: *arn,
                    name: *name,
                    version_id: *version,
                    field: field.unwrap_or_default(),
                    value: &text,
                }));
            }
            Item::Error { code, message } => errors.push(json(&SecretError {
                secret_id: id,
                error_code: code,
                message,
            })),
        }
    }
    assemble(("SecretValues", values), ("Errors", errors))
}

#[derive(Deserialize)]
struct InnerParameter<'a> {
    #[serde(rename = "Parameter", borrow)]
    parameter: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParameterField<'a> {
    #[serde(rename = "ARN")]
    arn: Option<&'a str>,
    name: Option<&'a str>,
    version: Option<&'a str>,
    field: &'a str,
    value: &'a str,
}

/// `{"Parameters":[...],"InvalidParameters":[...]}` for `items`, one per name in `names`, in order. A name the
/// upstream did not find is an invalid parameter, as GetParameters says; other errors are reported in `Errors`.
pub fn parameter_batch(names: &[String], items: &[Item<'_>], field: Option<&str>) -> SecretBody {
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut invalid: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<Vec<u8>> = Vec::new();
    for (name, item) in names.iter().zip(items) {
        match item {
            Item::Value(body) => {
                let bytes = body.bytes();
                match serde_json::from_slice::<InnerParameter>(&bytes) {
                    Ok(p) => values.push(p.parameter.get().as_bytes().to_vec()),
                    Err(_) => invalid.push(json(name)),
                }
            }
            Item::Field {
                value,
                arn,
                name: n,
                version,
            } => {
                let text = Zeroizing::new(String::from_utf8_lossy(&value.bytes()).into_owned());
                values.push(json(&ParameterField {
                    arn: *arn,
                    name: *n,
                    version: *version,
                    field: field.unwrap_or_default(),
                    value: &text,
                }));
            }
            Item::Error { code, .. } if code.starts_with("ParameterNotFound") => {
                invalid.push(json(name))
            }
            Item::Error { code, message } => errors.push(json(&SecretError {
                secret_id: name,
                error_code: code,
                message,
            })),
        }
    }
    let mut body = assemble(("Parameters", values), ("InvalidParameters", invalid));
    if !errors.is_empty() {
        // GetParameters has no per-name errors besides "invalid"; ours (denied, throttled) get their own list.
        let mut bytes = body.bytes().to_vec();
        bytes.pop();
        bytes.extend_from_slice(b",\"Errors\":[");
        bytes.extend_from_slice(&errors.join(&b","[..]));
        bytes.extend_from_slice(b"]}");
        body = SecretBody::new(bytes);
    }
    body
}

fn json(value: &impl Serialize) -> Vec<u8> {
    // Serializing our own plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `{"<a>":[...],"<b>":[...]}` from already serialized items, into a buffer wiped when dropped; the item buffers
/// are wiped as they are dropped here.
fn assemble(a: (&str, Vec<Vec<u8>>), b: (&str, Vec<Vec<u8>>)) -> SecretBody {
    let len: usize = a.1.iter().chain(&b.1).map(|v| v.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 64);
    for (i, (name, items)) in [a, b].into_iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":[");
        for (j, item) in items.into_iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item);
            drop(Zeroizing::new(item));
        }
        out.push(b']');
    }
    out.push(b'}');
    SecretBody::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> SecretBody {
        SecretBody::new(s.as_bytes().to_vec())
    }

    fn text(b: &SecretBody) -> String {
        String::from_utf8(b.bytes().to_vec()).expect("utf8")
    }

    const SECRET: &str = r#"{"ARN":"arn:a","Name":"db","SecretString":"{\"username\":\"app\",\"password\":\"p\\\"w\",\"port\":5432,\"tags\":[1]}","VersionId":"v1","ResultMetadata":{}}"#;

    #[test]
    fn a_field_is_its_text_or_its_json() {
        assert_eq!(
            text(&project(&body(SECRET), Kind::Secret, "username").expect("ok")),
            "app"
        );
        assert_eq!(
            text(&project(&body(SECRET), Kind::Secret, "password").expect("ok")),
            "p\"w"
        );
        assert_eq!(
            text(&project(&body(SECRET), Kind::Secret, "port").expect("ok")),
            "5432"
        );
        assert_eq!(
            text(&project(&body(SECRET), Kind::Secret, "tags").expect("ok")),
            "[1]"
        );
        let p = r#"{"Parameter":{"Name":"/a","Value":"{\"url\":\"postgres://x\"}","Version":3},"ResultMetadata":{}}"#;
        assert_eq!(
            text(&project(&body(p), Kind::Parameter, "url").expect("ok")),
            "postgres://x"
        );
    }

    #[test]
    fn a_missing_field_or_a_value_that_is_not_an_object_names_the_field_only() {
        let e = project(&body(SECRET), Kind::Secret, "nope").expect_err("missing");
        assert_eq!(e, ProjectionError::NoSuchField("nope".into()));
        let plain = r#"{"SecretString":"hunter2","ResultMetadata":{}}"#;
        let e = project(&body(plain), Kind::Secret, "password").expect_err("not json");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let binary = r#"{"SecretBinary":"AAE=","SecretString":null}"#;
        assert!(matches!(
            project(&body(binary), Kind::Secret, "x"),
            Err(ProjectionError::NotAnObject(_))
        ));
    }

    #[test]
    fn batch_bodies_have_the_upstream_shapes() {
        let one = body(SECRET);
        let nf = UpstreamError::NotFound {
            code: "ResourceNotFoundException".into(),
            message: "not here".into(),
        };
        let ids = vec!["db".to_owned(), "gone".to_owned()];
        let b = secret_batch(&ids, &[Item::Value(&one), Item::from_error(&nf)], None);
        let v: serde_json::Value = serde_json::from_slice(&b.bytes()).expect("json");
        assert_eq!(v["SecretValues"][0]["Name"], "db");
        assert_eq!(
            v["SecretValues"][0]["ResultMetadata"],
            serde_json::json!({})
        );
        assert_eq!(v["Errors"][0]["SecretId"], "gone");
        assert_eq!(v["Errors"][0]["ErrorCode"], "ResourceNotFoundException");
        let p = body(r#"{"Parameter":{"Name":"/a","Value":"x","Version":3},"ResultMetadata":{}}"#);
        let pnf = UpstreamError::NotFound {
            code: "ParameterNotFound".into(),
            message: "m".into(),
        };
        let names = vec!["/a".to_owned(), "/b".to_owned()];
        let b = parameter_batch(&names, &[Item::Value(&p), Item::from_error(&pnf)], None);
        let v: serde_json::Value = serde_json::from_slice(&b.bytes()).expect("json");
        assert_eq!(v["Parameters"][0]["Version"], 3);
        assert_eq!(v["InvalidParameters"], serde_json::json!(["/b"]));
        assert!(v.get("Errors").is_none());
    }
}
