//! The built `items-function` binary as Lambda runs it: a child process polling a Lambda Runtime API stand-in for
//! API Gateway events, with the real extension, moto and PostgreSQL behind it, and its stdout captured.
//!
//! The in-process tests cover behaviour in depth; these prove the wiring of `main` (config read once, tracing set
//! up, one `App` across invocations) and replay the original bug exactly: in Lambda, with the seed note's broken
//! environment and the default `./data/collections.db`, the answer must be a 503 naming `DB_SECRET_ARN`, and no
//! SQLite file may appear in the working directory.
//!
//! The stand-in implements `invocation/next`, `invocation/{id}/response` and `invocation/{id}/error` from the public
//! Runtime API documentation, enough for one function process.

#[path = "../../function/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use secretcache_tests::extension::Standalone;
use secretcache_tests::moto::Moto;
use secretcache_tests::postgres::PgCluster;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A Lambda Runtime API stand-in: the test pushes events, the function long-polls for them and posts responses.
struct RuntimeApi {
    port: u16,
    events: mpsc::UnboundedSender<(String, Value)>,
    pending: Pending,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::unbounded_channel::<(String, Value)>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let pending: Pending = Arc::default();
        let task = {
            let pending = Arc::clone(&pending);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let rx = Arc::clone(&rx);
                    let pending = Arc::clone(&pending);
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                let rx = Arc::clone(&rx);
                                let pending = Arc::clone(&pending);
                                async move { Ok::<_, Infallible>(serve(req, rx, pending).await) }
                            });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        RuntimeApi {
            port,
            events: tx,
            pending,
            task,
        }
    }

    /// Sends one API Gateway event and waits for the function's response (the API Gateway v2 response JSON).
    async fn invoke(&self, event: &Value) -> Value {
        let id = format!("req-{}", secretcache_tests::random_token());
        let (done, wait) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), done);
        }
        self.events
            .send((id, event.clone()))
            .expect("the stand-in is running");
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the function answered within 30 s")
            .expect("a response")
    }
}

async fn serve(
    req: hyper::Request<hyper::body::Incoming>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    pending: Pending,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == "/2018-06-01/runtime/invocation/next" {
        let Some((id, event)) = rx.lock().await.recv().await else {
            return reply(500, "closed".into());
        };
        let deadline = secretcache_tests::extensions_api::epoch_millis() + 30_000;
        let mut r = reply(200, event.to_string());
        let h = r.headers_mut();
        h.insert("lambda-runtime-aws-request-id", header(&id));
        h.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
        h.insert(
            "lambda-runtime-invoked-function-arn",
            header("arn:aws:lambda:us-east-1:123456789012:function:items"),
        );
        h.insert(
            "lambda-runtime-trace-id",
            header("Root=1-65f1c2a4-3b1f4a5c6d7e8f9012345678"),
        );
        return r;
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["2018-06-01", "runtime", "invocation", id, outcome] = parts.as_slice() {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let value = if *outcome == "error" {
            serde_json::json!({"runtimeError": value})
        } else {
            value
        };
        if let Some(done) = pending.lock().ok().and_then(|mut p| p.remove(*id)) {
            let _ = done.send(value);
        }
        return reply(202, "{}".into());
    }
    reply(404, "{}".into())
}

fn header(v: &str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(v).expect("header value")
}

fn reply(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}

/// The function binary under the stand-in, with exactly `env` plus Lambda's own variables; killed on drop.
struct Function {
    _child: Child,
    logs: Arc<Mutex<String>>,
}

impl Function {
    fn spawn(api: &RuntimeApi, cwd: &Path, env: &[(&str, &str)]) -> Function {
        let mut cmd = Command::new(secretcache_tests::bin_path("items-function"));
        cmd.env_clear()
            .current_dir(cwd)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{}", api.port))
            .env(
                "AWS_LAMBDA_FUNCTION_NAME",
                "CollectionsCompute-dev-APILambda",
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_LEVEL", "DEBUG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn items-function");
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut l) = logs.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        Function {
            _child: child,
            logs,
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn status_and_body(response: &Value) -> (u64, Value) {
    let status = response["statusCode"].as_u64().unwrap_or(0);
    let body = response["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).expect("JSON body"))
        .unwrap_or(Value::Null);
    (status, body)
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "items-bin-{tag}-{}",
            secretcache_tests::random_token()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_original_bug_in_lambda_is_a_503_naming_db_secret_arn_and_no_sqlite_file() {
    let api = RuntimeApi::start().await;
    let cwd = TempDir::new("bug");
    // The seed note's environment before the fix: host, port and name, and nothing to log in with.
    let function = Function::spawn(
        &api,
        &cwd.0,
        &[
            (
                "DATABASE_HOST",
                "collections.abc.us-east-1.rds.amazonaws.com",
            ),
            ("DATABASE_PORT", "5432"),
            ("DATABASE_NAME", "collections"),
        ],
    );
    let response = api
        .invoke(&common::event("GET", "/items?limit=50&offset=0", None))
        .await;
    let (status, body) = status_and_body(&response);
    assert_eq!(status, 503, "{response}\nlogs:\n{}", function.logs());
    // The GET fixture carries a JWT authorizer's claims: an authenticated caller is told what to set.
    assert_eq!(body["missing"], "DB_SECRET_ARN");
    assert!(
        function.logs().lines().any(|l| l.contains("ERROR")
            && l.contains("RuntimeError: DB_SECRET_ARN environment variable not set")),
        "the seed's failure line names the variable:\n{}",
        function.logs()
    );
    assert!(
        !cwd.0.join("data").exists(),
        "the default ./data/collections.db must not be created in Lambda"
    );
}

#[tokio::test]
async fn the_binary_serves_items_with_credentials_from_the_extension() {
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("bin").await;
    let moto = Moto::start().await;
    let arn = moto
        .sm_client()
        .await
        .create_secret()
        .name("collections/bin/db")
        .secret_string(db.secret_json())
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .expect("ARN")
        .to_owned();
    let ext = Standalone::spawn(&moto, &[]).await;
    let api = RuntimeApi::start().await;
    let cwd = TempDir::new("ok");
    let port = ext.port().to_string();
    let token = ext.token();
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    let function = Function::spawn(
        &api,
        &cwd.0,
        &[
            ("DB_SECRET_ARN", &arn),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
            ("AWS_SESSION_TOKEN", &token),
            ("DATABASE_SSLMODE", "verify-full"),
            ("DATABASE_SSL_ROOT_CERT", &ca),
        ],
    );

    let mut responses = Vec::new();
    for (method, path, body, expected) in [
        ("GET", "/health", None, 200),
        ("POST", "/items", Some(r#"{"name":"from the binary"}"#), 201),
        ("GET", "/items?limit=50&offset=0", None, 200),
        ("GET", "/items?limit=0", None, 400),
        ("GET", "/items/424242", None, 404),
    ] {
        let response = api.invoke(&common::event(method, path, body)).await;
        let (status, _) = status_and_body(&response);
        assert_eq!(
            status,
            expected,
            "{method} {path}: {response}\nlogs:\n{}",
            function.logs()
        );
        responses.push(response);
    }
    let (_, page) = status_and_body(&responses[2]);
    assert_eq!(page[0]["name"], "from the binary", "a JSON array of items");
    assert_eq!(
        responses[2]["headers"]["x-total-count"], "1",
        "{}",
        responses[2]
    );

    let logs = function.logs();
    assert!(
        logs.contains("DB_SECRET_ARN"),
        "the source is logged by name:\n{logs}"
    );
    // One pool across invocations: the migrations ran once.
    assert_eq!(logs.matches("database ready").count(), 1, "{logs}");
    for text in [logs, ext.logs(), Value::Array(responses).to_string()] {
        assert!(!text.contains(&db.password), "the password leaked");
    }
}
