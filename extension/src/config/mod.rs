//! Typed configuration, read once from the environment before anything binds.
//!
//! The variable names are the AWS Parameters and Secrets Lambda Extension's own, so that a function's configuration
//! keeps working after its layer is swapped for ours. Our additions share the `PARAMETERS_SECRETS_EXTENSION_` prefix.
//!
//! **No value stops start-up.** The extension is shared by every function that attaches the layer, and an extension
//! that exits during init fails the whole function (`Extension.Crash`), so:
//! - a value the AWS extension documents as valid is honoured, clamped where that extension clamps; where we
//!   deliberately go further (a TTL above 300 s) a [`Notice`] says so once;
//! - an empty value means unset (CDK code often writes `process.env.X || ''`);
//! - booleans accept what Go's `strconv.ParseBool` accepts, as the AWS extension (written in Go) does;
//! - anything else falls back to the default with a [`ConfigError`] that names the variable, the value (never for a
//!   token) and what was used instead; `main` logs each as one ERROR line and `/metrics` counts them.
//!
//! Parts:
//! - [`Env`]: the tiny seam over the environment (production reads the process, tests pass a `HashMap`);
//! - [`Config::from_env`]: parse every value; never fails;
//! - [`Diagnostics`]: what parsing found (errors, notices, likely misspellings), logged once tracing is up.

pub mod agent;
pub mod init_type;
pub mod proxy;

use std::path::Path;
use std::time::Duration;

pub use crate::token::TokenSource;
mod role;
use agent::AgentFile;
pub use init_type::{Events, InitType, DEFAULT_INVOKE_WAIT};
pub use proxy::ProxyConfig;
pub use role::AssumeRole;

mod diagnostics;
mod names;
mod prefetch;
mod reader;

use diagnostics::misspellings;
pub use diagnostics::{ConfigError, Diagnostics, Notice};
pub use names::*;
use prefetch::tag_prefetch;
pub use prefetch::{Prefetch, TagPrefetch};
pub use reader::{parse_bool, Env, ProcessEnv};
use reader::{parse_whole, Above, Reader, WithFile};

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

impl LogLevel {
    /// The name for a log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::None => "none",
        }
    }
}

/// Cache and upstream settings for one source (Secrets Manager or SSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceConfig {
    /// How long a fetched value is served as fresh; zero disables caching for this source.
    pub ttl: Duration,
    /// Deadline of one upstream operation, retries included.
    pub timeout: Duration,
}

/// Where the AWS configuration (region, credentials) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkSource {
    /// Inside Lambda, with the execution role's credentials and the region in the environment: read just those,
    /// with nothing to probe (no profile files, no instance metadata), so the first call pays for nothing else.
    LambdaEnvironment,
    /// Everywhere else (containers, EC2, SnapStart, whose credentials come from an endpoint): the SDK's default
    /// chain.
    DefaultChain,
}

/// The endpoint override a service uses, from the SDK's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// No override: the service's regional endpoint.
    Default,
    /// A valid URL, from the named variable.
    Url {
        /// The variable it came from.
        variable: &'static str,
        /// The URL.
        url: String,
    },
    /// The named variable holds something that is not an http(s) URL: every call answers 502 naming it.
    Invalid(&'static str),
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on 127.0.0.1 (and `[::1]`).
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
    /// Secrets Manager's endpoint override.
    pub secrets_endpoint: Endpoint,
    /// SSM's endpoint override.
    pub ssm_endpoint: Endpoint,
    /// What to fetch during init.
    pub prefetch: Vec<Prefetch>,
    /// The secrets found by tag to fetch during init, and the bounds of the whole prefetch.
    pub prefetch_tags: TagPrefetch,
    /// A shared credentials file to call AWS with, instead of the SDK's chain.
    pub credentials_file: Option<std::path::PathBuf>,
    /// The credentials in the environment, which a SigV4-signed request to the localhost API must be signed with
    /// (in Lambda, the function's own).
    pub signing_keys: Option<crate::sigv4::Keys>,
    /// The home region (`AWS_REGION`, or `AWS_DEFAULT_REGION`): where names resolve.
    pub region: Option<String>,
    /// The role every upstream call assumes, if one is set.
    pub role: Option<AssumeRole>,
    /// Where the AWS configuration comes from.
    pub sdk_source: SdkSource,
    /// Budget of the init prefetch.
    pub prefetch_timeout: Duration,
    /// Where the token a request must carry comes from.
    pub tokens: Vec<TokenSource>,
    /// The headers a request may carry the token in.
    pub token_headers: Vec<String>,
    /// The prefix of path-based reads (`/v1/<secretId>`, as the AWS Secrets Manager Agent serves them).
    pub path_prefix: String,
    /// The Lambda Runtime API address, or `None` to run standalone.
    pub runtime_api: Option<String>,
    /// Percent of the TTL before expiry in which hits trigger a background refresh.
    pub refresh_ahead_percent: u8,
    /// How long past expiry a value may be served while the upstream fails.
    pub max_stale: Duration,
    /// Byte budget of the cache.
    pub cache_bytes: u64,
    /// How Lambda started the environment (on demand outside Lambda).
    pub init_type: InitType,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`, when Lambda sets it (Managed Instances): how many readers may come at once.
    pub max_concurrency: Option<u32>,
    /// `INVOKE_WAIT_MILLIS` when set: register for INVOKE (on demand and with provisioned concurrency) and wait this
    /// long for the refreshes each one starts. Unset: no INVOKE there, so an invocation never wakes the extension
    /// (`InitType::events`).
    pub invoke_budget: Option<Duration>,
    /// How long a not-found or access-denied answer is remembered.
    pub negative_ttl: Duration,
    /// Shortest interval between two upstream calls for `refreshNow` of one key.
    pub refresh_now_interval: Duration,
    /// Most keys with an upstream call of their own in flight before a read that needs another is answered 429.
    pub max_pending_fetches: usize,
    /// Most roles reads may name (`roleArn`), each with a cache of its own.
    pub max_roles: usize,
    /// `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (or their lower-case forms).
    pub proxy: ProxyConfig,
    /// What parsing found; logged by `main`.
    pub diagnostics: Diagnostics,
}

impl Config {
    /// Reads the configuration from the environment alone; see [`Config::load`].
    pub fn from_env(env: &impl Env) -> Self {
        Self::load(env, None)
    }

    /// Reads the configuration from the environment and, with `--config`, an AWS Secrets Manager Agent file whose
    /// values are defaults under the variables. Never fails: what cannot be used is replaced by its default and
    /// reported in [`Config::diagnostics`]. Nothing is bound or spawned before this returns.
    pub fn load(env: &impl Env, agent_file: Option<&Path>) -> Self {
        let file = agent_file.map(AgentFile::read).unwrap_or_default();
        let env = WithFile {
            env,
            file: &file.defaults,
        };
        let mut c = Self::read(&env, &file);
        c.diagnostics.errors.extend(file.errors);
        c.diagnostics.notices.extend(file.notices);
        c.diagnostics.misspellings.extend(file.warnings);
        c
    }

    fn read(env: &impl Env, file: &AgentFile) -> Self {
        let mut r = Reader {
            env,
            diagnostics: Diagnostics::default(),
        };
        let cache_enabled = r.boolean(CACHE_ENABLED, true);
        let cache_size = r.number(
            CACHE_SIZE,
            AWS_MAX_CACHE_SIZE,
            0..=MAX_CACHE_SIZE,
            Above::Clamp,
            "a whole number of entries, 0 (no caching) to 1000000",
        );
        if cache_size > AWS_MAX_CACHE_SIZE {
            r.diagnostics.notices.push(Notice::BeyondAws(format!(
                "{CACHE_SIZE}={cache_size}: the AWS extension stops at {AWS_MAX_CACHE_SIZE} entries; secretcache \
                 honours up to {MAX_CACHE_SIZE}"
            )));
        }
        let port = r.number(
            HTTP_PORT,
            u64::from(DEFAULT_PORT),
            1..=65_535,
            Above::Invalid,
            "a port from 1 to 65535",
        );
        // A port above 65535 is not "clamped": it is simply wrong.
        let port = u16::try_from(port).unwrap_or(DEFAULT_PORT);
        // The AWS extension documents a minimum of 1 and no maximum; each connection is only a permit here.
        let max_connections = r.number(
            MAX_CONNECTIONS,
            3,
            1..=u64::from(u32::MAX),
            Above::Clamp,
            "a whole number, 1 or more",
        ) as usize;
        let max_client_connections = r.number(
            MAX_CLIENT_CONNECTIONS,
            1024,
            1..=65_536,
            Above::Clamp,
            "a whole number from 1 to 65536",
        ) as usize;
        let secrets = SourceConfig {
            ttl: r.ttl(SECRETS_MANAGER_TTL),
            timeout: r.timeout(SECRETS_MANAGER_TIMEOUT_MILLIS),
        };
        let ssm = SourceConfig {
            ttl: r.ttl(SSM_PARAMETER_STORE_TTL),
            timeout: r.timeout(SSM_PARAMETER_STORE_TIMEOUT_MILLIS),
        };
        let secrets_endpoint = r.endpoint(AWS_ENDPOINT_URL_SECRETS_MANAGER, port);
        let ssm_endpoint = r.endpoint(AWS_ENDPOINT_URL_SSM, port);
        let proxy = r.proxy();
        let mut prefetch: Vec<Prefetch> = r
            .raw(PREFETCH)
            .map(|v| v.split(',').filter_map(Prefetch::parse).collect())
            .unwrap_or_default();
        prefetch.extend(file.prefetch.iter().map(|id| Prefetch::Secret(id.clone())));
        let prefetch_tags = tag_prefetch(&mut r, file, if cache_enabled { cache_size } else { 0 });
        let credentials_file = r.raw(CREDENTIALS_FILE).map(std::path::PathBuf::from);
        let signing_keys = match (r.raw("AWS_ACCESS_KEY_ID"), r.raw("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(crate::sigv4::Keys::new(
                id,
                secret,
                r.raw(AWS_SESSION_TOKEN),
            )),
            _ => None,
        };
        let region = r.raw(AWS_REGION).or_else(|| r.raw(AWS_DEFAULT_REGION));
        let role = r.raw(ROLE_ARN).and_then(|arn| {
            if arn.starts_with("arn:") && arn.contains(":role/") {
                Some(AssumeRole {
                    arn,
                    external_id: r.raw(ROLE_EXTERNAL_ID),
                })
            } else {
                r.error(
                    ROLE_ARN,
                    &arn,
                    "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                    "no role: calls use the function's own credentials".to_owned(),
                );
                None
            }
        });
        // Healthy Secrets Manager answers in tens of milliseconds; an unreachable one should cost init a second at
        // most, not the upstream timeout.
        let prefetch_timeout = Duration::from_millis(r.number(
            PREFETCH_TIMEOUT_MILLIS,
            1_000,
            1..=MAX_PREFETCH_TIMEOUT_MILLIS,
            Above::Clamp,
            "milliseconds from 1 to 9000 (Lambda's init limit is 10 s)",
        ));
        let refresh_ahead_percent = r.number(
            REFRESH_AHEAD,
            20,
            0..=90,
            Above::Clamp,
            "a percent of the TTL from 0 (off) to 90",
        ) as u8;
        let max_stale = Duration::from_secs(r.number(
            MAX_STALE,
            3600,
            0..=7 * 86_400,
            Above::Clamp,
            "seconds from 0 (never serve stale) to 604800",
        ));
        let cache_bytes = r.number(
            CACHE_BYTES,
            32 << 20,
            4096..=1 << 32,
            Above::Clamp,
            "bytes from 4096 to 4294967296",
        );
        let max_pending_fetches = r.number(
            MAX_PENDING_FETCHES,
            100,
            1..=100_000,
            Above::Clamp,
            "a whole number from 1 to 100000",
        ) as usize;
        let max_roles = r.number(
            MAX_ROLES,
            20,
            0..=1_000,
            Above::Clamp,
            "a whole number from 0 (roleArn refused) to 1000",
        ) as usize;
        // Set at all (a bad value included: the default then) means the INVOKE refresh was asked for.
        let invoke_budget = r.raw(INVOKE_WAIT_MILLIS).is_some().then(|| {
            Duration::from_millis(r.number(
                INVOKE_WAIT_MILLIS,
                DEFAULT_INVOKE_WAIT.as_millis() as u64,
                0..=10_000,
                Above::Clamp,
                "milliseconds from 0 (start refreshes, never wait) to 10000",
            ))
        });
        let negative_ttl = Duration::from_millis(r.number(
            NEGATIVE_CACHE_MILLIS,
            5_000,
            0..=300_000,
            Above::Clamp,
            "milliseconds from 0 (off) to 300000",
        ));
        let refresh_now_interval = Duration::from_millis(r.number(
            REFRESH_NOW_INTERVAL_MILLIS,
            1_000,
            0..=60_000,
            Above::Clamp,
            "milliseconds from 0 (off) to 60000",
        ));
        let init_type = InitType::parse(r.raw(AWS_LAMBDA_INITIALIZATION_TYPE).as_deref());
        let max_concurrency = r.raw(AWS_LAMBDA_MAX_CONCURRENCY).and_then(|v| {
            let n = parse_whole(&v)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0);
            if n.is_none() {
                r.error(
                    AWS_LAMBDA_MAX_CONCURRENCY,
                    &v,
                    "a whole number, 1 or more (Lambda sets it)",
                    "unknown concurrency".to_owned(),
                );
            }
            n
        });
        let log_level = r.log_level();
        let log_json = r
            .raw(AWS_LAMBDA_LOG_FORMAT)
            .is_some_and(|v| v.eq_ignore_ascii_case("json"));
        let runtime_api = r.raw(AWS_LAMBDA_RUNTIME_API);
        // The values are used as given (not trimmed): they are compared byte for byte with what clients send.
        let tokens: Vec<TokenSource> = if runtime_api.is_some() {
            // In Lambda: the session token, or under SnapStart (where it is absent) the container token; either.
            [AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN]
                .into_iter()
                .filter_map(|n| env.get(n).filter(|v| !v.is_empty()).map(|v| (n, v)))
                .map(|(n, v)| TokenSource::Value {
                    variable: n.to_owned(),
                    token: v,
                })
                .collect()
        } else {
            // Outside Lambda, as the AWS Secrets Manager Agent: the first variable set wins, and `file:///path` means
            // the contents of that file (a volume the application shares).
            let variables: Vec<String> = file
                .token_variables
                .clone()
                .unwrap_or_else(|| STANDALONE_TOKEN_VARIABLES.map(str::to_owned).to_vec());
            variables
                .iter()
                .find_map(|n| env.get(n).filter(|v| !v.is_empty()).map(|v| (n, v)))
                .map(|(n, v)| TokenSource::from_value(n, v))
                .into_iter()
                .collect()
        };
        if tokens.is_empty() {
            r.diagnostics.errors.push(ConfigError {
                name: AWS_SESSION_TOKEN,
                value: "<unset>".to_owned(),
                expected: "the token clients send in X-Aws-Parameters-Secrets-Token (in Lambda \
                           AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN; outside it AWS_TOKEN, which may \
                           be file:///path)",
                used: "no token: every request except /ping is refused with 401".to_owned(),
            });
        }
        let token_headers = file
            .token_headers
            .clone()
            .unwrap_or_else(|| vec![TOKEN_HEADER.to_owned(), VAULT_TOKEN_HEADER.to_owned()]);
        let v1 = secretcache_client::contract::path::V1_PREFIX;
        let path_prefix = match r.raw(PATH_PREFIX).or_else(|| file.path_prefix.clone()) {
            Some(p) if p.starts_with('/') && p.ends_with('/') && p.len() > 1 => p,
            Some(p) => {
                r.error(
                    PATH_PREFIX,
                    &p,
                    "a path that starts and ends with / (e.g. /v1/)",
                    v1.to_owned(),
                );
                v1.to_owned()
            }
            None => v1.to_owned(),
        };
        // Chosen at start, by the environment: Lambda sets the region and, except under SnapStart (credentials from
        // an endpoint after a restore), the role's keys.
        let sdk_source = if runtime_api.is_some()
            && init_type != InitType::SnapStart
            && region.is_some()
            && r.raw("AWS_ACCESS_KEY_ID").is_some()
            && r.raw("AWS_SECRET_ACCESS_KEY").is_some()
        {
            SdkSource::LambdaEnvironment
        } else {
            SdkSource::DefaultChain
        };
        r.diagnostics.misspellings = misspellings(env);
        Self {
            port,
            cache_size: if cache_enabled { cache_size } else { 0 },
            log_level,
            log_json,
            max_connections,
            max_client_connections,
            secrets,
            ssm,
            secrets_endpoint,
            ssm_endpoint,
            proxy,
            prefetch,
            prefetch_tags,
            credentials_file,
            signing_keys,
            region,
            role,
            sdk_source,
            prefetch_timeout,
            tokens,
            token_headers,
            path_prefix,
            runtime_api,
            refresh_ahead_percent,
            max_stale,
            cache_bytes,
            init_type,
            max_concurrency,
            invoke_budget,
            negative_ttl,
            refresh_now_interval,
            max_pending_fetches,
            max_roles,
            diagnostics: r.diagnostics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reader::is_http_url;
    use super::*;
    use std::collections::HashMap;

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
        let c = Config::from_env(&env(&[]));
        assert_eq!(c.port, 2773);
        assert_eq!(c.cache_size, 1000);
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.secrets.ttl, Duration::from_secs(300));
        assert_eq!(c.secrets.timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert_eq!(c.log_level, LogLevel::Info);
        assert!(c.runtime_api.is_none());
        assert!(c.prefetch.is_empty());
        assert_eq!(c.prefetch_timeout, Duration::from_secs(1));
        assert_eq!(c.invoke_budget, None);
        assert_eq!(c.negative_ttl, Duration::from_secs(5));
        assert_eq!(c.refresh_now_interval, Duration::from_secs(1));
        assert_eq!(c.diagnostics, Diagnostics::default());
    }

    #[test]
    fn bad_values_fall_back_to_the_default_with_an_error_naming_the_variable() {
        for (k, v, used) in [
            (SECRETS_MANAGER_TTL, "-1", "300"),
            (SECRETS_MANAGER_TTL, "5m", "300"),
            (HTTP_PORT, "0", "2773"),
            (HTTP_PORT, "70000", "2773"),
            (CACHE_ENABLED, "yes", "true"),
            (CACHE_ENABLED, "tRuE", "true"),
            (LOG_LEVEL, "verbose", "info"),
            (MAX_CONNECTIONS, "0", "3"),
            (SECRETS_MANAGER_TIMEOUT_MILLIS, "abc", "3000"),
            (SECRETS_MANAGER_TIMEOUT_MILLIS, "1.5", "3000"),
            (CACHE_SIZE, "lots", "1000"),
        ] {
            let c = Config::from_env(&env(&[(k, v)]));
            let errors = &c.diagnostics.errors;
            assert_eq!(errors.len(), 1, "{k}={v}: {errors:?}");
            let line = errors[0].to_string();
            assert!(line.contains(k), "{line}");
            assert!(line.contains(&format!("{v:?}")), "{line}");
            assert!(line.contains(&format!("using {used}")), "{line}");
        }
        let c = Config::from_env(&env(&[(HTTP_PORT, "70000"), (LOG_LEVEL, "loud")]));
        assert_eq!((c.port, c.log_level), (2773, LogLevel::Info));
    }

    #[test]
    fn what_the_aws_extension_accepts_is_honoured() {
        // The three that made the first version exit during init.
        let c = Config::from_env(&env(&[
            (CACHE_ENABLED, ""),
            (MAX_CONNECTIONS, "5000"),
            (SECRETS_MANAGER_TIMEOUT_MILLIS, "900000"),
        ]));
        assert!(c.diagnostics.errors.is_empty(), "{:?}", c.diagnostics);
        assert_eq!(c.cache_size, 1000, "empty means unset: caching stays on");
        assert_eq!(c.max_connections, 5000);
        assert_eq!(c.secrets.timeout, Duration::from_millis(900_000));
        // Whole numbers of any size are whole numbers.
        let c = Config::from_env(&env(&[(
            SSM_PARAMETER_STORE_TIMEOUT_MILLIS,
            "99999999999999999999999",
        )]));
        assert!(c.diagnostics.errors.is_empty(), "{:?}", c.diagnostics);
        assert_eq!(c.ssm.timeout, Duration::from_millis(u64::MAX));
    }

    #[test]
    fn ttl_beyond_the_aws_limit_is_honoured_and_said_once_and_clamped_past_a_day() {
        let c = Config::from_env(&env(&[(SECRETS_MANAGER_TTL, "1800")]));
        assert_eq!(c.secrets.ttl, Duration::from_secs(1800));
        assert!(c.diagnostics.errors.is_empty());
        assert_eq!(c.diagnostics.notices.len(), 1, "{:?}", c.diagnostics);
        assert!(
            matches!(&c.diagnostics.notices[0], Notice::BeyondAws(s) if s.contains("SECRETS_MANAGER_TTL=1800"))
        );
        let c = Config::from_env(&env(&[(SSM_PARAMETER_STORE_TTL, "100000")]));
        assert_eq!(c.ssm.ttl, Duration::from_secs(MAX_TTL_SECS));
        assert!(c.diagnostics.errors.is_empty());
        assert!(c
            .diagnostics
            .notices
            .iter()
            .any(|n| matches!(n, Notice::Clamped(s) if s.contains("SSM_PARAMETER_STORE_TTL"))));
    }

    #[test]
    fn booleans_are_gos_parse_bool() {
        for (v, want) in secretcache_client::env::go_bool_spellings() {
            assert_eq!(parse_bool(v), Some(want), "{v}");
            let c = Config::from_env(&env(&[(CACHE_ENABLED, v)]));
            assert_eq!(c.cache_size > 0, want, "{v}");
            assert!(c.diagnostics.errors.is_empty());
        }
        for v in ["yes", "no", "on", "tRUE", "2", "", " "] {
            assert_eq!(parse_bool(v), None, "{v:?}");
        }
    }

    #[test]
    fn empty_and_blank_values_mean_unset() {
        let c = Config::from_env(&env(&[
            (HTTP_PORT, ""),
            (LOG_LEVEL, "  "),
            (SECRETS_MANAGER_TTL, ""),
            (PREFETCH, ""),
        ]));
        assert_eq!(c.diagnostics, Diagnostics::default());
        assert_eq!(c.port, 2773);
    }

    #[test]
    fn disabled_cache_means_size_zero_and_log_level_is_case_insensitive() {
        let c = Config::from_env(&env(&[(CACHE_ENABLED, "FALSE"), (LOG_LEVEL, "DEBUG")]));
        assert_eq!(c.cache_size, 0);
        assert_eq!(c.log_level, LogLevel::Debug);
        let c = Config::from_env(&env(&[(AWS_LAMBDA_LOG_LEVEL, "FATAL")]));
        assert_eq!(c.log_level, LogLevel::Error);
    }

    /// A function that points its own SDK at the extension (one variable, shared with the extension's environment)
    /// does not make the extension call itself: that override is skipped, the next one or AWS is used.
    #[test]
    fn an_endpoint_override_that_points_at_this_extension_is_not_the_extensions_upstream() {
        let c = Config::from_env(&env(&[
            (AWS_ENDPOINT_URL_SECRETS_MANAGER, "http://127.0.0.1:2773"),
            (AWS_ENDPOINT_URL_SSM, "http://localhost:2773/"),
        ]));
        assert_eq!(c.secrets_endpoint, Endpoint::Default);
        assert_eq!(c.ssm_endpoint, Endpoint::Default);
        assert_eq!(
            c.diagnostics.notices.len(),
            2,
            "{:?}",
            c.diagnostics.notices
        );
        let c = Config::from_env(&env(&[
            (AWS_ENDPOINT_URL_SECRETS_MANAGER, "http://[::1]:2775"),
            (HTTP_PORT, "2775"),
            (AWS_ENDPOINT_URL, "http://127.0.0.1:4566"),
        ]));
        assert_eq!(
            c.secrets_endpoint,
            Endpoint::Url {
                variable: AWS_ENDPOINT_URL,
                url: "http://127.0.0.1:4566".into()
            }
        );
        // Another port, or another host, is an ordinary override.
        let c = Config::from_env(&env(&[(
            AWS_ENDPOINT_URL_SECRETS_MANAGER,
            "http://127.0.0.1:4566",
        )]));
        assert!(matches!(c.secrets_endpoint, Endpoint::Url { .. }));
    }

    #[test]
    fn tag_prefetch_reads_keys_bounds_and_jitter() {
        let c = Config::from_env(&env(&[
            (PREFETCH_TAGS, " Environment , Team,Environment,bad#key ,"),
            (CACHE_SIZE, "50"),
        ]));
        assert_eq!(c.prefetch_tags.keys, ["Environment", "Team"]);
        assert_eq!(c.prefetch_tags.limit, 40, "80% of the cache");
        assert_eq!(c.prefetch_tags.max_jitter, Duration::ZERO);
        assert_eq!(c.diagnostics.errors.len(), 1, "{:?}", c.diagnostics.errors);
        assert!(c.diagnostics.errors[0].value.contains("bad#key"));

        let c = Config::from_env(&env(&[
            (PREFETCH_TAGS, "a"),
            (PREFETCH_BUFFER_PERCENT, "5"),
            (PREFETCH_MAX_JITTER_SECONDS, "60"),
        ]));
        assert_eq!(
            c.prefetch_tags.limit, 800,
            "below 10% is refused: the default 80%"
        );
        assert_eq!(
            c.prefetch_tags.max_jitter,
            Duration::from_secs(10),
            "clamped"
        );

        let eleven = (0..11)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let c = Config::from_env(&env(&[(PREFETCH_TAGS, &eleven)]));
        assert_eq!(c.prefetch_tags.keys.len(), MAX_PREFETCH_TAGS);
        let c = Config::from_env(&env(&[(PREFETCH_TAGS, "a"), (CACHE_ENABLED, "false")]));
        assert_eq!(c.prefetch_tags.limit, 0, "no cache, nothing to fill");
        assert_eq!(Config::from_env(&env(&[])).prefetch_tags.keys.len(), 0);
        let c = Config::from_env(&env(&[(CREDENTIALS_FILE, "/run/creds")]));
        assert_eq!(c.credentials_file.as_deref(), Some(Path::new("/run/creds")));
    }

    #[test]
    fn prefetch_list_is_trimmed_and_names_secrets_parameters_and_paths() {
        let c = Config::from_env(&env(&[(
            PREFETCH,
            " a, arn:aws:secretsmanager:us-east-1:1:secret:x ,,ssm:/app/db-url, ssm-path:/app/ ,\
             arn:aws:ssm:us-east-1:1:parameter/p,ssm:,b",
        )]));
        assert_eq!(
            c.prefetch,
            vec![
                Prefetch::Secret("a".into()),
                Prefetch::Secret("arn:aws:secretsmanager:us-east-1:1:secret:x".into()),
                Prefetch::Parameter("/app/db-url".into()),
                Prefetch::Path("/app/".into()),
                Prefetch::Parameter("arn:aws:ssm:us-east-1:1:parameter/p".into()),
                Prefetch::Secret("b".into()),
            ]
        );
    }

    #[test]
    fn a_role_is_an_iam_role_arn_or_an_error_line() {
        let c = Config::from_env(&env(&[
            (ROLE_ARN, "arn:aws:iam::210987654321:role/reader"),
            (ROLE_EXTERNAL_ID, "ext-1"),
        ]));
        assert_eq!(
            c.role,
            Some(AssumeRole {
                arn: "arn:aws:iam::210987654321:role/reader".into(),
                external_id: Some("ext-1".into()),
            })
        );
        let c = Config::from_env(&env(&[(ROLE_ARN, "reader")]));
        assert_eq!(c.role, None);
        assert_eq!(c.diagnostics.errors.len(), 1);
    }

    fn token_values(c: &Config) -> Vec<&str> {
        c.tokens
            .iter()
            .map(|t| match t {
                TokenSource::Value { token, .. } => token.as_str(),
                TokenSource::File { .. } => "<file>",
            })
            .collect()
    }

    #[test]
    fn in_lambda_tokens_come_from_either_variable_are_redacted_and_never_echoed() {
        let mut e = env(&[
            (AWS_CONTAINER_AUTHORIZATION_TOKEN, "q7-container-token"),
            (AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001"),
            (AWS_TOKEN, "ignored-in-lambda"),
        ]);
        e.remove(AWS_SESSION_TOKEN);
        let c = Config::from_env(&e);
        assert_eq!(token_values(&c), ["q7-container-token"]);
        assert!(!format!("{c:?}").contains("q7-container-token"));
        e.insert(AWS_SESSION_TOKEN.into(), "session".into());
        assert_eq!(
            token_values(&Config::from_env(&e)),
            ["session", "q7-container-token"]
        );
        e.remove(AWS_CONTAINER_AUTHORIZATION_TOKEN);
        e.remove(AWS_SESSION_TOKEN);
        let c = Config::from_env(&e);
        assert!(c.tokens.is_empty());
        assert_eq!(c.diagnostics.errors.len(), 1);
        assert!(c.diagnostics.errors[0].to_string().contains("401"));
    }

    #[test]
    fn outside_lambda_the_first_token_variable_set_wins_and_may_name_a_file() {
        let c = Config::from_env(&env(&[
            (AWS_TOKEN, "file:///var/run/awssmatoken"),
            (AWS_CONTAINER_AUTHORIZATION_TOKEN, "c"),
        ]));
        assert_eq!(
            c.tokens,
            [TokenSource::File {
                variable: AWS_TOKEN.into(),
                path: "/var/run/awssmatoken".into()
            }]
        );
        let c = Config::from_env(&env(&[(AWS_CONTAINER_AUTHORIZATION_TOKEN, "c")]));
        assert_eq!(
            token_values(&c),
            ["tok"],
            "AWS_SESSION_TOKEN comes before it"
        );
        assert_eq!(c.token_headers, [TOKEN_HEADER, VAULT_TOKEN_HEADER]);
        assert_eq!(c.path_prefix, "/v1/");
    }

    #[test]
    fn the_aws_configuration_is_read_from_lambdas_environment_only_where_it_is_all_there() {
        let lambda = [
            (AWS_LAMBDA_RUNTIME_API, "127.0.0.1:9001"),
            (AWS_REGION, "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        assert_eq!(
            Config::from_env(&env(&lambda)).sdk_source,
            SdkSource::LambdaEnvironment
        );
        // Standalone, SnapStart (credentials from an endpoint), or anything missing: the SDK's default chain.
        for (without, with) in [
            (AWS_LAMBDA_RUNTIME_API, None),
            ("AWS_ACCESS_KEY_ID", None),
            (AWS_REGION, None),
            ("", Some((AWS_LAMBDA_INITIALIZATION_TYPE, "snap-start"))),
        ] {
            let mut pairs: Vec<(&str, &str)> = lambda
                .iter()
                .copied()
                .filter(|(k, _)| *k != without)
                .collect();
            pairs.extend(with);
            assert_eq!(
                Config::from_env(&env(&pairs)).sdk_source,
                SdkSource::DefaultChain,
                "without {without:?}, with {with:?}"
            );
        }
    }

    #[test]
    fn an_agent_file_gives_defaults_under_the_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "http_port = \"2999\"\nttl_seconds = \"60\"\nssrf_env_variables = [\"MY_TOKEN\"]\npath_prefix = \"/s/\"\n",
        )
        .expect("write");
        let e = env(&[(SECRETS_MANAGER_TTL, "30"), ("MY_TOKEN", "mine")]);
        let c = Config::load(&e, Some(&path));
        assert_eq!(c.port, 2999, "from the file");
        assert_eq!(c.secrets.ttl, Duration::from_secs(30), "the variable wins");
        assert_eq!(token_values(&c), ["mine"]);
        assert_eq!(c.path_prefix, "/s/");
        assert!(c.diagnostics.errors.is_empty(), "{:?}", c.diagnostics);
    }

    #[test]
    fn endpoint_overrides_are_checked_and_the_specific_one_wins() {
        let c = Config::from_env(&env(&[(AWS_ENDPOINT_URL, "http://127.0.0.1:4566")]));
        let url = |variable, url: &str| Endpoint::Url {
            variable,
            url: url.to_owned(),
        };
        assert_eq!(
            c.secrets_endpoint,
            url(AWS_ENDPOINT_URL, "http://127.0.0.1:4566")
        );
        assert_eq!(
            c.ssm_endpoint,
            url(AWS_ENDPOINT_URL, "http://127.0.0.1:4566")
        );
        let c = Config::from_env(&env(&[
            (AWS_ENDPOINT_URL, "localhost:4566"),
            (AWS_ENDPOINT_URL_SSM, "https://ssm.example"),
        ]));
        assert_eq!(c.secrets_endpoint, Endpoint::Invalid(AWS_ENDPOINT_URL));
        assert_eq!(
            c.ssm_endpoint,
            url(AWS_ENDPOINT_URL_SSM, "https://ssm.example")
        );
        assert_eq!(c.diagnostics.errors.len(), 1, "{:?}", c.diagnostics);
        assert!(c.diagnostics.errors[0].to_string().contains("502"));
        for bad in ["not a url", "ftp://x", "http://", "//host"] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn proxy_variables_are_read_once_upper_case_first_and_a_bad_one_is_not_used() {
        let c = Config::from_env(&env(&[
            (proxy::HTTPS_PROXY, "http://10.0.0.1:3128"),
            (proxy::HTTPS_PROXY_LOWER, "http://10.0.0.2:3128"),
            (proxy::NO_PROXY_LOWER, "localhost,.internal"),
        ]));
        assert_eq!(c.proxy.https.as_deref(), Some("http://10.0.0.1:3128"));
        assert_eq!(c.proxy.http, None);
        assert_eq!(c.proxy.no_proxy.as_deref(), Some("localhost,.internal"));
        assert!(c.diagnostics.errors.is_empty(), "{:?}", c.diagnostics);
        let c = Config::from_env(&env(&[(
            proxy::HTTPS_PROXY_LOWER,
            "https://user:s3cret@proxy:3128",
        )]));
        assert_eq!(c.proxy.https, None);
        assert_eq!(c.diagnostics.errors.len(), 1);
        let said = c.diagnostics.errors[0].to_string();
        assert!(
            said.contains("https_proxy") && !said.contains("s3cret"),
            "{said}"
        );
        assert!(Config::from_env(&env(&[])).proxy.matcher().is_none());
    }

    #[test]
    fn misspellings_are_flagged_with_the_right_name() {
        let e = env(&[
            ("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
            ("SECRETS_MANAGER_TTLL", "5"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773"),
            ("PATH", "/bin"),
            (&"SECRETS_MANAGER_TTL".repeat(200), "1"),
        ]);
        let w = Config::from_env(&e).diagnostics.misspellings;
        // The 3,800-character name is no one's misspelling (and is not compared: lengths too far apart).
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|l| l.contains("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL")
                && l.contains("did you mean PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL")));
        assert!(w
            .iter()
            .any(|l| l.contains("did you mean SECRETS_MANAGER_TTL")));
    }
}
