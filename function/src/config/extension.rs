//! How the function reaches the extension: the port (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, the variable both
//! extensions read), the token the extension's header must carry, and the bounds of one call and of the cold-start
//! wait. `credentials.rs` builds the client crate's `Client` from it.

use std::time::Duration;

use secretcache_client::env::Env;

use super::names::{
    AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_SESSION_TOKEN, DB_SECRET_STARTUP_WAIT_MS,
    DB_SECRET_TIMEOUT_MS, DEFAULT_EXTENSION_PORT, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
};
use super::read::{millis, number, ConfigError};
use crate::secret::Secret;

/// How to reach the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionConfig {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The token header's value; `None` when neither token variable is set.
    pub token: Option<Secret>,
    /// Timeout of one call.
    pub timeout: Duration,
    /// How long a cold start waits for the extension to answer at all.
    pub startup_wait: Duration,
}

impl ExtensionConfig {
    /// The port, the token and the bounds.
    pub(super) fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: number(
                env,
                PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
                DEFAULT_EXTENSION_PORT,
                1..=u16::MAX,
                "a port, 1-65535",
            )?,
            token: env
                .non_blank(AWS_SESSION_TOKEN)
                .or_else(|| env.non_blank(AWS_CONTAINER_AUTHORIZATION_TOKEN))
                .map(Secret::new),
            timeout: millis(
                env,
                DB_SECRET_TIMEOUT_MS,
                3_000,
                50..=60_000,
                "milliseconds, 50-60000",
            )?,
            startup_wait: millis(
                env,
                DB_SECRET_STARTUP_WAIT_MS,
                2_000,
                0..=10_000,
                "milliseconds, 0-10000",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::env::from_pairs as env;

    #[test]
    fn the_session_token_wins_over_snapstarts() {
        let c = ExtensionConfig::from_env(&env(&[(AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap")]))
            .expect("config");
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("snap"));
        let c = ExtensionConfig::from_env(&env(&[
            (AWS_SESSION_TOKEN, "session"),
            (AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap"),
        ]))
        .expect("config");
        assert_eq!(c.token.as_ref().map(Secret::expose), Some("session"));
        assert!(
            !format!("{c:?}").contains("session"),
            "Debug redacts the token"
        );
    }

    #[test]
    fn the_defaults_and_a_bad_port() {
        let c = ExtensionConfig::from_env(&env(&[])).expect("config");
        assert_eq!(
            (c.port, c.timeout, c.startup_wait, c.token.is_none()),
            (2773, Duration::from_secs(3), Duration::from_secs(2), true)
        );
        let e =
            ExtensionConfig::from_env(&env(&[(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, "70000")]))
                .expect_err("bad");
        assert!(
            e.to_string()
                .contains(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT),
            "{e}"
        );
    }
}
