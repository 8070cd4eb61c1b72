//! The wire contract, written once: what a client sends the extension and what it answers with, apart from the
//! bodies (those are in [`crate::body`]).
//!
//! Parts: the token header and our response headers; [`env`](mod@env), the variables a client reads to find and authenticate
//! to the extension; [`path`], [`query`] and [`stage`], the names that go into a request. They are the AWS Parameters
//! and Secrets Lambda Extension's own, so code written for either speaks to both; what is ours alone says so.

/// The header every request but `/ping` carries; its value is the execution environment's session token
/// ([`env::AWS_SESSION_TOKEN`], or [`env::AWS_CONTAINER_AUTHORIZATION_TOKEN`] under SnapStart).
///
/// Written in lower case, as `http::HeaderName::from_static` requires; header names are case-insensitive, and the
/// AWS documentation spells it `X-Aws-Parameters-Secrets-Token`.
pub const TOKEN_HEADER: &str = "x-aws-parameters-secrets-token";

/// The other header a token may come in, as the AWS Secrets Manager Agent accepts it.
pub const VAULT_TOKEN_HEADER: &str = "x-vault-token";

/// (ours) How a value was served: `hit`, `miss`, `refresh` or `stale`.
pub const CACHE_HEADER: &str = "x-secretcache-cache";

/// (ours) `true` when the value is past its TTL and was served because the upstream failed.
pub const STALE_HEADER: &str = "x-secretcache-stale";

/// The port the extension listens on when [`env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`] is unset, on `127.0.0.1`.
pub const DEFAULT_PORT: u16 = 2773;

/// (ours) The most ids one [`path::SECRET_BATCH`] request takes: BatchGetSecretValue's limit.
pub const MAX_SECRET_BATCH: usize = 20;

/// (ours) The most names one [`path::PARAMETER_BATCH`] request takes: GetParameters' limit.
pub const MAX_PARAMETER_BATCH: usize = 10;

/// Environment variables, named by themselves so that a search for the variable finds its use.
pub mod env {
    /// The extension's port (both extensions read it, so a function that reads it too finds either).
    pub const PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: &str =
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT";
    /// The execution environment's session token: what [`super::TOKEN_HEADER`] must carry.
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    /// The token under SnapStart, where [`AWS_SESSION_TOKEN`] is absent.
    pub const AWS_CONTAINER_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
    /// The token variables, in the order a client tries them.
    pub const TOKEN_VARIABLES: [&str; 2] = [AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN];
    /// (as the AWS Secrets Manager Agent) Outside Lambda, the token tried first; `file:///path` means that file's
    /// contents.
    pub const AWS_TOKEN: &str = "AWS_TOKEN";
}

/// Request paths.
pub mod path {
    /// One secret, as GetSecretValue returns it ([`crate::GetSecretValueBody`]).
    pub const SECRET: &str = "/secretsmanager/get";
    /// One SSM parameter, as GetParameter returns it ([`crate::GetParameterBody`]).
    pub const PARAMETER: &str = "/systemsmanager/parameters/get";
    /// [`PARAMETER`] with a trailing `/`, which the AWS extension serves too.
    pub const PARAMETER_SLASH: &str = "/systemsmanager/parameters/get/";
    /// (ours, as the AWS Secrets Manager Agent) `200` when the extension serves; needs no token.
    pub const PING: &str = "/ping";
    /// (ours) Prometheus text; needs the token.
    pub const METRICS: &str = "/metrics";
    /// (ours) Several secrets: repeated [`super::query::SECRET_ID`] (up to 20), BatchGetSecretValue's shape.
    pub const SECRET_BATCH: &str = "/secretsmanager/batch";
    /// (ours) Several parameters: repeated [`super::query::NAME`] (up to 10), GetParameters' shape.
    pub const PARAMETER_BATCH: &str = "/systemsmanager/parameters/batch";
    /// [`PARAMETER_BATCH`] with a trailing `/`.
    pub const PARAMETER_BATCH_SLASH: &str = "/systemsmanager/parameters/batch/";
    /// (as the AWS Secrets Manager Agent) The default prefix of a path-based read: `/v1/<secretId>`.
    pub const V1_PREFIX: &str = "/v1/";
    /// [`SECRET`] with a trailing `/` (middleware such as middy sends it).
    pub const SECRET_SLASH: &str = "/secretsmanager/get/";
    /// [`SECRET_BATCH`] with a trailing `/`.
    pub const SECRET_BATCH_SLASH: &str = "/secretsmanager/batch/";
    /// (as AWS Systems Manager Cloud Extensions) A path-based read of a secret: `/secretsmanager/<secretId>`, slashes
    /// kept, `%2F` decoded. A secret named `get` or `batch` is read with the query route.
    pub const SECRET_PATH_PREFIX: &str = "/secretsmanager/";
    /// A path-based read of a parameter: `/systemsmanager/parameters/<name>` (`app/db` means `/app/db`). A parameter
    /// named `get` or `batch` is read with the query route.
    pub const PARAMETER_PATH_PREFIX: &str = "/systemsmanager/parameters/";
}

/// Query parameter names.
pub mod query {
    /// [`super::path::SECRET`]: the secret's name or ARN (required).
    pub const SECRET_ID: &str = "secretId";
    /// [`super::path::SECRET`]: a version id.
    pub const VERSION_ID: &str = "versionId";
    /// [`super::path::SECRET`]: a staging label, e.g. [`super::stage::AWSPENDING`]; `AWSCURRENT` when neither selector
    /// is given.
    pub const VERSION_STAGE: &str = "versionStage";
    /// (ours) `true`: bypass the cache and fetch anew (single-flighted; an error rather than a stale value).
    pub const REFRESH_NOW: &str = "refreshNow";
    /// [`super::path::PARAMETER`]: the parameter's name or ARN, optionally with `:version` or `:label` (required).
    pub const NAME: &str = "name";
    /// [`super::path::PARAMETER`]: a version number.
    pub const VERSION: &str = "version";
    /// [`super::path::PARAMETER`]: a label.
    pub const LABEL: &str = "label";
    /// [`super::path::PARAMETER`]: `true` to decrypt a `SecureString` (default `false`).
    pub const WITH_DECRYPTION: &str = "withDecryption";
    /// (ours) A top-level key of a JSON value: the answer is that key's value, as `text/plain`.
    pub const FIELD: &str = "field";
    /// (as Cloud Extensions and the Workload Credentials Provider) Read as this IAM role: `arn:aws:iam::<account>:role/<name>`.
    pub const ROLE_ARN: &str = "roleArn";
}

/// Secrets Manager's staging labels.
pub mod stage {
    /// The version in use; what a read without a selector gets.
    pub const AWSCURRENT: &str = "AWSCURRENT";
    /// The version a rotation is setting up. Single-user rotation sets it as the database's password before it moves
    /// `AWSCURRENT`.
    pub const AWSPENDING: &str = "AWSPENDING";
    /// The version before the last rotation.
    pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
}
