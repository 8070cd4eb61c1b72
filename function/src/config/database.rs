//! Where the database is and where its credentials come from: [`DatabaseSource`], the one type that says so, and
//! its resolution in the seed note's priority order: `DATABASE_URL`, then `DB_SECRET_ARN` (through the extension),
//! then `PARAMETER_STORE_DB_URL` (deprecated, through the extension's SSM endpoint), then the legacy `DATABASE_*`
//! variables, then SQLite at `DATABASE_PATH`, the last **only outside Lambda**. Inside Lambda with nothing configured
//! the source is [`DatabaseSource::Missing`], which every request answers with a 503 naming `DB_SECRET_ARN`: the
//! silent fallback to a SQLite file that does not exist in Lambda was the original bug.
//!
//! A `DATABASE_URL` is parsed here, into PostgreSQL's or SQLite's connect options ([`PostgresUrl`], [`SqliteFile`]),
//! so a bad one stops the cold start before any request; their `Debug` never shows a password.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secretcache_client::env::{parse_whole_in, Env};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use super::names::{
    DATABASE_HOST, DATABASE_NAME, DATABASE_PASSWORD, DATABASE_PATH, DATABASE_PORT, DATABASE_URL,
    DATABASE_USER, DB_SECRET_ARN, DEFAULT_DATABASE_PATH, DEFAULT_POSTGRES_PORT,
    PARAMETER_STORE_DB_URL,
};
use super::read::{optional, ConfigError};
use crate::secret::Secret;

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
    /// The source the environment names, in priority order; `in_lambda` decides what "nothing configured" means.
    pub(super) fn from_env(env: &impl Env, in_lambda: bool) -> Result<Self, ConfigError> {
        // Blank means unset; a value keeps its spaces (a password may mean them), and each parser trims its own.
        let get = |name: &str| env.non_blank(name);
        let port = optional(
            env,
            DATABASE_PORT,
            |v| parse_whole_in::<u16>(v, 1..=u16::MAX),
            "a port, 1-65535",
        )?;
        let host = get(DATABASE_HOST);
        let dbname = get(DATABASE_NAME);
        let database = if let Some(url) = get(DATABASE_URL) {
            let url = url.trim();
            let lower = url.to_ascii_lowercase();
            if lower.starts_with("sqlite:") {
                Self::Sqlite(SqliteFile::parse(url)?)
            } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                Self::PostgresUrl(PostgresUrl::parse(url)?)
            } else {
                return Err(ConfigError::Invalid {
                    name: DATABASE_URL,
                    expected: "a postgres://, postgresql:// or sqlite: URL",
                });
            }
        } else if let Some(secret_id) = get(DB_SECRET_ARN) {
            Self::SecretsManager {
                secret_id: secret_id.trim().to_owned(),
                host,
                port,
                dbname,
            }
        } else if let Some(name) = get(PARAMETER_STORE_DB_URL) {
            Self::ParameterStore(name.trim().to_owned())
        } else if let Some(host) = host {
            match (get(DATABASE_USER), get(DATABASE_PASSWORD)) {
                (Some(username), Some(password)) => Self::Legacy(StaticCredentials {
                    host,
                    port: port.unwrap_or(DEFAULT_POSTGRES_PORT),
                    // libpq's default: the database named after the role.
                    dbname: dbname.unwrap_or_else(|| username.clone()),
                    username,
                    password: Secret::new(password),
                }),
                _ if in_lambda => Self::Missing {
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
            Self::Missing {
                variable: DB_SECRET_ARN,
                detail: "no database is configured: set DB_SECRET_ARN to the database secret \
                         (SQLite is for local runs only)"
                    .to_owned(),
            }
        } else {
            Self::Sqlite(SqliteFile::at(Path::new(
                &get(DATABASE_PATH).unwrap_or_else(|| DEFAULT_DATABASE_PATH.to_owned()),
            )))
        };
        Ok(database)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::env::from_pairs as env;

    /// As the function resolves it outside Lambda.
    fn local(pairs: &[(&str, &str)]) -> Result<DatabaseSource, ConfigError> {
        DatabaseSource::from_env(&env(pairs), false)
    }

    /// As the function resolves it inside Lambda.
    fn in_lambda(pairs: &[(&str, &str)]) -> Result<DatabaseSource, ConfigError> {
        DatabaseSource::from_env(&env(pairs), true)
    }

    #[test]
    fn nothing_outside_lambda_is_sqlite_at_the_default_path() {
        match local(&[]).expect("config") {
            DatabaseSource::Sqlite(file) => {
                assert_eq!(file.filename(), Path::new(DEFAULT_DATABASE_PATH));
                assert_eq!(file.folder.as_deref(), Some(Path::new("./data")));
                assert!(!file.in_memory);
            }
            other => panic!("expected SQLite, got {other:?}"),
        }
    }

    #[test]
    fn nothing_inside_lambda_is_missing_and_names_db_secret_arn() {
        match in_lambda(&[]).expect("config") {
            DatabaseSource::Missing { variable, .. } => assert_eq!(variable, DB_SECRET_ARN),
            other => panic!("expected Missing, got {other:?}"),
        }
    }

    #[test]
    fn the_seeds_broken_lambda_config_is_missing_not_sqlite() {
        // Host, port and name without user or password: what the function had when it fell back to SQLite.
        let source = in_lambda(&[
            (DATABASE_HOST, "db.example"),
            (DATABASE_PORT, "5432"),
            (DATABASE_NAME, "collections"),
        ])
        .expect("config");
        assert!(matches!(
            source,
            DatabaseSource::Missing {
                variable: DB_SECRET_ARN,
                ..
            }
        ));
    }

    #[test]
    fn partial_legacy_outside_lambda_is_an_error() {
        let e = local(&[(DATABASE_HOST, "db.example")]).expect_err("error");
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
        assert!(matches!(
            local(&all).expect("config"),
            DatabaseSource::PostgresUrl(_)
        ));
        assert!(matches!(
            local(&all[1..]).expect("config"),
            DatabaseSource::SecretsManager { .. }
        ));
        match local(&all[2..]).expect("config") {
            DatabaseSource::Legacy(s) => {
                assert_eq!(s.dbname, "u");
                assert_eq!(s.port, 5432);
            }
            other => panic!("expected Legacy, got {other:?}"),
        }
    }

    #[test]
    fn secret_source_keeps_the_fallbacks() {
        let source = local(&[
            (
                DB_SECRET_ARN,
                " arn:aws:secretsmanager:us-east-1:1:secret:db ",
            ),
            (DATABASE_HOST, "h"),
            (DATABASE_PORT, "6432"),
            (DATABASE_NAME, "collections"),
        ])
        .expect("config");
        match source {
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
    fn parameter_store_is_the_third_tier() {
        let all = [
            (DB_SECRET_ARN, "arn:secret"),
            (PARAMETER_STORE_DB_URL, " /collections/db-url "),
            (DATABASE_HOST, "h"),
            (DATABASE_USER, "u"),
            (DATABASE_PASSWORD, "p"),
        ];
        assert!(matches!(
            local(&all).expect("config"),
            DatabaseSource::SecretsManager { .. }
        ));
        let source = local(&all[1..]).expect("config");
        assert!(
            matches!(&source, DatabaseSource::ParameterStore(name) if name == "/collections/db-url"),
            "{source:?}"
        );
    }

    #[test]
    fn bad_urls_and_ports_name_the_variable_and_never_echo_it() {
        for (name, value) in [
            (DATABASE_PORT, "00"),
            (DATABASE_PORT, "abc"),
            (DATABASE_URL, "mysql://root:hunter2@h/d"),
            (DATABASE_URL, "postgres://u:hunter2@h:notaport/d"),
        ] {
            let msg = local(&[(name, value)]).expect_err(name).to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(!msg.contains(value) && !msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn debug_never_shows_passwords() {
        for source in [
            local(&[
                (DATABASE_HOST, "h"),
                (DATABASE_USER, "u"),
                (DATABASE_PASSWORD, "hunter2"),
            ]),
            local(&[(DATABASE_URL, "postgres://u:hunter2@h/d")]),
        ] {
            let dbg = format!("{:?}", source.expect("config"));
            assert!(!dbg.contains("hunter2"), "{dbg}");
        }
    }
}
