//! Secret references in environment variables, for the exec wrapper ([`crate::wrapper`]): their grammar, parser and
//! canonical text.
//!
//! A variable whose value starts with `secretcache:` names a value to put there instead:
//!
//! ```text
//! reference  = "secretcache:" ( secret / parameter ) [ "#" field ]
//! secret     = ( secret-name / secret-arn ) [ "?" version *( "&" version ) ]
//! version    = "versionStage=" label / "versionId=" version-id
//! parameter  = "ssm:" ( parameter-name / parameter-arn ) [ ":" ( version-number / label ) ]
//! field      = 1*( any character but a control character )     ; everything after the first "#"
//! ```
//!
//! - `secretcache:prod/db#password`: the key `password` of the JSON secret `prod/db` (its `AWSCURRENT` version);
//! - `secretcache:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf?versionStage=AWSPENDING`;
//! - `secretcache:ssm:/app/config#url`, `secretcache:ssm:/app/db-url:3`: SSM parameters, always decrypted.
//!
//! Why it cannot be misread: a Secrets Manager name holds only letters, digits and `/_+=.@-`, and an SSM name only
//! letters, digits and `/_.-`, so neither holds `:`, `?`, `&` or `#`. The first `#` therefore starts the field; `ssm:`
//! cannot begin a secret name; a `:` in a secret id belongs to an ARN, which is checked part by part; and `?` starts
//! the version selectors, spelt as the HTTP API's query names. `@`, allowed in secret names, selects nothing. It is
//! not CloudFormation's `{{resolve:...}}`, which CloudFormation would resolve at deploy time and store in plain text.
//!
//! Errors say what is wrong and where (a 1-based character position), and quote at most the one offending
//! character: a malformed reference is not echoed.

use std::fmt;

/// What a value must start with to be a reference. Case matters.
pub const PREFIX: &str = "secretcache:";
/// What follows [`PREFIX`] for an SSM parameter.
pub const SSM: &str = "ssm:";
/// The longest reference read, in bytes: a secret ARN is at most 2048, and selectors and a field fit beside it.
pub const MAX_LEN: usize = 4096;
/// Secrets Manager's longest name.
const MAX_SECRET_NAME: usize = 512;
/// SSM's longest name (a fully qualified one; an ARN adds its prefix).
const MAX_PARAMETER_NAME: usize = 1011;
/// The longest version stage or version id read.
const MAX_SELECTOR: usize = 256;
/// The longest field read.
const MAX_FIELD: usize = 1024;

/// A parsed reference: where the value comes from, and which field of it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The secret or parameter.
    pub source: Source,
    /// A top-level key of its JSON value, taken out as the extension's `field=` takes it.
    pub field: Option<String>,
}

/// Where a referenced value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A Secrets Manager secret; neither selector means its `AWSCURRENT` version.
    Secret {
        /// Its name or ARN.
        id: String,
        /// `versionStage=`.
        version_stage: Option<String>,
        /// `versionId=`.
        version_id: Option<String>,
    },
    /// An SSM parameter, read with decryption.
    Parameter {
        /// Its name or ARN, with `:version` or `:label` when given.
        name: String,
    },
}

impl Source {
    /// Whether this is a secret's current version, with no selector (what a batch read fetches).
    pub fn is_current_secret(&self) -> bool {
        matches!(
            self,
            Source::Secret {
                version_stage: None,
                version_id: None,
                ..
            }
        )
    }
}

/// Why a value that starts with [`PREFIX`] is not a reference. Positions are 1-based characters of the whole value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Longer than [`MAX_LEN`].
    #[error("it is longer than {MAX_LEN} bytes")]
    TooLong,
    /// Nothing after the prefix, or after `ssm:`.
    #[error("it names no secret or parameter after {0:?}")]
    Empty(&'static str),
    /// A character that no part of a reference may hold.
    #[error(
        "character {at} ({shown}) is a control character or a space, which a reference never holds"
    )]
    Control {
        /// Where.
        at: usize,
        /// The character, as `U+XXXX`.
        shown: String,
    },
    /// A character that the part it is in may not hold.
    #[error("character {at} ({shown}) is not allowed in {part} ({allowed})")]
    NotAllowed {
        /// Where.
        at: usize,
        /// The character, quoted when printable ASCII, as `U+XXXX` otherwise.
        shown: String,
        /// Which part.
        part: &'static str,
        /// What that part may hold.
        allowed: &'static str,
    },
    /// A part longer than its service allows.
    #[error("{part} is longer than {max} characters")]
    PartTooLong {
        /// Which part.
        part: &'static str,
        /// Its limit.
        max: usize,
    },
    /// An ARN that is not `arn:<partition>:<service>:<region>:<account>:<resource>` for the service.
    #[error("it is not a valid {service} ARN: {why}")]
    BadArn {
        /// `secretsmanager` or `ssm`.
        service: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// An ARN of the other service.
    #[error("{0}")]
    WrongService(&'static str),
    /// A selector after `?` other than `versionStage=` and `versionId=`.
    #[error("selector {index} after '?' is not versionStage=<label> or versionId=<id>")]
    UnknownSelector {
        /// 1-based, in the order written.
        index: usize,
    },
    /// A selector given twice.
    #[error("{0} is given more than once")]
    DuplicateSelector(&'static str),
    /// A selector with no value, or a `?` with none after it.
    #[error("{0} has no value")]
    EmptySelector(&'static str),
    /// `?` after an SSM parameter.
    #[error("an SSM parameter takes no '?' selectors: name its version as SSM does, ssm:<name>:<version or label>")]
    SelectorOnParameter,
    /// A `#` with nothing after it.
    #[error("the field after '#' is empty")]
    EmptyField,
}

/// The reference in `value`: `None` when the value is not one (it does not start with `secretcache:`), and an error when
/// it starts with the prefix but does not follow the grammar.
pub fn parse(value: &str) -> Option<Result<Reference, ReferenceError>> {
    let rest = value.strip_prefix(PREFIX)?;
    Some(parse_rest(value, rest))
}

/// Whether `value` looks like a reference written slightly wrong (another case, or a leading space): worth a warning,
/// since it is left as it is.
pub fn near_miss(value: &str) -> bool {
    let trimmed = value.trim_start();
    !value.starts_with(PREFIX)
        && trimmed
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

fn parse_rest(value: &str, rest: &str) -> Result<Reference, ReferenceError> {
    if value.len() > MAX_LEN {
        return Err(ReferenceError::TooLong);
    }
    let offset = value.len() - rest.len();
    let (head, field) = match rest.split_once('#') {
        Some((head, field)) => (head, Some(field)),
        None => (rest, None),
    };
    // Before anything else, so that no later message quotes such a character. A field may hold spaces (JSON keys
    // do); nothing else may.
    let head_end = offset + head.len();
    if let Some((i, c)) = value
        .char_indices()
        .find(|&(i, c)| c.is_control() || (i < head_end && c.is_whitespace()))
    {
        return Err(ReferenceError::Control {
            at: position(value, i),
            shown: format!("U+{:04X}", c as u32),
        });
    }
    let field = match field {
        Some("") => return Err(ReferenceError::EmptyField),
        Some(f) if f.chars().count() > MAX_FIELD => {
            return Err(ReferenceError::PartTooLong {
                part: "the field",
                max: MAX_FIELD,
            })
        }
        f => f.map(str::to_owned),
    };
    let source = match head.strip_prefix(SSM) {
        Some(name) => parameter(value, offset + SSM.len(), name)?,
        None => secret(value, offset, head)?,
    };
    Ok(Reference { source, field })
}

/// `name` starts at byte `at` of `value` (for positions in errors).
fn parameter(value: &str, at: usize, name: &str) -> Result<Source, ReferenceError> {
    const NAME: &str = "an SSM parameter name";
    const NAME_CHARS: &str = "letters, digits and /_.-";
    const SELECTOR: &str = "an SSM version or label";
    const SELECTOR_CHARS: &str = "letters, digits and _.-";
    if name.contains('?') || name.contains('&') {
        return Err(ReferenceError::SelectorOnParameter);
    }
    let ssm_char = |c: char| c.is_ascii_alphanumeric() || "/_.-".contains(c);
    let not_parameter = ReferenceError::BadArn {
        service: "ssm",
        why: "its resource is not parameter/<name>",
    };
    // The name (an ARN's resource) and where it starts; then the selector and where it starts.
    let (plain, plain_at, selector) = if name.starts_with("arn:") {
        let parts: Vec<&str> = name.splitn(7, ':').collect();
        arn_header(&parts, "ssm")?;
        let resource = parts.get(5).copied().unwrap_or_default();
        match resource.strip_prefix("parameter") {
            Some(path) if path.len() > 1 && path.starts_with('/') => {}
            _ => return Err(not_parameter),
        }
        let resource_at = at + parts[..5].iter().map(|p| p.len() + 1).sum::<usize>();
        (resource, resource_at, parts.get(6).copied())
    } else {
        match name.split_once(':') {
            Some((plain, selector)) => (plain, at, Some(selector)),
            None => (name, at, None),
        }
    };
    if plain.is_empty() {
        return Err(ReferenceError::Empty("secretcache:ssm:"));
    }
    check(
        value,
        plain_at,
        plain,
        NAME,
        NAME_CHARS,
        ssm_char,
        MAX_PARAMETER_NAME,
    )?;
    if let Some(selector) = selector {
        if selector.is_empty() {
            return Err(ReferenceError::EmptySelector(
                "the SSM version or label after ':'",
            ));
        }
        check(
            value,
            plain_at + plain.len() + 1,
            selector,
            SELECTOR,
            SELECTOR_CHARS,
            |c| c.is_ascii_alphanumeric() || "_.-".contains(c),
            MAX_SELECTOR,
        )?;
    }
    Ok(Source::Parameter {
        name: name.to_owned(),
    })
}

/// `head` (the secret id, and its selectors) starts at byte `at` of `value`.
fn secret(value: &str, at: usize, head: &str) -> Result<Source, ReferenceError> {
    let (id, query) = match head.split_once('?') {
        Some((id, query)) => (id, Some(query)),
        None => (head, None),
    };
    if id.is_empty() {
        return Err(ReferenceError::Empty(PREFIX));
    }
    const NAME: &str = "a secret name";
    const NAME_CHARS: &str = "letters, digits and /_+=.@-";
    let name_char = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    if id.starts_with("arn:") {
        let parts: Vec<&str> = id.splitn(7, ':').collect();
        arn_header(&parts, "secretsmanager")?;
        if parts.get(5) != Some(&"secret") || parts.len() != 7 {
            return Err(ReferenceError::BadArn {
                service: "secretsmanager",
                why: "its resource is not secret:<name>",
            });
        }
        let name_at = at + parts[..6].iter().map(|p| p.len() + 1).sum::<usize>();
        if parts[6].is_empty() {
            return Err(ReferenceError::BadArn {
                service: "secretsmanager",
                why: "its secret name is empty",
            });
        }
        check(
            value,
            name_at,
            parts[6],
            NAME,
            NAME_CHARS,
            name_char,
            MAX_SECRET_NAME,
        )?;
    } else {
        if let Some(i) = id.find(':') {
            // A name cannot hold ':'; the likeliest slip is a service prefix we do not know.
            return Err(ReferenceError::NotAllowed {
                at: position(value, at + i),
                shown: "':'".to_owned(),
                part: NAME,
                allowed: "a secret is a name or an ARN; an SSM parameter is ssm:<name>",
            });
        }
        check(value, at, id, NAME, NAME_CHARS, name_char, MAX_SECRET_NAME)?;
    }
    let (mut version_stage, mut version_id) = (None, None);
    if let Some(query) = query {
        if query.is_empty() {
            return Err(ReferenceError::EmptySelector("'?'"));
        }
        let mut pair_at = at + id.len() + 1;
        for (index, pair) in query.split('&').enumerate() {
            let (slot, label, name) = match pair.split_once('=') {
                Some(("versionStage", v)) => (&mut version_stage, "versionStage", v),
                Some(("versionId", v)) => (&mut version_id, "versionId", v),
                _ => return Err(ReferenceError::UnknownSelector { index: index + 1 }),
            };
            if slot.is_some() {
                return Err(ReferenceError::DuplicateSelector(label));
            }
            if name.is_empty() {
                return Err(ReferenceError::EmptySelector(label));
            }
            check(
                value,
                pair_at + label.len() + 1,
                name,
                label,
                NAME_CHARS,
                name_char,
                MAX_SELECTOR,
            )?;
            *slot = Some(name.to_owned());
            pair_at += pair.len() + 1;
        }
    }
    Ok(Source::Secret {
        id: id.to_owned(),
        version_stage,
        version_id,
    })
}

/// `arn:<partition>:<service>:<region>:<account>:...` for `service`; the other service's ARN gets its own hint.
fn arn_header(parts: &[&str], service: &'static str) -> Result<(), ReferenceError> {
    let bad = |why| ReferenceError::BadArn { service, why };
    if parts.len() < 6 {
        return Err(bad("it has fewer than six ':'-separated parts"));
    }
    let lower = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
    };
    if !lower(parts[1], "-") {
        return Err(bad("its partition is not aws, aws-cn, aws-us-gov..."));
    }
    match (parts[2], service) {
        (s, want) if s == want => {}
        ("ssm", _) => {
            return Err(ReferenceError::WrongService(
                "it is an SSM parameter ARN: write secretcache:ssm:<arn>",
            ))
        }
        ("secretsmanager", _) => {
            return Err(ReferenceError::WrongService(
                "it is a Secrets Manager ARN: write secretcache:<arn>, without ssm:",
            ))
        }
        _ => return Err(bad("its service is neither secretsmanager nor ssm")),
    }
    if !lower(parts[3], "-") {
        return Err(bad("its region is empty or not a region"));
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("its account is not 12 digits"));
    }
    Ok(())
}

/// Every character of `part` (which starts at byte `at` of `value`) passes `ok`, and it is at most `max` long.
fn check(
    value: &str,
    at: usize,
    part: &str,
    name: &'static str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
    max: usize,
) -> Result<(), ReferenceError> {
    if let Some((i, c)) = part.char_indices().find(|(_, c)| !ok(*c)) {
        return Err(ReferenceError::NotAllowed {
            at: position(value, at + i),
            shown: shown(c),
            part: name,
            allowed,
        });
    }
    if part.chars().count() > max {
        return Err(ReferenceError::PartTooLong { part: name, max });
    }
    Ok(())
}

/// The 1-based character position of byte `i` in `value`.
fn position(value: &str, i: usize) -> usize {
    value.get(..i).map_or(i, |s| s.chars().count()) + 1
}

fn shown(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// The canonical text: what [`parse`] reads back into the same reference.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        match &self.source {
            Source::Secret {
                id,
                version_stage,
                version_id,
            } => {
                f.write_str(id)?;
                let mut sep = '?';
                for (name, v) in [("versionStage", version_stage), ("versionId", version_id)] {
                    if let Some(v) = v {
                        write!(f, "{sep}{name}={v}")?;
                        sep = '&';
                    }
                }
            }
            Source::Parameter { name } => write!(f, "{SSM}{name}")?,
        }
        if let Some(field) = &self.field {
            write!(f, "#{field}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
    const SSM_ARN: &str = "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db-url";

    fn secret(
        id: &str,
        stage: Option<&str>,
        version: Option<&str>,
        field: Option<&str>,
    ) -> Reference {
        Reference {
            source: Source::Secret {
                id: id.into(),
                version_stage: stage.map(Into::into),
                version_id: version.map(Into::into),
            },
            field: field.map(Into::into),
        }
    }

    fn parameter(name: &str, field: Option<&str>) -> Reference {
        Reference {
            source: Source::Parameter { name: name.into() },
            field: field.map(Into::into),
        }
    }

    #[test]
    fn values_without_the_prefix_are_not_references() {
        for value in [
            "",
            "hunter2",
            "secretcache",
            "Secretcache:prod/db",
            "SECRETCACHE:prod/db",
            " secretcache:prod/db",
            "{{resolve:secretsmanager:prod/db:SecretString:password}}",
            "postgres://secretcache:pw@host/db",
            "ssm:/app/x",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn near_misses_are_told_apart_from_plain_values() {
        for value in [
            "Secretcache:prod/db",
            "SECRETCACHE:x",
            "  secretcache:x",
            "\tSecretCache:x",
        ] {
            assert!(near_miss(value), "{value:?}");
        }
        for value in [
            "secretcache:prod/db",
            "hunter2",
            "",
            "secret",
            "my secretcache:x",
            "secretcach:x",
        ] {
            assert!(!near_miss(value), "{value:?}");
        }
    }

    #[test]
    fn the_grammar_table() {
        let cases: Vec<(String, Reference)> = vec![
            (
                "secretcache:prod/db".into(),
                secret("prod/db", None, None, None),
            ),
            (
                "secretcache:prod/db#password".into(),
                secret("prod/db", None, None, Some("password")),
            ),
            (
                "secretcache:prod/db?versionStage=AWSPENDING#password".into(),
                secret("prod/db", Some("AWSPENDING"), None, Some("password")),
            ),
            (
                "secretcache:prod/db?versionId=a1b2c3d4-5678-90ab-cdef-EXAMPLE11111".into(),
                secret(
                    "prod/db",
                    None,
                    Some("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"),
                    None,
                ),
            ),
            (
                "secretcache:db?versionId=v1&versionStage=AWSCURRENT".into(),
                secret("db", Some("AWSCURRENT"), Some("v1"), None),
            ),
            // '@' and '=' belong to the name: Secrets Manager allows them, and they select nothing.
            (
                "secretcache:alice@example.com".into(),
                secret("alice@example.com", None, None, None),
            ),
            (
                "secretcache:a=b+c_d.e-f".into(),
                secret("a=b+c_d.e-f", None, None, None),
            ),
            (format!("secretcache:{ARN}"), secret(ARN, None, None, None)),
            (
                format!("secretcache:{ARN}?versionStage=AWSPREVIOUS#user name:x#y"),
                // The field is everything after the first '#', whatever it holds (but a control character).
                secret(ARN, Some("AWSPREVIOUS"), None, Some("user name:x#y")),
            ),
            (
                "secretcache:arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x"
                    .into(),
                secret(
                    "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x",
                    None,
                    None,
                    None,
                ),
            ),
            // A partial ARN (no random suffix) is an ARN too.
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db".into(),
                secret(
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db",
                    None,
                    None,
                    None,
                ),
            ),
            // A secret may be named "ssm": without the ':' it is a secret.
            ("secretcache:ssm".into(), secret("ssm", None, None, None)),
            (
                "secretcache:ssm#k".into(),
                secret("ssm", None, None, Some("k")),
            ),
            (
                "secretcache:ssm:/app/config".into(),
                parameter("/app/config", None),
            ),
            (
                "secretcache:ssm:/app/config#url".into(),
                parameter("/app/config", Some("url")),
            ),
            (
                "secretcache:ssm:/app/db-url:3".into(),
                parameter("/app/db-url:3", None),
            ),
            (
                "secretcache:ssm:plain_name.v2:prod".into(),
                parameter("plain_name.v2:prod", None),
            ),
            (
                format!("secretcache:ssm:{SSM_ARN}"),
                parameter(SSM_ARN, None),
            ),
            (
                format!("secretcache:ssm:{SSM_ARN}:7#k"),
                parameter(&format!("{SSM_ARN}:7"), Some("k")),
            ),
            (
                "secretcache:prod/db#\u{e9}t\u{e9}".into(),
                secret("prod/db", None, None, Some("\u{e9}t\u{e9}")),
            ),
        ];
        for (text, expected) in cases {
            let parsed = parse(&text)
                .unwrap_or_else(|| panic!("{text:?} is a reference"))
                .unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(parsed, expected, "{text:?}");
            // The canonical text reads back the same.
            let again = parse(&parsed.to_string())
                .expect("a reference")
                .expect("valid");
            assert_eq!(again, parsed, "{text:?} -> {parsed}");
        }
    }

    #[test]
    fn canonical_text_orders_the_selectors() {
        let r = parse("secretcache:db?versionId=v1&versionStage=S#f")
            .expect("a reference")
            .expect("valid");
        assert_eq!(
            r.to_string(),
            "secretcache:db?versionStage=S&versionId=v1#f"
        );
    }

    #[test]
    fn malformed_references_are_errors_that_say_where_and_never_echo_the_text() {
        use ReferenceError as E;
        let long_name = format!("secretcache:{}", "a".repeat(513));
        let too_long = format!("secretcache:a#{}", "f".repeat(MAX_LEN));
        type Expected = fn(&ReferenceError) -> bool;
        let cases: Vec<(String, Expected)> = vec![
            ("secretcache:".into(), |e| matches!(e, E::Empty(_))),
            ("secretcache:#password".into(), |e| matches!(e, E::Empty(_))),
            ("secretcache:?versionStage=X".into(), |e| {
                matches!(e, E::Empty(_))
            }),
            ("secretcache:ssm:".into(), |e| matches!(e, E::Empty(_))),
            ("secretcache:ssm:#f".into(), |e| matches!(e, E::Empty(_))),
            ("secretcache:ssm::3".into(), |e| matches!(e, E::Empty(_))),
            ("secretcache:db#".into(), |e| *e == E::EmptyField),
            ("secretcache:db?".into(), |e| {
                matches!(e, E::EmptySelector(_))
            }),
            ("secretcache:db?versionStage=".into(), |e| {
                *e == E::EmptySelector("versionStage")
            }),
            ("secretcache:db?stage=AWSPENDING".into(), |e| {
                *e == E::UnknownSelector { index: 1 }
            }),
            ("secretcache:db?versionStage=A&".into(), |e| {
                *e == E::UnknownSelector { index: 2 }
            }),
            ("secretcache:db?versionstage=A".into(), |e| {
                *e == E::UnknownSelector { index: 1 }
            }),
            ("secretcache:db?versionStage=A&versionStage=B".into(), |e| {
                *e == E::DuplicateSelector("versionStage")
            }),
            ("secretcache:db?versionStage=A?B".into(), |e| {
                matches!(
                    e,
                    E::NotAllowed {
                        at: 30,
                        part: "versionStage",
                        ..
                    }
                )
            }),
            ("secretcache:ssm:/app/x?version=3".into(), |e| {
                *e == E::SelectorOnParameter
            }),
            ("secretcache:ssm:/app/x:".into(), |e| {
                matches!(e, E::EmptySelector(_))
            }),
            ("secretcache:ssm:/app/x:3:4".into(), |e| {
                matches!(
                    e,
                    E::NotAllowed {
                        at: 25,
                        part: "an SSM version or label",
                        ..
                    }
                )
            }),
            ("secretcache:ssm:/app/x y".into(), |e| {
                matches!(e, E::Control { at: 23, .. })
            }),
            ("secretcache:ssm:/app/x=y".into(), |e| {
                matches!(
                    e,
                    E::NotAllowed {
                        at: 23,
                        part: "an SSM parameter name",
                        ..
                    }
                )
            }),
            ("secretcache:prod db".into(), |e| {
                matches!(e, E::Control { at: 17, .. })
            }),
            ("secretcache:db?versionStage=A B#f".into(), |e| {
                matches!(e, E::Control { at: 30, .. })
            }),
            ("secretcache:db#f\tg".into(), |e| {
                matches!(e, E::Control { at: 17, .. })
            }),
            ("secretcache:prod/db\n".into(), |e| {
                matches!(e, E::Control { at: 20, .. })
            }),
            ("secretcache:db#pass\u{0}word".into(), |e| {
                matches!(e, E::Control { .. })
            }),
            ("secretcache:db#pass\u{1b}[31m".into(), |e| {
                matches!(e, E::Control { .. })
            }),
            ("secretcache:prod/db%2F".into(), |e| {
                matches!(
                    e,
                    E::NotAllowed {
                        at: 20,
                        part: "a secret name",
                        ..
                    }
                )
            }),
            (
                "secretcache:pr\u{f6}d".into(),
                |e| matches!(e, E::NotAllowed { at: 15, ref shown, .. } if shown == "U+00F6"),
            ),
            ("secretcache:sm:prod/db".into(), |e| {
                matches!(e, E::NotAllowed { at: 15, .. })
            }),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012:secret".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012:secret:".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:1234:secret:x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager::123456789012:secret:x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:AWS:secretsmanager:us-east-1:123456789012:secret:x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012:function:x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:arn:aws:secretsmanager:us-east-1:123456789012:secret:a:b".into(),
                |e| {
                    matches!(
                        e,
                        E::NotAllowed {
                            part: "a secret name",
                            ..
                        }
                    )
                },
            ),
            (
                "secretcache:arn:aws:s3:us-east-1:123456789012:secret:x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (format!("secretcache:{SSM_ARN}"), |e| {
                matches!(e, E::WrongService(_))
            }),
            (format!("secretcache:ssm:{ARN}"), |e| {
                matches!(e, E::WrongService(_))
            }),
            (
                "secretcache:ssm:arn:aws:ssm:us-east-1:123456789012:document/x".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (
                "secretcache:ssm:arn:aws:ssm:us-east-1:123456789012:parameter".into(),
                |e| matches!(e, E::BadArn { .. }),
            ),
            (long_name, |e| matches!(e, E::PartTooLong { max: 512, .. })),
            (too_long, |e| *e == E::TooLong),
            (
                format!("secretcache:db#{}", "k".repeat(MAX_FIELD + 1)),
                |e| {
                    matches!(
                        e,
                        E::PartTooLong {
                            part: "the field",
                            ..
                        }
                    )
                },
            ),
        ];
        for (text, expected) in cases {
            let e = match parse(&text) {
                Some(Err(e)) => e,
                other => panic!("{text:?}: expected an error, got {other:?}"),
            };
            assert!(expected(&e), "{text:?}: unexpected {e:?}");
            let message = e.to_string();
            // A malformed reference is never echoed: at most one character of it.
            for word in [
                "prod",
                "/app/x",
                "AWSPENDING",
                "password",
                "AbCdEf",
                "db-url",
                "pass",
            ] {
                assert!(!message.contains(word), "{text:?}: {message}");
            }
            assert!(
                !message.chars().any(char::is_control),
                "{text:?}: {message:?}"
            );
        }
    }

    #[test]
    fn hostile_values_never_panic() {
        // Every cut of some tricky inputs, at every char boundary: parsing must answer, never panic.
        let inputs = [
            format!("secretcache:{ARN}?versionStage=AWSPENDING&versionId=v#f#g"),
            format!("secretcache:ssm:{SSM_ARN}:label#k"),
            "secretcache:\u{1F600}?\u{e9}=&&==#\u{0}".to_owned(),
            "secretcache:arn:::::::::::::".to_owned(),
            "secretcache:ssm:arn:aws:ssm:r:123456789012:parameter//".to_owned(),
        ];
        for input in inputs {
            for (i, _) in input.char_indices().chain([(input.len(), ' ')]) {
                let _ = parse(&input[..i]);
                let _ = near_miss(&input[..i]);
            }
        }
    }
}
