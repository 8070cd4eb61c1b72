//! Building pools: PostgreSQL's connect options from a login (with TLS: the mode, and the CA bundle), the pool's
//! sizing, and the embedded migrations. (SQLite's options and a PostgreSQL URL's come with the configuration's
//! `DatabaseSource`.)
//!
//! PostgreSQL's connect options derive `Debug` with the password in it, so they are never logged, and statement
//! logging is off so that no SQL text reaches the logs either.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::SqlitePool;
use sqlx::ConnectOptions;

use super::{Database, DbError};
use crate::config::{SslMode, TlsConfig, DB_SECRET_ARN, PARAMETER_STORE_DB_URL};
use crate::credentials::{CredentialsError, Login};

pub(super) static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");
pub(super) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite");

/// A live pool. Cloning is cheap (both are `Arc`s inside).
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite (local runs, or an explicit `sqlite:` `DATABASE_URL`).
    Sqlite(SqlitePool),
}

impl Backend {
    /// `postgresql` or `sqlite`, for the health body and log lines.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgresql",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

impl Database {
    pub(super) fn pg_pool(&self, options: PgConnectOptions) -> PgPool {
        PgPoolOptions::new()
            .max_connections(self.pool.max_connections)
            .min_connections(0)
            .acquire_timeout(self.pool.acquire_timeout)
            .max_lifetime(self.pool.max_lifetime)
            .idle_timeout(Duration::from_secs(300))
            // A connection may have died while the environment was frozen; check it before handing it out.
            .test_before_acquire(true)
            .connect_lazy_with(options)
    }

    pub(super) fn pg_options(&self, login: &Login) -> Result<PgConnectOptions, DbError> {
        match login {
            Login::Credentials(creds) => {
                let options = PgConnectOptions::new_without_pgpass()
                    .host(&creds.host)
                    .port(creds.port)
                    .database(&creds.dbname)
                    .username(&creds.username)
                    .password(creds.password.expose());
                if self.source_name() == DB_SECRET_ARN {
                    tracing::info!(
                        source = DB_SECRET_ARN,
                        "Constructed database URL from Secrets Manager credentials"
                    );
                }
                Ok(apply_tls(options, &self.tls, false))
            }
            Login::Url(url) => {
                let url = url.expose().trim();
                // sqlx's parse error can quote the URL, password and all: a fixed message it is.
                let options = PgConnectOptions::from_str(url).map_err(|_| {
                    CredentialsError::InvalidSecret {
                        variable: PARAMETER_STORE_DB_URL,
                        reason: "it is not a valid postgres:// URL",
                    }
                })?;
                let url_has_sslmode = url.contains("sslmode=") || url.contains("ssl-mode=");
                Ok(apply_tls(options, &self.tls, url_has_sslmode))
            }
        }
    }
}

pub(super) fn apply_tls(
    options: PgConnectOptions,
    tls: &TlsConfig,
    url_has_sslmode: bool,
) -> PgConnectOptions {
    let mode = match (tls.mode, url_has_sslmode) {
        (Some(mode), _) => Some(mode),
        // The URL chose; keep what sqlx parsed from it.
        (None, true) => None,
        (None, false) => Some(tls.default_mode()),
    };
    let mut options = options
        .application_name("items-function")
        .disable_statement_logging();
    if let Some(mode) = mode {
        options = options.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    if let Some(path) = &tls.root_cert {
        options = options.ssl_root_cert(path);
    }
    options
}
