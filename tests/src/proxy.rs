//! A counting, **fault-injecting** HTTP proxy for tests: it sits between the extension and moto.
//!
//! It counts AWS API calls by their `X-Amz-Target` (e.g. `secretsmanager.GetSecretValue`), so tests count upstream
//! calls outside the extension instead of trusting its own counters. On command it injects the faults that the real
//! moto cannot produce: a delay, a 500, a `ThrottlingException`, or a dropped connection. This is a fault injector,
//! not a stand-in for Secrets Manager: every request that is not faulted goes to the real moto.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::moto::Endpoint;

/// What the proxy does to the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward untouched.
    None,
    /// Wait, then forward.
    Delay(Duration),
    /// Answer 500 InternalServiceError without forwarding.
    ServerError,
    /// Answer 400 ThrottlingException without forwarding.
    Throttle,
    /// Close the connection without answering.
    Drop,
    /// Never answer (until the fault is changed).
    Hang,
}

#[derive(Debug, Default)]
struct State {
    counts: HashMap<String, u64>,
    fault: Option<Fault>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultInjectingProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultInjectingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint for FaultInjectingProxy {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl FaultInjectingProxy {
    /// Starts a proxy in front of `upstream`.
    pub async fn start(upstream: &impl Endpoint) -> FaultInjectingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let target = upstream.endpoint();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, client, target) =
                    (Arc::clone(&task_state), client.clone(), target.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (state, client, target) =
                            (Arc::clone(&state), client.clone(), target.clone());
                        async move { forward(req, &state, &client, &target).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultInjectingProxy { port, state, task }
    }

    /// Sets the fault for every following request (`Fault::None` to heal).
    pub fn set_fault(&self, fault: Fault) {
        if let Ok(mut s) = self.state.lock() {
            s.fault = Some(fault);
        }
    }

    /// How many calls with this `X-Amz-Target` suffix (e.g. `GetSecretValue`) have arrived, faulted or not.
    pub fn count(&self, operation: &str) -> u64 {
        self.state
            .lock()
            .map(|s| {
                s.counts
                    .iter()
                    .filter(|(k, _)| k.ends_with(operation))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Resets the counts.
    pub fn reset_counts(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.counts.clear();
        }
    }
}

type ProxyClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn forward(
    req: http::Request<hyper::body::Incoming>,
    state: &Mutex<State>,
    client: &ProxyClient,
    target: &str,
) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let fault = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.counts.entry(op).or_default() += 1;
        s.fault.unwrap_or(Fault::None)
    };
    let aws_error = |status: u16, kind: &str, msg: &str| {
        let mut r = http::Response::new(Full::new(Bytes::from(
            serde_json::json!({"__type": kind, "message": msg}).to_string(),
        )));
        *r.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        r.headers_mut().insert(
            "x-amzn-errortype",
            http::HeaderValue::from_str(kind).unwrap_or(http::HeaderValue::from_static("Error")),
        );
        r
    };
    match fault {
        Fault::None => {}
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::ServerError => return Ok(aws_error(500, "InternalServiceError", "injected fault")),
        Fault::Throttle => {
            return Ok(aws_error(
                400,
                "ThrottlingException",
                "Rate exceeded (injected fault)",
            ))
        }
        // A service error makes hyper close the connection without answering.
        Fault::Drop => return Err(std::io::Error::other("injected connection drop")),
        Fault::Hang => std::future::pending::<()>().await,
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let uri = format!(
        "{target}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = http::Request::builder().method(parts.method).uri(uri);
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return Ok(aws_error(
            500,
            "ProxyError",
            "could not build the forwarded request",
        ));
    };
    match client.request(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok(http::Response::from_parts(parts, Full::new(body)))
        }
        Err(_) => Ok(aws_error(502, "BadGateway", "moto unreachable")),
    }
}
