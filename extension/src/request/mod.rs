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

mod batch;
mod form;
mod names;

pub use batch::BatchRequest;
use form::path_id;
pub use form::{Query, QueryError};
use names::check_region;
pub use names::{arn_region, is_region, is_role_arn};

/// What the cache stores values under: a secret or a parameter, with its version selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A Secrets Manager secret.
    Secret(SecretKey),
    /// An SSM parameter.
    Parameter(ParameterKey),
}

impl Key {
    /// The current version (`AWSCURRENT`) of the secret `secret_id`.
    pub fn current_secret(secret_id: String) -> Self {
        Self::Secret(SecretKey {
            secret_id,
            selector: VersionSelector::Current,
        })
    }

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

#[cfg(test)]
mod tests {
    use super::form::has_control;
    use super::names::{is_region, is_role_arn};
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
        for (v, want) in secretcache_client::env::go_bool_spellings().chain([("", false)]) {
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
