//! The client against a real HTTP server on `127.0.0.1:0`: a tiny hyper server that stands in for the extension only
//! to script the statuses and bodies the real one gives (the whole-system tests in `tests/` run the real one).
//!
//! Time is tokio's: the tests that wait (the cold-start retry, the timeout) pause the clock, and tokio advances it
//! whenever every task is waiting, so they take no real time and their bounds are exact.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use secretcache_client::body::ResultMetadata;
use secretcache_client::contract::stage;
use secretcache_client::{
    Candidate, Client, Error, ExposeSecret, GetParameterBody, GetSecretValueBody, Parameter,
    SecretText, TOKEN_HEADER,
};
use tokio::net::TcpListener;
use tokio::time::Instant;

const TOKEN: &str = "session-token";

/// What the stub answers: a status and a body, or nothing ever.
#[derive(Clone)]
enum Answer {
    With(u16, Vec<u8>),
    Never,
}

fn answer(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    Answer::With(status, body.into())
}

type Script = dyn Fn(&str, usize) -> Answer + Send + Sync;

/// One request as the stub saw it: its path and query, and its token header.
type Seen = (String, Option<String>);

/// The stand-in: answers each request as `script(path_and_query, index)` says, and records what it was asked.
struct Stub {
    port: u16,
    /// `(path and query, token header)` of every request, in order.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    async fn start(script: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        Stub::serve(listener, Arc::new(script))
    }

    fn serve(listener: TcpListener, script: Arc<Script>) -> Stub {
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, log) = (Arc::clone(&script), Arc::clone(&log));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let target = req
                            .uri()
                            .path_and_query()
                            .map_or_else(String::new, |p| p.as_str().to_owned());
                        let token = req
                            .headers()
                            .get(TOKEN_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let index = {
                            let mut log = log.lock().expect("log");
                            log.push((target.clone(), token));
                            log.len() - 1
                        };
                        let answer = script(&target, index);
                        async move {
                            let (status, body) = match answer {
                                Answer::With(status, body) => (status, body),
                                Answer::Never => std::future::pending().await,
                            };
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() =
                                hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Stub { port, seen }
    }

    fn client(&self) -> Client {
        Client::builder().port(self.port).token(TOKEN).build()
    }

    fn targets(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("log")
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// A secret body written exactly as the extension writes one: borrowed from the SDK's output, then serialized.
fn extension_secret_body(version: &str, stages: &[String], secret: &str) -> Vec<u8> {
    let body = GetSecretValueBody {
        arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into()),
        created_date: Some("2022-11-16T08:22:40.499Z".into()),
        name: Some("db".into()),
        secret_binary: None,
        secret_string: Some(SecretText::borrowed(secret)),
        version_id: Some(version.into()),
        version_stages: Some(Cow::Borrowed(stages)),
        result_metadata: ResultMetadata {},
    };
    serde_json::to_vec(&body).expect("serializes")
}

fn error_body(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&secretcache_client::ErrorBody {
        kind: kind.into(),
        message: message.into(),
    })
    .expect("serializes")
}

#[tokio::test]
async fn what_the_extension_writes_the_client_reads() {
    let stages = vec![stage::AWSCURRENT.to_owned()];
    let secret_json = r#"{"username":"app","password":"pw \"quoted\" \u00e9"}"#;
    let written = extension_secret_body("v1", &stages, secret_json);
    let served = written.clone();
    let stub = Stub::start(move |_, _| answer(200, served.clone())).await;
    let client = stub.client();

    let read = client.secret("db").send().await.expect("a secret");
    let expected: GetSecretValueBody = serde_json::from_slice(&written).expect("parses");
    assert_eq!(read, expected);
    assert_eq!(read.version_stages.as_deref(), Some(&stages[..]));
    assert_eq!(
        read.into_secret_string().expect("text").expose_secret(),
        secret_json
    );
    assert_eq!(
        *stub.seen.lock().expect("log"),
        vec![(
            "/secretsmanager/get?secretId=db".to_owned(),
            Some(TOKEN.to_owned())
        )],
        "the token goes in the header"
    );
}

#[tokio::test]
async fn a_parameter_is_read_with_decryption() {
    let written = GetParameterBody {
        parameter: Some(Parameter {
            arn: Some("arn:aws:ssm:us-east-1:123456789012:parameter/db/url".into()),
            data_type: Some("text".into()),
            last_modified_date: Some("2024-01-01T00:00:00.000Z".into()),
            name: Some("/db/url".into()),
            selector: None,
            source_result: None,
            r#type: Some("SecureString".into()),
            value: Some(SecretText::borrowed("postgres://u:pw@h/d")),
            version: 4,
        }),
        result_metadata: ResultMetadata {},
    };
    let served = serde_json::to_vec(&written).expect("serializes");
    let stub = Stub::start(move |_, _| answer(200, served.clone())).await;

    let read = stub
        .client()
        .parameter("/db/url", true)
        .refresh_now(true)
        .send()
        .await
        .expect("a parameter");
    assert_eq!(read, written);
    assert_eq!(
        read.into_value().expect("a value").expose_secret(),
        "postgres://u:pw@h/d"
    );
    assert_eq!(
        stub.targets(),
        ["/systemsmanager/parameters/get?name=%2Fdb%2Furl&withDecryption=true&refreshNow=true"]
    );
}

#[tokio::test]
async fn errors_keep_the_status_and_code_and_never_the_body() {
    let cases = [
        (
            404,
            error_body("ResourceNotFoundException", "no secret hunter2"),
            "ResourceNotFoundException",
        ),
        (
            403,
            error_body("AccessDeniedException", "denied hunter2"),
            "AccessDeniedException",
        ),
        (401, error_body("MissingToken", "hunter2"), "MissingToken"),
        (
            429,
            error_body("ThrottlingException", "slow down hunter2"),
            "ThrottlingException",
        ),
        (502, b"<html>hunter2</html>".to_vec(), "unknown"),
        (504, error_body("<script>hunter2", "x"), "unknown"),
    ];
    for (status, body, code) in cases {
        let stub = Stub::start(move |_, _| answer(status, body.clone())).await;
        let e = stub
            .client()
            .secret("db")
            .send()
            .await
            .expect_err("an error");
        assert_eq!(e.status(), Some(status));
        assert_eq!(e.code(), Some(code));
        assert_eq!(e.is_not_found(), status == 404);
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains(&status.to_string()), "{text}");
        }
    }
}

#[tokio::test]
async fn a_200_that_is_not_the_body_is_an_error_that_does_not_quote_it() {
    let stub = Stub::start(|_, _| answer(200, "{\"SecretString\": hunter2")).await;
    let e = stub
        .client()
        .secret("db")
        .send()
        .await
        .expect_err("invalid");
    assert_eq!(
        e,
        Error::InvalidBody {
            expected: "GetSecretValue"
        }
    );
    assert!(!e.to_string().contains("hunter2"));

    let stub = Stub::start(|_, _| answer(200, vec![b' '; 300 * 1024])).await;
    let e = stub
        .client()
        .secret("db")
        .send()
        .await
        .expect_err("too large");
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
}

#[tokio::test]
async fn without_a_token_nothing_is_sent() {
    let stub = Stub::start(|_, _| answer(200, "{}")).await;
    let client = Client::builder().port(stub.port).build();
    assert_eq!(
        client.secret("db").send().await.expect_err("no token"),
        Error::NoToken
    );
    assert!(stub.targets().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_is_bounded_by_its_timeout() {
    let stub = Stub::start(|_, _| Answer::Never).await;
    let client = Client::builder()
        .port(stub.port)
        .token(TOKEN)
        .timeout(Duration::from_millis(1500))
        .build();
    let started = Instant::now();
    let e = client.secret("db").send().await.expect_err("times out");
    assert_eq!(e, Error::Timeout(Duration::from_millis(1500)));
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert_eq!(stub.targets().len(), 1, "a timeout is not retried");
}

/// A port that nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test(start_paused = true)]
async fn nothing_listening_is_retried_then_unreachable_in_bounded_time() {
    let port = closed_port().await;
    let client = Client::builder()
        .port(port)
        .token(TOKEN)
        .startup_wait(Duration::from_secs(1))
        .build();
    let started = Instant::now();
    let e = client.secret("db").send().await.expect_err("unreachable");
    assert_eq!(e, Error::Unreachable { port });
    // Pauses of 20, 40, 80, 160, 250 and 250 ms: the next one would end past the second.
    assert_eq!(started.elapsed(), Duration::from_millis(800));

    let impatient = Client::builder()
        .port(port)
        .token(TOKEN)
        .startup_wait(Duration::ZERO)
        .build();
    let started = Instant::now();
    assert_eq!(
        impatient.secret("db").send().await,
        Err(Error::Unreachable { port })
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait, no retry");
}

#[tokio::test(start_paused = true)]
async fn an_extension_that_starts_listening_late_is_waited_for() {
    let port = closed_port().await;
    let stages = vec![stage::AWSCURRENT.to_owned()];
    let body = extension_secret_body("v1", &stages, "s");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("rebind");
        let stub = Stub::serve(
            listener,
            Arc::new(move |_: &str, _| answer(200, body.clone())),
        );
        // Keep the stub's log alive with the task.
        std::future::pending::<()>().await;
        drop(stub);
    });
    let client = Client::builder().port(port).token(TOKEN).build();
    let started = Instant::now();
    let read = client
        .secret("db")
        .send()
        .await
        .expect("served once listening");
    assert_eq!(read.version_id.as_deref(), Some("v1"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited <= Duration::from_millis(300),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_503_while_warming_up_is_retried_and_then_given_up_on() {
    let stages = vec![stage::AWSCURRENT.to_owned()];
    let body = extension_secret_body("v1", &stages, "s");
    let stub = Stub::start(move |_, i| {
        if i < 2 {
            answer(503, error_body("ServiceUnavailable", "warming up"))
        } else {
            answer(200, body.clone())
        }
    })
    .await;
    let read = stub
        .client()
        .secret("db")
        .send()
        .await
        .expect("the third answer");
    assert_eq!(read.version_id.as_deref(), Some("v1"));
    assert_eq!(stub.targets().len(), 3);

    let stub = Stub::start(|_, _| answer(503, error_body("ServiceUnavailable", "full"))).await;
    let client = Client::builder()
        .port(stub.port)
        .token(TOKEN)
        .startup_wait(Duration::from_secs(1))
        .build();
    let started = Instant::now();
    let e = client.secret("db").send().await.expect_err("still 503");
    assert_eq!(
        (e.status(), e.code()),
        (Some(503), Some("ServiceUnavailable"))
    );
    assert_eq!(started.elapsed(), Duration::from_millis(800));
    assert_eq!(
        stub.targets().len(),
        7,
        "at 0, 20, 60, 140, 300, 550 and 800 ms"
    );

    // Any other error is answered at once.
    let stub = Stub::start(|_, _| answer(500, error_body("InternalFailure", "bug"))).await;
    let started = Instant::now();
    assert_eq!(
        stub.client()
            .secret("db")
            .send()
            .await
            .expect_err("500")
            .status(),
        Some(500)
    );
    assert_eq!(
        (started.elapsed(), stub.targets().len()),
        (Duration::ZERO, 1)
    );
}

const REFRESH: &str = "/secretsmanager/get?secretId=db&refreshNow=true";
const PENDING: &str = "/secretsmanager/get?secretId=db&versionStage=AWSPENDING&refreshNow=true";

#[tokio::test]
async fn rotation_tries_awscurrent_anew_then_awspending() {
    let current = vec![stage::AWSCURRENT.to_owned()];
    let pending = vec![stage::AWSPENDING.to_owned()];
    let (old, new) = (
        extension_secret_body("v1", &current, "old"),
        extension_secret_body("v2", &pending, "new"),
    );
    let stub = Stub::start(move |target, _| match target {
        REFRESH => answer(200, old.clone()),
        PENDING => answer(200, new.clone()),
        _ => answer(400, error_body("BadRequest", "unexpected")),
    })
    .await;
    let client = stub.client();
    let mut candidates = client.rotation("db");

    let (first, body) = candidates.next().await.expect("one");
    let body = body.expect("ok");
    assert_eq!(
        (first, body.version_id.as_deref()),
        (Candidate::Current, Some("v1"))
    );
    assert_eq!(stub.targets(), [REFRESH], "fetched one at a time");
    let (second, body) = candidates.next().await.expect("two");
    let body = body.expect("ok");
    assert_eq!(
        (second, body.version_id.as_deref()),
        (Candidate::Pending, Some("v2"))
    );
    assert_eq!(
        body.into_secret_string().expect("text").expose_secret(),
        "new"
    );
    assert!(candidates.next().await.is_none());
    assert_eq!(stub.targets(), [REFRESH, PENDING]);
    assert_eq!(Candidate::ORDER, [Candidate::Current, Candidate::Pending]);
    assert_eq!(
        (first.stage(), second.stage()),
        ("AWSCURRENT", "AWSPENDING")
    );
}

#[tokio::test]
async fn no_awspending_version_means_no_rotation_in_progress() {
    let current = vec![stage::AWSCURRENT.to_owned()];
    let old = extension_secret_body("v1", &current, "old");
    let stub = Stub::start(move |target, _| match target {
        REFRESH => answer(200, old.clone()),
        _ => answer(
            404,
            error_body("ResourceNotFoundException", "no AWSPENDING"),
        ),
    })
    .await;
    let client = stub.client();
    let mut candidates = client.rotation("db");
    let (only, fetched) = candidates.next().await.expect("one");
    assert_eq!(only, Candidate::Current);
    assert!(fetched.is_ok());
    assert!(
        candidates.next().await.is_none(),
        "a 404 for AWSPENDING ends it quietly"
    );
    assert_eq!(stub.targets(), [REFRESH, PENDING]);
}

#[tokio::test]
async fn an_error_is_yielded_once_and_ends_the_candidates() {
    let stub =
        Stub::start(|_, _| answer(404, error_body("ResourceNotFoundException", "gone"))).await;
    let client = stub.client();
    let mut candidates = client.rotation("db");
    let (which, fetched) = candidates.next().await.expect("the error");
    assert_eq!(which, Candidate::Current);
    let e = fetched.expect_err("404");
    assert!(
        e.is_not_found(),
        "a missing AWSCURRENT is an error, not the end: {e}"
    );
    assert!(candidates.next().await.is_none());
    assert_eq!(
        stub.targets(),
        [REFRESH],
        "AWSPENDING is not asked after an error"
    );
}
