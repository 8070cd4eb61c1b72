//! `secretcache exec -- <command...>`: the exec wrapper. It puts the values that the function's environment
//! references ([`crate::reference`]) into that environment, then `exec`s the command: the runtime becomes this
//! process, with the same pid, so Lambda's runtime process is the runtime.
//!
//! Managed runtimes run the program that `AWS_LAMBDA_EXEC_WRAPPER` names with their own command line as its
//! arguments; the layer's `/opt/secretcache-wrapper` is `exec <layer>/extensions/secretcache exec -- "$@"`. A
//! `provided.al2023` function's `bootstrap` calls it the same way in one line.
//!
//! It works because the extension listens before it registers, and Lambda starts the runtime only after every
//! extension has registered: the values come from the running extension over localhost, with the same token as any
//! client, and are cached there. Parts:
//! - [`requested`]: whether the command line asks for this mode;
//! - [`scan`]: the references in an environment (and the values that claim to be one but are malformed);
//! - [`resolve`]: every distinct value fetched concurrently, current secrets in batches of 20 and parameters in
//!   batches of 10 (one upstream call each), the rest one request each, all within one deadline; fields are taken
//!   out of the one value read;
//! - [`main`]: the mode itself: log set-up (stderr, the extension's format), scan, resolve, then `exec`, or one ERROR
//!   line per failure, `/runtime/init/error` to the Runtime API, and a non-zero exit without starting the runtime.
//!
//! No value is logged, and no message carries one: failures name the variable, the reference and the reason.
//!
//! On Lambda Managed Instances, as in every mode, the values are read once, when the runtime starts (at init): an
//! environment there may live for hours, and a value the wrapper put into it is not refreshed (read through the
//! extension's HTTP API for values that must follow a rotation).

use std::ffi::OsString;
use std::fmt;

use std::process::ExitCode;
use std::time::Duration;

use secretcache_client::field::FieldError;
use secretcache_client::{Client, Error as ClientError, SecretString};
use tokio::time::Instant;

use crate::config::{
    Config, Env, LogLevel, ProcessEnv, AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM,
};
use crate::reference::{Reference, ReferenceError};
use crate::token::TokenSource;

mod exec;
mod resolve;
mod scan;

use exec::{exec, report_init_error};
pub use resolve::resolve;
pub use scan::scan;

/// The word that selects this mode: `secretcache exec -- <command...>`.
pub const MODE: &str = "exec";
/// How long resolving may take in all: well inside Lambda's 10 s init, and above the extension's 3 s upstream
/// timeout, so that an upstream failure is reported as the extension saw it rather than as our own timeout.
pub const BUDGET: Duration = Duration::from_secs(5);
/// How long an extension that does not answer yet is waited for (the client's cold-start retry).
pub const STARTUP_WAIT: Duration = secretcache_client::DEFAULT_STARTUP_WAIT;
/// The error type reported to the Runtime API's `init/error`, which Lambda hands to the invoker.
pub const INIT_ERROR_TYPE: &str = "Secretcache.UnresolvedReference";

const USAGE: &str = "usage: secretcache exec [--] <command> [args...]";

/// The command to run when the command line is `secretcache exec [--] <command...>` (possibly empty: an error
/// [`main`] reports), or `None` for the other modes.
pub fn requested(args: impl IntoIterator<Item = OsString>) -> Option<Vec<OsString>> {
    let mut args = args.into_iter().skip(1).peekable();
    args.next_if(|a| a == MODE)?;
    args.next_if(|a| a == "--");
    Some(args.collect())
}

/// A variable that could not be given its value, and why. It holds no value.
#[derive(Debug)]
pub struct Failure {
    /// The variable.
    pub variable: String,
    /// Its reference, in canonical form, when it parsed.
    pub reference: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// Why a reference was not resolved. No variant holds a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Reason {
    /// It starts with `secretcache:` but does not follow the grammar.
    #[error("not a valid reference: {0}")]
    Syntax(ReferenceError),
    /// It starts with `secretcache:` but is not UTF-8.
    #[error("not a valid reference: it is not UTF-8")]
    NotUtf8,
    /// The secret, parameter or version does not exist.
    #[error("not found ({code})")]
    NotFound {
        /// The upstream's error code.
        code: String,
    },
    /// IAM or KMS refused.
    #[error("access denied ({code}): the function's role may not read it, or may not decrypt it")]
    Denied {
        /// The upstream's error code.
        code: String,
    },
    /// Another failure the extension reported for this id (throttled, an upstream timeout...).
    #[error("the secrets extension could not fetch it ({code})")]
    Failed {
        /// The error code.
        code: String,
    },
    /// The request to the extension failed as a whole.
    #[error("{0}")]
    Extension(ClientError),
    /// The field is missing, or the value is not a JSON object.
    #[error("{0}")]
    Field(FieldError),
    /// A binary secret: a variable holds text.
    #[error("it is a binary secret (SecretBinary); only a text secret can be put in a variable")]
    Binary,
    /// The value holds a NUL byte, which no environment variable can carry.
    #[error("its value holds a NUL byte, which an environment variable cannot carry")]
    Nul,
    /// The deadline passed first.
    #[error("not resolved within {} s", .0.as_secs_f32())]
    TimedOut(Duration),
    /// The extension's answer had nothing for it.
    #[error("the secrets extension's answer has no value for it")]
    Unanswered,
}

impl fmt::Display for Failure {
    /// `VARIABLE (secretcache:...): reason`, for the Runtime API's `init/error` message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Some(r) => write!(f, "{} ({r}): {}", self.variable, self.reason),
            None => write!(f, "{}: {}", self.variable, self.reason),
        }
    }
}

/// The mode: resolve the environment's references, then become `command`; or report every failure and exit
/// non-zero without starting it.
pub fn main(command: Vec<OsString>) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // The extension's own configuration, read as it reads it: its port, its token, its log format. Its diagnostics
    // are the extension's to report, once.
    let config = Config::load(&ProcessEnv, None);
    // A failure must be seen whatever the level: an init that stops without a word would be worse than a log line.
    let level = match config.log_level {
        LogLevel::None => LogLevel::Error,
        other => other,
    };
    crate::logging::init_to(level, config.log_json, std::io::stderr);

    let found = scan(std::env::vars_os());
    for variable in &found.near_misses {
        tracing::warn!(
            %variable,
            "looks like a secretcache reference, but does not start with exactly `secretcache:`; left as it is"
        );
    }
    if found.references.is_empty() && found.failures.is_empty() {
        return exec(program, args, &[], &sdk_endpoints(&ProcessEnv, config.port));
    }
    let started = std::time::Instant::now();
    let resolved = match resolve_now(&config, &found.references) {
        Ok(resolved) => resolved,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let mut failures = found.failures;
    let mut values = Vec::with_capacity(resolved.len());
    for ((variable, result), (_, r)) in resolved.into_iter().zip(&found.references) {
        match result {
            Ok(value) => values.push((variable, value)),
            Err(reason) => failures.push(Failure {
                variable,
                reference: Some(r.to_string()),
                reason,
            }),
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            match &f.reference {
                Some(r) => {
                    tracing::error!(variable = %f.variable, reference = %r, reason = %f.reason,
                    "a referenced value could not be resolved; the runtime is not started")
                }
                None => tracing::error!(variable = %f.variable, reason = %f.reason,
                    "a referenced value could not be resolved; the runtime is not started"),
            }
        }
        report_init_error(&failures);
        return ExitCode::FAILURE;
    }
    let variables: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
    tracing::info!(
        variables = %variables.join(","),
        millis = started.elapsed().as_millis() as u64,
        "resolved the environment's references; starting the runtime"
    );
    exec(
        program,
        args,
        &values,
        &sdk_endpoints(&ProcessEnv, config.port),
    )
}

/// `SECRETCACHE_SDK_ENDPOINTS=true` points the runtime's AWS SDKs at the extension for the two services it serves in
/// their own protocol: the endpoint variables every SDK reads, each unless the function already sets it.
pub const SDK_ENDPOINTS: &str = "SECRETCACHE_SDK_ENDPOINTS";

/// The endpoint variables to set for the runtime (none unless [`SDK_ENDPOINTS`] is true).
fn sdk_endpoints(env: &impl Env, port: u16) -> Vec<(&'static str, String)> {
    let on = env.get(SDK_ENDPOINTS).is_some_and(|v| {
        secretcache_client::env::parse_yes_no(&v) == Some(true) || v.trim() == "1"
    });
    if !on {
        return Vec::new();
    }
    [AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM]
        .into_iter()
        .filter(|name| env.get(name).is_none_or(|v| v.trim().is_empty()))
        .map(|name| (name, format!("http://127.0.0.1:{port}")))
        .collect()
}

/// [`resolve`] on a runtime of its own, with a client for the extension that `config` describes.
fn resolve_now(
    config: &Config,
    references: &[(String, Reference)],
) -> std::io::Result<Vec<(String, Result<SecretString, Reason>)>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut client = Client::builder()
        .port(config.port)
        .timeout(BUDGET)
        .startup_wait(STARTUP_WAIT);
    if let Some(token) = token(config) {
        client = client.token(token);
    }
    let client = client.build();
    Ok(runtime
        .block_on(async { resolve(&client, references, Instant::now() + BUDGET, BUDGET).await }))
}

/// The token the extension accepts: in Lambda the session token; outside it the first of its variables that is set,
/// a file's contents when it names one.
fn token(config: &Config) -> Option<SecretString> {
    match config.tokens.first()? {
        TokenSource::Value { token, .. } => Some(SecretString::from(token.as_str())),
        // The same checks as the server's (a small regular file only), so a FIFO cannot hang the runtime's start.
        TokenSource::File { path, .. } => {
            crate::token::read_file(path).ok().map(SecretString::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::ExposeSecret;
    use secretcache_client::{field, GetSecretValueBody};

    use secretcache_client::{ResultMetadata, SecretText};

    use crate::secret::SecretBody;

    fn os(items: &[&str]) -> Vec<OsString> {
        items.iter().map(OsString::from).collect()
    }

    #[test]
    fn sdk_endpoints_point_at_the_extension_unless_the_function_sets_its_own() {
        let env = |pairs: &[(&str, &str)]| secretcache_client::env::from_pairs(pairs);
        assert!(sdk_endpoints(&env(&[]), 2773).is_empty(), "off by default");
        assert!(sdk_endpoints(&env(&[(SDK_ENDPOINTS, "false")]), 2773).is_empty());
        assert_eq!(
            sdk_endpoints(&env(&[(SDK_ENDPOINTS, "true")]), 2775),
            [
                (
                    AWS_ENDPOINT_URL_SECRETS_MANAGER,
                    "http://127.0.0.1:2775".to_owned()
                ),
                (AWS_ENDPOINT_URL_SSM, "http://127.0.0.1:2775".to_owned()),
            ]
        );
        let own = env(&[
            (SDK_ENDPOINTS, "TRUE"),
            (AWS_ENDPOINT_URL_SSM, "https://ssm.example"),
        ]);
        assert_eq!(
            sdk_endpoints(&own, 2773),
            [(
                AWS_ENDPOINT_URL_SECRETS_MANAGER,
                "http://127.0.0.1:2773".to_owned()
            )]
        );
    }

    #[test]
    fn the_mode_is_exec_and_everything_after_it_is_the_command() {
        assert_eq!(requested(os(&["secretcache"])), None);
        assert_eq!(requested(os(&["secretcache", "ping"])), None);
        assert_eq!(requested(os(&["secretcache", "--config", "exec"])), None);
        assert_eq!(requested(os(&["secretcache", "exec"])), Some(vec![]));
        assert_eq!(requested(os(&["secretcache", "exec", "--"])), Some(vec![]));
        assert_eq!(
            requested(os(&[
                "secretcache",
                "exec",
                "--",
                "python3",
                "-m",
                "awslambdaric"
            ])),
            Some(os(&["python3", "-m", "awslambdaric"]))
        );
        assert_eq!(
            requested(os(&["secretcache", "exec", "./bootstrap", "--", "-x"])),
            Some(os(&["./bootstrap", "--", "-x"])),
            "only the first -- is ours"
        );
        assert_eq!(
            requested(os(&[
                "/opt/extensions/secretcache",
                "exec",
                "--",
                "--",
                "a"
            ])),
            Some(os(&["--", "a"]))
        );
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'a', 0xff]);
        assert_eq!(
            requested(vec!["s".into(), "exec".into(), odd.clone()]),
            Some(vec![odd]),
            "arguments that are not UTF-8 pass through"
        );
    }

    #[test]
    fn scan_takes_references_reports_malformed_ones_and_leaves_the_rest() {
        use std::os::unix::ffi::OsStringExt;
        let vars: Vec<(OsString, OsString)> = vec![
            ("DB_PASSWORD".into(), "secretcache:prod/db#password".into()),
            ("PLAIN".into(), "hunter2".into()),
            ("EMPTY".into(), "".into()),
            ("URL".into(), "postgres://secretcache:x@h/db".into()),
            ("BAD".into(), "secretcache:prod db".into()),
            ("TYPO".into(), "SecretCache:prod/db".into()),
            ("CONFIG".into(), "secretcache:ssm:/app/config#url".into()),
            (
                "BINARY".into(),
                OsString::from_vec(b"secretcache:\xff".to_vec()),
            ),
            (
                "NOT_OURS".into(),
                OsString::from_vec(b"\xffsecretcache:x".to_vec()),
            ),
            (
                OsString::from_vec(b"\xff".to_vec()),
                "secretcache:ignored".into(),
            ),
        ];
        let found = scan(vars);
        let names: Vec<&str> = found.references.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["DB_PASSWORD", "CONFIG"]);
        assert_eq!(
            found.references[0].1.to_string(),
            "secretcache:prod/db#password"
        );
        let failed: Vec<(&str, String)> = found
            .failures
            .iter()
            .map(|f| (f.variable.as_str(), f.reason.to_string()))
            .collect();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed[0].0, "BAD");
        assert!(failed[0].1.contains("character 17"), "{failed:?}");
        assert_eq!(
            failed[1],
            ("BINARY", "not a valid reference: it is not UTF-8".into())
        );
        assert_eq!(found.near_misses, ["TYPO"]);
    }

    #[test]
    fn the_clients_field_rule_is_the_extensions() {
        use crate::respond::{project, Kind};
        let secret =
            r#"{"username":"app","password":"p\"w","port":5432,"tags":[1, 2],"on":true,"n":null}"#;
        let stages = ["AWSCURRENT".to_owned()];
        let body = GetSecretValueBody {
            arn: None,
            created_date: None,
            name: Some("db".into()),
            secret_binary: None,
            secret_string: Some(SecretText::borrowed(secret)),
            version_id: None,
            version_stages: Some(std::borrow::Cow::Borrowed(&stages[..])),
            result_metadata: ResultMetadata {},
        };
        let body = SecretBody::new(serde_json::to_vec(&body).expect("json"));
        for field in [
            "username", "password", "port", "tags", "on", "n", "missing", "Password",
        ] {
            let theirs = project(&body, Kind::Secret, field)
                .map(|b| String::from_utf8(b.bytes().to_vec()).expect("utf8"))
                .map_err(|e| e.to_string());
            let ours = field::project(secret, field)
                .map(|s| s.expose_secret().to_owned())
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{field}");
        }
        for not_an_object in ["plain", "[1]", "42"] {
            let theirs = serde_json::json!({ "SecretString": not_an_object }).to_string();
            let theirs = project(&SecretBody::new(theirs.into_bytes()), Kind::Secret, "k")
                .map(|_| ())
                .map_err(|e| e.to_string());
            let ours = field::project(not_an_object, "k")
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{not_an_object}");
        }
    }
}
