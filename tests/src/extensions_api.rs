//! A minimal Lambda Extensions API stand-in for lifecycle tests of one extension.
//!
//! It implements `register`, `event/next`, `init/error` and `exit/error` from the public Extensions API
//! documentation. At register time it probes whether the extension's HTTP port is already open, which is the
//! "ready before the function's init code runs" promise. Events are pushed by the test.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Notify};

/// What the extension said when it registered.
#[derive(Debug, Clone)]
pub struct Registration {
    /// `Lambda-Extension-Name`.
    pub name: String,
    /// The events it asked for.
    pub events: Vec<String>,
    /// Whether its HTTP port accepted a connection at the moment it registered.
    pub port_open: bool,
}

#[derive(Debug, Default)]
struct State {
    registration: Option<Registration>,
    next_calls: usize,
    errors: Vec<String>,
}

/// A running stand-in; stops when dropped.
#[derive(Debug)]
pub struct ExtensionsApi {
    port: u16,
    state: Arc<Mutex<State>>,
    events: mpsc::UnboundedSender<serde_json::Value>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ExtensionsApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Milliseconds since the epoch, the unit of `deadlineMs`.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ExtensionsApi {
    /// Starts the stand-in; `probe_port` is the extension's HTTP port, probed at register time.
    pub async fn start(probe_port: u16) -> ExtensionsApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let (st, ch) = (Arc::clone(&state), Arc::clone(&changed));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, ch, rx) = (Arc::clone(&st), Arc::clone(&ch), Arc::clone(&rx));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (st, ch, rx) = (Arc::clone(&st), Arc::clone(&ch), Arc::clone(&rx));
                        async move { Ok::<_, Infallible>(serve(req, probe_port, &st, &ch, &rx).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ExtensionsApi {
            port,
            state,
            events: tx,
            changed,
            task,
        }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registration, once it happened.
    pub fn registration(&self) -> Option<Registration> {
        self.state.lock().ok().and_then(|s| s.registration.clone())
    }

    /// Errors the extension reported through `init/error` or `exit/error`.
    pub fn errors(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.errors.clone())
            .unwrap_or_default()
    }

    /// Waits until `event/next` has been called `n` times in all; false on timeout.
    pub async fn wait_next_calls(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if self
                .state
                .lock()
                .map(|s| s.next_calls >= n)
                .unwrap_or(false)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Queues an INVOKE event with a real deadline.
    pub fn invoke(&self, request_id: &str, timeout: Duration) {
        let _ = self.events.send(serde_json::json!({
            "eventType": "INVOKE",
            "deadlineMs": epoch_millis() + timeout.as_millis() as u64,
            "requestId": request_id,
            "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:test",
            "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-00000000-000000000000000000000000"},
        }));
    }

    /// Queues a SHUTDOWN event whose deadline is `within` from now; returns that deadline (epoch ms).
    pub fn shutdown(&self, within: Duration) -> u64 {
        let deadline = epoch_millis() + within.as_millis() as u64;
        let _ = self.events.send(serde_json::json!({
            "eventType": "SHUTDOWN",
            "shutdownReason": "SPINDOWN",
            "deadlineMs": deadline,
        }));
        deadline
    }
}

async fn serve(
    req: http::Request<hyper::body::Incoming>,
    probe_port: u16,
    state: &Mutex<State>,
    changed: &Notify,
    events: &tokio::sync::Mutex<mpsc::UnboundedReceiver<serde_json::Value>>,
) -> http::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let name = req
        .headers()
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let reply = |status: u16, body: serde_json::Value| {
        let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        r.headers_mut().insert(
            "lambda-extension-identifier",
            http::HeaderValue::from_static("ext-0001"),
        );
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        r
    };
    match path.as_str() {
        "/2020-01-01/extension/register" => {
            let port_open = tokio::net::TcpStream::connect(("127.0.0.1", probe_port))
                .await
                .is_ok();
            let events = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["events"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect();
            if let Ok(mut s) = state.lock() {
                s.registration = Some(Registration {
                    name,
                    events,
                    port_open,
                });
            }
            changed.notify_waiters();
            reply(
                200,
                serde_json::json!({"functionName": "test", "functionVersion": "$LATEST", "handler": "bootstrap"}),
            )
        }
        "/2020-01-01/extension/event/next" => {
            if let Ok(mut s) = state.lock() {
                s.next_calls += 1;
            }
            changed.notify_waiters();
            let event = events.lock().await.recv().await;
            match event {
                Some(e) => reply(200, e),
                None => reply(500, serde_json::json!({"errorType": "Closed"})),
            }
        }
        "/2020-01-01/extension/init/error" | "/2020-01-01/extension/exit/error" => {
            if let Ok(mut s) = state.lock() {
                s.errors
                    .push(format!("{path}: {}", String::from_utf8_lossy(&body)));
            }
            reply(202, serde_json::json!({"status": "OK"}))
        }
        _ => reply(404, serde_json::json!({"errorType": "NotFound"})),
    }
}
