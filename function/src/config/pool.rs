//! The pool's settings: its size, how long a request waits for a connection and a connection lives, and the two
//! waits of a password rotation (the grace before a 503, the memory of a rejection). Also how many invocations one
//! execution environment serves at once (`AWS_LAMBDA_MAX_CONCURRENCY`), which the pool's default size follows.

use std::time::Duration;

use secretcache_client::env::{parse_whole_in, Env};

use super::names::{
    AWS_LAMBDA_MAX_CONCURRENCY, DATABASE_ACQUIRE_TIMEOUT_MS, DATABASE_POOL_MAX_CONNECTIONS,
    DATABASE_POOL_MAX_LIFETIME_SECS, DATABASE_REJECTED_BACKOFF_MS, DATABASE_ROTATION_GRACE_MS,
    DEFAULT_POOL_MAX_CONNECTIONS, MANAGED_INSTANCES_POOL_CAP,
};
use super::read::{millis, number, secs, ConfigError};

/// Pool sizing. Lambda scales by execution environments, not by connections, so each environment keeps few; under
/// Managed Instances one environment serves `AWS_LAMBDA_MAX_CONCURRENCY` invocations at once, and the default grows
/// with it (up to [`MANAGED_INSTANCES_POOL_CAP`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most open connections.
    pub max_connections: u32,
    /// How long a request waits for one.
    pub acquire_timeout: Duration,
    /// Longest life of one connection.
    pub max_lifetime: Duration,
    /// How long a rejected login keeps being retried during a rotation.
    pub rotation_grace: Duration,
    /// How long, after every version of the secret was rejected, requests get a 503 without asking again.
    pub rejected_backoff: Duration,
}

impl PoolConfig {
    /// The pool's settings for an environment serving `concurrency` invocations at once.
    pub(super) fn from_env(env: &impl Env, concurrency: u32) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections: number(
                env,
                DATABASE_POOL_MAX_CONNECTIONS,
                default_pool_size(concurrency),
                1..=20,
                "a number of connections, 1-20",
            )?,
            acquire_timeout: millis(
                env,
                DATABASE_ACQUIRE_TIMEOUT_MS,
                5_000,
                100..=60_000,
                "milliseconds, 100-60000",
            )?,
            max_lifetime: secs(
                env,
                DATABASE_POOL_MAX_LIFETIME_SECS,
                1_800,
                1..=86_400,
                "seconds, 1-86400",
            )?,
            rotation_grace: millis(
                env,
                DATABASE_ROTATION_GRACE_MS,
                3_000,
                0..=30_000,
                "milliseconds, 0-30000",
            )?,
            rejected_backoff: millis(
                env,
                DATABASE_REJECTED_BACKOFF_MS,
                5_000,
                0..=300_000,
                "milliseconds, 0-300000",
            )?,
        })
    }
}

/// `AWS_LAMBDA_MAX_CONCURRENCY` as `lambda_runtime` reads it: a positive number, anything else (or nothing) 1. It is
/// Lambda's variable, not ours, so a value we cannot read is not ours to refuse: the runtime falls back to one
/// invocation at a time on it, and so does the pool's default.
pub(super) fn max_concurrency(env: &impl Env) -> u32 {
    env.non_blank(AWS_LAMBDA_MAX_CONCURRENCY)
        .and_then(|v| parse_whole_in(&v, 1..=u32::MAX))
        .unwrap_or(1)
}

/// The pool's default size for `concurrency` invocations at once.
fn default_pool_size(concurrency: u32) -> u32 {
    if concurrency > 1 {
        concurrency.clamp(DEFAULT_POOL_MAX_CONNECTIONS, MANAGED_INSTANCES_POOL_CAP)
    } else {
        DEFAULT_POOL_MAX_CONNECTIONS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::env::from_pairs as env;

    #[test]
    fn the_pool_grows_with_managed_instances_concurrency_unless_set() {
        let size = |pairs: &[(&str, &str)]| {
            let e = env(pairs);
            let concurrency = max_concurrency(&e);
            let pool = PoolConfig::from_env(&e, concurrency).expect("config");
            (concurrency, pool.max_connections)
        };
        assert_eq!(size(&[]), (1, DEFAULT_POOL_MAX_CONNECTIONS));
        assert_eq!(size(&[(AWS_LAMBDA_MAX_CONCURRENCY, "1")]), (1, 2));
        assert_eq!(size(&[(AWS_LAMBDA_MAX_CONCURRENCY, "2")]), (2, 2));
        assert_eq!(size(&[(AWS_LAMBDA_MAX_CONCURRENCY, "6")]), (6, 6));
        assert_eq!(
            size(&[(AWS_LAMBDA_MAX_CONCURRENCY, "64")]),
            (64, MANAGED_INSTANCES_POOL_CAP)
        );
        // Lambda's variable, read as lambda_runtime reads it: what it cannot use means one at a time, not an error.
        for unreadable in ["0", "-3", "many", " "] {
            assert_eq!(size(&[(AWS_LAMBDA_MAX_CONCURRENCY, unreadable)]), (1, 2));
        }
        // The operator's choice wins either way.
        assert_eq!(
            size(&[
                (AWS_LAMBDA_MAX_CONCURRENCY, "64"),
                (DATABASE_POOL_MAX_CONNECTIONS, "20")
            ]),
            (64, 20)
        );
        assert_eq!(
            size(&[
                (AWS_LAMBDA_MAX_CONCURRENCY, "64"),
                (DATABASE_POOL_MAX_CONNECTIONS, "1")
            ]),
            (64, 1)
        );
    }

    #[test]
    fn the_defaults_and_the_bounds() {
        let pool = PoolConfig::from_env(&env(&[]), 1).expect("config");
        assert_eq!(
            pool,
            PoolConfig {
                max_connections: 2,
                acquire_timeout: Duration::from_secs(5),
                max_lifetime: Duration::from_secs(1_800),
                rotation_grace: Duration::from_secs(3),
                rejected_backoff: Duration::from_secs(5),
            }
        );
        for (name, value) in [
            (DATABASE_POOL_MAX_CONNECTIONS, "00"),
            (DATABASE_POOL_MAX_CONNECTIONS, "21"),
            (DATABASE_ACQUIRE_TIMEOUT_MS, "99"),
            (DATABASE_POOL_MAX_LIFETIME_SECS, "0"),
            (DATABASE_ROTATION_GRACE_MS, "30001"),
            (DATABASE_REJECTED_BACKOFF_MS, "-1"),
        ] {
            let e = PoolConfig::from_env(&env(&[(name, value)]), 1).expect_err(name);
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
