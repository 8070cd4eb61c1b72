//! The Runtime API and the Extensions API, served on the one address given to every process as
//! `AWS_LAMBDA_RUNTIME_API`, as in Lambda.
//!
//! Implemented from the public API references:
//! - Extensions API `2020-01-01`: `register`, `event/next`, `init/error`, `exit/error`;
//! - Runtime API `2018-06-01`: `invocation/next`, `invocation/{id}/response`, `invocation/{id}/error`,
//!   `init/error`.
//!
//! Handlers only move requests into and out of [`crate::state`]; the lifecycle decides what happens next. Errors use
//! Lambda's `{"errorMessage": ..., "errorType": ...}` shape.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::ids;
use crate::state::{Agent, Outcome, Registration, ReportedError, Shared};

/// Lambda's limit on a synchronous response.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Error documents and registrations are small.
const MAX_SMALL_BODY: usize = 64 * 1024;

const EXTENSION_PREFIX: &str = "/2020-01-01/extension/";
const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";

type Body = Full<Bytes>;

/// Serves both APIs on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(req, &shared).await) }
            });
            // A process killed mid-request just ends its connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(req: http::Request<Incoming>, shared: &Shared) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    if let Some(rest) = path.strip_prefix(EXTENSION_PREFIX) {
        match (method, rest) {
            (Method::POST, "register") => {
                let Some(body) = read(req, MAX_SMALL_BODY).await else {
                    return too_large();
                };
                register(&headers, &body, shared)
            }
            (Method::GET, "event/next") => extension_next(&headers, shared).await,
            (Method::POST, kind @ ("init/error" | "exit/error")) => {
                let kind = if kind == "init/error" {
                    "init/error"
                } else {
                    "exit/error"
                };
                extension_error(&headers, kind, shared)
            }
            _ => not_found(&path),
        }
    } else if let Some(rest) = path.strip_prefix(RUNTIME_PREFIX) {
        match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
            (Method::GET, ["invocation", "next"]) => runtime_next(shared).await,
            (Method::POST, ["invocation", id, "response"]) => {
                let id = (*id).to_owned();
                match read(req, MAX_RESPONSE_BYTES).await {
                    Some(body) => finish(shared, &id, Outcome::Response(body)),
                    None => {
                        // Lambda fails the invocation, not just the request, when the response is too large.
                        let body = error_doc(
                            "Function.ResponseSizeTooLarge",
                            "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                        );
                        let _ = finish(
                            shared,
                            &id,
                            Outcome::Error {
                                error_type: "Function.ResponseSizeTooLarge".to_owned(),
                                body,
                            },
                        );
                        too_large()
                    }
                }
            }
            (Method::POST, ["invocation", id, "error"]) => {
                let id = (*id).to_owned();
                let body = read(req, MAX_SMALL_BODY).await.unwrap_or_default();
                let error_type = header(&headers, "lambda-runtime-function-error-type")
                    .unwrap_or("Unhandled")
                    .to_owned();
                finish(shared, &id, Outcome::Error { error_type, body })
            }
            (Method::POST, ["init", "error"]) => {
                let error_type = header(&headers, "lambda-runtime-function-error-type")
                    .unwrap_or("Runtime.Unknown")
                    .to_owned();
                shared.lock().errors.push(ReportedError {
                    source: "runtime".to_owned(),
                    kind: "init/error",
                    error_type,
                });
                shared.notify();
                accepted()
            }
            _ => not_found(&path),
        }
    } else {
        not_found(&path)
    }
}

fn register(headers: &HeaderMap, body: &[u8], shared: &Shared) -> Response<Body> {
    let received = Instant::now();
    let Some(name) = header(headers, "lambda-extension-name").filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "missing Lambda-Extension-Name header",
        );
    };
    let events: Vec<String> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "the body is not JSON",
            )
        }
    };
    if let Some(bad) = events
        .iter()
        .find(|e| !matches!(e.as_str(), "INVOKE" | "SHUTDOWN"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidEventType",
            &format!("an external extension cannot register for {bad}"),
        );
    }
    if events.iter().any(|e| e == "INVOKE") && shared.lock().managed_instances {
        // As Lambda Managed Instances answer it: an environment there serves many invocations at once, so there is
        // no per-invocation event to deliver, and asking for one is an init error unless the extension retries.
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidEventType",
            "INVOKE is not supported on Lambda Managed Instances; register for SHUTDOWN only",
        );
    }
    let wants_account = header(headers, "lambda-extension-accept-feature")
        .is_some_and(|f| f.split(',').any(|f| f.trim() == "accountId"));
    // Read before answering, while the extension waits for this answer: what it listens on now, it opened before
    // registering. The scan reads /proc outside the state's lock.
    let pid = shared
        .lock()
        .started
        .iter()
        .rev()
        .find(|(n, _, _)| n == name)
        .map(|(_, pid, _)| *pid);
    let listening = pid.map(crate::process::listening_ports).unwrap_or_default();
    let mut state = shared.lock();
    if !state.registration_open {
        return error(
            StatusCode::FORBIDDEN,
            "Extension.InvalidState",
            "registration is only possible during init, before the runtime starts",
        );
    }
    if !state.expected_extensions.iter().any(|e| e == name) {
        return error(
            StatusCode::FORBIDDEN,
            "Extension.InvalidExtensionName",
            &format!("{name} is not the file name of an extension in /opt/extensions"),
        );
    }
    if state.agents.iter().any(|a| a.name == name) {
        return error(
            StatusCode::CONFLICT,
            "Extension.AlreadyRegistered",
            &format!("{name} is already registered"),
        );
    }
    let id = ids::uuid();
    state.registrations.push(Registration {
        name: name.to_owned(),
        events: events.clone(),
        listening,
    });
    state.agents.push(Agent {
        id: id.clone(),
        name: name.to_owned(),
        events,
        queue: Default::default(),
        waiter: None,
        last_next: None,
        first_next: None,
        registration_answered_in: received.elapsed(),
    });
    let mut doc = serde_json::json!({
        "functionName": state.function_name,
        "functionVersion": state.function_version,
        "handler": state.handler,
    });
    if wants_account {
        doc["accountId"] = serde_json::json!(state.account_id);
    }
    drop(state);
    shared.notify();
    let mut response = json(StatusCode::OK, &doc);
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert("lambda-extension-identifier", v);
    }
    response
}

async fn extension_next(headers: &HeaderMap, shared: &Shared) -> Response<Body> {
    let Some(id) = header(headers, "lambda-extension-identifier") else {
        return error(
            StatusCode::FORBIDDEN,
            "Extension.MissingExtensionIdentifier",
            "missing Lambda-Extension-Identifier header",
        );
    };
    let rx = {
        let mut state = shared.lock();
        let Some(agent) = state.agents.iter_mut().find(|a| a.id == id) else {
            return error(
                StatusCode::FORBIDDEN,
                "Extension.UnknownExtensionIdentifier",
                "unknown Lambda-Extension-Identifier",
            );
        };
        let now = Instant::now();
        agent.last_next = Some(now);
        agent.first_next.get_or_insert(now);
        if let Some(event) = agent.queue.pop_front() {
            return event_response(&event);
        }
        let (tx, rx) = oneshot::channel();
        agent.waiter = Some(tx);
        rx
    };
    shared.notify();
    match rx.await {
        Ok(event) => event_response(&event),
        // The environment was torn down while the extension waited.
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Extension.EnvironmentReset",
            "the execution environment was reset",
        ),
    }
}

fn event_response(event: &serde_json::Value) -> Response<Body> {
    let mut response = json(StatusCode::OK, event);
    if let Ok(v) = http::HeaderValue::from_str(&ids::uuid()) {
        response
            .headers_mut()
            .insert("lambda-extension-event-identifier", v);
    }
    response
}

fn extension_error(headers: &HeaderMap, kind: &'static str, shared: &Shared) -> Response<Body> {
    let Some(id) = header(headers, "lambda-extension-identifier") else {
        return error(
            StatusCode::FORBIDDEN,
            "Extension.MissingExtensionIdentifier",
            "missing Lambda-Extension-Identifier header",
        );
    };
    let Some(error_type) = header(headers, "lambda-extension-function-error-type") else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "missing Lambda-Extension-Function-Error-Type header",
        );
    };
    let mut state = shared.lock();
    let Some(name) = state
        .agents
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.name.clone())
    else {
        return error(
            StatusCode::FORBIDDEN,
            "Extension.UnknownExtensionIdentifier",
            "unknown Lambda-Extension-Identifier",
        );
    };
    state.errors.push(ReportedError {
        source: name,
        kind,
        error_type: error_type.to_owned(),
    });
    drop(state);
    shared.notify();
    accepted()
}

async fn runtime_next(shared: &Shared) -> Response<Body> {
    let rx = {
        let mut state = shared.lock();
        if let Some(invocation) = state.runtime.queued.pop_front() {
            return invocation_response(invocation);
        }
        let (tx, rx) = oneshot::channel();
        // Parked calls that hung up are dropped here, so the list holds only live ones.
        state.runtime.waiters.retain(|w| !w.is_closed());
        state.runtime.waiters.push_back(tx);
        rx
    };
    shared.notify();
    match rx.await {
        Ok(invocation) => invocation_response(invocation),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.EnvironmentReset",
            "the execution environment was reset",
        ),
    }
}

fn invocation_response(invocation: crate::state::Invocation) -> Response<Body> {
    let mut response = Response::new(Full::new(invocation.body));
    let h = response.headers_mut();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        (
            "lambda-runtime-deadline-ms",
            invocation.deadline_ms.to_string(),
        ),
        (
            "lambda-runtime-invoked-function-arn",
            invocation.invoked_function_arn,
        ),
        ("lambda-runtime-trace-id", invocation.trace_id),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    response
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> Response<Body> {
    let mut state = shared.lock();
    match state.runtime.take_current(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            drop(state);
            shared.notify();
            accepted()
        }
        None => {
            drop(state);
            error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                "no invocation in flight has this request id (already answered?)",
            )
        }
    }
}

async fn read(req: http::Request<Incoming>, limit: usize) -> Option<Bytes> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An error document in Lambda's shape.
pub fn error_doc(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string())
}

fn json(status: StatusCode, doc: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(doc.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"errorMessage": message, "errorType": error_type}),
    )
}

fn accepted() -> Response<Body> {
    json(StatusCode::ACCEPTED, &serde_json::json!({"status": "OK"}))
}

fn too_large() -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        "the request body is too large",
    )
}

fn not_found(path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{path} is not part of the Runtime or Extensions API that lambda-env implements"),
    )
}
