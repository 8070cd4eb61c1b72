//! The `/items` Lambda function: an items API on PostgreSQL (or SQLite locally), with its database credentials read
//! over localhost from the secretcache extension.
//!
//! Modules, one responsibility each; only [`config`], [`secret`], [`App`], [`handle`] and [`migrate`] are public (for
//! `main.rs` and the whole-system tests), the rest is the crate's own:
//! - [`config`]: typed configuration, read once through a small [`config::Env`] seam;
//! - [`secret`]: the redacting [`secret::Secret`] type for passwords and tokens;
//! - `credentials`: the credential provider (`DATABASE_URL` > `DB_SECRET_ARN` through the extension >
//!   `PARAMETER_STORE_DB_URL` > legacy `DATABASE_*` > SQLite outside Lambda);
//! - `db`: the one pool per execution environment (`db/pool.rs`: connect options, TLS, migrations), the recovery from
//!   a rotated password (`db/rotation.rs`) and the database errors (`db/error.rs`);
//! - `schema`: the check of the table the function needs (columns and privileges);
//! - `store`: the items queries, the same SQL on both databases;
//! - `handlers`: routing and validation, callable without a socket;
//! - `error`: the single mapping from errors to HTTP status and JSON body.

pub mod config;
mod credentials;
mod db;
mod error;
mod handlers;
mod schema;
pub mod secret;
mod store;

pub use handlers::{handle, App};

/// The operator's one-shot migration (`items-function migrate`): connects as `config` says (an administrator's
/// credentials), applies the migrations, checks the table, and grants `grant_to` what the function needs.
pub async fn migrate(config: &config::Config, grant_to: Option<&str>) -> Result<(), MigrateError> {
    let db = db::Database::new(config)?;
    db.migrate_now(grant_to).await?;
    tracing::info!(source = db.source_name(), "the items table is ready");
    Ok(())
}

/// The configuration of `items-function migrate`: `env`, and with `admin_secret` (the RDS secret JSON, read from
/// standard input) that secret's credentials instead of the function's chain. `DATABASE_HOST`, `DATABASE_PORT` and
/// `DATABASE_NAME` fill what the secret leaves out, as they do for `DB_SECRET_ARN`.
pub fn migrate_config(
    env: &std::collections::HashMap<String, String>,
    admin_secret: Option<secret::Secret>,
) -> Result<config::Config, MigrateError> {
    let Some(admin_secret) = admin_secret else {
        return Ok(config::Config::from_env(env)?);
    };
    let mut env = env.clone();
    // Resolved as a secret source, so that the fallbacks are read exactly as for DB_SECRET_ARN.
    env.insert(
        config::DB_SECRET_ARN.to_owned(),
        "(standard input)".to_owned(),
    );
    env.remove(config::DATABASE_URL);
    let mut config = config::Config::from_env(&env)?;
    let fallbacks = match &config.database {
        config::DatabaseSource::SecretsManager {
            host, port, dbname, ..
        } => credentials::Fallbacks {
            host: host.clone(),
            port: *port,
            dbname: dbname.clone(),
        },
        _ => credentials::Fallbacks::default(),
    };
    let creds = credentials::parse_rds_secret(&admin_secret, &fallbacks)
        .map_err(|e| MigrateError::from(db::DbError::Credentials(e)))?;
    config.database = config::DatabaseSource::Legacy(creds);
    Ok(config)
}

/// Why [`migrate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The secret is unusable, the database refused, or the table still does not match.
    #[error(transparent)]
    Db(#[from] DbErrorBox),
}

/// The database layer's error, opaque outside the crate: its `Display` says what went wrong.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbErrorBox(db::DbError);

impl From<db::DbError> for MigrateError {
    fn from(e: db::DbError) -> Self {
        Self::Db(DbErrorBox(e))
    }
}
