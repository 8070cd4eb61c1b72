//! The client: how to reach the extension (its port, the token, the time bounds), built once per execution
//! environment.
//!
//! Parts:
//! - [`Client`] and [`Builder`]: built from the environment ([`Builder::env`]) or explicitly; clones share one
//!   connector;
//! - `Client::get_json`: one read as every request type makes it: the token header, the URI, the cold-start retry
//!   (`retry.rs`) over one attempt on the wire (`transport.rs`), and the body parsed without echoing it.
//!
//! The reads themselves (`secret`, `parameter` and the batches) are in `request.rs`, and `rotation` in `rotation.rs`:
//! both build on this module, which knows nothing of paths or versions.

use std::fmt;
use std::time::Duration;

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::contract::{env, DEFAULT_PORT};
use crate::error::{ConfigError, Error};
use crate::retry::{self, Bounds};
use crate::transport::Transport;

/// The default bound on one call: long enough for an extension's cache miss (its upstream timeout is 3 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// The default time a cold start waits for an extension that is not answering yet.
pub const DEFAULT_STARTUP_WAIT: Duration = Duration::from_secs(2);

/// A client for the extension. Build it once per execution environment and share it (clones share its connector).
#[derive(Clone)]
pub struct Client {
    port: u16,
    token: Option<SecretString>,
    timeout: Duration,
    startup_wait: Duration,
    transport: Transport,
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
        Client {
            port: self.port,
            token: self.token,
            timeout: self.timeout,
            startup_wait: self.startup_wait,
            transport: Transport::new(self.timeout),
        }
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

    /// `GET path_and_query` with the token, through the cold-start retry, and the body of its 200 parsed as `T`
    /// (named `expected` in an error).
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        expected: &'static str,
    ) -> Result<T, Error> {
        let token = self.token.as_ref().ok_or(Error::NoToken)?;
        let mut token =
            HeaderValue::from_str(token.expose_secret()).map_err(|_| Error::InvalidToken)?;
        token.set_sensitive(true);
        let uri = format!("http://127.0.0.1:{}{path_and_query}", self.port);
        let bounds = Bounds {
            timeout: self.timeout,
            startup_wait: self.startup_wait,
        };
        let body = retry::get(&self.transport, &uri, &token, self.port, bounds).await?;
        // serde_json's error text can quote the input; a fixed message it is.
        serde_json::from_slice(&body).map_err(|_| Error::InvalidBody { expected })
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
    fn debug_redacts_the_token() {
        let builder = Client::builder().token("hunter2");
        let client = builder.clone().build();
        for text in [format!("{builder:?}"), format!("{client:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("REDACTED"), "{text}");
        }
    }
}
