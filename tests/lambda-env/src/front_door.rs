//! The front door: one local HTTP port that does what API Gateway and the Lambda Invoke API do.
//!
//! - `POST /2015-03-31/functions/<name>/invocations` takes a raw event and answers with the function's raw
//!   response, as Lambda's Invoke API does (a function error is a 200 with `X-Amz-Function-Error: Unhandled`). The
//!   path is the Invoke API's, so the AWS CLI and SDKs pointed here work too.
//! - Every other request becomes an API Gateway HTTP API event ([`crate::apigw`]), so
//!   `curl http://127.0.0.1:9000/items?limit=5` reaches the function as it would through API Gateway.
//!
//! Each invoke runs in its own task, so a client that hangs up does not cut an invoke short; invokes queue on the
//! environment, one at a time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::apigw::{self, Context, HttpRequest};
use crate::environment::LambdaEnv;
use crate::state::Outcome;

/// The largest request accepted (Lambda's synchronous payload limit).
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// Serves the front door on `listener` until `shutdown` completes.
pub async fn serve(env: Arc<LambdaEnv>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let env = Arc::clone(&env);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let env = Arc::clone(&env);
                async move { Ok::<_, Infallible>(handle(req, peer, env).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: http::Request<Incoming>,
    peer: SocketAddr,
    env: Arc<LambdaEnv>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_EVENT_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            r#"{"message":"Request Entity Too Large"}"#,
        );
    };
    let path = parts.uri.path();
    let direct = parts.method == http::Method::POST
        && path.starts_with("/2015-03-31/functions/")
        && path.ends_with("/invocations");
    if direct {
        return match invoke(&env, body).await {
            Outcome::Response(payload) => {
                let mut r = Response::new(Full::new(payload));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                r
            }
            Outcome::Error { body, .. } => {
                let mut r = Response::new(Full::new(body));
                r.headers_mut().insert(
                    "x-amz-function-error",
                    http::HeaderValue::from_static("Unhandled"),
                );
                r
            }
        };
    }

    let request_id = crate::ids::uuid();
    let source_ip = peer.ip().to_string();
    let event = apigw::http_api_v2_event(
        &HttpRequest {
            method: parts.method.as_str(),
            path,
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body: &body,
            source_ip: &source_ip,
        },
        &Context {
            account_id: &env.options().account_id,
            request_id: &request_id,
            now_ms: crate::ids::epoch_millis(),
        },
    );
    let answer = match invoke(&env, Bytes::from(event.to_string())).await {
        Outcome::Response(payload) => apigw::http_api_v2_response(&payload),
        Outcome::Error { error_type, .. } if error_type == "Sandbox.Timedout" => {
            apigw::service_unavailable()
        }
        Outcome::Error { .. } => apigw::internal_error(),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    response
}

/// Runs one invoke in its own task and returns as soon as the runtime has answered.
async fn invoke(env: &Arc<LambdaEnv>, event: Bytes) -> Outcome {
    let (tx, rx) = oneshot::channel();
    let env = Arc::clone(env);
    tokio::spawn(async move {
        let _ = env.invoke_with(event, Some(tx)).await;
    });
    rx.await.unwrap_or_else(|_| Outcome::Error {
        error_type: "Service".to_owned(),
        body: crate::api::error_doc("ServiceException", "the invoke ended without an answer"),
    })
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}
