//! The credential provider: where the PostgreSQL user name and password come from.
//!
//! Parts:
//! - [`ExtensionClient`]: one small HTTP/1.1 client for the secretcache extension (or the AWS Parameters and Secrets
//!   Lambda Extension it replaces) on `127.0.0.1`. It never calls AWS itself: the extension caches, and it is the one
//!   holding the IAM credentials. It rides out the cold-start race (the extension not answering yet) with a short
//!   backoff.
//! - [`parse_rds_secret`]: the RDS secret JSON (`username`, `password`, `host`, `port`, `dbname`, `engine`), with
//!   `DATABASE_HOST` / `DATABASE_PORT` / `DATABASE_NAME` filling what an RDS-managed master secret leaves out.
//! - [`CredentialProvider`]: fixed credentials (the legacy variables), the secret, or the deprecated Parameter Store
//!   URL, fetched in one of three ways ([`Fetch`]): from the extension's cache, fresh (`refreshNow=true`) after a
//!   login failed, or the `AWSPENDING` version, since single-user rotation changes the password before it moves
//!   `AWSCURRENT`.
//!
//! The seed note's log lines (`Successfully retrieved database credentials from Secrets Manager`, `Failed to
//! retrieve DATABASE_URL from Secrets Manager: ...`) are written here, word for word, because operators' runbooks
//! and metric filters look for them; our structured fields sit beside them.
//!
//! Nothing here logs or returns a secret value: passwords are [`Secret`]s, and errors carry the extension's status
//! and error code, never its body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::{
    ExtensionConfig, StaticCredentials, DATABASE_HOST, DB_SECRET_ARN, DEFAULT_POSTGRES_PORT,
    PARAMETER_STORE_DB_URL,
};
use crate::secret::Secret;

/// The header the extension checks against the execution environment's session token.
pub(crate) const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// Largest extension response we read. Secrets Manager caps a secret at 64 KiB; the JSON around it is small.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Everything but the unreserved characters is escaped in the query, so an ARN's `:` and `/` arrive intact.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Which version of the secret to ask for, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// `AWSCURRENT`, served from the extension's cache when it has it. The normal case.
    Cached,
    /// `AWSCURRENT` with `refreshNow=true`: the database refused the cached password, so it may have rotated.
    Refresh,
    /// `AWSPENDING` with `refreshNow=true`: single-user rotation sets the new password in the database before the
    /// new version becomes `AWSCURRENT`.
    Pending,
}

impl Fetch {
    /// A name for log fields.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Cached => "AWSCURRENT",
            Self::Refresh => "AWSCURRENT (refreshNow)",
            Self::Pending => "AWSPENDING",
        }
    }
}

/// Why credentials could not be had. The messages name variables and fields, never values.
#[derive(Debug, thiserror::Error)]
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
    /// The secret (or that version of it) does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Extension { status: 404, .. })
    }

    fn invalid_secret(reason: &'static str) -> Self {
        Self::InvalidSecret {
            variable: DB_SECRET_ARN,
            reason,
        }
    }
}

/// A client for the extension's `GET /secretsmanager/get`. Build it once per execution environment.
pub(crate) struct ExtensionClient {
    port: u16,
    token: Option<Secret>,
    timeout: Duration,
    startup_wait: Duration,
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for ExtensionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionClient")
            .field("port", &self.port)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct GetSecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<Secret>,
}

/// GetParameter's answer, as far as we read it.
#[derive(Deserialize)]
struct GetParameter {
    #[serde(rename = "Parameter")]
    parameter: Option<ParameterValue>,
}

#[derive(Deserialize)]
struct ParameterValue {
    #[serde(rename = "Value")]
    value: Option<Secret>,
}

#[derive(Deserialize)]
struct ExtensionErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
}

impl ExtensionClient {
    /// A client for the extension described by `config`.
    pub(crate) fn new(config: &ExtensionConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        // No pooled connections: a fetch is rare (cold start, rotation), and a kept-alive connection may have been
        // closed by the extension while the environment was frozen.
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            port: config.port,
            token: config.token.clone(),
            timeout: config.timeout,
            startup_wait: config.startup_wait,
            http,
        }
    }

    /// The `SecretString` of `secret_id`, fetched as `fetch` says.
    pub(crate) async fn secret_string(
        &self,
        secret_id: &str,
        fetch: Fetch,
    ) -> Result<Secret, CredentialsError> {
        let mut path = format!(
            "/secretsmanager/get?secretId={}",
            utf8_percent_encode(secret_id, QUERY_VALUE)
        );
        match fetch {
            Fetch::Cached => {}
            Fetch::Refresh => path.push_str("&refreshNow=true"),
            Fetch::Pending => path.push_str("&versionStage=AWSPENDING&refreshNow=true"),
        }
        let body = self.get(&path, DB_SECRET_ARN).await?;
        parse_get_secret_value(&body)
    }

    /// The decrypted value of the SSM parameter `name`; `Fetch::Refresh` bypasses the extension's cache.
    pub(crate) async fn parameter_value(
        &self,
        name: &str,
        fetch: Fetch,
    ) -> Result<Secret, CredentialsError> {
        let mut path = format!(
            "/systemsmanager/parameters/get?name={}&withDecryption=true",
            utf8_percent_encode(name, QUERY_VALUE)
        );
        if fetch != Fetch::Cached {
            path.push_str("&refreshNow=true");
        }
        let body = self.get(&path, PARAMETER_STORE_DB_URL).await?;
        parse_get_parameter(&body)
    }

    /// `GET path_and_query` on the extension; the body of a 200, or the error. `variable` names what was asked for.
    async fn get(
        &self,
        path_and_query: &str,
        variable: &'static str,
    ) -> Result<Bytes, CredentialsError> {
        let token = self.token.as_ref().ok_or(CredentialsError::NoToken)?;
        let uri = format!("http://127.0.0.1:{}{path_and_query}", self.port);

        // The cold-start race: the function's init can run before the extension listens. Connection refused (and
        // a 503 from an extension still warming up) are retried until `startup_wait` is spent.
        let give_up = Instant::now() + self.startup_wait;
        let mut pause = Duration::from_millis(20);
        loop {
            let outcome = tokio::time::timeout(self.timeout, self.get_once(&uri, token)).await;
            let retryable = match &outcome {
                Err(_) => return Err(CredentialsError::Timeout(self.timeout)),
                Ok(Err(Attempt::Refused)) => true,
                Ok(Ok((status, _))) => *status == 503,
                Ok(Err(Attempt::Other(_))) => false,
            };
            if !retryable || Instant::now() + pause > give_up {
                return match outcome {
                    Err(_) => Err(CredentialsError::Timeout(self.timeout)),
                    Ok(Err(Attempt::Refused)) => {
                        Err(CredentialsError::Unreachable { port: self.port })
                    }
                    Ok(Err(Attempt::Other(e))) => Err(e),
                    Ok(Ok((200, body))) => Ok(body),
                    Ok(Ok((status, body))) => Err(CredentialsError::Extension {
                        status,
                        code: error_code(&body),
                        variable,
                    }),
                };
            }
            tracing::debug!(
                pause_ms = pause.as_millis() as u64,
                "secrets extension not ready yet; retrying"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    async fn get_once(&self, uri: &str, token: &Secret) -> Result<(u16, Bytes), Attempt> {
        let request = http::Request::get(uri)
            .header(TOKEN_HEADER, token.expose())
            .body(Empty::<Bytes>::new())
            .map_err(|_| {
                Attempt::Other(CredentialsError::invalid_secret(
                    "the token or secret id cannot be sent in an HTTP request",
                ))
            })?;
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                Attempt::Refused
            } else {
                Attempt::Other(CredentialsError::Transport(e.to_string()))
            }
        })?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| Attempt::Other(CredentialsError::Transport(e.to_string())))?
            .to_bytes();
        Ok((status, body))
    }
}

enum Attempt {
    Refused,
    Other(CredentialsError),
}

fn parse_get_secret_value(body: &[u8]) -> Result<Secret, CredentialsError> {
    let value: GetSecretValue = serde_json::from_slice(body).map_err(|_| {
        CredentialsError::invalid_secret("the extension's answer is not GetSecretValue JSON")
    })?;
    value.secret_string.ok_or(CredentialsError::invalid_secret(
        "it has no SecretString (a binary secret?)",
    ))
}

fn parse_get_parameter(body: &[u8]) -> Result<Secret, CredentialsError> {
    let invalid = |reason| CredentialsError::InvalidSecret {
        variable: PARAMETER_STORE_DB_URL,
        reason,
    };
    let value: GetParameter = serde_json::from_slice(body)
        .map_err(|_| invalid("the extension's answer is not GetParameter JSON"))?;
    value
        .parameter
        .and_then(|p| p.value)
        .ok_or(invalid("it has no Value"))
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ExtensionErrorBody>(body)
        .ok()
        .and_then(|b| b.kind)
        .filter(|k| k.len() <= 64 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or_else(|| "unknown".to_owned())
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
        client: Box<ExtensionClient>,
        /// The secret's name or ARN.
        secret_id: String,
        /// What fills the secret's gaps.
        fallbacks: Fallbacks,
    },
    /// `PARAMETER_STORE_DB_URL` through the extension's SSM endpoint, with decryption.
    ParameterStore {
        /// The client, built once.
        client: Box<ExtensionClient>,
        /// The parameter's name.
        name: String,
    },
}

impl CredentialProvider {
    /// Whether asking again can give a different answer (so a rejected login is worth a refresh).
    pub(crate) fn rotates(&self) -> bool {
        !matches!(self, Self::Static(_))
    }

    /// Whether `fetch` means anything to this provider (a parameter has no `AWSPENDING`).
    pub(crate) fn offers(&self, fetch: Fetch) -> bool {
        !(matches!(self, Self::ParameterStore { .. }) && fetch == Fetch::Pending)
    }

    /// The variable the credentials come from, for log lines.
    pub(crate) fn source_name(&self) -> &'static str {
        match self {
            Self::Static(_) => "DATABASE_USER/DATABASE_PASSWORD",
            Self::Extension { .. } => DB_SECRET_ARN,
            Self::ParameterStore { .. } => PARAMETER_STORE_DB_URL,
        }
    }

    /// The login, fetched as `fetch` says (fixed credentials ignore it).
    pub(crate) async fn fetch(&self, fetch: Fetch) -> Result<Login, CredentialsError> {
        match self {
            Self::Static(c) => Ok(Login::Credentials(c.clone())),
            Self::Extension {
                client,
                secret_id,
                fallbacks,
            } => {
                let fetched = client
                    .secret_string(secret_id, fetch)
                    .await
                    .and_then(|s| parse_rds_secret(&s, fallbacks));
                match fetched {
                    Ok(creds) => {
                        tracing::info!(
                            source = DB_SECRET_ARN,
                            version = fetch.as_str(),
                            "Successfully retrieved database credentials from Secrets Manager"
                        );
                        Ok(Login::Credentials(creds))
                    }
                    // No rotation in progress: no AWSPENDING version. Expected, so not the seed's failure line.
                    Err(e) if fetch == Fetch::Pending && e.is_not_found() => Err(e),
                    Err(e) => {
                        tracing::error!(
                            source = DB_SECRET_ARN,
                            version = fetch.as_str(),
                            error = %e,
                            "Failed to retrieve DATABASE_URL from Secrets Manager: {e}"
                        );
                        Err(e)
                    }
                }
            }
            Self::ParameterStore { client, name } => {
                let url = client.parameter_value(name, fetch).await.inspect_err(|e| {
                    tracing::error!(source = PARAMETER_STORE_DB_URL, error = %e, "Failed to retrieve DATABASE_URL from Parameter Store: {e}");
                })?;
                tracing::info!(
                    source = PARAMETER_STORE_DB_URL,
                    refreshed = fetch != Fetch::Cached,
                    "Retrieved DATABASE_URL from Parameter Store (deprecated)"
                );
                Ok(Login::Url(url))
            }
        }
    }
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
        assert_eq!(
            parse_get_secret_value(body).expect("parses").expose(),
            r#"{"username":"u"}"#
        );
        assert!(parse_get_secret_value(br#"{"SecretString":null}"#).is_err());
    }

    #[test]
    fn get_parameter_body() {
        let body = br#"{"Parameter":{"ARN":"arn","DataType":"text","LastModifiedDate":"2024-01-01T00:00:00Z","Name":"/db/url","Selector":null,"SourceResult":null,"Type":"SecureString","Value":"postgres://u:pw@h/d","Version":1},"ResultMetadata":{}}"#;
        assert_eq!(
            parse_get_parameter(body).expect("parses").expose(),
            "postgres://u:pw@h/d"
        );
        let e = parse_get_parameter(br#"{"Parameter":{"Name":"x"}}"#).expect_err("no value");
        assert!(e.to_string().contains(PARAMETER_STORE_DB_URL), "{e}");
    }

    #[test]
    fn error_codes_are_read_and_sanitised() {
        assert_eq!(
            error_code(br#"{"__type":"ResourceNotFoundException","message":"x"}"#),
            "ResourceNotFoundException"
        );
        assert_eq!(error_code(br#"{"__type":"<script>"}"#), "unknown");
        assert_eq!(error_code(b"garbage"), "unknown");
    }

    #[test]
    fn arns_are_escaped_in_the_query() {
        let arn = "arn:aws:secretsmanager:us-east-1:123:secret:db/prod-AbC";
        assert_eq!(
            utf8_percent_encode(arn, QUERY_VALUE).to_string(),
            "arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123%3Asecret%3Adb%2Fprod-AbC"
        );
    }
}
