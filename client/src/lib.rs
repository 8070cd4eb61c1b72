//! The wire contract of the secretcache Lambda extension, and a small typed async client for it.
//!
//! secretcache serves AWS Secrets Manager secrets and SSM parameters from a cache on `127.0.0.1:2773`, as a drop-in
//! replacement for the AWS Parameters and Secrets Lambda Extension. This crate is the one place its contract is
//! written: the extension builds its answers from these types, and a function reads them back with the same types.
//! The client works against the AWS extension too (it ignores `refreshNow`, and answers every failure with a 400).
//!
//! Parts:
//! - [`contract`]: the token header, the default port and its variable, the token variables, the paths, the query
//!   names, the staging labels, and secretcache's own response headers;
//! - [`body`]: the bodies, one type each ([`GetSecretValueBody`], [`GetParameterBody`], [`ErrorBody`]); their secret
//!   fields are [`SecretText`], redacted in `Debug` and, once read by a client, wiped from memory when dropped;
//! - [`Client`]: `secret(id)` and `parameter(name, with_decryption)`, each with its selectors and `send()`; typed
//!   [`Error`]s that keep the extension's status and error code and never a body; the cold-start retry (an extension
//!   that is not listening yet, or answers 503, is retried with backoff for a bounded time) and a per-call timeout;
//! - (secretcache only) [`Client::secret_batch`] and [`Client::parameter_batch`]: several values in one request,
//!   [`BatchGetSecretValueBody`] and [`GetParametersBody`]; [`field::project`], the extension's `field=` rule, for
//!   taking several fields out of one value read once;
//! - [`backoff`]: the one retry policy (exponential, capped, optionally jittered) that the client's cold-start retry,
//!   the function's rotation wait and the extension's per-key backoff each configure;
//! - [`env`](mod@env): reading configuration from the environment, shared by the extension and the function: the
//!   [`env::Env`] seam (a map in tests), tolerant parsers (Go's booleans, whole numbers and durations in a range), and
//!   the "did you mean" hint for a misspelt variable;
//! - [`Rotation`]: after a database refuses a password, the versions to try in order (`AWSCURRENT` fetched anew, then
//!   `AWSPENDING`).
//!
//! Secrets are [`secrecy`]'s [`SecretString`] (re-exported with [`ExposeSecret`]): the kept crate for this, whose
//! `Debug` redacts, which has no `Display`, and whose memory is zeroized when dropped.
//!
//! # Reading a secret in a Lambda function
//!
//! Build the client once, outside the handler, and read through it; the extension caches, so a read is a localhost
//! round trip.
//!
//! ```no_run
//! use secretcache_client::{Client, ExposeSecret};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (default 2773), and AWS_SESSION_TOKEN for the token header.
//! let client = Client::from_env()?;
//! let secret = client.secret("prod/db").send().await?;
//! let json = secret.into_secret_string().ok_or("a binary secret")?;
//! let credentials: serde_json::Value = serde_json::from_str(json.expose_secret())?;
//!
//! // An SSM SecureString, decrypted.
//! let url = client.parameter("/prod/db-url", true).send().await?.into_value();
//! # let _ = (credentials, url);
//! # Ok(())
//! # }
//! ```
//!
//! # After the database refuses the password
//!
//! ```no_run
//! use secretcache_client::{Candidate, Client, ExposeSecret};
//!
//! # async fn log_in(_password: &str) -> bool { true }
//! # async fn example(client: &Client) -> Result<(), secretcache_client::Error> {
//! let mut candidates = client.rotation("prod/db");
//! while let Some((version, fetched)) = candidates.next().await {
//!     let Some(secret) = fetched?.into_secret_string() else { continue };
//!     if log_in(secret.expose_secret()).await {
//!         println!("logged in with {}", version.stage());
//!         break;
//!     }
//! }
//! // Nothing worked: the rotation is half done (retry shortly), or the secret is wrong.
//! # Ok(())
//! # }
//! ```
//!
//! # What goes on the wire, and what comes back
//!
//! ```
//! use secretcache_client::{Client, ExposeSecret, GetSecretValueBody};
//!
//! let client = Client::builder().token("session-token").build();
//! let request = client.secret("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")
//!     .version_stage("AWSPENDING")
//!     .refresh_now(true);
//! assert_eq!(
//!     request.path_and_query(),
//!     "/secretsmanager/get?secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123456789012%3Asecret%3Adb-AbCdEf\
//!      &versionStage=AWSPENDING&refreshNow=true",
//! );
//!
//! // GetSecretValue's answer, in the AWS extension's shape.
//! let answer = br#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
//!     "CreatedDate":"2022-11-16T08:22:40.499Z","Name":"db","SecretBinary":null,
//!     "SecretString":"{\"username\":\"app\",\"password\":\"hunter2\"}","VersionId":"v1",
//!     "VersionStages":["AWSCURRENT"],"ResultMetadata":{}}"#;
//! let body: GetSecretValueBody = serde_json::from_slice(answer)?;
//! assert_eq!(body.name.as_deref(), Some("db"));
//! assert!(!format!("{body:?}").contains("hunter2"), "Debug redacts the secret");
//! let secret = body.into_secret_string().expect("a text secret");
//! assert!(secret.expose_secret().contains("hunter2"));
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod backoff;
pub mod body;
mod client;
pub mod contract;
pub mod env;
mod error;
pub mod field;
mod request;
mod retry;
mod rotation;
mod transport;

pub use body::{
    BatchError, BatchGetSecretValueBody, ErrorBody, GetParameterBody, GetParametersBody,
    GetSecretValueBody, Parameter, ResultMetadata, SecretText,
};
pub use client::{Builder, Client, DEFAULT_STARTUP_WAIT, DEFAULT_TIMEOUT};
pub use contract::{DEFAULT_PORT, TOKEN_HEADER};
pub use error::{ConfigError, Error};
pub use request::{GetParameter, GetSecret, ParameterBatch, SecretBatch};
pub use rotation::{Candidate, Rotation};
pub use secrecy::{ExposeSecret, SecretString};
