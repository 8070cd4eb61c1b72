//! The credential provider: where the PostgreSQL user name and password come from.
//!
//! Parts:
//! - [`extension_client`]: the [`secretcache_client::Client`] for the secretcache extension (or the AWS Parameters
//!   and Secrets Lambda Extension it replaces) on `127.0.0.1`, built from our settings. The function never calls AWS
//!   itself: the extension caches, and it is the one holding the IAM credentials. The client rides out the cold-start
//!   race (the extension not answering yet) with a short backoff, and it and the extension share one definition of
//!   the wire contract and the bodies.
//! - [`parse_rds_secret`]: the RDS secret JSON (`username`, `password`, `host`, `port`, `dbname`, `engine`), with
//!   `DATABASE_HOST` / `DATABASE_PORT` / `DATABASE_NAME` filling what an RDS-managed master secret leaves out.
//! - [`CredentialProvider`]: fixed credentials (the legacy variables), the secret, or the deprecated Parameter Store
//!   URL. [`CredentialProvider::fetch`] reads from the extension's cache; after a login failed,
//!   [`CredentialProvider::candidates`] gives the versions worth trying, in the client's rotation order
//!   ([`secretcache_client::Rotation`]): `AWSCURRENT` fetched anew (`refreshNow=true`), then `AWSPENDING`, since
//!   single-user rotation changes the password before it moves `AWSCURRENT`.
//!
//! The seed note's log lines (`Successfully retrieved database credentials from Secrets Manager`, `Failed to
//! retrieve DATABASE_URL from Secrets Manager: ...`) are written here, word for word, because operators' runbooks
//! and metric filters look for them; our structured fields sit beside them.
//!
//! Nothing here logs or returns a secret value: passwords are [`Secret`]s, and errors carry the extension's status
//! and error code, never its body.

use std::time::Duration;

use secretcache_client::{Candidate, Client, ExposeSecret, Rotation, SecretString};
use serde::Deserialize;

use crate::config::{
    ExtensionConfig, StaticCredentials, DATABASE_HOST, DB_SECRET_ARN, DEFAULT_POSTGRES_PORT,
    PARAMETER_STORE_DB_URL,
};
use crate::secret::Secret;

/// The `version` log field of a read from the extension's cache.
const CACHED: &str = "AWSCURRENT";

/// The `version` log field of a rotation candidate (the runbook's lines carry these names).
fn version_name(candidate: Candidate) -> &'static str {
    match candidate {
        Candidate::Current => "AWSCURRENT (refreshNow)",
        Candidate::Pending => "AWSPENDING",
    }
}

/// Why credentials could not be had. The messages name variables and fields, never values. `Clone`, so that the
/// requests that waited on one failed attempt can be given its answer (`Database::backend`).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CredentialsError {
    /// Neither token variable is set, so the extension would refuse us.
    #[error("neither AWS_SESSION_TOKEN nor AWS_CONTAINER_AUTHORIZATION_TOKEN is set; the secrets extension requires one")]
    NoToken,
    /// Nothing answers on the extension's port, even after the cold-start wait.
    #[error("the secrets extension on 127.0.0.1:{port} is not answering (is its layer attached?)")]
    Unreachable {
        /// The port tried.
        port: u16,
    },
    /// The extension did not answer in time.
    #[error("the secrets extension did not answer within {0:?}")]
    Timeout(Duration),
    /// The extension answered with an error.
    #[error("the secrets extension answered {status} ({code}) for the value named by {variable}")]
    Extension {
        /// HTTP status.
        status: u16,
        /// The AWS-style error code from its body (`__type`), or `unknown`.
        code: String,
        /// The variable naming what we asked for.
        variable: &'static str,
    },
    /// The response or the secret is not what we expect.
    #[error("the value named by {variable} is unusable: {reason}")]
    InvalidSecret {
        /// The variable naming it.
        variable: &'static str,
        /// What is wrong with it, in words (never a value).
        reason: &'static str,
    },
    /// The secret lacks a field and its fallback variable is not set either.
    #[error("the secret named by DB_SECRET_ARN has no `{field}` and {variable} is not set")]
    MissingField {
        /// The secret's field.
        field: &'static str,
        /// The variable that would fill it.
        variable: &'static str,
    },
    /// A transport failure other than the ones above.
    #[error("talking to the secrets extension failed: {0}")]
    Transport(String),
}

impl CredentialsError {
    fn invalid_secret(reason: &'static str) -> Self {
        Self::InvalidSecret {
            variable: DB_SECRET_ARN,
            reason,
        }
    }

    /// The client's error, for the value that `variable` names.
    fn from_client(e: secretcache_client::Error, variable: &'static str) -> Self {
        use secretcache_client::Error as E;
        let invalid = |reason| Self::InvalidSecret { variable, reason };
        match e {
            E::NoToken => Self::NoToken,
            E::Unreachable { port } => Self::Unreachable { port },
            E::Timeout(after) => Self::Timeout(after),
            E::Status { status, code } => Self::Extension {
                status,
                code,
                variable,
            },
            E::InvalidBody { .. } if variable == PARAMETER_STORE_DB_URL => {
                invalid("the extension's answer is not GetParameter JSON")
            }
            E::InvalidBody { .. } => invalid("the extension's answer is not GetSecretValue JSON"),
            E::InvalidToken => invalid("the token or secret id cannot be sent in an HTTP request"),
            E::Transport(detail) => Self::Transport(detail),
            other => Self::Transport(other.to_string()),
        }
    }
}

/// The client for the extension described by `config`. Build it once per execution environment.
pub(crate) fn extension_client(config: &ExtensionConfig) -> Client {
    let mut builder = Client::builder()
        .port(config.port)
        .timeout(config.timeout)
        .startup_wait(config.startup_wait);
    if let Some(token) = &config.token {
        builder = builder.token(SecretString::from(token.expose()));
    }
    builder.build()
}

/// The `SecretString` of a GetSecretValue answer, as ours.
fn secret_string(
    body: secretcache_client::GetSecretValueBody<'static>,
) -> Result<Secret, CredentialsError> {
    body.into_secret_string()
        .map(|s| Secret::new(s.expose_secret()))
        .ok_or(CredentialsError::invalid_secret(
            "it has no SecretString (a binary secret?)",
        ))
}

/// `port` in an RDS secret is a number, but hand-made secrets often hold a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct RdsSecret {
    #[serde(alias = "user")]
    username: Option<String>,
    password: Option<Secret>,
    host: Option<String>,
    port: Option<PortValue>,
    #[serde(alias = "database")]
    dbname: Option<String>,
    engine: Option<String>,
}

/// What fills the fields an RDS secret may leave out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fallbacks {
    /// `DATABASE_HOST`.
    pub host: Option<String>,
    /// `DATABASE_PORT`.
    pub port: Option<u16>,
    /// `DATABASE_NAME`.
    pub dbname: Option<String>,
}

/// Parses the RDS secret JSON. The secret's own fields win; `fallbacks` fill the gaps.
pub(crate) fn parse_rds_secret(
    secret_string: &Secret,
    fallbacks: &Fallbacks,
) -> Result<StaticCredentials, CredentialsError> {
    // serde_json's error text can quote the input; it is dropped for a fixed message.
    let s: RdsSecret = serde_json::from_str(secret_string.expose())
        .map_err(|_| CredentialsError::invalid_secret("SecretString is not the RDS JSON object"))?;
    if let Some(engine) = s.engine.as_deref() {
        if !matches!(
            engine.to_ascii_lowercase().as_str(),
            "postgres" | "postgresql" | "aurora-postgresql"
        ) {
            return Err(CredentialsError::invalid_secret(
                "its engine is not postgres",
            ));
        }
    }
    let username = s
        .username
        .filter(|u| !u.is_empty())
        .ok_or(CredentialsError::invalid_secret("it has no username"))?;
    let password = s
        .password
        .ok_or(CredentialsError::invalid_secret("it has no password"))?;
    let host = s
        .host
        .filter(|h| !h.is_empty())
        .or_else(|| fallbacks.host.clone())
        .ok_or(CredentialsError::MissingField {
            field: "host",
            variable: DATABASE_HOST,
        })?;
    let port = match s.port {
        Some(PortValue::Number(n)) => u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(CredentialsError::invalid_secret("its port is not 1-65535"))?,
        Some(PortValue::Text(t)) if t.trim().is_empty() => {
            fallbacks.port.unwrap_or(DEFAULT_POSTGRES_PORT)
        }
        Some(PortValue::Text(t)) => t
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(CredentialsError::invalid_secret("its port is not 1-65535"))?,
        None => fallbacks.port.unwrap_or(DEFAULT_POSTGRES_PORT),
    };
    let dbname = s
        .dbname
        .filter(|d| !d.is_empty())
        .or_else(|| fallbacks.dbname.clone())
        // libpq's default, as for the legacy variables: the database named after the role.
        .unwrap_or_else(|| username.clone());
    Ok(StaticCredentials {
        host,
        port,
        dbname,
        username,
        password,
    })
}

/// What a provider hands over: the parts of a login, or a whole URL (the Parameter Store tier).
#[derive(Debug, Clone)]
pub(crate) enum Login {
    /// Host, port, database, user and password.
    Credentials(StaticCredentials),
    /// A `postgres://` URL; held as a secret because it carries the password.
    Url(Secret),
}

/// Where credentials come from: fixed, the secret through the extension, or the deprecated parameter.
#[derive(Debug)]
pub(crate) enum CredentialProvider {
    /// The legacy `DATABASE_*` variables; they cannot change without a new execution environment.
    Static(StaticCredentials),
    /// `DB_SECRET_ARN` through the extension.
    Extension {
        /// The client, built once (boxed: it is much larger than the other variant).
        client: Box<Client>,
        /// The secret's name or ARN.
        secret_id: String,
        /// What fills the secret's gaps.
        fallbacks: Fallbacks,
    },
    /// `PARAMETER_STORE_DB_URL` through the extension's SSM endpoint, with decryption.
    ParameterStore {
        /// The client, built once.
        client: Box<Client>,
        /// The parameter's name.
        name: String,
    },
}

impl CredentialProvider {
    /// Whether asking again can give a different answer (so a rejected login is worth a refresh).
    pub(crate) fn rotates(&self) -> bool {
        !matches!(self, Self::Static(_))
    }

    /// The variable the credentials come from, for log lines.
    pub(crate) fn source_name(&self) -> &'static str {
        match self {
            Self::Static(_) => "DATABASE_USER/DATABASE_PASSWORD",
            Self::Extension { .. } => DB_SECRET_ARN,
            Self::ParameterStore { .. } => PARAMETER_STORE_DB_URL,
        }
    }

    /// The login: fixed, or read from the extension's cache.
    pub(crate) async fn fetch(&self) -> Result<Login, CredentialsError> {
        match self {
            Self::Static(c) => Ok(Login::Credentials(c.clone())),
            Self::Extension {
                client,
                secret_id,
                fallbacks,
            } => {
                let fetched = client
                    .secret(secret_id)
                    .send()
                    .await
                    .map_err(|e| CredentialsError::from_client(e, DB_SECRET_ARN));
                secret_login(fetched, fallbacks, CACHED)
            }
            Self::ParameterStore { client, name } => parameter_login(client, name, false).await,
        }
    }

    /// After the database refused the login: the versions worth trying, in order. Fixed credentials have none.
    pub(crate) fn candidates(&self) -> Candidates<'_> {
        let next = match self {
            Self::Static(_) => Next::Done,
            Self::Extension {
                client,
                secret_id,
                fallbacks,
            } => Next::Secret {
                rotation: client.rotation(secret_id),
                fallbacks,
            },
            // A parameter has no AWSPENDING: it can only be read anew.
            Self::ParameterStore { client, name } => Next::Parameter { client, name },
        };
        Candidates { next }
    }
}

/// The logins to try after a refused one, fetched one at a time ([`CredentialProvider::candidates`]).
pub(crate) struct Candidates<'a> {
    next: Next<'a>,
}

enum Next<'a> {
    Secret {
        rotation: Rotation<'a>,
        fallbacks: &'a Fallbacks,
    },
    Parameter {
        client: &'a Client,
        name: &'a str,
    },
    Done,
}

impl Candidates<'_> {
    /// The next login and the version it came from (for log lines), or `None` when nothing is left to try. After an
    /// error there is nothing more: the caller gives up with it.
    pub(crate) async fn next(&mut self) -> Option<Result<(&'static str, Login), CredentialsError>> {
        match &mut self.next {
            Next::Done => None,
            Next::Secret {
                rotation,
                fallbacks,
            } => {
                // No AWSPENDING version (no rotation in progress) ends the rotation without an error: expected, so
                // not the seed's failure line.
                let (candidate, fetched) = rotation.next().await?;
                let version = version_name(candidate);
                let fetched = fetched.map_err(|e| CredentialsError::from_client(e, DB_SECRET_ARN));
                let login = secret_login(fetched, fallbacks, version);
                if login.is_err() {
                    self.next = Next::Done;
                }
                Some(login.map(|l| (version, l)))
            }
            Next::Parameter { client, name } => {
                let login = parameter_login(client, name, true).await;
                self.next = Next::Done;
                Some(login.map(|l| (version_name(Candidate::Current), l)))
            }
        }
    }
}

/// The login in a GetSecretValue answer, with the seed's success or failure line; `version` names what was asked.
fn secret_login(
    fetched: Result<secretcache_client::GetSecretValueBody<'static>, CredentialsError>,
    fallbacks: &Fallbacks,
    version: &'static str,
) -> Result<Login, CredentialsError> {
    match fetched
        .and_then(secret_string)
        .and_then(|s| parse_rds_secret(&s, fallbacks))
    {
        Ok(creds) => {
            tracing::info!(
                source = DB_SECRET_ARN,
                version,
                "Successfully retrieved database credentials from Secrets Manager"
            );
            Ok(Login::Credentials(creds))
        }
        Err(e) => {
            tracing::error!(
                source = DB_SECRET_ARN,
                version,
                error = %e,
                "Failed to retrieve DATABASE_URL from Secrets Manager: {e}"
            );
            Err(e)
        }
    }
}

/// The URL in the parameter, read with decryption; `refresh` bypasses the extension's cache.
async fn parameter_login(
    client: &Client,
    name: &str,
    refresh: bool,
) -> Result<Login, CredentialsError> {
    let url = client
        .parameter(name, true)
        .refresh_now(refresh)
        .send()
        .await
        .map_err(|e| CredentialsError::from_client(e, PARAMETER_STORE_DB_URL))
        .and_then(parameter_value)
        .inspect_err(|e| {
            tracing::error!(source = PARAMETER_STORE_DB_URL, error = %e, "Failed to retrieve DATABASE_URL from Parameter Store: {e}");
        })?;
    tracing::info!(
        source = PARAMETER_STORE_DB_URL,
        refreshed = refresh,
        "Retrieved DATABASE_URL from Parameter Store (deprecated)"
    );
    Ok(Login::Url(url))
}

/// The `Value` of a GetParameter answer, as ours.
fn parameter_value(
    body: secretcache_client::GetParameterBody<'static>,
) -> Result<Secret, CredentialsError> {
    body.into_value()
        .map(|s| Secret::new(s.expose_secret()))
        .ok_or(CredentialsError::InvalidSecret {
            variable: PARAMETER_STORE_DB_URL,
            reason: "it has no Value",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<StaticCredentials, CredentialsError> {
        parse_rds_secret(&Secret::new(json), &Fallbacks::default())
    }

    #[test]
    fn full_rds_secret() {
        let c = parse(
            r#"{"username":"app","password":"pw","host":"db.example","port":5433,"dbname":"collections","engine":"postgres"}"#,
        )
        .expect("parses");
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.dbname.as_str(),
                c.username.as_str()
            ),
            ("db.example", 5433, "collections", "app")
        );
        assert_eq!(c.password.expose(), "pw");
    }

    #[test]
    fn port_may_be_a_string() {
        let c = parse(r#"{"username":"app","password":"pw","host":"h","port":"6543"}"#)
            .expect("parses");
        assert_eq!(c.port, 6543);
        assert!(parse(r#"{"username":"app","password":"pw","host":"h","port":"x"}"#).is_err());
        assert!(parse(r#"{"username":"app","password":"pw","host":"h","port":70000}"#).is_err());
    }

    #[test]
    fn master_secret_takes_host_port_and_name_from_the_environment() {
        let fallbacks = Fallbacks {
            host: Some("rds.example".into()),
            port: Some(5432),
            dbname: Some("collections".into()),
        };
        let c = parse_rds_secret(
            &Secret::new(r#"{"username":"postgres","password":"pw"}"#),
            &fallbacks,
        )
        .expect("parses");
        assert_eq!(
            (c.host.as_str(), c.port, c.dbname.as_str()),
            ("rds.example", 5432, "collections")
        );
    }

    #[test]
    fn missing_host_names_the_variable() {
        let e = parse(r#"{"username":"u","password":"pw"}"#).expect_err("no host");
        assert!(e.to_string().contains("DATABASE_HOST"), "{e}");
    }

    #[test]
    fn errors_never_quote_the_secret() {
        for json in [
            r#"{"username":"u","password":"hunter2","host":"h","engine":"mysql"}"#,
            r#"{"username":"u","password":"hunter2","host":"h","port":"hunter2"}"#,
            r#"not json hunter2"#,
            r#"{"username":"u","password":hunter2}"#,
        ] {
            let e = parse(json).expect_err(json);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn get_secret_value_body() {
        let body = br#"{"ARN":"arn","Name":"db","SecretBinary":null,"SecretString":"{\"username\":\"u\"}","VersionId":"v","VersionStages":["AWSCURRENT"],"CreatedDate":"2022-11-16T08:22:40.499Z","ResultMetadata":{}}"#;
        let parse = |body: &[u8]| secret_string(serde_json::from_slice(body).expect("JSON"));
        assert_eq!(parse(body).expect("parses").expose(), r#"{"username":"u"}"#);
        assert!(parse(br#"{"SecretString":null}"#).is_err());
    }

    #[test]
    fn get_parameter_body() {
        let body = br#"{"Parameter":{"ARN":"arn","DataType":"text","LastModifiedDate":"2024-01-01T00:00:00Z","Name":"/db/url","Selector":null,"SourceResult":null,"Type":"SecureString","Value":"postgres://u:pw@h/d","Version":1},"ResultMetadata":{}}"#;
        let parse = |body: &[u8]| parameter_value(serde_json::from_slice(body).expect("JSON"));
        assert_eq!(parse(body).expect("parses").expose(), "postgres://u:pw@h/d");
        let e = parse(br#"{"Parameter":{"Name":"x"}}"#).expect_err("no value");
        assert!(e.to_string().contains(PARAMETER_STORE_DB_URL), "{e}");
    }

    #[test]
    fn client_errors_keep_their_meaning_and_name_the_variable() {
        use secretcache_client::Error as E;
        let e = CredentialsError::from_client(
            E::Status {
                status: 404,
                code: "ResourceNotFoundException".into(),
            },
            DB_SECRET_ARN,
        );
        assert_eq!(
            e.to_string(),
            "the secrets extension answered 404 (ResourceNotFoundException) for the value named by DB_SECRET_ARN"
        );
        assert!(matches!(
            CredentialsError::from_client(E::Unreachable { port: 2773 }, DB_SECRET_ARN),
            CredentialsError::Unreachable { port: 2773 }
        ));
        assert!(matches!(
            CredentialsError::from_client(E::NoToken, DB_SECRET_ARN),
            CredentialsError::NoToken
        ));
        let e = CredentialsError::from_client(
            E::InvalidBody {
                expected: "GetParameter",
            },
            PARAMETER_STORE_DB_URL,
        );
        assert!(e.to_string().contains("not GetParameter JSON"), "{e}");
        let e = CredentialsError::from_client(E::Transport("reset".into()), DB_SECRET_ARN);
        assert_eq!(
            e.to_string(),
            "talking to the secrets extension failed: reset"
        );
    }
}
