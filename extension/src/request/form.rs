//! The query string itself, parsed as the AWS extension's Go code reads it: first value wins, Go booleans,
//! strict percent-decoding, no control characters, bounded lengths; and the ids of path routes.

use std::borrow::Cow;

use secretcache_client::contract::query;

use super::names::is_role_arn;

/// A query string the API cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8.
    #[error("the query string has an invalid percent-encoding in parameter {0:?}")]
    BadEncoding(String),
    /// A decoded value holds a NUL or another control character.
    #[error("parameter {0} contains a control character")]
    ControlCharacter(String),
    /// A required parameter is absent or empty.
    #[error("the required query parameter {0} is missing")]
    Missing(&'static str),
    /// More values of a repeated parameter than the upstream takes in one call.
    #[error("at most {max} {name} values may be given at once")]
    TooMany {
        /// The parameter.
        name: &'static str,
        /// The limit.
        max: usize,
    },
    /// A parameter's value is not one of those accepted.
    #[error("parameter {name} must be {expected}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// What is accepted.
        expected: &'static str,
    },
}

/// The longest value we accept: Secrets Manager ARNs are at most 2048 characters.
pub(super) const MAX_VALUE_LEN: usize = 2048;

/// The parameters the API reads; any other is checked and then ignored, as the AWS extension ignores it.
pub(super) const KNOWN: [&str; 10] = [
    query::SECRET_ID,
    query::VERSION_ID,
    query::VERSION_STAGE,
    query::REFRESH_NOW,
    query::NAME,
    query::VERSION,
    query::LABEL,
    query::WITH_DECRYPTION,
    query::FIELD,
    query::ROLE_ARN,
];

/// A query string, checked and split in one pass: every name and value percent-decodes to UTF-8 without control
/// characters, and the first value of each parameter we read is kept (decoded, borrowed from the request unless it
/// was percent-encoded), so a lookup is an index and a request allocates nothing here in the common case.
#[derive(Debug, Default)]
pub struct Query<'a> {
    values: [Option<Cow<'a, str>>; KNOWN.len()],
    /// Where each kept value stood among the query's parameters, for "the first one given wins".
    positions: [usize; KNOWN.len()],
}

impl<'a> Query<'a> {
    /// Splits and decodes `raw` (the part after `?`, without it).
    pub fn parse(raw: &'a str) -> Result<Self, QueryError> {
        let mut q = Self::default();
        for (position, part) in raw.split('&').filter(|p| !p.is_empty()).enumerate() {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name).map_err(|()| QueryError::BadEncoding(lossy_name(name)))?;
            let value = decode(value).map_err(|()| QueryError::BadEncoding(name.to_string()))?;
            if has_control(&value) || has_control(&name) {
                return Err(QueryError::ControlCharacter(lossy_name(&name)));
            }
            if let Some(i) = KNOWN.iter().position(|k| *k == name) {
                // Go's `url.Values.Get`: a repeated parameter means its first value.
                if q.values[i].is_none() {
                    q.values[i] = Some(value);
                    q.positions[i] = position;
                }
            }
        }
        Ok(q)
    }

    pub(super) fn index(name: &'static str) -> Option<usize> {
        let i = KNOWN.iter().position(|k| *k == name);
        // Only `KNOWN` names are kept by `parse`: asking for another is a bug here, not bad input.
        debug_assert!(i.is_some(), "`{name}` is not in KNOWN");
        i
    }

    /// The (first) value of `name`, if present.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, QueryError> {
        let Some(i) = Self::index(name) else {
            return Ok(None);
        };
        let value = self.values[i].as_deref();
        if value.is_some_and(|v| v.len() > MAX_VALUE_LEN) {
            return Err(QueryError::Invalid {
                name,
                expected: "at most 2048 characters long",
            });
        }
        Ok(value)
    }

    /// Where `name` first stood in the query (`usize::MAX` when absent).
    pub(super) fn position(&self, name: &'static str) -> usize {
        Self::index(name)
            .filter(|&i| self.values[i].is_some())
            .map_or(usize::MAX, |i| self.positions[i])
    }

    /// A boolean flag: absent (or empty) is `false`; otherwise what Go's `strconv.ParseBool` accepts.
    pub fn flag(&self, name: &'static str) -> Result<bool, QueryError> {
        match self.get(name)? {
            None | Some("") => Ok(false),
            Some(v) => crate::config::parse_bool(v).ok_or(QueryError::Invalid {
                name,
                expected: "one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False",
            }),
        }
    }

    /// `field=`: a top-level key of a JSON value; absent means the whole body.
    pub fn field(&self) -> Result<Option<String>, QueryError> {
        match self.get("field")? {
            None => Ok(None),
            Some("") => Err(QueryError::Missing("field")),
            Some(f) => Ok(Some(f.to_owned())),
        }
    }

    /// `roleArn`: absent or empty is none; anything else must be an IAM role's ARN ([`is_role_arn`]).
    pub fn role(&self) -> Result<Option<String>, QueryError> {
        match self.get("roleArn")?.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(arn) if is_role_arn(arn) => Ok(Some(arn.to_owned())),
            Some(_) => Err(QueryError::Invalid {
                name: "roleArn",
                expected: "an IAM role's ARN: arn:aws:iam::<12-digit account>:role/<name>",
            }),
        }
    }

    /// A required, non-empty value.
    pub fn required(&self, name: &'static str) -> Result<&str, QueryError> {
        match self.get(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(QueryError::Missing(name)),
        }
    }
}

/// Whether `s` holds a control character (C0, DEL or C1), checked on bytes: C1 characters are the only ones
/// encoded with a leading 0xC2 followed by 0x80..=0x9F.
pub(super) fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7F
            || (c == 0xC2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)))
    })
}

/// The id in the rest of a path, percent-decoded (`%2F` is a slash, as a literal one is) and checked as the query
/// parameter `name` would be.
pub(super) fn path_id<'a>(name: &'static str, raw: &'a str) -> Result<Cow<'a, str>, QueryError> {
    let id = decode(raw).map_err(|()| QueryError::BadEncoding(name.to_owned()))?;
    if id.is_empty() {
        return Err(QueryError::Missing(name));
    }
    if has_control(&id) {
        return Err(QueryError::ControlCharacter(name.to_owned()));
    }
    if id.len() > MAX_VALUE_LEN {
        return Err(QueryError::Invalid {
            name,
            expected: "at most 2048 characters long",
        });
    }
    Ok(id)
}

/// Strict percent-decoding; `+` stays `+`.
pub(super) fn decode(s: &str) -> Result<Cow<'_, str>, ()> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes
                .get(i + 1)
                .and_then(|b| (*b as char).to_digit(16))
                .ok_or(())?;
            let lo = bytes
                .get(i + 2)
                .and_then(|b| (*b as char).to_digit(16))
                .ok_or(())?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| ())
}

/// A parameter name fit for an error message: short and printable.
pub(super) fn lossy_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Every value of the repeated parameter `name`, each checked like a single value, duplicates removed.
pub(super) fn repeated(
    raw: &str,
    name: &'static str,
    max: usize,
) -> Result<Vec<String>, QueryError> {
    let mut values: Vec<String> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = part.split_once('=').unwrap_or((part, ""));
        let n = decode(n).map_err(|()| QueryError::BadEncoding(lossy_name(n)))?;
        if n != name {
            continue;
        }
        let v = decode(v).map_err(|()| QueryError::BadEncoding(name.to_owned()))?;
        if has_control(&v) {
            return Err(QueryError::ControlCharacter(name.to_owned()));
        }
        if v.is_empty() {
            return Err(QueryError::Missing(name));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(QueryError::Invalid {
                name,
                expected: "at most 2048 characters long",
            });
        }
        if !values.iter().any(|seen| *seen == v) {
            values.push(v.into_owned());
        }
    }
    if values.is_empty() {
        return Err(QueryError::Missing(name));
    }
    if values.len() > max {
        return Err(QueryError::TooMany { name, max });
    }
    Ok(values)
}
