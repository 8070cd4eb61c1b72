//! The database pool: one per execution environment, built lazily, and kept working across a password rotation.
//!
//! Parts:
//! - [`Database::new`]: turns the configuration into a connection target, before any request; a bad `DATABASE_URL`
//!   or a missing CA bundle stops the cold start there.
//! - [`Database::run`]: runs one store operation on the pool. The first call builds the pool, applies the embedded
//!   migrations when it may (SQLite always; PostgreSQL only with `DATABASE_MIGRATE`, by default only outside Lambda:
//!   in Lambda they are an operator's step, [`Database::migrate_now`]) and checks the table (`schema.rs`). When the
//!   database refuses the login with `28P01`, it asks the extension for the secret with `refreshNow=true`, then for
//!   `AWSPENDING`, swaps the pool's connect options to whichever works, and retries the operation. Only when neither
//!   works (after a short grace, since the database and the secret are never updated at the same instant) does the
//!   request get a 503; and for `DATABASE_REJECTED_BACKOFF_MS` after that, every request that meets a rejected login
//!   gets its 503 at once, without asking the extension again (issue 13: 16 `refreshNow` calls and 2.9 s each).
//! - [`Backend`]: the pool itself, PostgreSQL or SQLite.
//! - [`DbError`]: what went wrong, classified so that `error.rs` can choose the status.
//!
//! The pool is small (2 by default) with an acquire timeout: Lambda scales by execution environments, each handling
//! one request at a time, so more connections per environment only exhaust the server's slots.
//!
//! PostgreSQL's connect options derive `Debug` with the password in it, so they are never logged, and statement logging
//! is off so that no SQL text reaches the logs either.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use crate::config::{
    Config, ConfigError, DatabaseSource, PoolConfig, SslMode, TlsConfig, DATABASE_SSL_ROOT_CERT,
    DATABASE_URL, DB_SECRET_ARN, PARAMETER_STORE_DB_URL,
};
use crate::credentials::{
    CredentialProvider, CredentialsError, ExtensionClient, Fallbacks, Fetch, Login,
};
use crate::schema::{self, SchemaProblem};

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// PostgreSQL's SQLSTATE for a rejected password.
const INVALID_PASSWORD: &str = "28P01";

/// How many times one operation is retried after a rejected login was recovered from. More than one, because a
/// second rotation (or a pool connection opened with the old options just before the swap) can fail once more.
const AUTH_RETRIES: usize = 2;

/// A live pool. Cloning is cheap (both are `Arc`s inside).
#[derive(Debug, Clone)]
pub enum Backend {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite (local runs, or an explicit `sqlite:` `DATABASE_URL`).
    Sqlite(SqlitePool),
}

impl Backend {
    /// `postgresql` or `sqlite`, for the health body and log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgresql",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Inside Lambda with no database configured: the variable to set, and why.
    #[error("database not configured; set {variable}: {detail}")]
    NotConfigured {
        /// The variable to set.
        variable: &'static str,
        /// Why, in words.
        detail: String,
    },
    /// The credentials could not be fetched.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The database refused the login, also with refreshed and pending credentials.
    #[error("the database rejected the login (28P01) with the current, refreshed and pending credentials from {source_name}")]
    CredentialsRejected {
        /// Where the credentials came from.
        source_name: &'static str,
        /// While this lasts, asking again is known to be useless (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The table is missing, different, or not granted to the role.
    #[error("the database schema does not match: {0}")]
    Schema(SchemaProblem),
    /// The database cannot be reached or used right now (network, TLS, pool exhausted, server refusing).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The SQLite file's folder could not be made.
    #[error("could not create the folder of the SQLite file: {0}")]
    SqliteFolder(std::io::Error),
    /// The schema could not be brought up to date (with `DATABASE_MIGRATE`, often a role without CREATE).
    #[error("migrations failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// A query failed for a reason that is our bug or the data's, not the connection's.
    #[error("query failed: {0}")]
    Query(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) => match d.code().as_deref() {
                // 08: connection exceptions; 28: authorization (no pg_hba entry, bad role); 3D000: no such
                // database; 53: insufficient resources (too many connections); 57P: the server is shutting
                // down or starting up.
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("28")
                        || code == "3D000"
                        || code.starts_with("53")
                        || code.starts_with("57P") =>
                {
                    // PostgreSQL's own message names no password; the code helps whoever reads the log.
                    Self::Unavailable(format!("{} ({code})", d.message()))
                }
                _ => Self::Query(e),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Self::Unavailable(e.to_string()),
            // Our own connect options are built from typed values; this is a bad DATABASE_URL parameter.
            sqlx::Error::Configuration(_) => {
                Self::Unavailable("the connection settings are invalid".to_owned())
            }
            _ => Self::Query(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => match Self::from(inner) {
                Self::Query(q) => Self::Migrate(sqlx::migrate::MigrateError::Execute(q)),
                other => other,
            },
            other => Self::Migrate(other),
        }
    }
}

/// Whether `e` is PostgreSQL refusing the password.
pub fn is_invalid_password(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(INVALID_PASSWORD))
}

enum Target {
    Missing {
        variable: &'static str,
        detail: String,
    },
    Sqlite {
        /// Boxed: SQLite's options are several times larger than the other variants.
        options: Box<SqliteConnectOptions>,
        /// The folder to create first (`None` for in-memory databases).
        folder: Option<PathBuf>,
        in_memory: bool,
    },
    /// A PostgreSQL `DATABASE_URL`: fixed options, nothing to refresh.
    PostgresUrl(Box<PgConnectOptions>),
    /// PostgreSQL with credentials from a provider.
    Postgres(CredentialProvider),
}

/// Remembers, for a short while, that the database rejected every version of the secret, so that the requests after
/// it answer at once instead of each asking the extension for every version again. On tokio's clock, so tests can
/// pause it.
#[derive(Debug)]
struct Rejection {
    backoff: Duration,
    until: SyncMutex<Option<Instant>>,
}

impl Rejection {
    fn new(backoff: Duration) -> Self {
        Self {
            backoff,
            until: SyncMutex::new(None),
        }
    }

    /// How long asking again stays useless, if it does.
    fn remaining(&self) -> Option<Duration> {
        let until = (*self.until.lock().unwrap_or_else(|p| p.into_inner()))?;
        let now = Instant::now();
        (now < until).then(|| until - now)
    }

    /// Every version was rejected just now; returns the backoff that starts (none when it is zero).
    fn remember(&self) -> Option<Duration> {
        if self.backoff.is_zero() {
            return None;
        }
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + self.backoff);
        Some(self.backoff)
    }

    /// A login worked again.
    fn forget(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The database of one execution environment. Build it once, at cold start, and share it.
pub struct Database {
    target: Target,
    pool: PoolConfig,
    tls: TlsConfig,
    /// Whether PostgreSQL gets the migrations from us (SQLite always does).
    migrate: bool,
    rejected: Rejection,
    backend: OnceCell<Backend>,
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
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        if let Some(path) = &config.tls.root_cert {
            if !path.is_file() {
                return Err(ConfigError::Invalid {
                    name: DATABASE_SSL_ROOT_CERT,
                    expected: "the path of a readable PEM CA bundle",
                });
            }
        }
        let target = match &config.database {
            DatabaseSource::Missing { variable, detail } => Target::Missing {
                variable,
                detail: detail.clone(),
            },
            DatabaseSource::Sqlite(path) => sqlite_file(path),
            DatabaseSource::Url(url) => {
                let url = url.expose().trim();
                if url.to_ascii_lowercase().starts_with("sqlite:") {
                    // sqlx's parse error can quote the URL; a fixed message it is.
                    let options =
                        SqliteConnectOptions::from_str(url).map_err(|_| ConfigError::Invalid {
                            name: DATABASE_URL,
                            expected: "a valid sqlite: URL",
                        })?;
                    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                    let folder = if in_memory {
                        None
                    } else {
                        options.get_filename().parent().map(Path::to_path_buf)
                    };
                    Target::Sqlite {
                        options: Box::new(options.create_if_missing(true)),
                        folder,
                        in_memory,
                    }
                } else {
                    let options =
                        PgConnectOptions::from_str(url).map_err(|_| ConfigError::Invalid {
                            name: DATABASE_URL,
                            expected: "a valid postgres:// URL",
                        })?;
                    // An sslmode in the URL is the URL author's choice; DATABASE_SSLMODE still overrides it.
                    let url_has_sslmode = url.contains("sslmode=") || url.contains("ssl-mode=");
                    Target::PostgresUrl(Box::new(apply_tls(options, &config.tls, url_has_sslmode)))
                }
            }
            DatabaseSource::Legacy(creds) => {
                Target::Postgres(CredentialProvider::Static(creds.clone()))
            }
            DatabaseSource::ParameterStore(name) => {
                Target::Postgres(CredentialProvider::ParameterStore {
                    client: Box::new(ExtensionClient::new(&config.extension)),
                    name: name.clone(),
                })
            }
            DatabaseSource::SecretsManager {
                secret_id,
                host,
                port,
                dbname,
            } => Target::Postgres(CredentialProvider::Extension {
                client: Box::new(ExtensionClient::new(&config.extension)),
                secret_id: secret_id.clone(),
                fallbacks: Fallbacks {
                    host: host.clone(),
                    port: *port,
                    dbname: dbname.clone(),
                },
            }),
        };
        Ok(Self {
            target,
            pool: config.pool.clone(),
            tls: config.tls.clone(),
            migrate: config.migrate,
            rejected: Rejection::new(config.pool.rejected_backoff),
            backend: OnceCell::new(),
            rotation: Mutex::new(()),
            generation: AtomicU64::new(0),
        })
    }

    /// The variable the database settings come from, for log lines (never a value).
    pub fn source_name(&self) -> &'static str {
        match &self.target {
            Target::Missing { .. } => "none",
            Target::Sqlite { .. } => "DATABASE_PATH (SQLite)",
            Target::PostgresUrl(_) => DATABASE_URL,
            Target::Postgres(p) => p.source_name(),
        }
    }

    /// The variable that must be set, when the database is not configured.
    pub fn missing_variable(&self) -> Option<&'static str> {
        match &self.target {
            Target::Missing { variable, .. } => Some(variable),
            _ => None,
        }
    }

    /// The cold start's warning about TLS, when PostgreSQL's certificate will not be verified.
    pub fn tls_warning(&self) -> Option<String> {
        let mode = match &self.target {
            Target::Missing { .. } | Target::Sqlite { .. } => return None,
            Target::PostgresUrl(options) => match options.get_ssl_mode() {
                PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
                PgSslMode::Disable => "disable",
                PgSslMode::Allow => "allow",
                PgSslMode::Prefer => "prefer",
                PgSslMode::Require => "require",
            },
            Target::Postgres(_) => match self.tls.mode.unwrap_or(self.tls.default_mode()) {
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
    pub fn is_deprecated_source(&self) -> bool {
        matches!(
            &self.target,
            Target::Postgres(CredentialProvider::ParameterStore { .. })
        )
    }

    /// Runs `op` on the pool, building it first if this is the first call. A login refused because the password
    /// rotated is recovered from and `op` retried; this is safe even for writes, because a refused login happens
    /// before the operation sends anything.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, DbError>
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

    /// The pool, built on first use. A failed build leaves nothing behind, so the next request tries again.
    pub async fn backend(&self) -> Result<Backend, DbError> {
        if let Target::Missing { variable, detail } = &self.target {
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
        self.backend.get_or_try_init(|| self.build()).await.cloned()
    }

    async fn build(&self) -> Result<Backend, DbError> {
        match &self.target {
            Target::Missing { variable, detail } => Err(DbError::NotConfigured {
                variable,
                detail: detail.clone(),
            }),
            Target::Sqlite {
                options,
                folder,
                in_memory,
            } => {
                if let Some(folder) = folder.as_deref().filter(|f| !f.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(folder)
                        .await
                        .map_err(DbError::SqliteFolder)?;
                }
                let mut pool_options = SqlitePoolOptions::new()
                    .acquire_timeout(self.pool.acquire_timeout)
                    .max_connections(self.pool.max_connections);
                if *in_memory {
                    // Each connection to `:memory:` is its own database: one connection, kept forever.
                    pool_options = pool_options
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                let pool = pool_options
                    .connect_with((**options).clone().disable_statement_logging())
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
            Target::PostgresUrl(options) => {
                let pool = self.pg_pool((**options).clone());
                self.prepare_postgres(&pool, self.migrate).await?;
                Ok(Backend::Postgres(pool))
            }
            Target::Postgres(provider) => {
                // A cold start that just met a rejection of every version: the pool was never built, and asking
                // the extension again within the backoff would only repeat the answer.
                if let Some(wait) = self.rejected.remaining() {
                    return Err(DbError::CredentialsRejected {
                        source_name: provider.source_name(),
                        retry_after: Some(wait),
                    });
                }
                let login = provider.fetch(Fetch::Cached).await?;
                let pool = self.pg_pool(self.pg_options(&login)?);
                self.prepare_postgres(&pool, self.migrate).await?;
                Ok(Backend::Postgres(pool))
            }
        }
    }

    /// The operator's one-shot migration (`items-function migrate`): connects with whatever the configuration says
    /// (an administrator's credentials), applies the migrations, checks the table, and, when `grant_to` names a
    /// role, grants it exactly what the function needs.
    pub async fn migrate_now(&self, grant_to: Option<&str>) -> Result<(), DbError> {
        let pool = match &self.target {
            Target::Missing { variable, detail } => {
                return Err(DbError::NotConfigured {
                    variable,
                    detail: detail.clone(),
                })
            }
            Target::Sqlite { .. } => return self.build().await.map(|_| ()),
            Target::PostgresUrl(options) => self.pg_pool((**options).clone()),
            Target::Postgres(provider) => {
                let login = provider.fetch(Fetch::Cached).await?;
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

    fn pg_pool(&self, options: PgConnectOptions) -> PgPool {
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

    fn pg_options(&self, login: &Login) -> Result<PgConnectOptions, DbError> {
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

    /// After a `28P01`: find credentials the database accepts and give them to the pool.
    async fn recover(&self, pool: &PgPool, failed_generation: u64) -> Result<(), DbError> {
        let source_name = self.source_name();
        let provider = match &self.target {
            Target::Postgres(p) if p.rotates() => p,
            _ => {
                tracing::error!(
                    source = source_name,
                    "the database rejected the configured password"
                );
                return Err(DbError::CredentialsRejected {
                    source_name,
                    retry_after: None,
                });
            }
        };
        let known_useless = || {
            self.rejected
                .remaining()
                .map(|wait| DbError::CredentialsRejected {
                    source_name,
                    retry_after: Some(wait),
                })
        };
        if let Some(e) = known_useless() {
            return Err(e);
        }
        let _single_flight = self.rotation.lock().await;
        if self.generation.load(Ordering::Acquire) != failed_generation {
            // Someone recovered while we waited for the lock; their options are already in the pool.
            return Ok(());
        }
        // Or someone gave up while we waited: asking again now would only repeat their calls.
        if let Some(e) = known_useless() {
            return Err(e);
        }
        tracing::warn!(
            source = source_name,
            "the database rejected the password; the secret may have rotated, refreshing it"
        );
        let give_up = Instant::now() + self.pool.rotation_grace;
        let mut pause = Duration::from_millis(50);
        loop {
            for fetch in [Fetch::Refresh, Fetch::Pending] {
                if !provider.offers(fetch) {
                    continue;
                }
                let login = match provider.fetch(fetch).await {
                    Ok(l) => l,
                    // No rotation in progress: there is no AWSPENDING version.
                    Err(e) if fetch == Fetch::Pending && e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                let options = self.pg_options(&login)?;
                let probe = tokio::time::timeout(
                    self.pool.acquire_timeout,
                    PgConnection::connect_with(&options),
                )
                .await;
                match probe {
                    Ok(Ok(conn)) => {
                        // The probe was only to choose between the versions; the pool opens its own.
                        let _ = conn.close().await;
                        pool.set_connect_options(options);
                        self.generation.fetch_add(1, Ordering::AcqRel);
                        self.rejected.forget();
                        tracing::info!(
                            source = source_name,
                            version = fetch.as_str(),
                            "database login works again with the refreshed credentials"
                        );
                        return Ok(());
                    }
                    Ok(Err(e)) if is_invalid_password(&e) => {
                        tracing::warn!(
                            source = source_name,
                            version = fetch.as_str(),
                            "the database rejected this version of the secret too"
                        );
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        return Err(DbError::Unavailable(
                            "timed out connecting to the database".to_owned(),
                        ))
                    }
                }
            }
            // The database's password and the secret are changed one after the other, never at once: wait a
            // little for the other half of the rotation before giving up.
            if Instant::now() + pause > give_up {
                let retry_after = self.rejected.remember();
                tracing::error!(
                    source = source_name,
                    backoff_ms = retry_after.map_or(0, |d| d.as_millis() as u64),
                    "the database rejects every version of the secret; check the rotation"
                );
                return Err(DbError::CredentialsRejected {
                    source_name,
                    retry_after,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

fn sqlite_file(path: &Path) -> Target {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL lets readers and the one writer of a local run overlap; the busy timeout absorbs the rest.
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    Target::Sqlite {
        options: Box::new(options),
        folder: path.parent().map(Path::to_path_buf),
        in_memory: false,
    }
}

fn apply_tls(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_env(&env).expect("config")
    }

    #[test]
    fn postgres_defaults_to_sslmode_require() {
        let db = Database::new(&config(&[("DATABASE_URL", "postgres://u:p@h/d")])).expect("db");
        match &db.target {
            Target::PostgresUrl(o) => assert!(matches!(o.get_ssl_mode(), PgSslMode::Require)),
            _ => panic!("expected a PostgreSQL URL target"),
        }
        let db = Database::new(&config(&[(
            "DATABASE_URL",
            "postgres://u:p@h/d?sslmode=disable",
        )]))
        .expect("db");
        match &db.target {
            Target::PostgresUrl(o) => assert!(matches!(o.get_ssl_mode(), PgSslMode::Disable)),
            _ => panic!("expected a PostgreSQL URL target"),
        }
        let db = Database::new(&config(&[
            ("DATABASE_URL", "postgres://u:p@h/d?sslmode=disable"),
            ("DATABASE_SSLMODE", "verify-full"),
        ]))
        .expect("db");
        match &db.target {
            Target::PostgresUrl(o) => assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull)),
            _ => panic!("expected a PostgreSQL URL target"),
        }
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
        let e = Database::new(&config(&[(
            "DATABASE_URL",
            "postgres://u:hunter2@h:notaport/d",
        )]))
        .expect_err("bad url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let db =
            Database::new(&config(&[("DATABASE_URL", "postgres://u:hunter2@h/d")])).expect("db");
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
        match &db.target {
            Target::PostgresUrl(o) => assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull)),
            _ => panic!("expected a PostgreSQL URL target"),
        }
        assert_eq!(db.tls_warning(), None);

        let db = Database::new(&config(&[("DATABASE_URL", "postgres://u:p@h/d")])).expect("db");
        let warning = db.tls_warning().expect("require is not verified");
        assert!(warning.contains("sslmode=require") && warning.contains("DATABASE_CA_BUNDLE"));
        let sqlite = Database::new(&config(&[])).expect("db");
        assert_eq!(sqlite.tls_warning(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_remembered_for_the_backoff_only() {
        let r = Rejection::new(Duration::from_secs(5));
        assert_eq!(r.remaining(), None);
        assert_eq!(r.remember(), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.remaining(), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(r.remaining(), None, "over at the deadline");
        r.remember();
        r.forget();
        assert_eq!(r.remaining(), None, "a login that works ends it");
        let off = Rejection::new(Duration::ZERO);
        assert_eq!(off.remember(), None);
        assert_eq!(off.remaining(), None);
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
