//! The client: HTTP/1.1 to the extension on `127.0.0.1`, one request per read.
//!
//! Parts:
//! - [`Client`] and [`Builder`]: built once per execution environment, from the environment ([`Builder::env`]) or
//!   explicitly;
//! - [`GetSecret`] and [`GetParameter`]: one read each, with its selectors; [`GetSecret::path_and_query`] shows what
//!   goes on the wire;
//! - [`SecretBatch`] and [`ParameterBatch`]: (ours) several current values in one request, which the extension
//!   answers from its cache and fetches the misses of in one upstream call;
//! - [`Error`] and [`ConfigError`]: what went wrong, with the extension's status and error code but never a body.
//!
//! The cold-start race: a function's init code can run before the extension listens (the AWS extension does not serve
//! during INIT at all). A refused connection, and a 503 from an extension still warming up or momentarily full, are
//! retried with a doubling pause (20 ms up to 250 ms) until [`Builder::startup_wait`] is spent; anything else is
//! answered at once. Each attempt is bounded by [`Builder::timeout`], and an attempt that times out is not retried.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::backoff::Backoff;
use crate::body::{
    BatchGetSecretValueBody, ErrorBody, GetParameterBody, GetParametersBody, GetSecretValueBody,
};
use crate::contract::{env, path, query, DEFAULT_PORT, TOKEN_HEADER};
use crate::rotation::Rotation;

/// The default bound on one call: long enough for an extension's cache miss (its upstream timeout is 3 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The default time a cold start waits for an extension that is not answering yet.
pub const DEFAULT_STARTUP_WAIT: Duration = Duration::from_secs(2);
/// The largest answer read. Secrets Manager caps a secret at 64 KiB; escaped, with the JSON around it, it fits.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The cold-start retry's pauses: one process waiting for one extension, so no jitter.
const COLD_START: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(250));

/// Everything but the unreserved characters is escaped in a query value, so an ARN's `:` and `/` arrive intact.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client for the extension. Build it once per execution environment and share it (clones share its connector).
#[derive(Clone)]
pub struct Client {
    port: u16,
    token: Option<SecretString>,
    timeout: Duration,
    startup_wait: Duration,
    http: hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("port", &self.port)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("startup_wait", &self.startup_wait)
            .finish_non_exhaustive()
    }
}

/// How to reach the extension: its port, the token, and the time bounds.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    port: u16,
    token: Option<SecretString>,
    timeout: Duration,
    startup_wait: Duration,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("port", &self.port)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .field("startup_wait", &self.startup_wait)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            startup_wait: DEFAULT_STARTUP_WAIT,
        }
    }
}

/// An environment value that cannot be used. It names the variable, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The port variable is not a port.
    #[error("{variable} is invalid: expected a port, 1-65535")]
    InvalidPort {
        /// The variable.
        variable: &'static str,
    },
}

impl Builder {
    /// The port and token from the process environment: [`env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`] (default
    /// 2773), and the first of [`env::TOKEN_VARIABLES`] that is set.
    pub fn env(self) -> Result<Self, ConfigError> {
        self.env_with(|name| std::env::var(name).ok())
    }

    /// As [`Builder::env`], reading variables through `var` (tests pass a map instead of setting variables). An empty
    /// value counts as unset, as the extension reads it.
    pub fn env_with(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(port) = get(env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT) {
            self.port = port.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or(
                ConfigError::InvalidPort {
                    variable: env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
                },
            )?;
        }
        if let Some(token) = env::TOKEN_VARIABLES.iter().find_map(|name| get(name)) {
            self.token = Some(SecretString::from(token));
        }
        Ok(self)
    }

    /// The extension's port on `127.0.0.1`.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The token header's value. Without one, every read fails with [`Error::NoToken`].
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The bound on one call (default 3 s). A call that runs past it fails with [`Error::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a call keeps retrying an extension that is not answering yet (default 2 s; zero: no retry).
    pub fn startup_wait(mut self, wait: Duration) -> Self {
        self.startup_wait = wait;
        self
    }

    /// The client. Nothing connects yet.
    pub fn build(self) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.timeout));
        connector.set_nodelay(true);
        // No pooled connections: a read through the extension is rare for a client that keeps what it reads, and a
        // kept-alive connection may have been closed by the extension while the environment was frozen.
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Client {
            port: self.port,
            token: self.token,
            timeout: self.timeout,
            startup_wait: self.startup_wait,
            http,
        }
    }
}

/// Why a read failed. It carries the extension's status and error code, never a body or a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither token variable is set, so the extension would refuse the request.
    #[error("neither AWS_SESSION_TOKEN nor AWS_CONTAINER_AUTHORIZATION_TOKEN is set; the secrets extension requires one")]
    NoToken,
    /// Nothing answers on the extension's port, even after the cold-start wait.
    #[error("the secrets extension on 127.0.0.1:{port} is not answering (is its layer attached?)")]
    Unreachable {
        /// The port tried.
        port: u16,
    },
    /// One call ran past the timeout.
    #[error("the secrets extension did not answer within {0:?}")]
    Timeout(Duration),
    /// The extension answered with an error status.
    #[error("the secrets extension answered {status} ({code})")]
    Status {
        /// The HTTP status: 404 not found, 401/403 the token, 403 denied upstream, 429 throttled, 502/504 the
        /// upstream failing or timing out (the extension's contract).
        status: u16,
        /// The error body's `__type` (e.g. `ResourceNotFoundException`), or `unknown` when there is none or it is
        /// not a plain code.
        code: String,
    },
    /// A 200 whose body is not the JSON the path answers with.
    #[error("the secrets extension's answer is not {expected} JSON")]
    InvalidBody {
        /// `GetSecretValue`, `GetParameter`, or (batches) `BatchGetSecretValue` or `GetParameters`.
        expected: &'static str,
    },
    /// The token cannot be sent in a header (it holds a control character).
    #[error("the token cannot be sent in an HTTP header")]
    InvalidToken,
    /// A transport failure other than the ones above (a broken connection, an answer over 256 KiB).
    #[error("talking to the secrets extension failed: {0}")]
    Transport(String),
}

impl Error {
    /// The extension's HTTP status, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The extension's error code (`__type`), when it answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The secret or parameter (or the version asked for) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

impl Client {
    /// A client for the extension the process environment names (see [`Builder::env`]), with the default bounds.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Builder::default().env()?.build())
    }

    /// A builder with the defaults: port 2773, no token, a 3 s timeout, a 2 s startup wait.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The extension's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A read of the secret `secret_id` (a name or an ARN): `AWSCURRENT` from the cache, unless the request says
    /// otherwise.
    pub fn secret<'a>(&'a self, secret_id: &'a str) -> GetSecret<'a> {
        GetSecret {
            client: self,
            secret_id,
            version_id: None,
            version_stage: None,
            refresh_now: false,
        }
    }

    /// A read of the SSM parameter `name` (a name or an ARN, optionally with `:version` or `:label`);
    /// `with_decryption` decrypts a `SecureString`.
    pub fn parameter<'a>(&'a self, name: &'a str, with_decryption: bool) -> GetParameter<'a> {
        GetParameter {
            client: self,
            name,
            with_decryption,
            selector: None,
            refresh_now: false,
        }
    }

    /// (secretcache only) A read of several secrets' current versions in one request (`/secretsmanager/batch`): the
    /// extension answers hits from its cache and fetches every miss in one BatchGetSecretValue. At most
    /// [`MAX_SECRET_BATCH`](crate::contract::MAX_SECRET_BATCH) ids; the extension refuses more (a 400).
    pub fn secret_batch<'a>(&'a self, ids: impl IntoIterator<Item = &'a str>) -> SecretBatch<'a> {
        SecretBatch {
            client: self,
            ids: ids.into_iter().collect(),
        }
    }

    /// (secretcache only) A read of several SSM parameters in one request (`/systemsmanager/parameters/batch`), as
    /// GetParameters reads them: names or ARNs, each optionally with `:version` or `:label`. At most
    /// [`MAX_PARAMETER_BATCH`](crate::contract::MAX_PARAMETER_BATCH) names.
    pub fn parameter_batch<'a>(
        &'a self,
        names: impl IntoIterator<Item = &'a str>,
        with_decryption: bool,
    ) -> ParameterBatch<'a> {
        ParameterBatch {
            client: self,
            names: names.into_iter().collect(),
            with_decryption,
        }
    }

    /// The versions of `secret_id` to try after a login was refused, in order (see [`Rotation`]).
    pub fn rotation<'a>(&'a self, secret_id: &'a str) -> Rotation<'a> {
        Rotation::new(self, secret_id)
    }

    /// `GET path_and_query`, and the body of its 200 parsed as `T` (named `expected` in an error).
    async fn get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        expected: &'static str,
    ) -> Result<T, Error> {
        let body = self.get(path_and_query).await?;
        // serde_json's error text can quote the input; a fixed message it is.
        serde_json::from_slice(&body).map_err(|_| Error::InvalidBody { expected })
    }

    /// `GET path_and_query` with the token, through the cold-start retry; the body of a 200, or the error.
    async fn get(&self, path_and_query: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let token = self.token.as_ref().ok_or(Error::NoToken)?;
        let mut token =
            HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::InvalidToken)?;
        token.set_sensitive(true);
        let uri = format!("http://127.0.0.1:{}{path_and_query}", self.port);

        let give_up = Instant::now() + self.startup_wait;
        let mut pauses = COLD_START.delays();
        loop {
            let outcome = tokio::time::timeout(self.timeout, self.get_once(&uri, &token))
                .await
                .map_err(|_| Error::Timeout(self.timeout))?;
            let retryable = matches!(outcome, Err(Attempt::Refused) | Ok((503, _)));
            let pause = pauses.next().unwrap_or(COLD_START.max());
            if !retryable || Instant::now() + pause > give_up {
                return match outcome {
                    Err(Attempt::Refused) => Err(Error::Unreachable { port: self.port }),
                    Err(Attempt::Failed(e)) => Err(e),
                    Ok((200, body)) => Ok(body),
                    Ok((status, body)) => Err(Error::Status {
                        status,
                        code: error_code(&body),
                    }),
                };
            }
            tracing::debug!(
                pause_ms = pause.as_millis() as u64,
                "secrets extension not ready yet; retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    async fn get_once(
        &self,
        uri: &str,
        token: &HeaderValue,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), Attempt> {
        let request = http::Request::get(uri)
            .header(TOKEN_HEADER, token.clone())
            .body(Empty::<Bytes>::new())
            // Every query value is percent-encoded, so the URI always parses; this is only for the type's sake.
            .map_err(|e| Attempt::Failed(Error::Transport(e.to_string())))?;
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                Attempt::Refused
            } else {
                Attempt::Failed(Error::Transport(e.to_string()))
            }
        })?;
        let status = response.status().as_u16();
        let length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = read_body(response.into_body(), length)
            .await
            .map_err(Attempt::Failed)?;
        Ok((status, body))
    }
}

enum Attempt {
    /// No connection: nothing listens yet (or at all).
    Refused,
    Failed(Error),
}

/// Reads a body into a buffer that is wiped when dropped, growing it by hand so that no reallocation leaves a copy of
/// the secret behind. (hyper's own read buffer is not ours to wipe.)
async fn read_body(
    mut body: hyper::body::Incoming,
    length: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let too_large = || {
        Error::Transport(format!(
            "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
        ))
    };
    if length.is_some_and(|n| n > MAX_RESPONSE_BYTES) {
        return Err(too_large());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(length.unwrap_or(0)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() + data.len();
        if needed > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        if needed > buf.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2)));
            bigger.extend_from_slice(&buf);
            // The old buffer is wiped as it drops.
            buf = bigger;
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// The error body's `__type`, if it is a plain code; it goes into log lines, so nothing else is let through.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.kind)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= 64
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
        .map_or_else(|| "unknown".to_owned(), |k| k.into_owned())
}

/// A read of one secret; [`GetSecret::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct GetSecret<'a> {
    client: &'a Client,
    secret_id: &'a str,
    version_id: Option<&'a str>,
    version_stage: Option<&'a str>,
    refresh_now: bool,
}

impl<'a> GetSecret<'a> {
    /// Asks for the version with this id.
    pub fn version_id(mut self, version_id: &'a str) -> Self {
        self.version_id = Some(version_id);
        self
    }

    /// Asks for the version with this staging label (e.g. [`crate::contract::stage::AWSPENDING`]). With
    /// [`GetSecret::version_id`] too, both go upstream, which answers when they agree.
    pub fn version_stage(mut self, version_stage: &'a str) -> Self {
        self.version_stage = Some(version_stage);
        self
    }

    /// (secretcache only) Bypasses the cache and fetches anew; the extension single-flights it, and answers an error
    /// rather than a stale value. For after a rotation; the AWS extension ignores it.
    pub fn refresh_now(mut self, refresh_now: bool) -> Self {
        self.refresh_now = refresh_now;
        self
    }

    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = format!(
            "{}?{}={}",
            path::SECRET,
            query::SECRET_ID,
            utf8_percent_encode(self.secret_id, QUERY_VALUE)
        );
        push(&mut target, query::VERSION_ID, self.version_id);
        push(&mut target, query::VERSION_STAGE, self.version_stage);
        if self.refresh_now {
            push(&mut target, query::REFRESH_NOW, Some("true"));
        }
        target
    }

    /// Reads the secret.
    pub async fn send(self) -> Result<GetSecretValueBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetSecretValue")
            .await
    }
}

/// Which version of a parameter to read.
#[derive(Debug, Clone, Copy)]
enum Selector<'a> {
    Version(u64),
    Label(&'a str),
}

/// A read of one SSM parameter; [`GetParameter::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct GetParameter<'a> {
    client: &'a Client,
    name: &'a str,
    with_decryption: bool,
    selector: Option<Selector<'a>>,
    refresh_now: bool,
}

impl<'a> GetParameter<'a> {
    /// Asks for this version (replacing a label asked for before).
    pub fn version(mut self, version: u64) -> Self {
        self.selector = Some(Selector::Version(version));
        self
    }

    /// Asks for the version with this label (replacing a version asked for before).
    pub fn label(mut self, label: &'a str) -> Self {
        self.selector = Some(Selector::Label(label));
        self
    }

    /// (secretcache only) Bypasses the cache and fetches anew, as [`GetSecret::refresh_now`].
    pub fn refresh_now(mut self, refresh_now: bool) -> Self {
        self.refresh_now = refresh_now;
        self
    }

    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = format!(
            "{}?{}={}",
            path::PARAMETER,
            query::NAME,
            utf8_percent_encode(self.name, QUERY_VALUE)
        );
        let decrypt = if self.with_decryption {
            "true"
        } else {
            "false"
        };
        push(&mut target, query::WITH_DECRYPTION, Some(decrypt));
        match self.selector {
            Some(Selector::Version(v)) => push(&mut target, query::VERSION, Some(&v.to_string())),
            Some(Selector::Label(l)) => push(&mut target, query::LABEL, Some(l)),
            None => {}
        }
        if self.refresh_now {
            push(&mut target, query::REFRESH_NOW, Some("true"));
        }
        target
    }

    /// Reads the parameter.
    pub async fn send(self) -> Result<GetParameterBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetParameter")
            .await
    }
}

/// (secretcache only) A read of several secrets' current versions; [`SecretBatch::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct SecretBatch<'a> {
    client: &'a Client,
    ids: Vec<&'a str>,
}

impl SecretBatch<'_> {
    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        repeated(path::SECRET_BATCH, query::SECRET_ID, &self.ids)
    }

    /// Reads the secrets: one answer for every id, a value or an error (see [`BatchGetSecretValueBody`]).
    pub async fn send(self) -> Result<BatchGetSecretValueBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "BatchGetSecretValue")
            .await
    }
}

/// (secretcache only) A read of several SSM parameters; [`ParameterBatch::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct ParameterBatch<'a> {
    client: &'a Client,
    names: Vec<&'a str>,
    with_decryption: bool,
}

impl ParameterBatch<'_> {
    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = repeated(path::PARAMETER_BATCH, query::NAME, &self.names);
        let decrypt = if self.with_decryption {
            "true"
        } else {
            "false"
        };
        push(&mut target, query::WITH_DECRYPTION, Some(decrypt));
        target
    }

    /// Reads the parameters: one answer for every name (see [`GetParametersBody`]).
    pub async fn send(self) -> Result<GetParametersBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetParameters")
            .await
    }
}

/// `path?name=a&name=b...`, every value escaped.
fn repeated(path: &str, name: &str, values: &[&str]) -> String {
    let mut target = path.to_owned();
    for (i, value) in values.iter().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(name);
        target.push('=');
        target.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    target
}

fn push(target: &mut String, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        target.push('&');
        target.push_str(name);
        target.push('=');
        target.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_environment_names_the_port_and_the_token() {
        let b = Builder::default().env_with(env(&[])).expect("valid");
        assert_eq!((b.port, b.token.is_none()), (2773, true));
        let b = Builder::default()
            .env_with(env(&[
                (env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, " 2775 "),
                (env::AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap"),
            ]))
            .expect("valid");
        assert_eq!(b.port, 2775);
        assert_eq!(b.token.as_ref().map(|t| t.expose_secret()), Some("snap"));
        let b = Builder::default()
            .env_with(env(&[
                (env::AWS_SESSION_TOKEN, "session"),
                (env::AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap"),
                (env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, ""),
            ]))
            .expect("valid");
        assert_eq!(b.port, 2773, "empty means unset");
        assert_eq!(b.token.as_ref().map(|t| t.expose_secret()), Some("session"));
        for bad in ["0", "65536", "http", "-1"] {
            let e = Builder::default()
                .env_with(env(&[(env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, bad)]))
                .expect_err(bad);
            assert!(!e.to_string().contains(bad), "the value is not echoed: {e}");
            assert!(e
                .to_string()
                .contains("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"));
        }
    }

    #[test]
    fn request_targets_escape_everything_but_the_unreserved() {
        let client = Client::builder().build();
        let arn = "arn:aws:secretsmanager:us-east-1:123:secret:db/prod-AbC";
        assert_eq!(
            client.secret(arn).path_and_query(),
            "/secretsmanager/get?secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123%3Asecret%3Adb%2Fprod-AbC"
        );
        assert_eq!(
            client
                .secret("db")
                .version_id("a b")
                .version_stage("AWSPENDING")
                .refresh_now(true)
                .path_and_query(),
            "/secretsmanager/get?secretId=db&versionId=a%20b&versionStage=AWSPENDING&refreshNow=true"
        );
        assert_eq!(
            client.parameter("/app/db-url", true).path_and_query(),
            "/systemsmanager/parameters/get?name=%2Fapp%2Fdb-url&withDecryption=true"
        );
        assert_eq!(
            client
                .parameter("p", false)
                .version(3)
                .label("prod")
                .refresh_now(true)
                .path_and_query(),
            "/systemsmanager/parameters/get?name=p&withDecryption=false&label=prod&refreshNow=true"
        );
        assert_eq!(
            client.parameter("p", false).version(3).path_and_query(),
            "/systemsmanager/parameters/get?name=p&withDecryption=false&version=3"
        );
    }

    #[test]
    fn batch_targets_repeat_the_id_and_escape_each() {
        let client = Client::builder().build();
        assert_eq!(
            client
                .secret_batch(["db", "arn:aws:secretsmanager:us-east-1:123:secret:a/b-AbC"])
                .path_and_query(),
            "/secretsmanager/batch?secretId=db\
             &secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123%3Asecret%3Aa%2Fb-AbC"
        );
        assert_eq!(
            client
                .parameter_batch(["/app/a", "/app/b:3"], true)
                .path_and_query(),
            "/systemsmanager/parameters/batch?name=%2Fapp%2Fa&name=%2Fapp%2Fb%3A3&withDecryption=true"
        );
    }

    #[test]
    fn error_codes_are_read_and_sanitised() {
        assert_eq!(
            error_code(br#"{"__type":"ResourceNotFoundException","message":"x"}"#),
            "ResourceNotFoundException"
        );
        assert_eq!(error_code(br#"{"__type":"<script>"}"#), "unknown");
        assert_eq!(error_code(br#"{"message":"no type"}"#), "unknown");
        assert_eq!(error_code(b"garbage"), "unknown");
    }

    #[test]
    fn debug_redacts_the_token() {
        let builder = Client::builder().token("hunter2");
        let client = builder.clone().build();
        for text in [
            format!("{builder:?}"),
            format!("{client:?}"),
            format!("{:?}", client.secret("db")),
            format!("{:?}", client.parameter("p", true)),
            format!("{:?}", client.rotation("db")),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("REDACTED"), "{text}");
        }
    }
}
