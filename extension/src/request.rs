//! Parsing of the localhost API's query strings into typed requests.
//!
//! The rules are the AWS extension's (it is written in Go and reads queries with `url.Values`), so that code written
//! for it keeps working: a repeated parameter means its first value (`url.Values.Get`); booleans are what
//! `strconv.ParseBool` accepts; `versionId` with `versionStage` both go upstream, which accepts them when they agree;
//! SSM `version` with `label` uses the one given first, as the AWS documentation says. Parameters we do not know are
//! ignored. Stricter than Go only where a value cannot be meant: a bad percent-encoding, a control character, or a
//! value longer than any name or ARN, each a 400 with a message. `+` is kept literally (it is not a space): secret
//! and parameter names may contain `+` but never a space.

use std::borrow::Cow;

use secretcache_client::contract::query;

/// What the cache stores values under: a secret or a parameter, with its version selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A Secrets Manager secret.
    Secret(SecretKey),
    /// An SSM parameter.
    Parameter(ParameterKey),
}

impl Key {
    /// Approximate heap size, for the cache's byte budget.
    pub fn len(&self) -> usize {
        match self {
            Self::Secret(k) => k.secret_id.len() + 32,
            Self::Parameter(k) => k.name.len() + 32,
        }
    }

    /// Never true; present because `len` is.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// How many keys like this one the upstream answers in one call: BatchGetSecretValue takes 20 secrets (their
    /// current versions only), GetParameters 10 names; other keys go one by one.
    pub fn batch_limit(&self) -> usize {
        match self {
            Self::Secret(k) if k.selector == VersionSelector::Current => 20,
            Self::Secret(_) => 1,
            Self::Parameter(_) => 10,
        }
    }

    /// The region named by an ARN key (`None` for a name: the home region).
    pub fn region(&self) -> Option<&str> {
        let id = match self {
            Self::Secret(k) => k.secret_id.as_str(),
            Self::Parameter(k) => k.name.as_str(),
        };
        arn_region(id)
    }

    /// Whether one upstream call can fetch this key together with `other`: same kind, same region (a name, or an
    /// ARN of `home`, is the home region) and, for parameters, the same decryption.
    pub fn batches_with(&self, other: &Key, home: Option<&str>) -> bool {
        let region = |k: &Key| k.region().filter(|r| Some(*r) != home).map(str::to_owned);
        if region(self) != region(other) {
            return false;
        }
        match (self, other) {
            (Self::Secret(a), Self::Secret(b)) => {
                a.selector == VersionSelector::Current && b.selector == VersionSelector::Current
            }
            (Self::Parameter(a), Self::Parameter(b)) => a.with_decryption == b.with_decryption,
            _ => false,
        }
    }

    /// `secret` or `parameter`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Secret(_) => "secret",
            Self::Parameter(_) => "parameter",
        }
    }
}

impl std::fmt::Display for Key {
    /// Names and selectors only: never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(k) => match &k.selector {
                VersionSelector::Current => write!(f, "secret:{}", k.secret_id),
                VersionSelector::Id(id) => write!(f, "secret:{}@id:{id}", k.secret_id),
                VersionSelector::Stage(s) => write!(f, "secret:{}@stage:{s}", k.secret_id),
                VersionSelector::IdAndStage(id, s) => {
                    write!(f, "secret:{}@id:{id}@stage:{s}", k.secret_id)
                }
            },
            Self::Parameter(k) => write!(
                f,
                "parameter:{}{}",
                k.name,
                if k.with_decryption { "(decrypted)" } else { "" }
            ),
        }
    }
}

/// The region of an ARN (`arn:<partition>:<service>:<region>:...`); `None` for anything else.
pub fn arn_region(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("arn:")?;
    let mut parts = rest.splitn(4, ':');
    let (_partition, _service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_some() && !region.is_empty()).then_some(region)
}

/// Whether `arn` is an IAM role's ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`, the name of
/// IAM's characters (letters, digits, `+=,.@_-`, and `/` in the path), at most 2048 characters.
pub fn is_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let name = resource.strip_prefix("role/").unwrap_or_default();
    arn.len() <= 2048
        && matches!(
            partition,
            "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-eusc"
        )
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && !name.ends_with('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// Whether `region` has AWS's region form: lowercase letters in dash-separated labels, the last one a number
/// (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eusc-de-east-1`), at most 32 characters. A region named in an ARN
/// builds clients of its own, so only this form is let through (the clients themselves are few and bounded too).
pub fn is_region(region: &str) -> bool {
    let mut labels = region.split('-');
    let last = labels.next_back().unwrap_or_default();
    let letters: Vec<&str> = labels.collect();
    region.len() <= 32
        && letters.len() >= 2
        && letters
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 3
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// An id that is an ARN must name its region in AWS's form ([`is_region`]); a name (or an ARN without a region) goes
/// to the home region.
fn check_region(name: &'static str, id: &str) -> Result<(), QueryError> {
    match arn_region(id) {
        Some(region) if !is_region(region) => Err(QueryError::Invalid {
            name,
            expected: "a name or an ARN whose region has AWS's form: lowercase dash-separated labels ending in a \
                       number, like us-east-1",
        }),
        _ => Ok(()),
    }
}

/// The cache key and upstream request for one SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterKey {
    /// Name or ARN, with a `:version` or `:label` selector appended when one was asked for.
    pub name: String,
    /// `withDecryption=true`: SecureString values are decrypted. Part of the key, since the value differs.
    pub with_decryption: bool,
}

/// A parsed `GET /systemsmanager/parameters/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterRequest {
    /// What to fetch.
    pub key: ParameterKey,
    /// `roleArn=`: read as this role (its own cache).
    pub role: Option<String>,
    /// `refreshNow=true`: bypass the cache.
    pub refresh_now: bool,
    /// `field=`: answer only this top-level key of the JSON value, as text.
    pub field: Option<String>,
}

impl ParameterRequest {
    /// Parses the query of `GET /systemsmanager/parameters/get`.
    pub fn parse(raw_query: &str) -> Result<Self, QueryError> {
        let q = Query::parse(raw_query)?;
        let name = q.required("name")?;
        Self::with_name(name, &q)
    }

    /// Parses `GET /systemsmanager/parameters/<name>?<query>`, Cloud Extensions' path route: the name is the
    /// percent-decoded rest of the path, checked as a `name` is. A hierarchical name keeps its leading slash whether or
    /// not the path doubles it (`/systemsmanager/parameters/app/db`, `.../%2Fapp%2Fdb` and `...//app/db` all mean
    /// `/app/db`: SSM names with a slash always begin with one).
    pub fn parse_path(raw_name: &str, raw_query: &str) -> Result<Self, QueryError> {
        let name = path_id("name", raw_name)?;
        let name = if name.contains('/') && !name.starts_with('/') && !name.starts_with("arn:") {
            Cow::Owned(format!("/{name}"))
        } else {
            name
        };
        Self::with_name(&name, &Query::parse(raw_query)?)
    }

    fn with_name(name: &str, q: &Query<'_>) -> Result<Self, QueryError> {
        check_region("name", name)?;
        let version = q.get("version")?.filter(|v| !v.is_empty());
        let label = q.get("label")?.filter(|v| !v.is_empty());
        // Both given: the first one in the query wins, as the AWS documentation says.
        let (version, label) = match (version, label) {
            (Some(_), Some(_)) if q.position("label") < q.position("version") => (None, label),
            (Some(_), Some(_)) => (version, None),
            other => other,
        };
        let name = match (version, label) {
            (Some(v), _) => {
                if v.parse::<u64>().is_err() {
                    return Err(QueryError::Invalid {
                        name: "version",
                        expected: "a positive integer",
                    });
                }
                format!("{name}:{v}")
            }
            (None, Some(l)) => format!("{name}:{l}"),
            (None, None) => name.to_owned(),
        };
        Ok(Self {
            key: ParameterKey {
                name,
                with_decryption: q.flag("withDecryption")?,
            },
            role: q.role()?,
            refresh_now: q.flag("refreshNow")?,
            field: q.field()?,
        })
    }
}

/// A parsed `GET /secretsmanager/batch` or `GET /systemsmanager/parameters/batch`: several keys, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRequest {
    /// What to fetch, duplicates removed, in the order first given.
    pub keys: Vec<Key>,
    /// The ids as given, one per key (a secret's `secretId`, a parameter's `name`).
    pub ids: Vec<String>,
    /// `roleArn=`: read as this role (its own cache).
    pub role: Option<String>,
    /// `field=`: answer only this top-level key of each JSON value.
    pub field: Option<String>,
}

/// BatchGetSecretValue's limit.
pub const MAX_BATCH_SECRETS: usize = secretcache_client::contract::MAX_SECRET_BATCH;
/// GetParameters' limit.
pub const MAX_BATCH_PARAMETERS: usize = secretcache_client::contract::MAX_PARAMETER_BATCH;

impl BatchRequest {
    /// Parses `secretId=a&secretId=b...` (1 to 20; their current versions), with an optional `field`.
    pub fn secrets(raw_query: &str) -> Result<Self, QueryError> {
        let ids = repeated(raw_query, "secretId", MAX_BATCH_SECRETS)?;
        for id in &ids {
            check_region("secretId", id)?;
        }
        let q = Query::parse(raw_query)?;
        let keys = ids
            .iter()
            .map(|id| {
                Key::Secret(SecretKey {
                    secret_id: id.clone(),
                    selector: VersionSelector::Current,
                })
            })
            .collect();
        Ok(Self {
            keys,
            ids,
            role: q.role()?,
            field: q.field()?,
        })
    }

    /// Parses `name=a&name=b...` (1 to 10), `withDecryption` and an optional `field`.
    pub fn parameters(raw_query: &str) -> Result<Self, QueryError> {
        let ids = repeated(raw_query, "name", MAX_BATCH_PARAMETERS)?;
        for id in &ids {
            check_region("name", id)?;
        }
        let q = Query::parse(raw_query)?;
        let with_decryption = q.flag("withDecryption")?;
        let keys = ids
            .iter()
            .map(|name| {
                Key::Parameter(ParameterKey {
                    name: name.clone(),
                    with_decryption,
                })
            })
            .collect();
        Ok(Self {
            keys,
            ids,
            role: q.role()?,
            field: q.field()?,
        })
    }
}

/// Every value of the repeated parameter `name`, each checked like a single value, duplicates removed.
fn repeated(raw: &str, name: &'static str, max: usize) -> Result<Vec<String>, QueryError> {
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

/// The cache key and upstream request for one secret: the id together with its version selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKey {
    /// Name or ARN.
    pub secret_id: String,
    /// Which version.
    pub selector: VersionSelector,
}

/// Which version of a secret is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    /// `AWSCURRENT`, the default.
    Current,
    /// `versionId=`.
    Id(String),
    /// `versionStage=` (other than AWSCURRENT).
    Stage(String),
    /// Both: sent upstream as given; Secrets Manager answers when they agree and refuses when they do not.
    IdAndStage(String, String),
}

/// A parsed `GET /secretsmanager/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequest {
    /// What to fetch.
    pub key: SecretKey,
    /// `roleArn=`: read as this role (its own cache).
    pub role: Option<String>,
    /// `refreshNow=true`: bypass the cache.
    pub refresh_now: bool,
    /// `field=`: answer only this top-level key of the JSON SecretString, as text.
    pub field: Option<String>,
}

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
const MAX_VALUE_LEN: usize = 2048;

/// The parameters the API reads; any other is checked and then ignored, as the AWS extension ignores it.
const KNOWN: [&str; 10] = [
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

    fn index(name: &'static str) -> Option<usize> {
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
    fn position(&self, name: &'static str) -> usize {
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
fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7F
            || (c == 0xC2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)))
    })
}

impl SecretRequest {
    /// Parses the query of `GET /secretsmanager/get`.
    pub fn parse(raw_query: &str) -> Result<Self, QueryError> {
        let q = Query::parse(raw_query)?;
        let secret_id = q.required("secretId")?.to_owned();
        Self::with_id(secret_id, &q)
    }

    /// Parses `GET <prefix><secretId>?<query>`, the AWS Secrets Manager Agent's path-based read: the id is the
    /// percent-decoded rest of the path, checked as a `secretId` is.
    pub fn parse_path(raw_id: &str, raw_query: &str) -> Result<Self, QueryError> {
        let id = path_id("secretId", raw_id)?;
        Self::with_id(id.into_owned(), &Query::parse(raw_query)?)
    }

    fn with_id(secret_id: String, q: &Query<'_>) -> Result<Self, QueryError> {
        check_region("secretId", &secret_id)?;
        let version_id = q.get("versionId")?.filter(|v| !v.is_empty());
        let version_stage = q.get("versionStage")?.filter(|v| !v.is_empty());
        let selector = match (version_id, version_stage) {
            (Some(id), Some(stage)) => VersionSelector::IdAndStage(id.to_owned(), stage.to_owned()),
            (Some(id), None) => VersionSelector::Id(id.to_owned()),
            // AWSCURRENT is the default; one cache entry serves both spellings.
            (None, Some("AWSCURRENT")) | (None, None) => VersionSelector::Current,
            (None, Some(stage)) => VersionSelector::Stage(stage.to_owned()),
        };
        Ok(Self {
            key: SecretKey {
                secret_id,
                selector,
            },
            role: q.role()?,
            refresh_now: q.flag("refreshNow")?,
            field: q.field()?,
        })
    }
}

/// The id in the rest of a path, percent-decoded (`%2F` is a slash, as a literal one is) and checked as the query
/// parameter `name` would be.
fn path_id<'a>(name: &'static str, raw: &'a str) -> Result<Cow<'a, str>, QueryError> {
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
fn decode(s: &str) -> Result<Cow<'_, str>, ()> {
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
fn lossy_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SecretRequest, QueryError> {
        SecretRequest::parse(q)
    }

    #[test]
    fn plain_and_encoded_ids() {
        let r = parse("secretId=db").expect("ok");
        assert_eq!(r.key.secret_id, "db");
        assert_eq!(r.key.selector, VersionSelector::Current);
        assert!(!r.refresh_now);
        let r = parse(
            "secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A1%3Asecret%3Adb-AbC&refreshNow=TRUE",
        )
        .expect("ok");
        assert_eq!(
            r.key.secret_id,
            "arn:aws:secretsmanager:us-east-1:1:secret:db-AbC"
        );
        assert!(r.refresh_now);
        assert_eq!(parse("secretId=a+b/c").expect("ok").key.secret_id, "a+b/c");
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse("secretId=a&versionId=v1").expect("ok").key.selector,
            VersionSelector::Id("v1".into())
        );
        assert_eq!(
            parse("secretId=a&versionStage=AWSPENDING")
                .expect("ok")
                .key
                .selector,
            VersionSelector::Stage("AWSPENDING".into())
        );
        assert_eq!(
            parse("secretId=a&versionStage=AWSCURRENT")
                .expect("ok")
                .key
                .selector,
            VersionSelector::Current
        );
        // Both go upstream as given: Secrets Manager checks that they agree.
        assert_eq!(
            parse("secretId=a&versionId=v&versionStage=AWSCURRENT")
                .expect("ok")
                .key
                .selector,
            VersionSelector::IdAndStage("v".into(), "AWSCURRENT".into())
        );
    }

    #[test]
    fn client_errors() {
        assert_eq!(parse(""), Err(QueryError::Missing("secretId")));
        assert_eq!(parse("secretId="), Err(QueryError::Missing("secretId")));
        assert_eq!(parse("secretid=a"), Err(QueryError::Missing("secretId")));
        // Go's url.Values.Get: the first value of a repeated parameter.
        assert_eq!(
            parse("secretId=a&secretId=b").expect("ok").key.secret_id,
            "a"
        );
        assert!(matches!(
            parse("secretId=%zz"),
            Err(QueryError::BadEncoding(_))
        ));
        assert!(matches!(
            parse("secretId=%4"),
            Err(QueryError::BadEncoding(_))
        ));
        assert!(matches!(
            parse("secretId=%ff%fe"),
            Err(QueryError::BadEncoding(_))
        ));
        assert!(matches!(
            parse("secretId=a%00b"),
            Err(QueryError::ControlCharacter(_))
        ));
        assert!(matches!(
            parse("secretId=a&refreshNow=yes"),
            Err(QueryError::Invalid { .. })
        ));
        assert!(matches!(
            parse("secretId=a&refreshNow=tRuE"),
            Err(QueryError::Invalid { .. })
        ));
        let long = format!("secretId={}", "a".repeat(5000));
        assert!(matches!(parse(&long), Err(QueryError::Invalid { .. })));
    }

    #[test]
    fn parameter_queries() {
        let p = ParameterRequest::parse("name=%2Fapp%2Fx&withDecryption=true").expect("ok");
        assert_eq!(p.key.name, "/app/x");
        assert!(p.key.with_decryption);
        assert_eq!(
            ParameterRequest::parse("name=/a&version=3")
                .expect("ok")
                .key
                .name,
            "/a:3"
        );
        assert_eq!(
            ParameterRequest::parse("name=/a&label=prod")
                .expect("ok")
                .key
                .name,
            "/a:prod"
        );
        assert_eq!(
            ParameterRequest::parse("name=/a:4").expect("ok").key.name,
            "/a:4"
        );
        assert!(matches!(
            ParameterRequest::parse("name=/a&version=x"),
            Err(QueryError::Invalid { .. })
        ));
        // Both selectors: the first one given wins, as the AWS documentation says.
        assert_eq!(
            ParameterRequest::parse("name=/a&version=1&label=l")
                .expect("ok")
                .key
                .name,
            "/a:1"
        );
        assert_eq!(
            ParameterRequest::parse("label=l&name=/a&version=1")
                .expect("ok")
                .key
                .name,
            "/a:l"
        );
        assert_eq!(
            ParameterRequest::parse("version=1"),
            Err(QueryError::Missing("name"))
        );
    }

    #[test]
    fn the_byte_check_for_control_characters_agrees_with_char_is_control() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control(&s), c.is_control(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_parameter_named_twice_means_its_first_value_even_when_one_is_encoded() {
        assert_eq!(
            parse("secretId=a&secret%49d=b").expect("ok").key.secret_id,
            "a"
        );
        assert!(
            parse("refreshNow=1&secretId=a&refreshNow=false")
                .expect("ok")
                .refresh_now
        );
        // An unknown parameter may repeat: it is ignored, as the AWS extension ignores it.
        assert!(parse("secretId=a&x=1&x=2").is_ok());
    }

    #[test]
    fn flags_accept_what_go_parse_bool_accepts() {
        for (v, want) in [
            ("1", true),
            ("t", true),
            ("T", true),
            ("TRUE", true),
            ("true", true),
            ("True", true),
            ("0", false),
            ("f", false),
            ("F", false),
            ("FALSE", false),
            ("false", false),
            ("False", false),
            ("", false),
        ] {
            let q = format!("name=/p&withDecryption={v}&refreshNow={v}");
            let p = ParameterRequest::parse(&q).expect(v);
            assert_eq!((p.key.with_decryption, p.refresh_now), (want, want), "{v}");
        }
    }

    #[test]
    fn batches_take_every_id_once_in_order_up_to_the_upstream_limit() {
        let b = BatchRequest::secrets("secretId=a&secretId=b&x=1&secretId=a&field=password")
            .expect("ok");
        assert_eq!(b.ids, ["a", "b"]);
        assert_eq!(b.field.as_deref(), Some("password"));
        assert!(b
            .keys
            .iter()
            .all(|k| matches!(k, Key::Secret(s) if s.selector == VersionSelector::Current)));
        let twenty: String = (0..20).map(|i| format!("secretId=s{i}&")).collect();
        assert_eq!(BatchRequest::secrets(&twenty).expect("20").ids.len(), 20);
        assert_eq!(
            BatchRequest::secrets(&format!("{twenty}secretId=one-more")),
            Err(QueryError::TooMany {
                name: "secretId",
                max: 20
            })
        );
        assert_eq!(
            BatchRequest::secrets("field=x"),
            Err(QueryError::Missing("secretId"))
        );
        assert_eq!(
            BatchRequest::secrets("secretId="),
            Err(QueryError::Missing("secretId"))
        );
        assert!(matches!(
            BatchRequest::secrets("secretId=a%00"),
            Err(QueryError::ControlCharacter(_))
        ));
        let p = BatchRequest::parameters("name=%2Fa&name=/b&withDecryption=true").expect("ok");
        assert_eq!(p.ids, ["/a", "/b"]);
        assert!(p
            .keys
            .iter()
            .all(|k| matches!(k, Key::Parameter(p) if p.with_decryption)));
        let eleven: String = (0..11).map(|i| format!("name=/p{i}&")).collect();
        assert!(matches!(
            BatchRequest::parameters(&eleven),
            Err(QueryError::TooMany { max: 10, .. })
        ));
    }

    #[test]
    fn a_path_read_takes_its_id_from_the_path() {
        let r = SecretRequest::parse_path("my%2Fdb", "versionStage=AWSPENDING").expect("ok");
        assert_eq!(r.key.secret_id, "my/db");
        assert_eq!(r.key.selector, VersionSelector::Stage("AWSPENDING".into()));
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:my/db-AbCdEf";
        assert_eq!(
            SecretRequest::parse_path(arn, "")
                .expect("ok")
                .key
                .secret_id,
            arn
        );
        assert_eq!(
            SecretRequest::parse_path("", ""),
            Err(QueryError::Missing("secretId"))
        );
        assert!(matches!(
            SecretRequest::parse_path("a%00", ""),
            Err(QueryError::ControlCharacter(_))
        ));
    }

    #[test]
    fn field_is_optional_but_never_empty() {
        assert_eq!(
            parse("secretId=a&field=password")
                .expect("ok")
                .field
                .as_deref(),
            Some("password")
        );
        assert_eq!(parse("secretId=a").expect("ok").field, None);
        assert_eq!(
            parse("secretId=a&field="),
            Err(QueryError::Missing("field"))
        );
    }

    #[test]
    fn regions_come_from_arns_only() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:1:secret:a-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws:ssm:ap-south-1:1:parameter/x"),
            Some("ap-south-1")
        );
        assert_eq!(arn_region("my/db"), None);
        assert_eq!(arn_region("arn:aws:secretsmanager"), None);
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        assert_eq!(
            parse("secretId=a&foo=bar&&").expect("ok").key.secret_id,
            "a"
        );
    }

    #[test]
    fn a_region_in_an_arn_must_have_aws_form() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "eusc-de-east-1",
            "ap-southeast-7",
            "zz-made-up-9",
        ] {
            assert!(is_region(ok), "{ok}");
            let arn = format!("arn:aws:secretsmanager:{ok}:123456789012:secret:db-AbCdEf");
            assert!(parse(&format!("secretId={arn}")).is_ok(), "{arn}");
        }
        for bad in [
            "",
            "us",
            "us-1",
            "US-EAST-1",
            "us-east",
            "us-east-1a",
            "us_east_1",
            "us--east-1",
            "-us-east-1",
            "us-east-1-",
            "us-east-1234",
            "../../etc-passwd-1",
            "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-1",
        ] {
            assert!(!is_region(bad), "{bad:?}");
        }
        for q in [
            "secretId=arn:aws:secretsmanager:Not-A-Region:1:secret:x",
            "secretId=arn:aws:secretsmanager:us-east-1x:1:secret:x",
        ] {
            assert!(
                matches!(
                    parse(q),
                    Err(QueryError::Invalid {
                        name: "secretId",
                        ..
                    })
                ),
                "{q}"
            );
        }
        assert!(
            BatchRequest::secrets("secretId=a&secretId=arn:aws:secretsmanager:x-y:1:secret:s")
                .is_err()
        );
        assert!(ParameterRequest::parse("name=arn:aws:ssm:nowhere:1:parameter/p").is_err());
        assert!(BatchRequest::parameters("name=arn:aws:ssm:Bad-Region-1:1:parameter/p").is_err());
        assert!(SecretRequest::parse_path("arn:aws:secretsmanager:bad:1:secret:x", "").is_err());
        // A name, and an ARN that names no region, go to the home region as before.
        assert!(parse("secretId=my-db-1").is_ok());
        assert!(parse("secretId=arn:aws:secretsmanager::1:secret:x").is_ok());
    }

    #[test]
    fn a_parameter_path_read_takes_its_name_from_the_path() {
        for (path, name) in [
            ("app/db", "/app/db"),
            ("%2Fapp%2Fdb", "/app/db"),
            ("/app/db", "/app/db"),
            ("plain", "plain"),
            (
                "arn:aws:ssm:us-east-1:1:parameter/app/db",
                "arn:aws:ssm:us-east-1:1:parameter/app/db",
            ),
        ] {
            let r = ParameterRequest::parse_path(path, "withDecryption=true").expect(path);
            assert_eq!(r.key.name, name, "{path}");
            assert!(r.key.with_decryption);
        }
        assert_eq!(
            ParameterRequest::parse_path("app/db", "version=3")
                .expect("v")
                .key
                .name,
            "/app/db:3"
        );
        assert!(matches!(
            ParameterRequest::parse_path("", ""),
            Err(QueryError::Missing("name"))
        ));
        assert!(ParameterRequest::parse_path("a%00", "").is_err());
        assert!(ParameterRequest::parse_path("%zz", "").is_err());
    }

    #[test]
    fn a_role_is_an_iam_role_arn_or_nothing() {
        for ok in [
            "arn:aws:iam::111111111111:role/reader",
            "arn:aws:iam::111111111111:role/path/to/reader+x=y,z.w@v_u-t",
            "arn:aws-cn:iam::111111111111:role/r",
            "arn:aws-us-gov:iam::111111111111:role/r",
        ] {
            assert!(is_role_arn(ok), "{ok}");
            let r = parse(&format!("secretId=db&roleArn={ok}")).expect(ok);
            assert_eq!(r.role.as_deref(), Some(ok));
        }
        for bad in [
            "reader",
            "arn:aws:iam::111111111111:user/reader",
            "arn:aws:iam::11111111111:role/reader",
            "arn:aws:iam:us-east-1:111111111111:role/reader",
            "arn:aws:sts::111111111111:role/reader",
            "arn:aws:iam::111111111111:role/",
            "arn:aws:iam::111111111111:role/a b",
            "arn:other:iam::111111111111:role/r",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
            assert!(
                matches!(
                    parse(&format!("secretId=db&roleArn={bad}")),
                    Err(QueryError::Invalid {
                        name: "roleArn",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse("secretId=db&roleArn=").expect("empty").role, None);
        let arn = "arn:aws:iam::111111111111:role/r";
        assert_eq!(
            ParameterRequest::parse(&format!("name=/p&roleArn={arn}"))
                .expect("p")
                .role
                .as_deref(),
            Some(arn)
        );
        assert_eq!(
            BatchRequest::secrets(&format!("secretId=a&roleArn={arn}"))
                .expect("b")
                .role
                .as_deref(),
            Some(arn)
        );
        assert!(SecretRequest::parse_path("db", "roleArn=nope").is_err());
    }
}
