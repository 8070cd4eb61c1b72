//! The database pool: one per execution environment, built lazily, and kept working across a password rotation.
//!
//! Parts:
//! - [`Database::new`]: takes the configuration's [`DatabaseSource`] (where the database is; a bad `DATABASE_URL`
//!   already stopped the cold start when the configuration was read) and builds the credential provider a source
//!   with changing credentials needs, before any request; a missing CA bundle stops the cold start there.
//! - [`Database::run`]: runs one store operation on the pool. The first call builds the pool, applies the embedded
//!   migrations when it may (SQLite always; PostgreSQL only with `DATABASE_MIGRATE`, by default only outside Lambda:
//!   in Lambda they are an operator's step, [`Database::migrate_now`]) and checks the table (`schema.rs`). When the
//!   database refuses the login with `28P01`, it asks the extension for the secret with `refreshNow=true`, then for
//!   `AWSPENDING`, swaps the pool's connect options to whichever works, and retries the operation. Only when neither
//!   works (after a short grace, since the database and the secret are never updated at the same instant) does the
//!   request get a 503; and for `DATABASE_REJECTED_BACKOFF_MS` after that, every request that meets a rejected login
//!   gets its 503 at once, without asking the extension again (issue 13: 16 `refreshNow` calls and 2.9 s each).
//! - `pool`: [`Backend`], the pool itself (PostgreSQL or SQLite), and how its connect options are built;
//! - `rotation`: the recovery from a rotated password, and the memory of a rejection;
//! - `error`: [`DbError`], what went wrong, classified so that `error.rs` can choose the status.
//!
//! The pool is small (2 by default) with an acquire timeout: Lambda scales by execution environments, each handling
//! one request at a time, so more connections per environment only exhaust the server's slots. Under Lambda Managed
//! Instances one environment handles `AWS_LAMBDA_MAX_CONCURRENCY` requests at once, and the default follows it up to
//! 10 (`config/pool.rs`). Everything here is shared by those requests as it is: the pool is built once (concurrent first
//! requests wait for one build, and share its failure rather than repeat it one after the other), the recovery from a rotated password is single-flighted (a mutex
//! and a generation counter: the requests that failed together wait for one refresh, then retry on its options),
//! and the memory of a rejection is behind a lock.

mod error;
mod pool;
mod rotation;

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::ConnectOptions;
use tokio::sync::{Mutex, OnceCell};

pub(crate) use error::DbError;
pub(crate) use pool::Backend;

use crate::config::{
    Config, ConfigError, DatabaseSource, PoolConfig, PostgresUrl, SslMode, TlsConfig,
    DATABASE_SSL_ROOT_CERT, DB_SECRET_ARN,
};
use crate::credentials::{extension_client, CredentialProvider, Fallbacks};
use crate::schema::{self, SchemaProblem};
use error::is_invalid_password;
use pool::{apply_tls, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use rotation::Rejection;

/// How many times one operation is retried after a rejected login was recovered from. More than one, because a
/// second rotation (or a pool connection opened with the old options just before the swap) can fail once more.
const AUTH_RETRIES: usize = 2;

/// The database of one execution environment. Build it once, at cold start, and share it.
pub(crate) struct Database {
    /// Where the database is.
    source: DatabaseSource,
    /// How to log in, for the sources whose credentials are not in fixed connect options (a secret, a parameter,
    /// the legacy variables): built once here, with its client. `None` for the others.
    credentials: Option<CredentialProvider>,
    pool: PoolConfig,
    tls: TlsConfig,
    /// Whether PostgreSQL gets the migrations from us (SQLite always does).
    migrate: bool,
    rejected: Rejection,
    backend: OnceCell<Backend>,
    /// Serializes the builds of the pool, and holds how the last one failed (when that can be told again).
    building: Mutex<Option<DbError>>,
    /// Build attempts so far: a request that waited for `building` can tell that an attempt ran meanwhile.
    build_attempts: AtomicU64,
    /// Single-flights credential recovery: a rotation makes every request fail at once, and one refresh serves
    /// them all.
    rotation: Mutex<()>,
    /// Bumped each time the connect options are swapped, so that a request that failed with the old options can
    /// tell whether someone already recovered while it waited.
    generation: AtomicU64,
}

impl std::fmt::Debug for Database {
    // Deliberately not derived: the PostgreSQL connect options hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("source", &self.source_name())
            .field("pool", &self.pool)
            .field("tls", &self.tls)
            .field("ready", &self.backend.initialized())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Resolves the configured source into a connection target. Nothing connects yet.
    pub(crate) fn new(config: &Config) -> Result<Self, ConfigError> {
        if let Some(path) = &config.tls.root_cert {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    name: DATABASE_SSL_ROOT_CERT,
                    expected: "the path of a readable PEM CA bundle",
                });
            }
        }
        let credentials = match &config.database {
            DatabaseSource::Missing { .. }
            | DatabaseSource::Sqlite(_)
            | DatabaseSource::PostgresUrl(_) => None,
            DatabaseSource::Legacy(creds) => Some(CredentialProvider::Static(creds.clone())),
            DatabaseSource::ParameterStore(name) => Some(CredentialProvider::ParameterStore {
                client: Box::new(extension_client(&config.extension)),
                name: name.clone(),
            }),
            DatabaseSource::SecretsManager {
                secret_id,
                host,
                port,
                dbname,
            } => Some(CredentialProvider::Extension {
                client: Box::new(extension_client(&config.extension)),
                secret_id: secret_id.clone(),
                fallbacks: Fallbacks {
                    host: host.clone(),
                    port: *port,
                    dbname: dbname.clone(),
                },
            }),
        };
        Ok(Self {
            source: config.database.clone(),
            credentials,
            pool: config.pool.clone(),
            tls: config.tls.clone(),
            migrate: config.migrate,
            rejected: Rejection::new(config.pool.rejected_backoff),
            backend: OnceCell::new(),
            building: Mutex::new(None),
            build_attempts: AtomicU64::new(0),
            rotation: Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }

    /// The pool's size, for the cold start's log line.
    pub(crate) fn max_connections(&self) -> u32 {
        self.pool.max_connections
    }

    /// The variable the database settings come from, for log lines (never a value).
    pub(crate) fn source_name(&self) -> &'static str {
        self.source.source_name()
    }

    /// The variable that must be set, when the database is not configured.
    pub(crate) fn missing_variable(&self) -> Option<&'static str> {
        match &self.source {
            DatabaseSource::Missing { variable, .. } => Some(variable),
            _ => None,
        }
    }

    /// A PostgreSQL URL's connect options with the TLS settings applied.
    fn url_options(&self, url: &PostgresUrl) -> PgConnectOptions {
        apply_tls((*url.options).clone(), &self.tls, url.has_sslmode)
    }

    /// The credential provider of a source whose login is not in fixed connect options. `new` builds one for
    /// exactly those sources, so the error is never met; it keeps a request from panicking if that ever changed.
    fn provider(&self) -> Result<&CredentialProvider, DbError> {
        self.credentials
            .as_ref()
            .ok_or_else(|| DbError::NotConfigured {
                variable: DB_SECRET_ARN,
                detail: format!("no credential provider for {}", self.source_name()),
            })
    }

    /// The cold start's warning about TLS, when PostgreSQL's certificate will not be verified.
    pub(crate) fn tls_warning(&self) -> Option<String> {
        let mode = match &self.source {
            DatabaseSource::Missing { .. } | DatabaseSource::Sqlite(_) => return None,
            DatabaseSource::PostgresUrl(url) => match self.url_options(url).get_ssl_mode() {
                PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
                PgSslMode::Disable => "disable",
                PgSslMode::Allow => "allow",
                PgSslMode::Prefer => "prefer",
                PgSslMode::Require => "require",
            },
            DatabaseSource::SecretsManager { .. }
            | DatabaseSource::ParameterStore(_)
            | DatabaseSource::Legacy(_) => match self.tls.mode.unwrap_or(self.tls.default_mode()) {
                SslMode::VerifyCa | SslMode::VerifyFull => return None,
                SslMode::Disable => "disable",
                SslMode::Allow => "allow",
                SslMode::Prefer => "prefer",
                SslMode::Require => "require",
            },
        };
        Some(format!(
            "the database server's certificate is not verified (sslmode={mode}), so anyone on the path can pose as \
             the database; package the CA bundle with `make package DATABASE_CA_BUNDLE=global-bundle.pem` (for RDS, \
             https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem) or set DATABASE_SSL_ROOT_CERT, and \
             the function verifies the server (verify-full)"
        ))
    }

    /// Whether the source is the deprecated Parameter Store tier.
    pub(crate) fn is_deprecated_source(&self) -> bool {
        matches!(&self.source, DatabaseSource::ParameterStore(_))
    }

    /// Runs `op` on the pool, building it first if this is the first call. A login refused because the password
    /// rotated is recovered from and `op` retried; this is safe even for writes, because a refused login happens
    /// before the operation sends anything.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T, DbError>
    where
        F: Fn(Backend) -> Fut,
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        let backend = self.backend().await?;
        let mut attempt = 0;
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            match op(backend.clone()).await {
                Err(e) if is_invalid_password(&e) && attempt < AUTH_RETRIES => {
                    let Backend::Postgres(pool) = &backend else {
                        return Err(e.into());
                    };
                    self.recover(pool, generation).await?;
                    attempt += 1;
                }
                Err(e) if is_invalid_password(&e) => {
                    return Err(DbError::CredentialsRejected {
                        source_name: self.source_name(),
                        retry_after: self.rejected.remaining(),
                    })
                }
                other => return other.map_err(DbError::from),
            }
        }
    }

    /// The pool, built on first use. A failed build leaves nothing behind, so the next request tries again; the
    /// requests that were already waiting for that build get its failure instead of repeating it.
    pub(crate) async fn backend(&self) -> Result<Backend, DbError> {
        if let DatabaseSource::Missing { variable, detail } = &self.source {
            // Logged on every request on purpose: this is the line someone searching the logs for the 503 finds,
            // worded as the seed note's failure indicator.
            tracing::error!(
                missing = *variable,
                detail = %detail,
                "RuntimeError: {variable} environment variable not set"
            );
            return Err(DbError::NotConfigured {
                variable,
                detail: detail.clone(),
            });
        }
        if let Some(backend) = self.backend.get() {
            return Ok(backend.clone());
        }
        let attempts_seen = self.build_attempts.load(Ordering::Acquire);
        let mut last_failure = self.building.lock().await;
        if let Some(backend) = self.backend.get() {
            return Ok(backend.clone());
        }
        // Under Managed Instances many requests meet the cold pool at once. When the attempt they waited for failed
        // just now (the database unreachable: a connect timeout), each repeating it in turn would turn one failure
        // into a queue of timeouts, so they share its answer; the next request after them tries again.
        if self.build_attempts.load(Ordering::Acquire) != attempts_seen {
            if let Some(e) = last_failure.as_ref().and_then(DbError::duplicate) {
                return Err(e);
            }
        }
        let built = self.build().await;
        self.build_attempts.fetch_add(1, Ordering::AcqRel);
        match built {
            Ok(backend) => {
                // Only this function sets the cell, under `building`, so it is empty here.
                let _ = self.backend.set(backend.clone());
                *last_failure = None;
                Ok(backend)
            }
            Err(e) => {
                *last_failure = e.duplicate();
                Err(e)
            }
        }
    }

    async fn build(&self) -> Result<Backend, DbError> {
        match &self.source {
            DatabaseSource::Missing { variable, detail } => Err(DbError::NotConfigured {
                variable,
                detail: detail.clone(),
            }),
            DatabaseSource::Sqlite(file) => {
                if let Some(folder) = file.folder.as_deref().filter(|f| !f.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(folder)
                        .await
                        .map_err(DbError::SqliteFolder)?;
                }
                let mut pool_options = SqlitePoolOptions::new()
                    .acquire_timeout(self.pool.acquire_timeout)
                    .max_connections(self.pool.max_connections);
                if file.in_memory {
                    // Each connection to `:memory:` is its own database: one connection, kept forever.
                    pool_options = pool_options
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                let pool = pool_options
                    .connect_with((*file.options).clone().disable_statement_logging())
                    .await?;
                let mut conn = pool.acquire().await?;
                // `run_direct` rather than `run`: `run`'s `Acquire` bound is not general enough for the future to be
                // `Send` (sqlx's own note on `run_direct`), and the Lambda runtime needs a `Send` handler.
                SQLITE_MIGRATIONS.run_direct(&mut *conn).await?;
                drop(conn);
                schema::check_sqlite(&pool)
                    .await?
                    .map_err(DbError::Schema)?;
                tracing::info!(database = "sqlite", "database ready");
                Ok(Backend::Sqlite(pool))
            }
            DatabaseSource::PostgresUrl(url) => {
                let pool = self.pg_pool(self.url_options(url));
                self.prepare_postgres(&pool, self.migrate).await?;
                Ok(Backend::Postgres(pool))
            }
            DatabaseSource::SecretsManager { .. }
            | DatabaseSource::ParameterStore(_)
            | DatabaseSource::Legacy(_) => {
                let provider = self.provider()?;
                // A cold start that just met a rejection of every version: the pool was never built, and asking
                // the extension again within the backoff would only repeat the answer.
                if let Some(wait) = self.rejected.remaining() {
                    return Err(DbError::CredentialsRejected {
                        source_name: provider.source_name(),
                        retry_after: Some(wait),
                    });
                }
                let login = provider.fetch().await?;
                let pool = self.pg_pool(self.pg_options(&login)?);
                self.prepare_postgres(&pool, self.migrate).await?;
                Ok(Backend::Postgres(pool))
            }
        }
    }

    /// The operator's one-shot migration (`items-function migrate`): connects with whatever the configuration says
    /// (an administrator's credentials), applies the migrations, checks the table, and, when `grant_to` names a
    /// role, grants it exactly what the function needs.
    pub(crate) async fn migrate_now(&self, grant_to: Option<&str>) -> Result<(), DbError> {
        let pool = match &self.source {
            DatabaseSource::Missing { variable, detail } => {
                return Err(DbError::NotConfigured {
                    variable,
                    detail: detail.clone(),
                })
            }
            DatabaseSource::Sqlite(_) => return self.build().await.map(|_| ()),
            DatabaseSource::PostgresUrl(url) => self.pg_pool(self.url_options(url)),
            DatabaseSource::SecretsManager { .. }
            | DatabaseSource::ParameterStore(_)
            | DatabaseSource::Legacy(_) => {
                let login = self.provider()?.fetch().await?;
                self.pg_pool(self.pg_options(&login)?)
            }
        };
        self.prepare_postgres(&pool, true).await?;
        if let Some(role) = grant_to {
            // A role name cannot be bound as a parameter; it is checked, then quoted as an identifier.
            if role.is_empty()
                || role.len() > 63
                || !role
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(DbError::Schema(SchemaProblem(
                    "the role to grant to must be 1-63 letters, digits, '_' or '-'".to_owned(),
                )));
            }
            let sql = format!(
                "GRANT SELECT, INSERT, DELETE ON {table} TO \"{role}\"; \
                 GRANT USAGE ON SEQUENCE {table}_id_seq TO \"{role}\"",
                table = schema::TABLE
            );
            sqlx::raw_sql(&sql).execute(&pool).await?;
            tracing::info!(
                role,
                "granted SELECT, INSERT, DELETE on items and its id sequence"
            );
        }
        pool.close().await;
        Ok(())
    }

    /// Applies the migrations when `migrate` says so, then checks the table either way.
    async fn prepare_postgres(&self, pool: &PgPool, migrate: bool) -> Result<(), DbError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) if is_invalid_password(&e) => {
                self.recover(pool, generation).await?;
                pool.acquire().await?
            }
            Err(e) => return Err(e.into()),
        };
        if migrate {
            // `run_direct`: see the SQLite case in `build`.
            POSTGRES_MIGRATIONS.run_direct(&mut *conn).await?;
            tracing::info!(database = "postgresql", "migrations applied");
        }
        drop(conn);
        schema::check_postgres(pool)
            .await?
            .map_err(DbError::Schema)?;
        tracing::info!(
            database = "postgresql",
            source = self.source_name(),
            "database ready"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DB_SECRET_ARN;
    use crate::credentials::CredentialsError;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        try_config(pairs).expect("config")
    }

    fn try_config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_env(&env)
    }

    /// The PostgreSQL URL's options as the pool gets them, TLS applied.
    fn url_ssl_mode(db: &Database) -> PgSslMode {
        match &db.source {
            DatabaseSource::PostgresUrl(url) => db.url_options(url).get_ssl_mode(),
            other => panic!("expected a PostgreSQL URL, got {other:?}"),
        }
    }

    #[test]
    fn postgres_defaults_to_sslmode_require() {
        let db = Database::new(&config(&[("DATABASE_URL", "postgres://u:p@h/d")])).expect("db");
        assert!(matches!(url_ssl_mode(&db), PgSslMode::Require));
        let db = Database::new(&config(&[(
            "DATABASE_URL",
            "postgres://u:p@h/d?sslmode=disable",
        )]))
        .expect("db");
        assert!(matches!(url_ssl_mode(&db), PgSslMode::Disable));
        let db = Database::new(&config(&[
            ("DATABASE_URL", "postgres://u:p@h/d?sslmode=disable"),
            ("DATABASE_SSLMODE", "verify-full"),
        ]))
        .expect("db");
        assert!(matches!(url_ssl_mode(&db), PgSslMode::VerifyFull));
    }

    #[test]
    fn a_missing_ca_bundle_is_a_startup_error() {
        let e = Database::new(&config(&[
            ("DATABASE_SSLMODE", "verify-full"),
            ("DATABASE_SSL_ROOT_CERT", "/nonexistent/ca.pem"),
        ]))
        .expect_err("no such file");
        assert!(e.to_string().contains(DATABASE_SSL_ROOT_CERT));
    }

    #[test]
    fn a_bad_url_never_echoes_itself() {
        // Rejected when the configuration is read, before anything is built.
        for url in [
            "postgres://u:hunter2@h:notaport/d",
            "sqlite://hunter2?mode=nonsense",
        ] {
            let e = try_config(&[("DATABASE_URL", url)]).expect_err("bad url");
            assert!(e.to_string().contains("DATABASE_URL"), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let config = config(&[("DATABASE_URL", "postgres://u:hunter2@h/d")]);
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let db = Database::new(&config).expect("db");
        assert!(!format!("{db:?}").contains("hunter2"));
    }

    #[test]
    fn a_ca_bundle_makes_verify_full_the_default_and_silences_the_warning() {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca.path(), "-----BEGIN CERTIFICATE-----\n").expect("write");
        let ca_s = ca.path().to_string_lossy().into_owned();
        let db = Database::new(&config(&[
            ("DATABASE_URL", "postgres://u:p@h/d"),
            ("DATABASE_SSL_ROOT_CERT", &ca_s),
        ]))
        .expect("db");
        assert!(matches!(url_ssl_mode(&db), PgSslMode::VerifyFull));
        assert_eq!(db.tls_warning(), None);

        let db = Database::new(&config(&[("DATABASE_URL", "postgres://u:p@h/d")])).expect("db");
        let warning = db.tls_warning().expect("require is not verified");
        assert!(warning.contains("sslmode=require") && warning.contains("DATABASE_CA_BUNDLE"));
        let sqlite = Database::new(&config(&[])).expect("db");
        assert_eq!(sqlite.tls_warning(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_waiting_on_a_failed_build_share_its_failure_instead_of_repeating_it() {
        // Nothing listens on this port: an attempt waits out the extension's cold-start allowance, then gives up.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let db = Database::new(&config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "items"),
            (
                DB_SECRET_ARN,
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
            ),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
            ("AWS_SESSION_TOKEN", "token"),
        ]))
        .expect("db");
        let unreachable = |r: Result<Backend, DbError>| {
            matches!(
                r,
                Err(DbError::Credentials(CredentialsError::Unreachable { .. }))
            )
        };
        let (a, b, c, d) = tokio::join!(db.backend(), db.backend(), db.backend(), db.backend());
        assert!(unreachable(a) && unreachable(b) && unreachable(c) && unreachable(d));
        assert_eq!(
            db.build_attempts.load(Ordering::Acquire),
            1,
            "one attempt answered all four"
        );
        // A request that comes after them tries again.
        assert!(unreachable(db.backend().await));
        assert_eq!(db.build_attempts.load(Ordering::Acquire), 2);
    }

    #[tokio::test]
    async fn missing_config_fails_without_touching_the_disk() {
        let db = Database::new(&config(&[("AWS_LAMBDA_FUNCTION_NAME", "items")])).expect("db");
        let e = db
            .run(|_| async { Ok(()) })
            .await
            .expect_err("not configured");
        assert!(matches!(
            e,
            DbError::NotConfigured {
                variable: DB_SECRET_ARN,
                ..
            }
        ));
    }
}
