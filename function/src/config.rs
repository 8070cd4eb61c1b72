//! Typed configuration, read once from the environment at cold start.
//!
//! Parts:
//! - [`Env`]: the tiny seam over the environment, the client crate's (`secretcache_client::env`, shared with the
//!   extension). Production passes [`ProcessEnv`]; tests pass a `HashMap`, so no test ever calls `set_var`.
//! - [`Config::from_env`]: parses every value into a type. A malformed value is a [`ConfigError`] that names the
//!   variable and what it accepts; it stops the cold start, because a function running on a guess is worse.
//! - [`DatabaseSource`]: where the database is and where its credentials come from (the one type that says so: a
//!   `DATABASE_URL` is parsed here, into PostgreSQL's or SQLite's connect options), resolved in the seed note's
//!   priority order:
//!   `DATABASE_URL`, then `DB_SECRET_ARN` (through the extension), then `PARAMETER_STORE_DB_URL` (deprecated, through
//!   the extension's SSM endpoint), then the legacy `DATABASE_*` variables, then SQLite at `DATABASE_PATH`, the last
//!   **only outside Lambda**. Inside Lambda with nothing configured the source is
//!   [`DatabaseSource::Missing`], which every request answers with a 503 naming `DB_SECRET_ARN`: the silent fallback
//!   to a SQLite file that does not exist in Lambda was the original bug.
//! - [`Config::warnings`]: variables that look like misspellings of ours, logged once tracing is up.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secretcache_client::env::{parse_whole_in, parse_yes_no, Spelling};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use crate::secret::Secret;

/// Full connection URL (`postgres://...` or `sqlite:...`); the override for tests and local runs.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Secret name or ARN holding the RDS JSON; read through the extension.
pub const DB_SECRET_ARN: &str = "DB_SECRET_ARN";
/// SSM parameter (a SecureString) holding a whole `postgres://` URL: the seed's deprecated third tier.
pub const PARAMETER_STORE_DB_URL: &str = "PARAMETER_STORE_DB_URL";
/// `true` to let the function create or update its schema itself. Off in Lambda: migrations are an operator's step.
pub const DATABASE_MIGRATE: &str = "DATABASE_MIGRATE";
/// Database host (legacy, and the fallback when the secret has no `host`).
pub const DATABASE_HOST: &str = "DATABASE_HOST";
/// Database port, 1-65535 (legacy, and the fallback when the secret has no `port`).
pub const DATABASE_PORT: &str = "DATABASE_PORT";
/// Database name (legacy, and the fallback when the secret has no `dbname`).
pub const DATABASE_NAME: &str = "DATABASE_NAME";
/// User name for the legacy variables.
pub const DATABASE_USER: &str = "DATABASE_USER";
/// Password for the legacy variables.
pub const DATABASE_PASSWORD: &str = "DATABASE_PASSWORD";
/// SQLite file for local runs; never used inside Lambda.
pub const DATABASE_PATH: &str = "DATABASE_PATH";
/// PostgreSQL TLS mode: disable, allow, prefer, require (default), verify-ca or verify-full.
pub const DATABASE_SSLMODE: &str = "DATABASE_SSLMODE";
/// PEM bundle of the CAs that verify-ca / verify-full trust (for RDS: the RDS global bundle).
pub const DATABASE_SSL_ROOT_CERT: &str = "DATABASE_SSL_ROOT_CERT";
/// Most connections one execution environment holds, 1-20.
pub const DATABASE_POOL_MAX_CONNECTIONS: &str = "DATABASE_POOL_MAX_CONNECTIONS";
/// How long a request waits for a pooled connection, in milliseconds.
pub const DATABASE_ACQUIRE_TIMEOUT_MS: &str = "DATABASE_ACQUIRE_TIMEOUT_MS";
/// Longest life of one connection, in seconds; bounds how long a connection opened with an old password lives on.
pub const DATABASE_POOL_MAX_LIFETIME_SECS: &str = "DATABASE_POOL_MAX_LIFETIME_SECS";
/// How long, in milliseconds, a login rejected during a rotation keeps being retried before the request gets a 503.
pub const DATABASE_ROTATION_GRACE_MS: &str = "DATABASE_ROTATION_GRACE_MS";
/// How long, in milliseconds, after the database rejected every version of the secret, requests get a 503 at once
/// instead of asking the extension again.
pub const DATABASE_REJECTED_BACKOFF_MS: &str = "DATABASE_REJECTED_BACKOFF_MS";
/// Timeout of one call to the extension, in milliseconds.
pub const DB_SECRET_TIMEOUT_MS: &str = "DB_SECRET_TIMEOUT_MS";
/// How long, in milliseconds, a cold start waits for an extension that is not answering yet.
pub const DB_SECRET_STARTUP_WAIT_MS: &str = "DB_SECRET_STARTUP_WAIT_MS";
// The extension's port (the AWS extension's variable, so both read the same value), the execution environment's
// session token that the extension's token header must carry, and the token under SnapStart: the wire contract's.
pub use secretcache_client::contract::env::{
    AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_SESSION_TOKEN, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
};
/// Set by Lambda in every execution environment: the sign that we run inside Lambda.
pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// Set by Lambda Managed Instances: how many invocations one execution environment serves at once. `lambda_runtime`
/// reads it too, and runs that many invocation loops in this one process.
pub const AWS_LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
/// Where Lambda extracted the function zip (`/var/task`); a CA bundle packaged with the function is found there.
pub const LAMBDA_TASK_ROOT: &str = "LAMBDA_TASK_ROOT";

/// Where `make package DATABASE_CA_BUNDLE=...` puts the CA bundle in the function zip, relative to its root.
pub const BUNDLED_CA_PATH: &str = "certs/database-ca.pem";

/// Every variable of ours, for the misspelling check.
pub const KNOWN_VARIABLES: &[&str] = &[
    DATABASE_URL,
    DB_SECRET_ARN,
    DATABASE_MIGRATE,
    DATABASE_HOST,
    DATABASE_PORT,
    DATABASE_NAME,
    DATABASE_USER,
    DATABASE_PASSWORD,
    DATABASE_PATH,
    DATABASE_SSLMODE,
    DATABASE_SSL_ROOT_CERT,
    DATABASE_POOL_MAX_CONNECTIONS,
    DATABASE_ACQUIRE_TIMEOUT_MS,
    DATABASE_POOL_MAX_LIFETIME_SECS,
    DATABASE_ROTATION_GRACE_MS,
    DATABASE_REJECTED_BACKOFF_MS,
    DB_SECRET_TIMEOUT_MS,
    DB_SECRET_STARTUP_WAIT_MS,
];

/// The SQLite file used outside Lambda when nothing else is configured.
pub const DEFAULT_DATABASE_PATH: &str = "./data/collections.db";
/// The extension's default port, as for the AWS extension.
pub use secretcache_client::DEFAULT_PORT as DEFAULT_EXTENSION_PORT;
/// PostgreSQL's default port.
pub const DEFAULT_POSTGRES_PORT: u16 = 5432;
/// The pool's default size where an environment serves one invocation at a time (every mode but Managed Instances).
pub const DEFAULT_POOL_MAX_CONNECTIONS: u32 = 2;
/// The largest default pool under Managed Instances: one connection per concurrent invocation up to this. A query
/// takes milliseconds, so more requests than connections only queue briefly for one (within
/// `DATABASE_ACQUIRE_TIMEOUT_MS`), while every environment's connections count against the server's
/// `max_connections`.
pub const MANAGED_INSTANCES_POOL_CAP: u32 = 10;

/// The environment seam, shared with the extension: a `HashMap<String, String>` in tests.
pub use secretcache_client::env::{Env, ProcessEnv};

/// A value that cannot be used, named by its variable. The message never repeats the value, since some of these
/// variables hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse, or is out of range.
    #[error("{name} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it accepts.
        expected: &'static str,
    },
    /// A group of variables is only partly set.
    #[error("{0}")]
    Incomplete(&'static str),
}

/// PostgreSQL TLS modes, with libpq's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it.
    Prefer,
    /// TLS, without verifying the certificate (libpq's meaning). Our default.
    Require,
    /// TLS, with the certificate verified against the CA bundle.
    VerifyCa,
    /// TLS, with the certificate and the host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" | "verify_ca" => Self::VerifyCa,
            "verify-full" | "verify_full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// TLS settings for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `DATABASE_SSLMODE`, when it was set. Unset means `verify-full` when there is a CA bundle and `require` when
    /// there is none, unless a `DATABASE_URL` names its own `sslmode`.
    pub mode: Option<SslMode>,
    /// The CA bundle for verify-ca / verify-full: `DATABASE_SSL_ROOT_CERT`, else the one packaged with the function
    /// (`$LAMBDA_TASK_ROOT/certs/database-ca.pem`). Without one, the webpki roots are used.
    pub root_cert: Option<PathBuf>,
}

impl TlsConfig {
    /// The mode used when neither `DATABASE_SSLMODE` nor a URL names one: a CA bundle means the operator can verify
    /// the server, so we do; without one, `require` (the seed's mode) encrypts but trusts any certificate.
    pub fn default_mode(&self) -> SslMode {
        if self.root_cert.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Require
        }
    }
}

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

/// Where the database is and where its credentials come from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// A `DATABASE_URL` naming PostgreSQL: fixed connect options, nothing to refresh.
    PostgresUrl(PostgresUrl),
    /// SQLite: `DATABASE_PATH` (outside Lambda only), or a `sqlite:` `DATABASE_URL`.
    Sqlite(SqliteFile),
    /// `DB_SECRET_ARN`, read through the extension. The `DATABASE_*` values fill what the secret leaves out
    /// (RDS-managed master secrets hold only `username` and `password`).
    SecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
        /// `DATABASE_HOST`.
        host: Option<String>,
        /// `DATABASE_PORT`.
        port: Option<u16>,
        /// `DATABASE_NAME`.
        dbname: Option<String>,
    },
    /// `PARAMETER_STORE_DB_URL`: an SSM SecureString holding a `postgres://` URL, read through the extension with
    /// decryption. Deprecated, as in the seed note; it logs a warning at every cold start.
    ParameterStore(String),
    /// The legacy variables, all from the environment.
    Legacy(StaticCredentials),
    /// Inside Lambda with nothing usable configured: every request is a 503 naming `variable`.
    Missing {
        /// The variable to set.
        variable: &'static str,
        /// Why, in words (never a value).
        detail: String,
    },
}

impl DatabaseSource {
    /// The variable the database settings come from, for log lines (never a value).
    pub fn source_name(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "none",
            Self::Sqlite(_) => "DATABASE_PATH (SQLite)",
            Self::PostgresUrl(_) => DATABASE_URL,
            Self::SecretsManager { .. } => DB_SECRET_ARN,
            Self::ParameterStore(_) => PARAMETER_STORE_DB_URL,
            Self::Legacy(_) => "DATABASE_USER/DATABASE_PASSWORD",
        }
    }
}

/// A PostgreSQL `DATABASE_URL`, parsed when the configuration is read, so a bad one stops the cold start before any
/// request. `DATABASE_SSLMODE` and the CA bundle are applied when the pool is built. `Debug` shows where it points,
/// never the password (sqlx's own `Debug` of the options prints it).
#[derive(Clone)]
pub struct PostgresUrl {
    pub(crate) options: Box<PgConnectOptions>,
    /// Whether the URL chose an `sslmode` itself (then only `DATABASE_SSLMODE` overrides it).
    pub(crate) has_sslmode: bool,
}

impl PostgresUrl {
    fn parse(url: &str) -> Result<Self, ConfigError> {
        // sqlx's parse error can quote the URL, password and all: a fixed message it is.
        let options = PgConnectOptions::from_str(url).map_err(|_| ConfigError::Invalid {
            name: DATABASE_URL,
            expected: "a valid postgres:// URL",
        })?;
        Ok(Self {
            options: Box::new(options),
            has_sslmode: url.contains("sslmode=") || url.contains("ssl-mode="),
        })
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("has_sslmode", &self.has_sslmode)
            .finish_non_exhaustive()
    }
}

/// A SQLite database: its connect options, the folder to create first, and whether it lives in memory.
#[derive(Clone)]
pub struct SqliteFile {
    /// Boxed: SQLite's options are several times larger than the other variants.
    pub(crate) options: Box<SqliteConnectOptions>,
    /// The folder to create first (`None` for in-memory databases).
    pub(crate) folder: Option<PathBuf>,
    /// Each connection to an in-memory database is its own database.
    pub(crate) in_memory: bool,
}

impl SqliteFile {
    /// The file at `path`, created when missing, in WAL mode.
    pub fn at(path: &Path) -> Self {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets readers and the one writer of a local run overlap; the busy timeout absorbs the rest.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        Self {
            options: Box::new(options),
            folder: path.parent().map(Path::to_path_buf),
            in_memory: false,
        }
    }

    fn parse(url: &str) -> Result<Self, ConfigError> {
        // sqlx's parse error can quote the URL; a fixed message it is.
        let options = SqliteConnectOptions::from_str(url).map_err(|_| ConfigError::Invalid {
            name: DATABASE_URL,
            expected: "a valid sqlite: URL",
        })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let folder = if in_memory {
            None
        } else {
            options.get_filename().parent().map(Path::to_path_buf)
        };
        Ok(Self {
            options: Box::new(options.create_if_missing(true)),
            folder,
            in_memory,
        })
    }

    /// The file (`:memory:` and the like for an in-memory database).
    pub fn filename(&self) -> &Path {
        self.options.get_filename()
    }
}

impl std::fmt::Debug for SqliteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFile")
            .field("filename", &self.filename())
            .field("in_memory", &self.in_memory)
            .finish_non_exhaustive()
    }
}

/// A complete set of PostgreSQL credentials. `Debug` shows everything but the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Role name.
    pub username: String,
    /// Password (redacted in `Debug`).
    pub password: Secret,
}

/// Everything the function reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database is.
    pub database: DatabaseSource,
    /// PostgreSQL TLS.
    pub tls: TlsConfig,
    /// Pool sizing.
    pub pool: PoolConfig,
    /// The extension.
    pub extension: ExtensionConfig,
    /// Whether we run inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set).
    pub in_lambda: bool,
    /// How many invocations this execution environment serves at once: `AWS_LAMBDA_MAX_CONCURRENCY` (Managed
    /// Instances), else 1.
    pub concurrency: u32,
    /// Whether the function applies its migrations to PostgreSQL itself: `DATABASE_MIGRATE`, by default only outside
    /// Lambda. SQLite (local runs) always prepares its schema.
    pub migrate: bool,
    /// Set variables that look like misspellings of ours.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates everything.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        // Blank means unset; a value keeps its spaces (a password may mean them), and each parser trims its own.
        let get = |name: &str| env.non_blank(name);
        let in_lambda = get(AWS_LAMBDA_FUNCTION_NAME).is_some();
        let concurrency = max_concurrency(get(AWS_LAMBDA_MAX_CONCURRENCY));

        let port = match get(DATABASE_PORT) {
            Some(v) => Some(parse_whole_in::<u16>(&v, 1..=u16::MAX).ok_or(
                ConfigError::Invalid {
                    name: DATABASE_PORT,
                    expected: "a port, 1-65535",
                },
            )?),
            None => None,
        };
        let host = get(DATABASE_HOST);
        let dbname = get(DATABASE_NAME);
        let database = if let Some(url) = get(DATABASE_URL) {
            let url = url.trim();
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("sqlite:") {
                DatabaseSource::Sqlite(SqliteFile::parse(url)?)
            } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                DatabaseSource::PostgresUrl(PostgresUrl::parse(url)?)
            } else {
                return Err(ConfigError::Invalid {
                    name: DATABASE_URL,
                    expected: "a postgres://, postgresql:// or sqlite: URL",
                });
            }
        } else if let Some(secret_id) = get(DB_SECRET_ARN) {
            DatabaseSource::SecretsManager {
                secret_id: secret_id.trim().to_owned(),
                host,
                port,
                dbname,
            }
        } else if let Some(name) = get(PARAMETER_STORE_DB_URL) {
            DatabaseSource::ParameterStore(name.trim().to_owned())
        } else if let Some(host) = host {
            match (get(DATABASE_USER), get(DATABASE_PASSWORD)) {
                (Some(username), Some(password)) => DatabaseSource::Legacy(StaticCredentials {
                    host,
                    port: port.unwrap_or(DEFAULT_POSTGRES_PORT),
                    // libpq's default: the database named after the role.
                    dbname: dbname.unwrap_or_else(|| username.clone()),
                    username,
                    password: Secret::new(password),
                }),
                _ if in_lambda => DatabaseSource::Missing {
                    variable: DB_SECRET_ARN,
                    detail: "DATABASE_HOST is set but DATABASE_USER and DATABASE_PASSWORD are not; \
                             set DB_SECRET_ARN to the database secret"
                        .to_owned(),
                },
                _ => {
                    return Err(ConfigError::Incomplete(
                        "DATABASE_HOST is set but DATABASE_USER and DATABASE_PASSWORD are not; set both, \
                         or DB_SECRET_ARN, or unset DATABASE_HOST to use SQLite locally",
                    ))
                }
            }
        } else if in_lambda {
            DatabaseSource::Missing {
                variable: DB_SECRET_ARN,
                detail: "no database is configured: set DB_SECRET_ARN to the database secret \
                         (SQLite is for local runs only)"
                    .to_owned(),
            }
        } else {
            DatabaseSource::Sqlite(SqliteFile::at(Path::new(
                &get(DATABASE_PATH).unwrap_or_else(|| DEFAULT_DATABASE_PATH.to_owned()),
            )))
        };

        let tls = TlsConfig {
            mode: match get(DATABASE_SSLMODE) {
                Some(v) => Some(SslMode::parse(&v).ok_or(ConfigError::Invalid {
                    name: DATABASE_SSLMODE,
                    expected: "disable, allow, prefer, require, verify-ca or verify-full",
                })?),
                None => None,
            },
            root_cert: get(DATABASE_SSL_ROOT_CERT).map(PathBuf::from).or_else(|| {
                get(LAMBDA_TASK_ROOT)
                    .map(|root| PathBuf::from(root).join(BUNDLED_CA_PATH))
                    .filter(|bundle| bundle.is_file())
            }),
        };
        let migrate = match get(DATABASE_MIGRATE) {
            Some(v) => parse_yes_no(&v).ok_or(ConfigError::Invalid {
                name: DATABASE_MIGRATE,
                expected: "true or false",
            })?,
            None => !in_lambda,
        };

        let pool = PoolConfig {
            max_connections: number(
                env,
                DATABASE_POOL_MAX_CONNECTIONS,
                default_pool_size(concurrency),
                1..=20,
                "a number of connections, 1-20",
            )?,
            acquire_timeout: Duration::from_millis(number(
                env,
                DATABASE_ACQUIRE_TIMEOUT_MS,
                5_000,
                100..=60_000,
                "milliseconds, 100-60000",
            )?),
            max_lifetime: Duration::from_secs(number(
                env,
                DATABASE_POOL_MAX_LIFETIME_SECS,
                1_800,
                1..=86_400,
                "seconds, 1-86400",
            )?),
            rotation_grace: Duration::from_millis(number(
                env,
                DATABASE_ROTATION_GRACE_MS,
                3_000,
                0..=30_000,
                "milliseconds, 0-30000",
            )?),
            rejected_backoff: Duration::from_millis(number(
                env,
                DATABASE_REJECTED_BACKOFF_MS,
                5_000,
                0..=300_000,
                "milliseconds, 0-300000",
            )?),
        };

        let extension = ExtensionConfig {
            port: number(
                env,
                PARAMETERS_SECRETS_EXTENSION_HTTP_PORT,
                DEFAULT_EXTENSION_PORT,
                1..=u16::MAX,
                "a port, 1-65535",
            )?,
            token: get(AWS_SESSION_TOKEN)
                .or_else(|| get(AWS_CONTAINER_AUTHORIZATION_TOKEN))
                .map(Secret::new),
            timeout: Duration::from_millis(number(
                env,
                DB_SECRET_TIMEOUT_MS,
                3_000,
                50..=60_000,
                "milliseconds, 50-60000",
            )?),
            startup_wait: Duration::from_millis(number(
                env,
                DB_SECRET_STARTUP_WAIT_MS,
                2_000,
                0..=10_000,
                "milliseconds, 0-10000",
            )?),
        };

        Ok(Self {
            database,
            tls,
            pool,
            extension,
            in_lambda,
            concurrency,
            migrate,
            warnings: misspellings(env),
        })
    }
}

/// `AWS_LAMBDA_MAX_CONCURRENCY` as `lambda_runtime` reads it: a positive number, anything else (or nothing) 1. It is
/// Lambda's variable, not ours, so a value we cannot read is not ours to refuse: the runtime falls back to one
/// invocation at a time on it, and so does the pool's default.
fn max_concurrency(value: Option<String>) -> u32 {
    value
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

/// `name` as a whole number in `range`, or `default` when it is unset; anything else stops the cold start with an
/// error naming the variable and `expected` (never the value).
fn number<T>(
    env: &impl Env,
    name: &'static str,
    default: T,
    range: RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, ConfigError>
where
    T: TryFrom<u64> + PartialOrd,
{
    match env.non_blank(name) {
        Some(v) => parse_whole_in(&v, range).ok_or(ConfigError::Invalid { name, expected }),
        None => Ok(default),
    }
}

/// Set variables in our namespaces (`DATABASE_*`, `DB_*`) that we do not read, with the closest name we do read.
/// A misspelt `DB_SECRET_ARN` would otherwise fall through silently to the next credential source.
fn misspellings(env: &impl Env) -> Vec<String> {
    Spelling::new(KNOWN_VARIABLES)
        .namespaces(&["DATABASE_", "DB_", "DB-"])
        .check(env)
        .into_iter()
        .map(|(n, closest)| {
            format!("{n} is not a variable this function reads; did you mean {closest}?")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn nothing_outside_lambda_is_sqlite_at_the_default_path() {
        let c = Config::from_env(&env(&[])).expect("config");
        match &c.database {
            DatabaseSource::Sqlite(file) => {
                assert_eq!(file.filename(), Path::new(DEFAULT_DATABASE_PATH));
                assert_eq!(file.folder.as_deref(), Some(Path::new("./data")));
                assert!(!file.in_memory);
            }
            other => panic!("expected SQLite, got {other:?}"),
        }
        assert!(!c.in_lambda);
        assert_eq!(c.pool.max_connections, 2);
        assert_eq!(c.extension.port, 2773);
        assert_eq!(c.tls.mode, None);
    }

    #[test]
    fn the_pool_grows_with_managed_instances_concurrency_unless_set() {
        let size = |pairs: &[(&str, &str)]| {
            let c = Config::from_env(&env(pairs)).expect("config");
            (c.concurrency, c.pool.max_connections)
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
    fn nothing_inside_lambda_is_missing_and_names_db_secret_arn() {
        let c = Config::from_env(&env(&[(AWS_LAMBDA_FUNCTION_NAME, "items")])).expect("config");
        match c.database {
            DatabaseSource::Missing { variable, .. } => assert_eq!(variable, DB_SECRET_ARN),
            other => panic!("expected Missing, got {other:?}"),
        }
    }

    #[test]
    fn the_seeds_broken_lambda_config_is_missing_not_sqlite() {
        // Host, port and name without user or password: what the function had when it fell back to SQLite.
        let c = Config::from_env(&env(&[
            (AWS_LAMBDA_FUNCTION_NAME, "items"),
            (DATABASE_HOST, "db.example"),
            (DATABASE_PORT, "5432"),
            (DATABASE_NAME, "collections"),
        ]))
        .expect("config");
        assert!(matches!(
            c.database,
            DatabaseSource::Missing {
                variable: DB_SECRET_ARN,
                ..
            }
        ));
    }

    #[test]
    fn partial_legacy_outside_lambda_is_an_error() {
        let e = Config::from_env(&env(&[(DATABASE_HOST, "db.example")])).expect_err("error");
        assert!(e.to_string().contains("DATABASE_USER"));
    }

    #[test]
    fn priority_is_url_then_secret_then_legacy() {
        let all = [
            (DATABASE_URL, "postgres://u:p@h/d"),
            (DB_SECRET_ARN, "arn:secret"),
            (DATABASE_HOST, "h"),
            (DATABASE_USER, "u"),
            (DATABASE_PASSWORD, "p"),
        ];
        let c = Config::from_env(&env(&all)).expect("config");
        assert!(matches!(c.database, DatabaseSource::PostgresUrl(_)));
        let c = Config::from_env(&env(&all[1..])).expect("config");
        assert!(matches!(c.database, DatabaseSource::SecretsManager { .. }));
        let c = Config::from_env(&env(&all[2..])).expect("config");
        match c.database {
            DatabaseSource::Legacy(s) => {
                assert_eq!(s.dbname, "u");
                assert_eq!(s.port, 5432);
            }
            other => panic!("expected Legacy, got {other:?}"),
        }
    }

    #[test]
    fn secret_source_keeps_the_fallbacks() {
        let c = Config::from_env(&env(&[
            (
                DB_SECRET_ARN,
                " arn:aws:secretsmanager:us-east-1:1:secret:db ",
            ),
            (DATABASE_HOST, "h"),
            (DATABASE_PORT, "6432"),
            (DATABASE_NAME, "collections"),
        ]))
        .expect("config");
        match c.database {
            DatabaseSource::SecretsManager {
                secret_id,
                host,
                port,
                dbname,
            } => {
                assert_eq!(secret_id, "arn:aws:secretsmanager:us-east-1:1:secret:db");
                assert_eq!(host.as_deref(), Some("h"));
                assert_eq!(port, Some(6432));
                assert_eq!(dbname.as_deref(), Some("collections"));
            }
            other => panic!("expected SecretsManager, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_name_the_variable_and_never_echo_it() {
        for (name, value) in [
            (DATABASE_PORT, "00"),
            (DATABASE_PORT, "abc"),
            (DATABASE_SSLMODE, "sure"),
            (DATABASE_POOL_MAX_CONNECTIONS, "00"),
            (DATABASE_POOL_MAX_CONNECTIONS, "21"),
            (PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, "70000"),
            (DATABASE_URL, "mysql://root:hunter2@h/d"),
        ] {
            let e = Config::from_env(&env(&[(name, value)])).expect_err(name);
            let msg = e.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(!msg.contains(value), "{msg}");
        }
    }

    #[test]
    fn parameter_store_is_the_third_tier() {
        let all = [
            (DB_SECRET_ARN, "arn:secret"),
            (PARAMETER_STORE_DB_URL, " /collections/db-url "),
            (DATABASE_HOST, "h"),
            (DATABASE_USER, "u"),
            (DATABASE_PASSWORD, "p"),
        ];
        let c = Config::from_env(&env(&all)).expect("config");
        assert!(matches!(c.database, DatabaseSource::SecretsManager { .. }));
        let c = Config::from_env(&env(&all[1..])).expect("config");
        assert!(
            matches!(&c.database, DatabaseSource::ParameterStore(name) if name == "/collections/db-url"),
            "{:?}",
            c.database
        );
    }

    #[test]
    fn migrations_run_by_default_only_outside_lambda() {
        assert!(Config::from_env(&env(&[])).expect("config").migrate);
        let lambda = [(AWS_LAMBDA_FUNCTION_NAME, "items")];
        assert!(!Config::from_env(&env(&lambda)).expect("config").migrate);
        let opted_in = [
            (AWS_LAMBDA_FUNCTION_NAME, "items"),
            (DATABASE_MIGRATE, "TRUE"),
        ];
        assert!(Config::from_env(&env(&opted_in)).expect("config").migrate);
        let e = Config::from_env(&env(&[(DATABASE_MIGRATE, "sometimes")])).expect_err("bad");
        assert!(e.to_string().contains(DATABASE_MIGRATE));
    }

    #[test]
    fn a_bundle_in_the_task_root_is_found_and_makes_verify_full_the_default() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
        let root = dir.to_string_lossy().into_owned();
        let c = Config::from_env(&env(&[(LAMBDA_TASK_ROOT, &root)])).expect("config");
        assert_eq!(c.tls.root_cert, None, "no bundle packaged yet");
        assert_eq!(c.tls.default_mode(), SslMode::Require);
        std::fs::write(dir.join(BUNDLED_CA_PATH), "-----BEGIN CERTIFICATE-----\n").expect("write");
        let c = Config::from_env(&env(&[(LAMBDA_TASK_ROOT, &root)])).expect("config");
        assert_eq!(c.tls.root_cert, Some(dir.join(BUNDLED_CA_PATH)));
        assert_eq!(c.tls.default_mode(), SslMode::VerifyFull);
        // DATABASE_SSL_ROOT_CERT wins over the packaged bundle.
        let c = Config::from_env(&env(&[
            (LAMBDA_TASK_ROOT, &root),
            (DATABASE_SSL_ROOT_CERT, "/opt/rds.pem"),
        ]))
        .expect("config");
        assert_eq!(c.tls.root_cert, Some(PathBuf::from("/opt/rds.pem")));
    }

    #[test]
    fn sslmode_and_token_parse() {
        let c = Config::from_env(&env(&[
            (DATABASE_SSLMODE, "Verify-Full"),
            (DATABASE_SSL_ROOT_CERT, "/opt/ca.pem"),
            (AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap"),
        ]))
        .expect("config");
        assert_eq!(c.tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(c.tls.root_cert, Some(PathBuf::from("/opt/ca.pem")));
        assert_eq!(c.extension.token.as_ref().map(Secret::expose), Some("snap"));
        let c = Config::from_env(&env(&[
            (AWS_SESSION_TOKEN, "session"),
            (AWS_CONTAINER_AUTHORIZATION_TOKEN, "snap"),
        ]))
        .expect("config");
        assert_eq!(
            c.extension.token.as_ref().map(Secret::expose),
            Some("session")
        );
    }

    #[test]
    fn misspelt_variables_are_warned_about() {
        let c = Config::from_env(&env(&[
            ("DB_SECRET_ARM", "x"),
            ("DATABASE_SSL_MODE", "require"),
        ]))
        .expect("config");
        assert_eq!(c.warnings.len(), 2);
        assert!(
            c.warnings[0].contains("did you mean DATABASE_SSLMODE"),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[1].contains("did you mean DB_SECRET_ARN"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn debug_never_shows_passwords() {
        let c = Config::from_env(&env(&[
            (DATABASE_HOST, "h"),
            (DATABASE_USER, "u"),
            (DATABASE_PASSWORD, "hunter2"),
            (AWS_SESSION_TOKEN, "tok-secret"),
        ]))
        .expect("config");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("tok-secret"),
            "{dbg}"
        );
    }
}
