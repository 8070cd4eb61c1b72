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
    use crate::reference;
    use secretcache_client::ExposeSecret;
    use secretcache_client::{field, GetSecretValueBody};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use secretcache_client::{GetParameterBody, Parameter, ResultMetadata, SecretText};
    use tokio_util::sync::CancellationToken;

    use crate::cache::{Cache, Fetched, Meta, Policy, Upstream};
    use crate::clock::SystemWallClock;
    use crate::error::UpstreamError;
    use crate::metrics::Metrics;
    use crate::request::{Key, VersionSelector};
    use crate::secret::SecretBody;
    use crate::server::App;
    use crate::token::Tokens;

    const TOKEN: &str = "session-token";

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

    /// Stands in for Secrets Manager and SSM behind the real cache and server: values by id, and a count of calls.
    #[derive(Default)]
    struct Fixture {
        /// By `id`, or `id|stage` for another version: a text secret, or `None` for a binary one.
        secrets: HashMap<String, Option<String>>,
        parameters: HashMap<String, String>,
        /// Ids that the role may not read.
        denied: Vec<String>,
        /// Upstream calls: one per fetch, one per batch.
        calls: AtomicUsize,
        /// The size of each batch call.
        batches: Mutex<Vec<usize>>,
    }

    impl Fixture {
        fn answer(&self, key: &Key) -> Result<Fetched, UpstreamError> {
            let not_found = |code: &str| UpstreamError::NotFound {
                code: code.into(),
                message: "not here".into(),
            };
            match key {
                Key::Secret(k) => {
                    if self.denied.contains(&k.secret_id) {
                        return Err(UpstreamError::AccessDenied {
                            code: "AccessDeniedException".into(),
                            message: "no".into(),
                        });
                    }
                    let lookup = match &k.selector {
                        VersionSelector::Current => k.secret_id.clone(),
                        VersionSelector::Stage(s) | VersionSelector::Id(s) => {
                            format!("{}|{s}", k.secret_id)
                        }
                        VersionSelector::IdAndStage(..) => return Err(not_found("x")),
                    };
                    let stored = self
                        .secrets
                        .get(&lookup)
                        .ok_or_else(|| not_found("ResourceNotFoundException"))?;
                    let arn = format!(
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf",
                        k.secret_id
                    );
                    let stages = ["AWSCURRENT".to_owned()];
                    let body = GetSecretValueBody {
                        arn: Some(arn.as_str().into()),
                        created_date: None,
                        name: Some(k.secret_id.as_str().into()),
                        secret_binary: stored.is_none().then(|| SecretText::borrowed("AAE=")),
                        secret_string: stored.as_deref().map(SecretText::borrowed),
                        version_id: Some("v1".into()),
                        version_stages: Some(std::borrow::Cow::Borrowed(&stages[..])),
                        result_metadata: ResultMetadata {},
                    };
                    Ok(Fetched {
                        body: SecretBody::new(serde_json::to_vec(&body).expect("json")),
                        meta: Meta {
                            arn: Some(arn.clone()),
                            name: Some(k.secret_id.clone()),
                            version: Some("v1".into()),
                        },
                    })
                }
                Key::Parameter(k) => {
                    let value = self
                        .parameters
                        .get(&k.name)
                        .ok_or_else(|| not_found("ParameterNotFound"))?;
                    let body = GetParameterBody {
                        parameter: Some(Parameter {
                            arn: None,
                            data_type: Some("text".into()),
                            last_modified_date: None,
                            name: Some(k.name.as_str().into()),
                            selector: None,
                            source_result: None,
                            r#type: Some("SecureString".into()),
                            value: Some(SecretText::borrowed(value)),
                            version: 1,
                        }),
                        result_metadata: ResultMetadata {},
                    };
                    Ok(Fetched {
                        body: SecretBody::new(serde_json::to_vec(&body).expect("json")),
                        meta: Meta::default(),
                    })
                }
            }
        }
    }

    impl Upstream for Arc<Fixture> {
        async fn fetch(&self, key: &Key) -> Result<Fetched, UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer(key)
        }

        async fn fetch_batch(&self, keys: &[Key]) -> Vec<Result<Fetched, UpstreamError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.batches.lock().expect("lock").push(keys.len());
            keys.iter().map(|k| self.answer(k)).collect()
        }
    }

    /// The real cache and server on 127.0.0.1:0 in front of `fixture`; dropped, it stops.
    struct Extension {
        port: u16,
        shutdown: CancellationToken,
    }

    impl Drop for Extension {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    async fn extension(fixture: &Arc<Fixture>) -> Extension {
        let metrics = Arc::new(Metrics::default());
        let policy = Policy {
            secret_ttl: Duration::from_secs(300),
            parameter_ttl: Duration::from_secs(300),
            refresh_ahead_percent: 0,
            max_stale: Duration::ZERO,
            max_entries: 1000,
            max_bytes: 1 << 20,
            negative_ttl: Duration::ZERO,
            refresh_now_interval: Duration::ZERO,
            forget_on_pause: false,
            home_region: Some("us-east-1".into()),
            max_pending_fetches: 0,
        };
        let cache = Cache::new(
            Arc::clone(fixture),
            SystemWallClock,
            policy,
            Arc::clone(&metrics),
        );
        let tokens = Tokens::new(vec![TokenSource::Value {
            variable: "AWS_SESSION_TOKEN".into(),
            token: TOKEN.into(),
        }]);
        let app = Arc::new(App::new(
            cache,
            tokens,
            &[secretcache_client::TOKEN_HEADER.to_owned()],
            "/v1/".into(),
            metrics,
        ));
        let listeners = crate::server::bind(0).await.expect("bind");
        let port = listeners[0].local_addr().expect("addr").port();
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::server::serve(listeners, app, 64, shutdown.clone()));
        Extension { port, shutdown }
    }

    fn client(port: u16, token: &str) -> Client {
        Client::builder()
            .port(port)
            .token(token)
            .timeout(BUDGET)
            .startup_wait(STARTUP_WAIT)
            .build()
    }

    fn references(pairs: &[(&str, &str)]) -> Vec<(String, Reference)> {
        pairs
            .iter()
            .map(|(name, text)| {
                let r = reference::parse(text)
                    .expect("a reference")
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                ((*name).to_owned(), r)
            })
            .collect()
    }

    async fn run(
        port: u16,
        token: &str,
        pairs: &[(&str, &str)],
    ) -> Vec<(String, Result<String, String>)> {
        let client = client(port, token);
        resolve(&client, &references(pairs), Instant::now() + BUDGET, BUDGET)
            .await
            .into_iter()
            .map(|(name, r)| {
                (
                    name,
                    r.map(|v| v.expose_secret().to_owned())
                        .map_err(|e| e.to_string()),
                )
            })
            .collect()
    }

    const DB: &str = r#"{"username":"app","password":"pw-1","port":5432}"#;

    #[tokio::test]
    async fn every_value_is_read_once_current_secrets_and_parameters_in_one_batch_each() {
        let fixture = Arc::new(Fixture {
            secrets: HashMap::from([
                ("prod/db".into(), Some(DB.into())),
                ("api-key".into(), Some("key-1".into())),
                ("alice@example.com".into(), Some("mail-1".into())),
                (
                    "prod/db|AWSPENDING".into(),
                    Some(r#"{"password":"pw-2"}"#.into()),
                ),
            ]),
            parameters: HashMap::from([
                ("/app/url".into(), "https://x".into()),
                ("/app/config".into(), r#"{"mode":"fast","n":3}"#.into()),
            ]),
            ..Fixture::default()
        });
        let ext = extension(&fixture).await;
        let got = run(
            ext.port,
            TOKEN,
            &[
                ("DB_USER", "secretcache:prod/db#username"),
                ("DB_PASSWORD", "secretcache:prod/db#password"),
                ("DB_PORT", "secretcache:prod/db#port"),
                ("DB_JSON", "secretcache:prod/db"),
                ("API_KEY", "secretcache:api-key"),
                ("MAIL", "secretcache:alice@example.com"),
                (
                    "NEXT_PASSWORD",
                    "secretcache:prod/db?versionStage=AWSPENDING#password",
                ),
                ("URL", "secretcache:ssm:/app/url"),
                ("MODE", "secretcache:ssm:/app/config#mode"),
                ("N", "secretcache:ssm:/app/config#n"),
            ],
        )
        .await;
        let expected: Vec<(String, Result<String, String>)> = [
            ("DB_USER", "app"),
            ("DB_PASSWORD", "pw-1"),
            ("DB_PORT", "5432"),
            ("DB_JSON", DB),
            ("API_KEY", "key-1"),
            ("MAIL", "mail-1"),
            ("NEXT_PASSWORD", "pw-2"),
            ("URL", "https://x"),
            ("MODE", "fast"),
            ("N", "3"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), Ok((*v).to_owned())))
        .collect();
        assert_eq!(got, expected);
        // Three secrets in one batch, two parameters in another, the AWSPENDING version alone.
        let mut batches = fixture.batches.lock().expect("lock").clone();
        batches.sort();
        assert_eq!(batches, [2, 3]);
        assert_eq!(fixture.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn more_secrets_than_one_batch_takes_go_in_batches_of_twenty() {
        let ids: Vec<String> = (0..25).map(|i| format!("s{i:02}")).collect();
        let fixture = Arc::new(Fixture {
            secrets: ids
                .iter()
                .map(|id| (id.clone(), Some(format!("v-{id}"))))
                .collect(),
            ..Fixture::default()
        });
        let ext = extension(&fixture).await;
        let texts: Vec<(String, String)> = ids
            .iter()
            .map(|id| (format!("V_{id}"), format!("secretcache:{id}")))
            .collect();
        let pairs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let got = run(ext.port, TOKEN, &pairs).await;
        for ((name, value), id) in got.iter().zip(&ids) {
            assert_eq!(value.as_deref(), Ok(format!("v-{id}").as_str()), "{name}");
        }
        let mut batches = fixture.batches.lock().expect("lock").clone();
        batches.sort();
        assert_eq!(batches, [5, 20]);
    }

    #[tokio::test]
    async fn each_failure_names_its_reason_and_never_a_value() {
        let fixture = Arc::new(Fixture {
            secrets: HashMap::from([
                ("prod/db".into(), Some(DB.into())),
                ("plain".into(), Some("pw-plain".into())),
                ("binary".into(), None),
                ("nul".into(), Some("pw\u{0}nul".into())),
                ("nul-field".into(), Some(r#"{"k":"pw\u0000x"}"#.into())),
            ]),
            parameters: HashMap::from([("/app/url".into(), "https://pw-url".into())]),
            denied: vec!["locked".into()],
            ..Fixture::default()
        });
        let ext = extension(&fixture).await;
        let got = run(
            ext.port,
            TOKEN,
            &[
                ("OK", "secretcache:prod/db#password"),
                ("MISSING", "secretcache:nope"),
                ("DENIED", "secretcache:locked"),
                ("NO_FIELD", "secretcache:prod/db#pasword"),
                ("NOT_JSON", "secretcache:plain#password"),
                ("BINARY", "secretcache:binary"),
                ("NUL", "secretcache:nul"),
                ("NUL_FIELD", "secretcache:nul-field#k"),
                ("NO_VERSION", "secretcache:prod/db?versionStage=AWSPENDING"),
                ("NO_PARAMETER", "secretcache:ssm:/app/nope"),
                ("URL_FIELD", "secretcache:ssm:/app/url#x"),
            ],
        )
        .await;
        let reasons: HashMap<&str, &Result<String, String>> =
            got.iter().map(|(n, r)| (n.as_str(), r)).collect();
        assert_eq!(reasons["OK"], &Ok("pw-1".to_owned()));
        let expect = |name: &str, part: &str| {
            let reason = reasons[name].as_ref().expect_err(name);
            assert!(reason.contains(part), "{name}: {reason}");
            for value in ["pw-", "pw\u{0}", "5432", "app", "https"] {
                assert!(!reason.contains(value), "{name}: {reason}");
            }
        };
        expect("MISSING", "not found (ResourceNotFoundException)");
        expect("DENIED", "access denied (AccessDeniedException)");
        expect("NO_FIELD", "has no field \"pasword\"");
        expect("NOT_JSON", "not a JSON object");
        expect("BINARY", "binary secret");
        expect("NUL", "NUL byte");
        expect("NUL_FIELD", "NUL byte");
        expect("NO_VERSION", "not found (ResourceNotFoundException)");
        expect("NO_PARAMETER", "not found (ParameterNotFound)");
        expect("URL_FIELD", "not a JSON object");
    }

    #[tokio::test]
    async fn a_token_the_extension_refuses_fails_every_reference() {
        let fixture = Arc::new(Fixture {
            secrets: HashMap::from([("a".into(), Some("x".into()))]),
            ..Fixture::default()
        });
        let ext = extension(&fixture).await;
        let got = run(
            ext.port,
            "wrong",
            &[("A", "secretcache:a"), ("B", "secretcache:ssm:/b")],
        )
        .await;
        for (name, r) in &got {
            let reason = r.as_ref().expect_err(name);
            assert!(
                reason.contains("403 (InvalidAuthenticationTokenException)"),
                "{name}: {reason}"
            );
        }
        assert_eq!(fixture.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_extension_that_is_not_there_is_waited_for_briefly_then_named() {
        // A port that was free a moment ago: nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let started = Instant::now();
        let got = run(port, TOKEN, &[("A", "secretcache:a")]).await;
        let waited = started.elapsed();
        let reason = got[0].1.as_ref().expect_err("unreachable");
        assert!(reason.contains("is not answering"), "{reason}");
        assert!(
            waited >= STARTUP_WAIT / 2 && waited <= STARTUP_WAIT,
            "the cold-start retry waits up to {STARTUP_WAIT:?}, not {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_extension_that_never_answers_fails_at_the_deadline() {
        // Accepts, reads, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let client = client(port, TOKEN);
        let budget = Duration::from_millis(1500);
        let started = Instant::now();
        let got = resolve(
            &client,
            &references(&[
                ("A", "secretcache:a"),
                ("B", "secretcache:ssm:/b"),
                ("C", "secretcache:c?versionId=v"),
            ]),
            started + budget,
            budget,
        )
        .await;
        assert_eq!(started.elapsed(), budget);
        for (name, r) in got {
            let reason = r.expect_err(&name).to_string();
            assert_eq!(reason, "not resolved within 1.5 s", "{name}");
        }
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
