//! The Lambda Extensions API, as an external extension uses it: one small function per call, `register` then `next`
//! in a loop, and `exit/error` when the extension cannot go on.
//!
//! Our own, not the `lambda-extension` crate's: that crate's event loop, logs and telemetry processors and its
//! dependencies (chrono, tokio-stream, and tracing-subscriber's `env-filter` with the regex engine) were about half a
//! megabyte of the layer for three HTTP calls, and every function that attaches the layer pays for the layer's size
//! at each cold start. The calls are those of the public Extensions API documentation:
//! - `POST /2020-01-01/extension/register` with `Lambda-Extension-Name` (the executable's file name) and the events;
//!   the answer's `Lambda-Extension-Identifier` header goes on every later call;
//! - `GET /2020-01-01/extension/event/next`: a long poll that answers the next INVOKE or SHUTDOWN;
//! - `POST /2020-01-01/extension/exit/error` with `Lambda-Extension-Function-Error-Type`.
//!
//! [`register_or_shutdown_only`] wraps `register`: a refused registration for INVOKE is retried once for SHUTDOWN
//! only, since an extension that exits during init fails the whole function.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::Events;

const VERSION: &str = "2020-01-01";
const NAME_HEADER: &str = "lambda-extension-name";
const ID_HEADER: &str = "lambda-extension-identifier";
const ERROR_TYPE_HEADER: &str = "lambda-extension-function-error-type";
/// Larger answers are not events: refuse them rather than buffer them.
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// A call to the Extensions API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No connection, or it broke.
    #[error("{call}: {detail}")]
    Transport {
        /// Which call.
        call: &'static str,
        /// What happened.
        detail: String,
    },
    /// An answer other than 200.
    #[error("{call}: status {status}")]
    Status {
        /// Which call.
        call: &'static str,
        /// The status.
        status: u16,
    },
    /// An answer that is not what the API documents.
    #[error("{call}: {detail}")]
    Invalid {
        /// Which call.
        call: &'static str,
        /// What is wrong with it.
        detail: &'static str,
    },
}

/// The function this extension registered for.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// `functionName`.
    #[serde(default)]
    pub function_name: String,
}

/// What `event/next` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The function is being invoked.
    Invoke {
        /// The invocation's request id.
        request_id: String,
        /// When the invocation times out, in milliseconds since the epoch.
        deadline_ms: u64,
    },
    /// The environment is shutting down.
    Shutdown {
        /// `spindown`, `timeout` or `failure`.
        reason: String,
        /// When the process will be killed, in milliseconds since the epoch.
        deadline_ms: u64,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_type: String,
    #[serde(default)]
    deadline_ms: u64,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    shutdown_reason: String,
}

/// A registered extension's connection to the API.
#[derive(Debug)]
pub struct ExtensionsApi {
    base: String,
    id: HeaderValue,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Registers `name` for `events` with the API at `runtime_api` (`AWS_LAMBDA_RUNTIME_API`, `host:port`).
pub async fn register(
    runtime_api: &str,
    name: &str,
    events: &[&str],
) -> Result<(ExtensionsApi, Registration), ApiError> {
    const CALL: &str = "register";
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let base = format!("http://{runtime_api}/{VERSION}/extension");
    let body = serde_json::json!({ "events": events }).to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/register"))
        .header(NAME_HEADER, name)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| invalid(CALL, "the extension's name is not a valid header value"))?;
    let (id, bytes) = send(&client, CALL, request).await?;
    let id = id.ok_or_else(|| invalid(CALL, "no Lambda-Extension-Identifier in the answer"))?;
    let registration = serde_json::from_slice(&bytes)
        .map_err(|_| invalid(CALL, "the answer is not the registration document"))?;
    Ok((ExtensionsApi { base, id, client }, registration))
}

/// Registers for `events`; if the API refuses that (a 4xx: Lambda Managed Instances answer a registration for INVOKE
/// with a 400, and a future mode may do the same), registers once more for SHUTDOWN only, with a WARN saying why. A
/// cache that cannot refresh on INVOKE still serves, and refreshes by time; a failed init fails the function.
/// Returns the events actually registered for. Transport errors and 5xx answers are not retried: the API is broken,
/// not refusing.
pub async fn register_or_shutdown_only(
    runtime_api: &str,
    name: &str,
    events: Events,
) -> Result<(ExtensionsApi, Registration, Events), ApiError> {
    match register(runtime_api, name, events.names()).await {
        Ok((api, registration)) => Ok((api, registration, events)),
        Err(ApiError::Status { status, .. })
            if (400..500).contains(&status) && events != Events::ShutdownOnly =>
        {
            tracing::warn!(
                status,
                events = ?events.names(),
                "the Extensions API refused this registration; registering for SHUTDOWN only: values are refreshed \
                 on a timer instead of on each INVOKE"
            );
            let (api, registration) =
                register(runtime_api, name, Events::ShutdownOnly.names()).await?;
            Ok((api, registration, Events::ShutdownOnly))
        }
        Err(e) => Err(e),
    }
}

impl ExtensionsApi {
    /// Waits for the next event. Calling this is also how an extension says it is done with the previous one.
    pub async fn next(&self) -> Result<Event, ApiError> {
        const CALL: &str = "event/next";
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/event/next", self.base))
            .header(ID_HEADER, self.id.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|_| invalid(CALL, "cannot build the request"))?;
        let (_, bytes) = send(&self.client, CALL, request).await?;
        let raw: RawEvent = serde_json::from_slice(&bytes)
            .map_err(|_| invalid(CALL, "the answer is not an event"))?;
        match raw.event_type.as_str() {
            "INVOKE" => Ok(Event::Invoke {
                request_id: raw.request_id,
                deadline_ms: raw.deadline_ms,
            }),
            "SHUTDOWN" => Ok(Event::Shutdown {
                reason: raw.shutdown_reason,
                deadline_ms: raw.deadline_ms,
            }),
            _ => Err(invalid(CALL, "an event type other than INVOKE or SHUTDOWN")),
        }
    }

    /// Tells Lambda the extension failed and is exiting (`Extension.<kind>`); Lambda then resets the environment.
    pub async fn exit_error(&self, kind: &str) -> Result<(), ApiError> {
        const CALL: &str = "exit/error";
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/exit/error", self.base))
            .header(ID_HEADER, self.id.clone())
            .header(ERROR_TYPE_HEADER, format!("Extension.{kind}"))
            .body(Full::new(Bytes::new()))
            .map_err(|_| invalid(CALL, "cannot build the request"))?;
        send(&self.client, CALL, request).await.map(|_| ())
    }
}

fn invalid(call: &'static str, detail: &'static str) -> ApiError {
    ApiError::Invalid { call, detail }
}

/// Sends `request`; the identifier header (when there is one) and the body of a 200.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    call: &'static str,
    request: Request<Full<Bytes>>,
) -> Result<(Option<HeaderValue>, Bytes), ApiError> {
    let response = client
        .request(request)
        .await
        .map_err(|e| ApiError::Transport {
            call,
            detail: e.to_string(),
        })?;
    let status = response.status().as_u16();
    let id = response.headers().get(ID_HEADER).cloned();
    let body = http_body_util::Limited::new(response.into_body(), MAX_EVENT_BYTES)
        .collect()
        .await
        .map_err(|e| ApiError::Transport {
            call,
            detail: e.to_string(),
        })?
        .to_bytes();
    if status != 200 {
        return Err(ApiError::Status { call, status });
    }
    Ok((id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    /// Serves the three calls as the documentation describes them, and records what it was sent.
    async fn api() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            let events = Arc::new(Mutex::new(vec![
                r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":2000}"#,
                r#"{"eventType":"INVOKE","requestId":"r-1","deadlineMs":1000,"invokedFunctionArn":"arn"}"#,
            ]));
            while let Ok((stream, _)) = listener.accept().await {
                let (record, events) = (Arc::clone(&record), Arc::clone(&events));
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (record, events) = (Arc::clone(&record), Arc::clone(&events));
                            async move {
                                let h = |n: &str| {
                                    req.headers()
                                        .get(n)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("-")
                                        .to_owned()
                                };
                                record.lock().expect("lock").push(format!(
                                    "{} {} name={} id={} error={}",
                                    req.method(),
                                    req.uri().path(),
                                    h(NAME_HEADER),
                                    h(ID_HEADER),
                                    h(ERROR_TYPE_HEADER)
                                ));
                                let body = match req.uri().path() {
                                    "/2020-01-01/extension/register" => {
                                        r#"{"functionName":"items","functionVersion":"$LATEST"}"#
                                    }
                                    "/2020-01-01/extension/event/next" => {
                                        events.lock().expect("lock").pop().unwrap_or("{}")
                                    }
                                    _ => "{}",
                                };
                                let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                                resp.headers_mut()
                                    .insert(ID_HEADER, HeaderValue::from_static("ext-id-1"));
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn register_then_events_then_an_error_report_speak_the_documented_api() {
        let (addr, seen) = api().await;
        let (api, registration) = register(&addr, "secretcache", &["INVOKE", "SHUTDOWN"])
            .await
            .expect("registered");
        assert_eq!(registration.function_name, "items");
        assert_eq!(
            api.next().await.expect("invoke"),
            Event::Invoke {
                request_id: "r-1".into(),
                deadline_ms: 1000
            }
        );
        assert_eq!(
            api.next().await.expect("shutdown"),
            Event::Shutdown {
                reason: "spindown".into(),
                deadline_ms: 2000
            }
        );
        assert!(matches!(api.next().await, Err(ApiError::Invalid { .. })));
        api.exit_error("Crash").await.expect("reported");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            [
                "POST /2020-01-01/extension/register name=secretcache id=- error=-",
                "GET /2020-01-01/extension/event/next name=- id=ext-id-1 error=-",
                "GET /2020-01-01/extension/event/next name=- id=ext-id-1 error=-",
                "GET /2020-01-01/extension/event/next name=- id=ext-id-1 error=-",
                "POST /2020-01-01/extension/exit/error name=- id=ext-id-1 error=Extension.Crash",
            ]
        );
    }

    /// A register endpoint that answers `refusal` to any registration whose body names INVOKE (as Lambda Managed
    /// Instances answer 400), and 200 to the others; it records each registration's body.
    async fn refusing_api(refusal: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let record = Arc::clone(&record);
                            async move {
                                let body =
                                    req.into_body().collect().await.expect("body").to_bytes();
                                let body = String::from_utf8_lossy(&body).into_owned();
                                let refused = body.contains("INVOKE");
                                record.lock().expect("lock").push(body);
                                let mut resp = http::Response::new(Full::new(Bytes::from_static(
                                    br#"{"functionName":"items"}"#,
                                )));
                                if refused {
                                    *resp.status_mut() =
                                        http::StatusCode::from_u16(refusal).expect("status");
                                } else {
                                    resp.headers_mut()
                                        .insert(ID_HEADER, HeaderValue::from_static("ext-id-2"));
                                }
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_invoke_registration_is_retried_once_for_shutdown_only() {
        let (addr, seen) = refusing_api(400).await;
        let (_, registration, events) =
            register_or_shutdown_only(&addr, "secretcache", Events::InvokeAndShutdown)
                .await
                .expect("registered on the second try");
        assert_eq!(events, Events::ShutdownOnly);
        assert_eq!(registration.function_name, "items");
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                r#"{"events":["INVOKE","SHUTDOWN"]}"#,
                r#"{"events":["SHUTDOWN"]}"#
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_accepted_registration_or_a_server_error_is_not_retried() {
        // Managed Instances: SHUTDOWN only from the start, accepted at once.
        let (addr, seen) = refusing_api(400).await;
        let (_, _, events) = register_or_shutdown_only(&addr, "secretcache", Events::ShutdownOnly)
            .await
            .expect("registered");
        assert_eq!(events, Events::ShutdownOnly);
        assert_eq!(seen.lock().expect("lock").len(), 1);
        // A 5xx is a broken API, not a refusal: the error stands, after one call.
        let (addr, seen) = refusing_api(500).await;
        let err = register_or_shutdown_only(&addr, "secretcache", Events::InvokeAndShutdown)
            .await
            .expect_err("a server error");
        assert!(matches!(err, ApiError::Status { status: 500, .. }), "{err}");
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn an_api_that_is_not_there_is_a_transport_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let err = register(&format!("127.0.0.1:{port}"), "x", &["INVOKE"])
            .await
            .expect_err("nothing listens");
        assert!(matches!(
            err,
            ApiError::Transport {
                call: "register",
                ..
            }
        ));
    }
}
