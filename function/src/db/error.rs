//! [`DbError`]: why a database operation failed, classified so that `error.rs` can choose the status, and how a
//! `sqlx` error is sorted into it (a connection problem is a 503, our own bug a 500).

use crate::credentials::CredentialsError;
use crate::schema::SchemaProblem;
use std::time::Duration;

/// PostgreSQL's SQLSTATE for a rejected password.
const INVALID_PASSWORD: &str = "28P01";

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
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

impl DbError {
    /// The same failure once more, for the requests that waited on the attempt that met it (`Database::backend`).
    /// `None` for the kinds that carry a library error, which cannot be copied: those requests try again
    /// themselves, and they fail fast (a query or a migration refused, a folder not made).
    pub(crate) fn duplicate(&self) -> Option<DbError> {
        Some(match self {
            Self::NotConfigured { variable, detail } => Self::NotConfigured {
                variable,
                detail: detail.clone(),
            },
            Self::Credentials(e) => Self::Credentials(e.clone()),
            Self::CredentialsRejected {
                source_name,
                retry_after,
            } => Self::CredentialsRejected {
                source_name,
                retry_after: *retry_after,
            },
            Self::Schema(problem) => Self::Schema(problem.clone()),
            Self::Unavailable(detail) => Self::Unavailable(detail.clone()),
            Self::SqliteFolder(_) | Self::Migrate(_) | Self::Query(_) => return None,
        })
    }
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
pub(crate) fn is_invalid_password(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(INVALID_PASSWORD))
}
