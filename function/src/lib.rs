//! The `/items` Lambda function: an items API on PostgreSQL (or SQLite locally), with its database credentials read
//! over localhost from the secretcache extension.
//!
//! Modules, one responsibility each:
//! - [`config`]: typed configuration, read once through a small [`config::Env`] seam;
//! - [`secret`]: the redacting [`secret::Secret`] type for passwords and tokens;
//! - [`credentials`]: the credential provider (`DATABASE_URL` > `DB_SECRET_ARN` through the extension > legacy
//!   `DATABASE_*` > SQLite outside Lambda);
//! - [`db`]: the one pool per execution environment, TLS, migrations, and recovery from a rotated password;
//! - [`schema`]: the check of the table the function needs (columns and privileges);
//! - [`store`]: the items queries, the same SQL on both databases;
//! - [`handlers`]: routing and validation, callable without a socket;
//! - [`error`]: the single mapping from errors to HTTP status and JSON body.

pub mod config;
pub mod credentials;
pub mod db;
pub mod error;
pub mod handlers;
pub mod schema;
pub mod secret;
pub mod store;

pub use handlers::{handle, App};

/// The operator's one-shot migration (`items-function migrate`): connects as `config` says (an administrator's
/// credentials), applies the migrations, checks the table, and grants `grant_to` what the function needs.
pub async fn migrate(config: &config::Config, grant_to: Option<&str>) -> Result<(), MigrateError> {
    let db = db::Database::new(config)?;
    db.migrate_now(grant_to).await?;
    tracing::info!(source = db.source_name(), "the items table is ready");
    Ok(())
}

/// Why [`migrate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database refused, or the table still does not match.
    #[error(transparent)]
    Db(#[from] db::DbError),
}
