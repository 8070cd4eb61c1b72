//! Typed configuration, read once from the environment before anything binds.
//!
//! The variable names are the AWS Parameters and Secrets Lambda Extension's own, so that a function's configuration
//! keeps working after its layer is swapped for ours. Our additions share the `PARAMETERS_SECRETS_EXTENSION_` prefix.
//!
//! Parts:
//! - [`Env`]: the tiny seam over the environment (production reads the process, tests pass a `HashMap`);
//! - [`Config::from_env`]: parse and validate every value; a bad one is a [`ConfigError`] naming the variable and the
//!   accepted range;
//! - [`Config::warnings`]: variables that look like misspellings of ours, to be logged once tracing is up.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// HTTP port of the localhost cache.
pub const HTTP_PORT: &str = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
/// `true`/`false`: whether values are cached at all.
pub const CACHE_ENABLED: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED";
/// Maximum number of cached entries; 0 disables the cache.
pub const CACHE_SIZE: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE";
/// debug, info, warn, error or none.
pub const LOG_LEVEL: &str = "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL";
/// Size of the upstream connection pool.
pub const MAX_CONNECTIONS: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS";
/// Secrets Manager call timeout in milliseconds; 0 means our default.
pub const SECRETS_MANAGER_TIMEOUT_MILLIS: &str = "SECRETS_MANAGER_TIMEOUT_MILLIS";
/// Secrets Manager cache TTL in seconds; 0 means no caching.
pub const SECRETS_MANAGER_TTL: &str = "SECRETS_MANAGER_TTL";
/// SSM Parameter Store call timeout in milliseconds; 0 means our default.
pub const SSM_PARAMETER_STORE_TIMEOUT_MILLIS: &str = "SSM_PARAMETER_STORE_TIMEOUT_MILLIS";
/// SSM Parameter Store cache TTL in seconds; 0 means no caching.
pub const SSM_PARAMETER_STORE_TTL: &str = "SSM_PARAMETER_STORE_TTL";
/// (ours) Comma-separated secret ids fetched during init, before the extension reports ready.
pub const PREFETCH: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH";
/// (ours) Time budget of the init prefetch, in milliseconds.
pub const PREFETCH_TIMEOUT_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH_TIMEOUT_MILLIS";
/// (ours) Most concurrent client connections to the localhost server.
pub const MAX_CLIENT_CONNECTIONS: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_CLIENT_CONNECTIONS";
/// (ours) Percent of the TTL, before expiry, in which a hit starts a background refresh.
pub const REFRESH_AHEAD: &str = "PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD";
/// (ours) Seconds past expiry a value may be served while the upstream fails transiently; 0 disables.
pub const MAX_STALE: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_STALE";
/// (ours) Byte budget of the cache.
pub const CACHE_BYTES: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_BYTES";
/// Lambda's own log level, used when ours is not set.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// `snap-start` under SnapStart.
pub const AWS_LAMBDA_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
/// The execution environment's session token: the value the token header must carry.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// The token under SnapStart, where `AWS_SESSION_TOKEN` is absent.
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// Set by Lambda; when absent the extension runs standalone.
pub const AWS_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// `json` switches the log format to JSON lines.
pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";

/// Every variable we read, for the misspelling check.
pub const KNOWN_VARIABLES: &[&str] = &[
    HTTP_PORT,
    CACHE_ENABLED,
    CACHE_SIZE,
    LOG_LEVEL,
    MAX_CONNECTIONS,
    SECRETS_MANAGER_TIMEOUT_MILLIS,
    SECRETS_MANAGER_TTL,
    SSM_PARAMETER_STORE_TIMEOUT_MILLIS,
    SSM_PARAMETER_STORE_TTL,
    PREFETCH,
    PREFETCH_TIMEOUT_MILLIS,
    MAX_CLIENT_CONNECTIONS,
    REFRESH_AHEAD,
    MAX_STALE,
    CACHE_BYTES,
];

/// Our default upstream timeout where the AWS extension's default (0) would mean "wait forever": an upstream call
/// without a deadline can hang an invocation until the function times out.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest TTL we accept: a day. (The AWS extension stops at 300 s.)
pub const MAX_TTL_SECS: u64 = 86_400;
/// Lambda gives extensions 10 s of init in total; the prefetch must leave room for registering and the runtime.
pub const MAX_PREFETCH_TIMEOUT_MILLIS: u64 = 9_000;

/// Read access to environment variables.
///
/// Production uses [`ProcessEnv`]; tests pass a `HashMap`, so no test ever mutates the process environment.
pub trait Env {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
    /// Every variable name that is set (for the misspelling check).
    fn names(&self) -> Vec<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A value that failed to parse: names the variable, what was given and what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value outside its accepted range.
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What was given (never a secret: tokens are not parsed here).
        value: String,
        /// The accepted range, in words.
        expected: &'static str,
    },
    /// Neither token variable is set, so no request could ever be authorised.
    #[error("neither {AWS_SESSION_TOKEN} nor {AWS_CONTAINER_AUTHORIZATION_TOKEN} is set: requests could not be authenticated (set one to the value clients send in X-Aws-Parameters-Secrets-Token)")]
    NoToken,
}

/// How much the extension logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything, including every cache hit.
    Debug,
    /// Upstream fetches, lifecycle.
    Info,
    /// Failures that were handled.
    Warn,
    /// Failures that were not.
    Error,
    /// Nothing.
    None,
}

/// Cache and upstream settings for one source (Secrets Manager or SSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceConfig {
    /// How long a fetched value is served as fresh; zero disables caching for this source.
    pub ttl: Duration,
    /// Deadline of one upstream operation, retries included.
    pub timeout: Duration,
}

/// The token values a request may carry. Its `Debug` redacts them: they are credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AcceptedTokens(Vec<String>);

impl AcceptedTokens {
    /// Builds the set from explicit values (empty strings are dropped).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        Self(values.into_iter().filter(|v| !v.is_empty()).collect())
    }
    /// The accepted values.
    pub fn values(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for AcceptedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AcceptedTokens([{} redacted])", self.0.len())
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Maximum cached entries; 0 when caching is disabled.
    pub cache_size: u64,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// JSON log lines (from `AWS_LAMBDA_LOG_FORMAT=json`).
    pub log_json: bool,
    /// Upstream connection pool size.
    pub max_connections: usize,
    /// Most concurrent localhost client connections.
    pub max_client_connections: usize,
    /// Secrets Manager settings.
    pub secrets: SourceConfig,
    /// SSM Parameter Store settings.
    pub ssm: SourceConfig,
    /// Secret ids to fetch during init.
    pub prefetch: Vec<String>,
    /// Budget of the init prefetch.
    pub prefetch_timeout: Duration,
    /// Values the token header may carry.
    pub tokens: AcceptedTokens,
    /// The Lambda Runtime API address, or `None` to run standalone.
    pub runtime_api: Option<String>,
    /// Percent of the TTL before expiry in which hits trigger a background refresh.
    pub refresh_ahead_percent: u8,
    /// How long past expiry a value may be served while the upstream fails.
    pub max_stale: Duration,
    /// Byte budget of the cache.
    pub cache_bytes: u64,
    /// Running under SnapStart.
    pub snap_start: bool,
}

impl Config {
    /// Parses and validates the configuration. Nothing is bound or spawned before this succeeds.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let cache_enabled = parse_bool(env, CACHE_ENABLED, true)?;
        let cache_size = parse_u64(
            env,
            CACHE_SIZE,
            1000,
            0,
            1_000_000,
            "an integer from 0 to 1000000",
        )?;
        let port = parse_u64(env, HTTP_PORT, 2773, 1, 65_535, "a port from 1 to 65535")? as u16;
        let max_connections = parse_u64(
            env,
            MAX_CONNECTIONS,
            3,
            1,
            1000,
            "an integer from 1 to 1000",
        )? as usize;
        let max_client_connections = parse_u64(
            env,
            MAX_CLIENT_CONNECTIONS,
            1024,
            1,
            65_536,
            "an integer from 1 to 65536",
        )? as usize;
        let secrets = SourceConfig {
            ttl: parse_ttl(env, SECRETS_MANAGER_TTL)?,
            timeout: parse_timeout(env, SECRETS_MANAGER_TIMEOUT_MILLIS)?,
        };
        let ssm = SourceConfig {
            ttl: parse_ttl(env, SSM_PARAMETER_STORE_TTL)?,
            timeout: parse_timeout(env, SSM_PARAMETER_STORE_TIMEOUT_MILLIS)?,
        };
        let prefetch = env
            .get(PREFETCH)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let prefetch_timeout = Duration::from_millis(parse_u64(
            env,
            PREFETCH_TIMEOUT_MILLIS,
            5_000,
            1,
            MAX_PREFETCH_TIMEOUT_MILLIS,
            "milliseconds from 1 to 9000 (Lambda's init limit is 10 s)",
        )?);
        let refresh_ahead_percent = parse_u64(
            env,
            REFRESH_AHEAD,
            20,
            0,
            90,
            "a percent of the TTL from 0 (off) to 90",
        )? as u8;
        let max_stale = Duration::from_secs(parse_u64(
            env,
            MAX_STALE,
            3600,
            0,
            7 * 86_400,
            "seconds from 0 (never serve stale) to 604800",
        )?);
        let cache_bytes = parse_u64(
            env,
            CACHE_BYTES,
            32 << 20,
            4096,
            1 << 32,
            "bytes from 4096 to 4294967296",
        )?;
        let snap_start = env
            .get(AWS_LAMBDA_INITIALIZATION_TYPE)
            .is_some_and(|v| v == "snap-start");
        // Ours wins; Lambda's advanced logging controls apply when ours is unset (FATAL maps to error).
        let (level_var, level_value) = match env.get(LOG_LEVEL) {
            Some(v) => (LOG_LEVEL, Some(v)),
            None => (
                AWS_LAMBDA_LOG_LEVEL,
                env.get(AWS_LAMBDA_LOG_LEVEL)
                    .map(|v| v.replace("FATAL", "error")),
            ),
        };
        let log_level = match level_value {
            None => LogLevel::Info,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "debug" | "trace" => LogLevel::Debug,
                "info" => LogLevel::Info,
                "warn" | "warning" => LogLevel::Warn,
                "error" => LogLevel::Error,
                "none" | "off" => LogLevel::None,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: level_var,
                        value: v,
                        expected: "one of debug, info, warn, error, none (any case)",
                    })
                }
            },
        };
        let log_json = env
            .get(AWS_LAMBDA_LOG_FORMAT)
            .is_some_and(|v| v.eq_ignore_ascii_case("json"));
        // SnapStart removes AWS_SESSION_TOKEN and provides AWS_CONTAINER_AUTHORIZATION_TOKEN; accept either.
        let tokens = AcceptedTokens::new(
            [AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN]
                .into_iter()
                .filter_map(|n| env.get(n)),
        );
        if tokens.values().is_empty() {
            return Err(ConfigError::NoToken);
        }
        let runtime_api = env.get(AWS_LAMBDA_RUNTIME_API).filter(|v| !v.is_empty());
        Ok(Self {
            port,
            cache_size: if cache_enabled { cache_size } else { 0 },
            log_level,
            log_json,
            max_connections,
            max_client_connections,
            secrets,
            ssm,
            prefetch,
            prefetch_timeout,
            tokens,
            runtime_api,
            refresh_ahead_percent,
            max_stale,
            cache_bytes,
            snap_start,
        })
    }

    /// Warnings about set variables that look like misspellings of ours, for example
    /// `PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL`. Users have lost hours to those.
    pub fn warnings(env: &impl Env) -> Vec<String> {
        let mut names = env.names();
        names.sort();
        names
            .iter()
            .filter(|n| !KNOWN_VARIABLES.contains(&n.as_str()))
            .filter_map(|n| {
                suggestion(n).map(|known| {
                    format!("environment variable {n} is not one we read; did you mean {known}? It is ignored")
                })
            })
            .collect()
    }
}

/// The known variable that `name` most likely misspells, if any.
fn suggestion(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    // A well-known mistake: the product is "Parameters and Secrets", the prefix is not.
    let respelled = upper
        .replacen("PARAMETERS_AND_SECRETS_", "PARAMETERS_SECRETS_", 1)
        .replacen("PARAMETER_SECRETS_", "PARAMETERS_SECRETS_", 1)
        .replacen("SECRET_MANAGER_", "SECRETS_MANAGER_", 1);
    KNOWN_VARIABLES
        .iter()
        .copied()
        .map(|known| {
            (
                known,
                edit_distance(&respelled, known).min(edit_distance(&upper, known)),
            )
        })
        .filter(|(known, d)| *d <= 3 || (*d < known.len() / 4 && respelled != upper))
        .min_by_key(|(_, d)| *d)
        .map(|(known, _)| known)
}

/// Levenshtein distance, for the misspelling check (names are short, so O(n·m) is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn parse_u64(
    env: &impl Env,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<u64, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value: raw,
            expected,
        }),
    }
}

fn parse_bool(env: &impl Env, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::Invalid {
            name,
            value: v,
            expected: "true or false",
        }),
    }
}

fn parse_ttl(env: &impl Env, name: &'static str) -> Result<Duration, ConfigError> {
    parse_u64(
        env,
        name,
        300,
        0,
        MAX_TTL_SECS,
        "seconds from 0 (no caching) to 86400",
    )
    .map(Duration::from_secs)
}

fn parse_timeout(env: &impl Env, name: &'static str) -> Result<Duration, ConfigError> {
    let ms = parse_u64(
        env,
        name,
        0,
        0,
        600_000,
        "milliseconds from 0 (our default of 3000) to 600000",
    )?;
    Ok(if ms == 0 {
        DEFAULT_UPSTREAM_TIMEOUT
    } else {
        Duration::from_millis(ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.entry(AWS_SESSION_TOKEN.into())
            .or_insert_with(|| "tok".into());
        m
    }

    #[test]
    fn defaults_match_the_aws_extension() {
        let c = Config::from_env(&env(&[])).expect("valid");
        assert_eq!(c.port, 2773);
        assert_eq!(c.cache_size, 1000);
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.secrets.ttl, Duration::from_secs(300));
        assert_eq!(c.secrets.timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert_eq!(c.log_level, LogLevel::Info);
        assert!(c.runtime_api.is_none());
        assert!(c.prefetch.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable_and_range() {
        for (k, v) in [
            (SECRETS_MANAGER_TTL, "86401"),
            (SECRETS_MANAGER_TTL, "-1"),
            (HTTP_PORT, "0"),
            (HTTP_PORT, "70000"),
            (CACHE_ENABLED, "yes"),
            (LOG_LEVEL, "verbose"),
            (MAX_CONNECTIONS, "0"),
            (SECRETS_MANAGER_TIMEOUT_MILLIS, "abc"),
        ] {
            let err = Config::from_env(&env(&[(k, v)])).expect_err(k).to_string();
            assert!(err.contains(k), "{err}");
            assert!(err.contains("expected"), "{err}");
        }
    }

    #[test]
    fn ttl_beyond_the_aws_limit_up_to_a_day_is_accepted() {
        let c = Config::from_env(&env(&[(SECRETS_MANAGER_TTL, "86400")])).expect("valid");
        assert_eq!(c.secrets.ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn disabled_cache_means_size_zero_and_log_level_is_case_insensitive() {
        let c = Config::from_env(&env(&[(CACHE_ENABLED, "FALSE"), (LOG_LEVEL, "DEBUG")]))
            .expect("valid");
        assert_eq!(c.cache_size, 0);
        assert_eq!(c.log_level, LogLevel::Debug);
    }

    #[test]
    fn prefetch_list_is_trimmed() {
        let c = Config::from_env(&env(&[(PREFETCH, " a, arn:aws:x ,,b ")])).expect("valid");
        assert_eq!(c.prefetch, vec!["a", "arn:aws:x", "b"]);
    }

    #[test]
    fn tokens_come_from_either_variable_and_are_redacted() {
        let mut e = env(&[(AWS_CONTAINER_AUTHORIZATION_TOKEN, "q7-container-token")]);
        e.remove(AWS_SESSION_TOKEN);
        let c = Config::from_env(&e).expect("valid");
        assert_eq!(c.tokens.values(), ["q7-container-token"]);
        assert!(!format!("{c:?}").contains("q7-container-token"));
        e.remove(AWS_CONTAINER_AUTHORIZATION_TOKEN);
        assert!(matches!(Config::from_env(&e), Err(ConfigError::NoToken)));
    }

    #[test]
    fn misspellings_are_flagged_with_the_right_name() {
        let e = env(&[
            ("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
            ("SECRETS_MANAGER_TTLL", "5"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773"),
            ("PATH", "/bin"),
        ]);
        let w = Config::warnings(&e);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|l| l.contains("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL")
                && l.contains("did you mean PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL")));
        assert!(w
            .iter()
            .any(|l| l.contains("did you mean SECRETS_MANAGER_TTL")));
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "abd"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
