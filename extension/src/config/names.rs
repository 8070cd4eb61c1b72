//! Every environment variable the extension reads, with its limits and defaults: one table, read by the rest of
//! the configuration and by the misspelling check.

use secretcache_client::contract::env;
use std::time::Duration;

/// HTTP port of the localhost cache.
pub const HTTP_PORT: &str = env::PARAMETERS_SECRETS_EXTENSION_HTTP_PORT;
/// Boolean: whether values are cached at all.
pub const CACHE_ENABLED: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED";
/// Maximum number of cached entries; 0 disables the cache.
pub const CACHE_SIZE: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE";
/// debug, info, warn, error or none.
pub const LOG_LEVEL: &str = "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL";
/// Size of the upstream connection pool.
pub const MAX_CONNECTIONS: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS";
/// Secrets Manager call timeout in milliseconds; 0 means our default.
pub const SECRETS_MANAGER_TIMEOUT_MILLIS: &str = "SECRETS_MANAGER_TIMEOUT_MILLIS";
/// Secrets Manager cache TTL in seconds; 0 means no caching.
pub const SECRETS_MANAGER_TTL: &str = "SECRETS_MANAGER_TTL";
/// SSM Parameter Store call timeout in milliseconds; 0 means our default.
pub const SSM_PARAMETER_STORE_TIMEOUT_MILLIS: &str = "SSM_PARAMETER_STORE_TIMEOUT_MILLIS";
/// SSM Parameter Store cache TTL in seconds; 0 means no caching.
pub const SSM_PARAMETER_STORE_TTL: &str = "SSM_PARAMETER_STORE_TTL";
/// (ours) Comma-separated secret ids fetched during init, before the extension reports ready.
pub const PREFETCH: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH";
/// (ours) Time budget of the init prefetch, in milliseconds.
pub const PREFETCH_TIMEOUT_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH_TIMEOUT_MILLIS";
/// (ours, as the Workload Credentials Provider's `prefetch.filter_tags`) Comma-separated tag keys: every secret that
/// carries one of them is fetched during init (ListSecrets, then BatchGetSecretValue).
pub const PREFETCH_TAGS: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH_TAGS";
/// (ours, as the Provider's `cache_buffer_ratio`, in percent) The most of the cache the init prefetch may fill.
pub const PREFETCH_BUFFER_PERCENT: &str = "PARAMETERS_SECRETS_EXTENSION_PREFETCH_BUFFER_PERCENT";
/// (ours, as the Provider's `max_jitter_seconds`) The longest random delay before the init prefetch starts.
pub const PREFETCH_MAX_JITTER_SECONDS: &str =
    "PARAMETERS_SECRETS_EXTENSION_PREFETCH_MAX_JITTER_SECONDS";
/// (ours, as the Provider's `credentials_file_path`) A shared credentials file (its `default` profile, with a session
/// token) to call AWS with instead of the SDK's chain, read again every 5 minutes: IAM Roles Anywhere's
/// `aws_signing_helper update` keeps such a file fresh.
pub const CREDENTIALS_FILE: &str = "PARAMETERS_SECRETS_EXTENSION_CREDENTIALS_FILE";
/// (ours) Most concurrent client connections to the localhost server.
pub const MAX_CLIENT_CONNECTIONS: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_CLIENT_CONNECTIONS";
/// (ours) Percent of the TTL, before expiry, in which a hit starts a background refresh.
pub const REFRESH_AHEAD: &str = "PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD";
/// (ours) Seconds past expiry a value may be served while the upstream fails transiently; 0 disables.
pub const MAX_STALE: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_STALE";
/// (ours) Byte budget of the cache.
pub const CACHE_BYTES: &str = "PARAMETERS_SECRETS_EXTENSION_CACHE_BYTES";
/// (ours) How long an INVOKE waits for the refreshes it starts, in milliseconds (never past the event's deadline).
pub const INVOKE_WAIT_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS";
/// (ours) How long a not-found or access-denied answer is remembered, in milliseconds; 0 disables.
pub const NEGATIVE_CACHE_MILLIS: &str = "PARAMETERS_SECRETS_EXTENSION_NEGATIVE_CACHE_MILLIS";
/// (ours) Shortest interval between two upstream calls for `refreshNow` of one key, in milliseconds; 0 disables.
pub const REFRESH_NOW_INTERVAL_MILLIS: &str =
    "PARAMETERS_SECRETS_EXTENSION_REFRESH_NOW_INTERVAL_MILLIS";
/// (ours) Most reads waiting on upstream calls of their own at once (misses; hits are never refused); past it a read
/// is answered 429 with `Retry-After`, as AWS Systems Manager Cloud Extensions answers past 100 calls in flight.
pub const MAX_PENDING_FETCHES: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_PENDING_FETCHES";
/// (ours, as the Workload Credentials Provider's `max_roles`) Most roles reads may name in `roleArn`, each with a
/// cache of its own.
pub const MAX_ROLES: &str = "PARAMETERS_SECRETS_EXTENSION_MAX_ROLES";
/// (ours) A role to assume for every upstream call (secrets shared from another account).
pub const ROLE_ARN: &str = "PARAMETERS_SECRETS_EXTENSION_ROLE_ARN";
/// (ours) The external id that role's trust policy asks for.
pub const ROLE_EXTERNAL_ID: &str = "PARAMETERS_SECRETS_EXTENSION_ROLE_EXTERNAL_ID";
/// The region the SDK uses; Lambda sets it.
pub const AWS_REGION: &str = "AWS_REGION";
/// The SDK's older name for it.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// Lambda's own log level, used when ours is not set.
pub const AWS_LAMBDA_LOG_LEVEL: &str = "AWS_LAMBDA_LOG_LEVEL";
/// How Lambda started the environment: `on-demand`, `provisioned-concurrency`, `snap-start` or
/// `lambda-managed-instances` ([`InitType`](super::InitType)).
pub const AWS_LAMBDA_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
/// Under Lambda Managed Instances: the most invocations one environment serves at once.
pub const AWS_LAMBDA_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
pub use env::{AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_SESSION_TOKEN, AWS_TOKEN};
/// (ours) The prefix of path-based reads, `/v1/` by default as with the AWS Secrets Manager Agent.
pub const PATH_PREFIX: &str = "PARAMETERS_SECRETS_EXTENSION_PATH_PREFIX";
pub use secretcache_client::contract::{TOKEN_HEADER, VAULT_TOKEN_HEADER};
/// Where outside Lambda the token is looked for, in order (the Agent's order): the first set wins.
pub const STANDALONE_TOKEN_VARIABLES: [&str; 3] = [
    AWS_TOKEN,
    AWS_SESSION_TOKEN,
    AWS_CONTAINER_AUTHORIZATION_TOKEN,
];
/// Set by Lambda; when absent the extension runs standalone.
pub const AWS_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// `json` switches the log format to JSON lines.
pub const AWS_LAMBDA_LOG_FORMAT: &str = "AWS_LAMBDA_LOG_FORMAT";
/// The SDK's endpoint override for every service.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The SDK's endpoint override for Secrets Manager.
pub const AWS_ENDPOINT_URL_SECRETS_MANAGER: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// The SDK's endpoint override for SSM.
pub const AWS_ENDPOINT_URL_SSM: &str = "AWS_ENDPOINT_URL_SSM";

/// Every variable of ours, for the misspelling check.
pub const KNOWN_VARIABLES: &[&str] = &[
    HTTP_PORT,
    CACHE_ENABLED,
    CACHE_SIZE,
    LOG_LEVEL,
    MAX_CONNECTIONS,
    SECRETS_MANAGER_TIMEOUT_MILLIS,
    SECRETS_MANAGER_TTL,
    SSM_PARAMETER_STORE_TIMEOUT_MILLIS,
    SSM_PARAMETER_STORE_TTL,
    PREFETCH,
    PREFETCH_TIMEOUT_MILLIS,
    PREFETCH_TAGS,
    PREFETCH_BUFFER_PERCENT,
    PREFETCH_MAX_JITTER_SECONDS,
    CREDENTIALS_FILE,
    MAX_CLIENT_CONNECTIONS,
    REFRESH_AHEAD,
    MAX_STALE,
    CACHE_BYTES,
    INVOKE_WAIT_MILLIS,
    NEGATIVE_CACHE_MILLIS,
    REFRESH_NOW_INTERVAL_MILLIS,
    MAX_PENDING_FETCHES,
    MAX_ROLES,
    ROLE_ARN,
    ROLE_EXTERNAL_ID,
    PATH_PREFIX,
];

/// Our default upstream timeout where the AWS extension's default (0) would mean "wait forever": an upstream call
/// without a deadline can hang an invocation until the function times out.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The AWS extension's longest TTL; it clamps larger values to this.
pub const AWS_MAX_TTL_SECS: u64 = 300;
/// The longest TTL we honour: a day. Larger values are clamped to it.
pub const MAX_TTL_SECS: u64 = 86_400;
/// The AWS extension's largest cache.
pub const AWS_MAX_CACHE_SIZE: u64 = 1_000;
/// The largest cache we honour; larger values are clamped to it.
pub const MAX_CACHE_SIZE: u64 = 1_000_000;
/// Lambda gives extensions 10 s of init in total; the prefetch must leave room for registering and the runtime.
pub const MAX_PREFETCH_TIMEOUT_MILLIS: u64 = 9_000;
/// The most tag keys a tag prefetch names (ListSecrets takes 10 values in a filter).
pub const MAX_PREFETCH_TAGS: usize = 10;
/// The default port, the AWS extension's.
pub const DEFAULT_PORT: u16 = secretcache_client::contract::DEFAULT_PORT;
