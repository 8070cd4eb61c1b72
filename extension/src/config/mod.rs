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

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use secretcache_client::contract::env;

pub use crate::token::TokenSource;
mod role;
use agent::AgentFile;
pub use init_type::{Events, InitType};
pub use proxy::ProxyConfig;
pub use role::AssumeRole;

/// HTTP port of the localhost cache.
pub const HTTP_PORT: &str = env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT;
/// Boolean: whether values are cached at all.
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
/// (ours) How long an INVOKE waits for the refreshes it starts, in milliseconds (never past the event's deadline).
pub const INVOKE_WAIT_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS";
/// (ours) How long a not-found or access-denied answer is remembered, in milliseconds; 0 disables.
pub const NEGATIVE_CACHE_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_NEGATIVE_CACHE_MILLIS";
/// (ours) Shortest interval between two upstream calls for `refreshNow` of one key, in milliseconds; 0 disables.
pub const REFRESH_NOW_INTERVAL_MILLIS: &str =
    "PARAMETERS_SECRETS_EXTENSION_REFRESH_NOW_INTERVAL_MILLIS";
/// (ours) Most reads waiting on upstream calls of their own at once (misses; hits are never refused); past it a read
/// is answered 429 with `Retry-After`, as AWS Systems Manager Cloud Extensions answers past 100 calls in flight.
pub const MAX_PENDING_FETCHES: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_PENDING_FETCHES";
/// (ours, as the Workload Credentials Provider's `max_roles`) Most roles reads may name in `roleArn`, each with a
/// cache of its own.
pub const MAX_ROLES: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_ROLES";
/// (ours) A role to assume for every upstream call (secrets shared from another account).
pub const ROLE_ARN: &str = "PARAMETERS_SECRETS_EXTENSION_ROLE_ARN";
/// (ours) The external id that role's trust policy asks for.
pub const ROLE_EXTERNAL_ID: &str = "PARAMETERS_SECRETS_EXTENSION_ROLE_EXTERNAL_ID";
/// The region the SDK uses; Lambda sets it.
pub const AWS_REGION: &str = "AWS_REGION";
/// The SDK's older name for it.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Lambda's own log level, used when ours is not set.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// How Lambda started the environment: `on-demand`, `provisioned-concurrency`, `snap-start` or
/// `lambda-managed-instances` ([`InitType`]).
pub const AWS_LAMBDA_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
/// Under Lambda Managed Instances: the most invocations one environment serves at once.
pub const AWS_LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
pub use env::{AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_SESSION_TOKEN, AWS_TOKEN};
/// (ours) The prefix of path-based reads, `/v1/` by default as with the AWS Secrets Manager Agent.
pub const PATH_PREFIX: &str = "PARAMETERS_SECRETS_EXTENSION_PATH_PREFIX";
pub use secretcache_client::contract::{TOKEN_HEADER, VAULT_TOKEN_HEADER};
/// Where outside Lambda the token is looked for, in order (the Agent's order): the first set wins.
pub const STANDALONE_TOKEN_VARIABLES: [&str; 3] = [
    AWS_TOKEN,
    AWS_SESSION_TOKEN,
    AWS_CONTAINER_AUTHORIZATION_TOKEN,
];
/// Set by Lambda; when absent the extension runs standalone.
pub const AWS_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// `json` switches the log format to JSON lines.
pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
/// The SDK's endpoint override for every service.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The SDK's endpoint override for Secrets Manager.
pub const AWS_ENDPOINT_URL_SECRETS_MANAGER: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// The SDK's endpoint override for SSM.
pub const AWS_ENDPOINT_URL_SSM: &str = "AWS_ENDPOINT_URL_SSM";

/// Every variable of ours, for the misspelling check.
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
    INVOKE_WAIT_MILLIS,
    NEGATIVE_CACHE_MILLIS,
    REFRESH_NOW_INTERVAL_MILLIS,
    MAX_PENDING_FETCHES,
    MAX_ROLES,
    ROLE_ARN,
    ROLE_EXTERNAL_ID,
    PATH_PREFIX,
];

/// Our default upstream timeout where the AWS extension's default (0) would mean "wait forever": an upstream call
/// without a deadline can hang an invocation until the function times out.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The AWS extension's longest TTL; it clamps larger values to this.
pub const AWS_MAX_TTL_SECS: u64 = 300;
/// The longest TTL we honour: a day. Larger values are clamped to it.
pub const MAX_TTL_SECS: u64 = 86_400;
/// The AWS extension's largest cache.
pub const AWS_MAX_CACHE_SIZE: u64 = 1_000;
/// The largest cache we honour; larger values are clamped to it.
pub const MAX_CACHE_SIZE: u64 = 1_000_000;
/// Lambda gives extensions 10 s of init in total; the prefetch must leave room for registering and the runtime.
pub const MAX_PREFETCH_TIMEOUT_MILLIS: u64 = 9_000;
/// The default port, the AWS extension's.
pub const DEFAULT_PORT: u16 = secretcache_client::contract::DEFAULT_PORT;

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
        // A value that is not Unicode cannot be any of ours; it is treated as set but unusable.
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

/// The environment over the defaults an Agent configuration file gives: a variable that is set wins.
struct WithFile<'a, E> {
    env: &'a E,
    file: &'a HashMap<&'static str, String>,
}

impl<E: Env> Env for WithFile<'_, E> {
    fn get(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| self.file.get(name).cloned())
    }
    fn names(&self) -> Vec<String> {
        self.env.names()
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

/// A value that could not be used, and what was used instead. `main` logs each as one ERROR line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value} is not valid (expected {expected}); using {used} instead")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What was given, quoted; `<redacted>` for token variables.
    pub value: String,
    /// What is accepted, in words.
    pub expected: &'static str,
    /// The value used instead, in words.
    pub used: String,
}

/// What reading the environment found besides the values: logged once, after tracing is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Values that could not be used (ERROR lines; counted as `config_errors`).
    pub errors: Vec<ConfigError>,
    /// Values honoured beyond the AWS extension's limits, or clamped (one INFO or WARN line each).
    pub notices: Vec<Notice>,
    /// Set variables that look like misspellings of ours (WARN lines).
    pub misspellings: Vec<String>,
}

/// Something worth one log line about a value that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Honoured, but the AWS extension would not have (we deliberately go further).
    BeyondAws(String),
    /// Accepted and clamped to our limit, as the AWS extension clamps to its own.
    Clamped(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BeyondAws(s) | Self::Clamped(s) => f.write_str(s),
        }
    }
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
    /// How long an INVOKE waits for the refreshes it starts.
    pub invoke_budget: Duration,
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

/// What a number above its range means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Above {
    /// A limit of ours (or of AWS's, which clamps): honour the largest value we accept.
    Clamp,
    /// Not a value of this kind at all (a port above 65535): the default, with an error.
    Invalid,
}

/// Reads variables and keeps what it finds wrong. Every method returns a usable value.
struct Reader<'e, E> {
    env: &'e E,
    diagnostics: Diagnostics,
}

impl<'e, E: Env> Reader<'e, E> {
    /// The value of `name`, trimmed; empty means unset.
    fn raw(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn error(&mut self, name: &'static str, value: &str, expected: &'static str, used: String) {
        self.diagnostics.errors.push(ConfigError {
            name,
            value: format!("{value:?}"),
            expected,
            used,
        });
    }

    /// A whole number. Values in `valid` are honoured; with [`Above::Clamp`], larger ones are clamped to `valid`'s
    /// end with a notice (as the AWS extension clamps its TTLs); anything else is the default with an error.
    fn number(
        &mut self,
        name: &'static str,
        default: u64,
        valid: std::ops::RangeInclusive<u64>,
        above: Above,
        expected: &'static str,
    ) -> u64 {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match parse_whole(&raw) {
            Some(v) if valid.contains(&v) => v,
            Some(v) if v > *valid.end() && above == Above::Clamp => {
                self.diagnostics.notices.push(Notice::Clamped(format!(
                    "{name}={v} is above the largest value we honour; using {}",
                    valid.end()
                )));
                *valid.end()
            }
            _ => {
                self.error(name, &raw, expected, default.to_string());
                default
            }
        }
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        parse_bool(&raw).unwrap_or_else(|| {
            self.error(
                name,
                &raw,
                "1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
                default.to_string(),
            );
            default
        })
    }

    /// A TTL in seconds: 0-300 as for AWS, up to a day ours (with a notice), above that clamped to a day.
    fn ttl(&mut self, name: &'static str) -> Duration {
        let secs = self.number(
            name,
            AWS_MAX_TTL_SECS,
            0..=MAX_TTL_SECS,
            Above::Clamp,
            "whole seconds, 0 (no caching) to 86400",
        );
        if secs > AWS_MAX_TTL_SECS {
            self.diagnostics.notices.push(Notice::BeyondAws(format!(
                "{name}={secs}: the AWS extension stops at {AWS_MAX_TTL_SECS} s; secretcache honours up to \
                 {MAX_TTL_SECS} s"
            )));
        }
        Duration::from_secs(secs)
    }

    /// An upstream timeout: any whole number of milliseconds, as the AWS extension documents; 0 is our default.
    fn timeout(&mut self, name: &'static str) -> Duration {
        let default = DEFAULT_UPSTREAM_TIMEOUT.as_millis() as u64;
        let ms = self.number(
            name,
            default,
            0..=u64::MAX,
            Above::Clamp,
            "a whole number of milliseconds (0 means secretcache's default of 3000)",
        );
        Duration::from_millis(if ms == 0 { default } else { ms })
    }

    fn log_level(&mut self) -> LogLevel {
        // Ours wins; Lambda's advanced logging controls apply when ours is unset (FATAL maps to error).
        let (name, raw) = match self.raw(LOG_LEVEL) {
            Some(v) => (LOG_LEVEL, v),
            None => match self.raw(AWS_LAMBDA_LOG_LEVEL) {
                Some(v) => (AWS_LAMBDA_LOG_LEVEL, v),
                None => return LogLevel::Info,
            },
        };
        match raw.to_ascii_lowercase().as_str() {
            "debug" | "trace" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "fatal" => LogLevel::Error,
            "none" | "off" => LogLevel::None,
            _ => {
                self.error(
                    name,
                    &raw,
                    "one of debug, info, warn, error, none (any case)",
                    "info".to_owned(),
                );
                LogLevel::Info
            }
        }
    }

    /// One proxy variable (upper case first, as the AWS extension reads it); a value we cannot use is an error and no
    /// proxy. The value is never repeated: it may hold a password.
    fn proxy_variable(&mut self, upper: &'static str, lower: &'static str) -> Option<String> {
        let (name, raw) = match self.raw(upper) {
            Some(v) => (upper, v),
            None => (lower, self.raw(lower)?),
        };
        if proxy::is_usable_proxy(&raw) {
            return Some(raw);
        }
        self.diagnostics.errors.push(ConfigError {
            name,
            value: "(not shown: it may hold credentials)".to_owned(),
            expected:
                "http://host:port, or host:port (an https:// or socks proxy is not supported)",
            used: "no proxy".to_owned(),
        });
        None
    }

    fn proxy(&mut self) -> ProxyConfig {
        ProxyConfig {
            https: self.proxy_variable(proxy::HTTPS_PROXY, proxy::HTTPS_PROXY_LOWER),
            http: self.proxy_variable(proxy::HTTP_PROXY, proxy::HTTP_PROXY_LOWER),
            no_proxy: self
                .raw(proxy::NO_PROXY)
                .or_else(|| self.raw(proxy::NO_PROXY_LOWER)),
        }
    }

    /// The endpoint override for one service: its own variable wins over `AWS_ENDPOINT_URL`, as in the SDK.
    fn endpoint(&mut self, specific: &'static str) -> Endpoint {
        let name = if self.raw(specific).is_some() {
            specific
        } else if self.raw(AWS_ENDPOINT_URL).is_some() {
            AWS_ENDPOINT_URL
        } else {
            return Endpoint::Default;
        };
        let raw = self.raw(name).unwrap_or_default();
        if is_http_url(&raw) {
            Endpoint::Url {
                variable: name,
                url: raw,
            }
        } else {
            // Reported once per variable, however many services it affects.
            if !self.diagnostics.errors.iter().any(|e| e.name == name) {
                self.error(
                    name,
                    &raw,
                    "an http:// or https:// URL",
                    "no override; every call of the services it governs answers 502 until it is fixed"
                        .to_owned(),
                );
            }
            Endpoint::Invalid(name)
        }
    }
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
        let secrets_endpoint = r.endpoint(AWS_ENDPOINT_URL_SECRETS_MANAGER);
        let ssm_endpoint = r.endpoint(AWS_ENDPOINT_URL_SSM);
        let proxy = r.proxy();
        let mut prefetch: Vec<Prefetch> = r
            .raw(PREFETCH)
            .map(|v| v.split(',').filter_map(Prefetch::parse).collect())
            .unwrap_or_default();
        prefetch.extend(file.prefetch.iter().map(|id| Prefetch::Secret(id.clone())));
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
        let invoke_budget = Duration::from_millis(r.number(
            INVOKE_WAIT_MILLIS,
            100,
            0..=10_000,
            Above::Clamp,
            "milliseconds from 0 (start refreshes, never wait) to 10000",
        ));
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

/// One item of `PARAMETERS_SECRETS_EXTENSION_PREFETCH`: a comma-separated list whose items are a secret (a name or
/// ARN, as today), `ssm:<name>` for a parameter, or `ssm-path:<path>` for every parameter under a path (recursive).
/// Parameters are fetched with decryption, as their readers ask for SecureStrings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefetch {
    /// A secret's current version.
    Secret(String),
    /// One SSM parameter (name or ARN, with an optional `:version` / `:label`).
    Parameter(String),
    /// Every SSM parameter under a path.
    Path(String),
}

impl Prefetch {
    fn parse(item: &str) -> Option<Self> {
        let item = item.trim();
        if let Some(path) = item.strip_prefix("ssm-path:") {
            let path = path.trim();
            return (!path.is_empty()).then(|| Self::Path(path.to_owned()));
        }
        if let Some(name) = item.strip_prefix("ssm:") {
            let name = name.trim();
            return (!name.is_empty()).then(|| Self::Parameter(name.to_owned()));
        }
        if item.starts_with("arn:") && item.contains(":ssm:") {
            return Some(Self::Parameter(item.to_owned()));
        }
        (!item.is_empty()).then(|| Self::Secret(item.to_owned()))
    }
}

/// Go's `strconv.ParseBool`: exactly these spellings, nothing else.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A whole number in decimal digits (a leading `+` allowed, as Go's `strconv.Atoi` allows).
fn parse_whole(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // More digits than u64 holds is still a whole number: saturate, and let the range clamp it.
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// Whether `s` is an absolute http(s) URL with a host, as the SDK needs for an endpoint override.
fn is_http_url(s: &str) -> bool {
    match s.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// Warnings about set variables that look like misspellings of ours, for example
/// `PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL`. Users have lost hours to those.
fn misspellings(env: &impl Env) -> Vec<String> {
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
                strsim::levenshtein(&respelled, known).min(strsim::levenshtein(&upper, known)),
            )
        })
        .filter(|(known, d)| *d <= 3 || (*d < known.len() / 4 && respelled != upper))
        .min_by_key(|(_, d)| *d)
        .map(|(known, _)| known)
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
        assert_eq!(c.invoke_budget, Duration::from_millis(100));
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
        ] {
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
        ]);
        let w = Config::from_env(&e).diagnostics.misspellings;
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
