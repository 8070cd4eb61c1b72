//! A counting, **fault-injecting** HTTP proxy for tests: it sits between the extension and moto.
//!
//! It counts AWS API calls by their `X-Amz-Target` (e.g. `secretsmanager.GetSecretValue`), or by their `Action` for
//! the query protocol (STS's `AssumeRole`), so tests count upstream calls outside the extension instead of trusting
//! its own counters; it also records the region and access key each call was signed for. On command it injects the
//! faults that the real moto cannot produce: a delay, a 500, a `ThrottlingException`, a dropped connection, or an
//! `AccessDeniedException` for one operation (an IAM policy without it). This is a fault injector, not a stand-in for
//! Secrets Manager: every request that is not faulted goes to the real moto.

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
    /// Operations answered with AccessDeniedException, as an IAM policy without them would.
    denied: Vec<String>,
    /// Every call: its operation, and the region and access key id of its signature.
    calls: Vec<Call>,
}

/// One call as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `secretsmanager.GetSecretValue`, `AssumeRole`, ...
    pub operation: String,
    /// The region in the signature's credential scope.
    pub region: String,
    /// The access key id that signed it.
    pub access_key: String,
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

    /// How many calls of `operation` (e.g. `GetSecretValue`: the `X-Amz-Target` without its service prefix, or the
    /// query protocol's `Action`) have arrived, faulted or not. `GetSecretValue` does not count
    /// `BatchGetSecretValue`.
    pub fn count(&self, operation: &str) -> u64 {
        self.state
            .lock()
            .map(|s| {
                s.counts
                    .iter()
                    .filter(|(k, _)| k.rsplit('.').next() == Some(operation))
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Resets the counts.
    pub fn reset_counts(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.counts.clear();
            s.calls.clear();
        }
    }

    /// Answers every call of `operation` (an `X-Amz-Target` suffix such as `BatchGetSecretValue`) with
    /// AccessDeniedException from now on, as a role whose policy lacks it would be answered.
    pub fn deny(&self, operation: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.denied.push(operation.to_owned());
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }
}

type ProxyClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The operation of an AWS call: its `X-Amz-Target` (JSON protocols), else its form body's `Action` (STS).
fn operation(headers: &http::HeaderMap, body: &[u8]) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.to_owned();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map_or_else(|| "unknown".to_owned(), str::to_owned)
}

/// The region and access key id of a SigV4 `Authorization` header
/// (`... Credential=<key>/<date>/<region>/<service>/aws4_request, ...`).
fn signer(headers: &http::HeaderMap) -> (String, String) {
    let credential = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split(',').next())
        .unwrap_or_default();
    let mut parts = credential.split('/');
    let key = parts.next().unwrap_or_default().to_owned();
    let region = parts.nth(1).unwrap_or_default().to_owned();
    (region, key)
}

async fn forward(
    req: http::Request<hyper::body::Incoming>,
    state: &Mutex<State>,
    client: &ProxyClient,
    target: &str,
) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let op = operation(&parts.headers, &body);
    let (region, access_key) = signer(&parts.headers);
    let (fault, denied) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.counts.entry(op.clone()).or_default() += 1;
        s.calls.push(Call {
            operation: op.clone(),
            region,
            access_key,
        });
        let denied = s
            .denied
            .iter()
            .any(|d| op.rsplit('.').next() == Some(d.as_str()));
        (s.fault.unwrap_or(Fault::None), denied)
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
    if denied && !op.contains('.') {
        // A Query-protocol operation (STS's AssumeRole: `Action=`, no X-Amz-Target): IAM's refusal as STS sends it.
        let mut r = http::Response::new(Full::new(Bytes::from(format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>AccessDenied</Code><Message>User is not authorized to perform: {op} (injected: the trust policy \
             refuses it)</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        ))));
        *r.status_mut() = http::StatusCode::FORBIDDEN;
        r.headers_mut()
            .insert("content-type", http::HeaderValue::from_static("text/xml"));
        return Ok(r);
    }
    if denied {
        return Ok(aws_error(
            400,
            "AccessDeniedException",
            "User is not authorized to perform this operation (injected: the policy lacks it)",
        ));
    }
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
