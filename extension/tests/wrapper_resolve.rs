//! The exec wrapper's resolution (`secretcache exec`) against the real cache and server on a loopback port, with an
//! upstream that stands in for Secrets Manager and SSM (a fixture that counts its calls): each value read once, in
//! batches; every failure named with its reason and never a value; a refused token; an extension that is not there,
//! or never answers, bounded by the wrapper's deadline. Driven through the library's `embed` module.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secretcache::embed::wrapper::{parse_reference, resolve, Reference, BUDGET, STARTUP_WAIT};
use secretcache::embed::{
    bind, serve, App, Cache, Fetched, Key, Meta, Metrics, Policy, SecretBody, SystemWallClock,
    TokenSource, Tokens, Upstream, UpstreamError, VersionSelector,
};
use secretcache_client::{
    Client, ExposeSecret, GetParameterBody, GetSecretValueBody, Parameter, ResultMetadata,
    SecretText,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "session-token";

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

/// The fixture as the cache's upstream (the test keeps its own handle on it, to count calls).
struct Stand(Arc<Fixture>);

impl Upstream for Stand {
    async fn fetch(&self, key: &Key) -> Result<Fetched, UpstreamError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.answer(key)
    }

    async fn fetch_batch(&self, keys: &[Key]) -> Vec<Result<Fetched, UpstreamError>> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.batches.lock().expect("lock").push(keys.len());
        keys.iter().map(|k| self.0.answer(k)).collect()
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
        Stand(Arc::clone(fixture)),
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
    let listeners = bind(0).await.expect("bind");
    let port = listeners[0].local_addr().expect("addr").port();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listeners, app, 64, shutdown.clone()));
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
            let r = parse_reference(text)
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
