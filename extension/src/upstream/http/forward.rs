//! A plain HTTPS client for the requests the extension passes on as they are (the SDK protocol's operations that
//! are not served from the cache), with the same TLS (rustls, the platform's roots), proxy and response cap as the
//! SDK's calls.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::proxy::ProxyConnector;
use super::{body_limit, native_roots};
use crate::config::ProxyConfig;

/// Sends a request to a service and reads its whole answer, bounded in time and size.
pub struct Forwarder {
    client: Client<HttpsConnector<ProxyConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

/// Why a forwarded request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No answer within the time allowed.
    #[error("the service did not answer within {0:?}")]
    Timeout(Duration),
    /// No connection, or it broke.
    #[error("the service is unreachable: {0}")]
    Unreachable(String),
    /// An answer past the cap.
    #[error("the service's answer is larger than {0} bytes")]
    TooLarge(usize),
}

impl Forwarder {
    /// A client through `proxy` when it applies.
    pub fn new(proxy: &ProxyConfig) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(native_roots())
        .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ProxyConnector::new(tcp, proxy.matcher().map(Arc::new)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(https),
        }
    }

    /// Sends `request` and reads its answer, within `timeout` for the whole exchange.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, ForwardError> {
        let limit = body_limit(request.headers());
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ForwardError::Unreachable(e.to_string()))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|_| ForwardError::TooLarge(limit))?
                .to_bytes();
            Ok(http::Response::from_parts(head, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(timeout))?
    }
}
