//! Typed configuration, read once from the environment at cold start.
//!
//! [`Config::from_env`] parses every value into a type. A malformed value is a [`ConfigError`] that names the variable
//! and what it accepts; it stops the cold start, because a function running on a guess is worse. Variables are read
//! through [`Env`], the client crate's seam (`secretcache_client::env`, shared with the extension): production passes
//! [`ProcessEnv`], tests pass a `HashMap`, so no test ever calls `set_var`.
//!
//! Parts, one topic each:
//! - `names`: the names table (every variable's constant, the list the misspelling check knows, the defaults);
//! - `read`: [`ConfigError`], the readers the topics share, and the misspelling warnings ([`Config::warnings`],
//!   logged once tracing is up);
//! - `database`: [`DatabaseSource`], where the database is and where its credentials come from, resolved in the
//!   seed note's priority order (`DATABASE_URL`, `DB_SECRET_ARN`, `PARAMETER_STORE_DB_URL`, the legacy `DATABASE_*`,
//!   then SQLite **only outside Lambda**; inside Lambda with nothing configured, [`DatabaseSource::Missing`]);
//! - `tls`: [`TlsConfig`] and [`SslMode`], PostgreSQL's TLS;
//! - `pool`: [`PoolConfig`], the pool's size and waits, and the Managed Instances concurrency it follows;
//! - `extension`: [`ExtensionConfig`], how to reach the extension.
//!
//! This file holds [`Config`] itself, which reads the topics in that order (so the first bad value found is the
//! same one as ever).

mod database;
mod extension;
mod names;
mod pool;
mod read;
mod tls;

use secretcache_client::env::parse_yes_no;

pub use database::{DatabaseSource, PostgresUrl, SqliteFile, StaticCredentials};
pub use extension::ExtensionConfig;
pub use names::*;
pub use pool::PoolConfig;
pub use read::ConfigError;
/// The environment seam, shared with the extension: a `HashMap<String, String>` in tests.
pub use secretcache_client::env::{Env, ProcessEnv};
pub use tls::{SslMode, TlsConfig};

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
    /// Reads and validates everything. The first bad value stops it, with an error naming its variable.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let in_lambda = env.non_blank(AWS_LAMBDA_FUNCTION_NAME).is_some();
        let concurrency = pool::max_concurrency(env);
        let database = DatabaseSource::from_env(env, in_lambda)?;
        let tls = TlsConfig::from_env(env)?;
        let migrate = read::read(
            env,
            DATABASE_MIGRATE,
            !in_lambda,
            parse_yes_no,
            "true or false",
        )?;
        let pool = PoolConfig::from_env(env, concurrency)?;
        let extension = ExtensionConfig::from_env(env)?;
        Ok(Self {
            database,
            tls,
            pool,
            extension,
            in_lambda,
            concurrency,
            migrate,
            warnings: read::misspellings(env),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use secretcache_client::env::from_pairs as env;

    #[test]
    fn nothing_outside_lambda_is_sqlite_at_the_default_path() {
        let c = Config::from_env(&env(&[])).expect("config");
        match &c.database {
            DatabaseSource::Sqlite(file) => {
                assert_eq!(file.filename(), Path::new(DEFAULT_DATABASE_PATH));
            }
            other => panic!("expected SQLite, got {other:?}"),
        }
        assert!(!c.in_lambda);
        assert_eq!(c.concurrency, 1);
        assert_eq!(c.pool.max_connections, 2);
        assert_eq!(c.extension.port, 2773);
        assert_eq!(c.tls.mode, None);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn inside_lambda_nothing_configured_is_missing() {
        let c = Config::from_env(&env(&[(AWS_LAMBDA_FUNCTION_NAME, "items")])).expect("config");
        assert!(c.in_lambda);
        assert!(matches!(
            c.database,
            DatabaseSource::Missing {
                variable: DB_SECRET_ARN,
                ..
            }
        ));
    }

    #[test]
    fn the_pool_follows_managed_instances_concurrency() {
        let c = Config::from_env(&env(&[(AWS_LAMBDA_MAX_CONCURRENCY, "6")])).expect("config");
        assert_eq!((c.concurrency, c.pool.max_connections), (6, 6));
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
    fn misspelt_variables_become_warnings() {
        let c = Config::from_env(&env(&[("DB_SECRET_ARM", "x")])).expect("config");
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("did you mean DB_SECRET_ARN"),
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
