//! The names table: every environment variable the function reads, the list the misspelling check compares with,
//! and the defaults that go with them. Only names and plain values here, so that every other part of `config` can
//! use them.

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
