//! A stand-in for the ECS / EKS Pod Identity container credentials endpoint (nothing real can run here: the ECS agent
//! needs ECS). It hands out the credentials the test sets when a request carries the authorization token, counts
//! what it served, and can rotate the credentials as the agent does hours before they expire.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The credentials the endpoint hands out: access key id, secret access key, session token.
pub type Handed = (String, String, String);

/// A running stand-in endpoint; it lives as long as the test's runtime.
#[derive(Debug, Clone)]
pub struct CredentialsEndpoint {
    /// Its URL, for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub url: String,
    state: Arc<Mutex<(Handed, u32)>>,
}

impl CredentialsEndpoint {
    /// Serves `handed` to requests whose `Authorization` is `authorization`; 403 to others.
    pub async fn start(authorization: &'static str, handed: Handed) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/v2/credentials/test",
            listener.local_addr().expect("addr")
        );
        let state = Arc::new(Mutex::new((handed, 0u32)));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: ::http::Request<hyper::body::Incoming>| {
                        let shared = Arc::clone(&shared);
                        async move {
                            let authorized = req
                                .headers()
                                .get("authorization")
                                .is_some_and(|v| v == authorization);
                            let (status, body) = if authorized {
                                let mut s = shared.lock().expect("lock");
                                s.1 += 1;
                                let (id, secret, token) = &s.0;
                                (
                                    200,
                                    serde_json::json!({
                                        "AccessKeyId": id,
                                        "SecretAccessKey": secret,
                                        "Token": token,
                                        "Expiration": "2099-01-01T00:00:00Z",
                                    })
                                    .to_string(),
                                )
                            } else {
                                (403, "{}".to_owned())
                            };
                            let mut resp = ::http::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() =
                                ::http::StatusCode::from_u16(status).expect("status");
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// Hands out `handed` from now on.
    pub fn rotate(&self, handed: Handed) {
        self.state.lock().expect("lock").0 = handed;
    }

    /// How many credentials it has served.
    pub fn served(&self) -> u32 {
        self.state.lock().expect("lock").1
    }
}

/// Credentials whose parts all derive from `id`.
pub fn handed(id: &str) -> Handed {
    (id.to_owned(), format!("{id}-secret"), format!("{id}-token"))
}
