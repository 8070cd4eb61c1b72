//! The HTTP client under the SDK clients (Secrets Manager, SSM, STS, and the credential providers of standalone
//! mode): hyper's HTTP/1.1 client over rustls with ring, trusting the system's root certificates, one connection pool
//! per timeout setting.
//!
//! Why not the SDK's own client (`aws-smithy-http-client`): it always links HTTP/2 (the `h2` crate and hyper's HTTP/2
//! half), which none of these calls use, and which was the largest single dependency left in the layer. What this
//! keeps of it: the connect and read timeouts the SDK asks for, TCP_NODELAY, the error kinds the SDK's retry
//! strategy and [`classify`](super::classify) read (timeout, I/O, transient, other), and an idle pool of at most
//! `max_idle` connections per host. What it adds: the proxies of `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, as the AWS
//! extension honours them ([`proxy`]).
//!
//! Every response body is read here, up to a cap (an answer past it is [`TooLarge`], a 502 for the client): the SDK
//! would otherwise buffer whatever the other end sends, bounded only by the operation timeout. The caps, by the
//! `X-Amz-Target` of the request:
//! - `BatchGetSecretValue`: [`BATCH_SECRETS_LIMIT`], 10 MiB: up to 20 secrets, each within the single cap below;
//! - everything else (GetSecretValue, GetParameter, GetParameters and its pages of 10, STS, credentials):
//!   [`RESPONSE_LIMIT`], 1 MiB. A secret value is at most 64 KiB, and JSON escaping makes a string at most six times
//!   longer (`\u001f`), so one secret's answer stays under 400 KiB; ten advanced (8 KiB) parameters, escaped the
//!   same way and with their names and ARNs, stay under 600 KiB.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use self::proxy::ProxyConnector;
use super::HttpResponse;
use crate::config::ProxyConfig;

mod forward;
mod proxy;

pub use forward::{ForwardError, Forwarder};

/// The most bytes read of any response body but a secrets batch's (see the module's comment for the arithmetic).
pub const RESPONSE_LIMIT: usize = 1024 * 1024;
/// The most bytes read of a BatchGetSecretValue response body: 20 secrets, each within [`RESPONSE_LIMIT`] / 2.
pub const BATCH_SECRETS_LIMIT: usize = 10 * 1024 * 1024;
const _: () = assert!(BATCH_SECRETS_LIMIT >= 20 * (RESPONSE_LIMIT / 2));

/// The body cap for a request, by the operation its `X-Amz-Target` names.
fn body_limit(headers: &http::HeaderMap) -> usize {
    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(target) if target.ends_with(".BatchGetSecretValue") => BATCH_SECRETS_LIMIT,
        _ => RESPONSE_LIMIT,
    }
}

/// An upstream answer larger than its operation's cap: refused without reading the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream's answer is larger than {limit} bytes, the most read for this operation")]
pub struct TooLarge {
    /// The cap, in bytes.
    pub limit: usize,
}

/// The [`TooLarge`] behind a failed dispatch, if that is why it failed.
pub fn too_large(failure: &(dyn Error + 'static)) -> Option<TooLarge> {
    source::<TooLarge>(failure).copied()
}

/// The SDK's HTTP client: pools built on first use for each timeout setting, sharing one TLS configuration.
pub fn client(max_idle_per_host: usize, proxy: &ProxyConfig) -> SharedHttpClient {
    let matcher = proxy.matcher().map(Arc::new);
    SharedHttpClient::new(Http1::new(native_roots(), max_idle_per_host, matcher))
}

/// The platform's trust store (on Lambda, Amazon Linux's CA bundle), read and parsed once per process: every client
/// (the SDK's, each role's, the SDK protocol's forwarder) shares it. Parsing the bundle allocates about 1.2 MB for
/// the moment it takes; done once per client, that was garbage still held by the allocator when the idle extension
/// was measured.
fn native_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::warn!(errors = ?found.errors, "some root certificates could not be read");
        }
        let (added, unparsable) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                unparsable,
                "no root certificate found: every HTTPS call to AWS will fail"
            );
        }
        Arc::new(roots)
    }))
}

/// The pools' key: the settings a connection is made with.
type Timeouts = (Option<Duration>, Option<Duration>);

struct Http1 {
    tls: rustls::ClientConfig,
    max_idle_per_host: usize,
    proxy: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    pools: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl Http1 {
    /// rustls with ring, trusting `roots`.
    fn new(
        roots: impl Into<Arc<rustls::RootCertStore>>,
        max_idle_per_host: usize,
        proxy: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    ) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            tls,
            max_idle_per_host,
            proxy,
            pools: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for Http1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1")
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish_non_exhaustive()
    }
}

impl HttpClient for Http1 {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| {
                let mut tcp = TcpConnector::new();
                tcp.enforce_http(false);
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(key.0);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(self.tls.clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(ProxyConnector::new(tcp, self.proxy.clone()));
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_max_idle_per_host(self.max_idle_per_host)
                    .build(https);
                SharedHttpConnector::new(Pool {
                    client,
                    read_timeout: key.1,
                })
            })
            .clone()
    }
}

/// One pool, and the time a response's head may take.
struct Pool {
    client: Client<HttpsConnector<ProxyConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Pool {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let limit = body_limit(request.headers());
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response).await.map_err(|_| {
                    ConnectorError::timeout(
                        format!("no response within the read timeout ({limit:?})").into(),
                    )
                })?,
                None => response.await,
            }
            .map_err(connector_error)?;
            // The SDK buffers every body of these operations anyway: reading it here costs no more, and bounds it.
            // A declared length past the cap is refused before any of the body is read.
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(ConnectorError::other(TooLarge { limit }.into(), None));
            }
            let (head, body) = response.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| body_error(e, limit))?
                .to_bytes();
            HttpResponse::try_from(http::Response::from_parts(head, SdkBody::from(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What kind of failure a hyper error is, for the SDK's retries and for [`classify`](super::classify): a connect
/// timeout is a timeout; a refused or reset connection, a TLS failure or a closed pool connection is I/O (retried); a
/// response cut short is transient (retried).
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = source::<std::io::Error>(&err);
    if io.is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
        return ConnectorError::timeout(err.into());
    }
    let hyper = source::<hyper::Error>(&err);
    if hyper.is_some_and(hyper::Error::is_timeout) {
        return ConnectorError::timeout(err.into());
    }
    if err.is_connect() || io.is_some() || hyper.is_some_and(|h| h.is_closed() || h.is_canceled()) {
        return ConnectorError::io(err.into());
    }
    if hyper.is_some_and(hyper::Error::is_user) {
        return ConnectorError::user(err.into());
    }
    if hyper.is_some_and(hyper::Error::is_incomplete_message) {
        return ConnectorError::other(err.into(), Some(ErrorKind::TransientError));
    }
    ConnectorError::other(err.into(), None)
}

/// A body that could not be read whole: past the cap ([`TooLarge`], not retried: the same answer would come again),
/// or cut short (transient, as hyper's own incomplete message).
fn body_error(err: Box<dyn Error + Send + Sync>, limit: usize) -> ConnectorError {
    if err.is::<http_body_util::LengthLimitError>() {
        return ConnectorError::other(TooLarge { limit }.into(), None);
    }
    if source::<std::io::Error>(err.as_ref())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
    {
        return ConnectorError::timeout(err);
    }
    ConnectorError::other(err, Some(ErrorKind::TransientError))
}

/// The first error of type `E` in `err`'s chain, `err` included.
fn source<'a, E: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::error::UpstreamError;

    const ANSWER: &str =
        r#"{"Name":"db","SecretString":"s3cr3t","VersionId":"v1","VersionStages":["AWSCURRENT"]}"#;

    fn secrets_client(
        http: SharedHttpClient,
        endpoint: &str,
        timeouts: TimeoutConfig,
    ) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("id", "key", None, None, "test"))
                .endpoint_url(endpoint)
                .http_client(http)
                .retry_config(RetryConfig::disabled())
                .timeout_config(timeouts)
                .build(),
        )
    }

    async fn get(client: &aws_sdk_secretsmanager::Client) -> Result<String, UpstreamError> {
        let out = client
            .get_secret_value()
            .secret_id("db")
            .send()
            .await
            .map_err(|e| super::super::classify(e, Duration::from_secs(1)))?;
        Ok(out.secret_string().unwrap_or_default().to_owned())
    }

    /// A TLS server for `localhost` with a certificate of its own; answers every request with [`ANSWER`] and counts
    /// the connections it accepts.
    async fn tls_server() -> (String, CertificateDer<'static>, Arc<AtomicUsize>) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let cert = key.cert.der().clone();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.clone()],
            PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into()),
        )
        .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/x-amz-json-1.1")
                                .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
                                .expect("response"),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (format!("https://localhost:{port}"), cert, accepted)
    }

    /// HTTPS through rustls to a server its roots vouch for; the calls after the first reuse the pooled connection. A
    /// client that does not trust the server's certificate never gets an answer: the failure is the connection's.
    #[tokio::test]
    async fn https_calls_verify_the_server_and_reuse_the_connection() {
        let (endpoint, cert, accepted) = tls_server().await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("a root");
        let trusting = secrets_client(
            SharedHttpClient::new(Http1::new(roots, 3, None)),
            &endpoint,
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .build(),
        );
        for _ in 0..3 {
            assert_eq!(get(&trusting).await.expect("answered"), "s3cr3t");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");

        let stranger = secrets_client(
            SharedHttpClient::new(Http1::new(rustls::RootCertStore::empty(), 3, None)),
            &endpoint,
            TimeoutConfig::builder().build(),
        );
        match get(&stranger).await {
            Err(UpstreamError::Unreachable { detail }) => {
                assert!(!detail.contains("s3cr3t"), "{detail}")
            }
            other => panic!("an untrusted server must fail the connection: {other:?}"),
        }
    }

    /// A CONNECT proxy on loopback: opens the tunnel each CONNECT asks for, splices bytes both ways, and counts the
    /// tunnels. Returns its URL and the count.
    async fn counting_connect_proxy() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&tunnels);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let mut byte = [0u8; 1];
                        if client.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let Some(target) = head
                        .strip_prefix("CONNECT ")
                        .and_then(|r| r.split(' ').next())
                    else {
                        let _ = client
                            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                            .await;
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        (url, tunnels)
    }

    /// HTTPS_PROXY: calls to an https endpoint go through one CONNECT tunnel (TLS to the server inside it, verified as
    /// without a proxy); NO_PROXY naming the host sends them directly.
    #[tokio::test]
    async fn https_goes_through_a_connect_tunnel_unless_no_proxy_names_the_host() {
        let (endpoint, cert, accepted) = tls_server().await;
        let (proxy, tunnels) = counting_connect_proxy().await;
        let through = |no_proxy: Option<&str>| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.clone()).expect("a root");
            let config = ProxyConfig {
                https: Some(proxy.clone()),
                http: None,
                no_proxy: no_proxy.map(str::to_owned),
            };
            secrets_client(
                SharedHttpClient::new(Http1::new(roots, 3, config.matcher().map(Arc::new))),
                &endpoint,
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .build(),
            )
        };
        let proxied = through(None);
        for _ in 0..2 {
            assert_eq!(get(&proxied).await.expect("answered"), "s3cr3t");
        }
        assert_eq!(tunnels.load(Ordering::SeqCst), 1, "one pooled tunnel");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let bypassing = through(Some("example.com, localhost"));
        assert_eq!(get(&bypassing).await.expect("answered"), "s3cr3t");
        assert_eq!(tunnels.load(Ordering::SeqCst), 1, "NO_PROXY: no tunnel");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a direct connection");
    }

    /// A fake upstream for what real AWS never sends: every request is answered with a valid GetSecretValue body
    /// whose secret string is `len` bytes, declared with a Content-Length or streamed in chunks without one. Returns
    /// its endpoint.
    async fn oversized_answer_fake(len: usize, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        let mut body =
                            br#"{"Name":"db","VersionId":"v1","SecretString":""#.to_vec();
                        body.resize(body.len() + len, b'x');
                        body.extend_from_slice(br#""}"#);
                        let body: http_body_util::combinators::BoxBody<Bytes, Infallible> =
                            if chunked {
                                let frames = body
                                    .chunks(64 * 1024)
                                    .map(|c| {
                                        Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c)))
                                    })
                                    .collect::<Vec<_>>();
                                http_body_util::StreamBody::new(futures_util::stream::iter(frames))
                                    .boxed()
                            } else {
                                Full::new(Bytes::from(body)).boxed()
                            };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/x-amz-json-1.1")
                                .body(body)
                                .expect("response"),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        endpoint
    }

    /// An answer past the cap is refused as [`UpstreamError::TooLarge`] (a 502), whether its length is declared or it
    /// streams without one; an answer within it is served whole.
    #[tokio::test]
    async fn an_answer_past_the_size_cap_is_refused_and_one_within_it_is_served() {
        for chunked in [false, true] {
            let endpoint = oversized_answer_fake(RESPONSE_LIMIT + 1, chunked).await;
            let sm = secrets_client(
                client(3, &ProxyConfig::default()),
                &endpoint,
                TimeoutConfig::builder().build(),
            );
            assert_eq!(
                get(&sm).await.map(|v| v.len()),
                Err(UpstreamError::TooLarge {
                    limit: RESPONSE_LIMIT
                }),
                "chunked: {chunked}"
            );

            let endpoint = oversized_answer_fake(64 * 1024, chunked).await;
            let sm = secrets_client(
                client(3, &ProxyConfig::default()),
                &endpoint,
                TimeoutConfig::builder().build(),
            );
            assert_eq!(get(&sm).await.map(|v| v.len()), Ok(64 * 1024));
        }
    }

    /// A batch of secrets may be up to 20 times larger than one answer.
    #[test]
    fn the_cap_is_sized_by_operation() {
        let request = |target: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-target", target.parse().expect("a header value"));
            body_limit(&headers)
        };
        assert_eq!(request("secretsmanager.GetSecretValue"), RESPONSE_LIMIT);
        assert_eq!(request("AmazonSSM.GetParameters"), RESPONSE_LIMIT);
        assert_eq!(
            request("secretsmanager.BatchGetSecretValue"),
            BATCH_SECRETS_LIMIT
        );
    }

    /// A server that accepts and never answers is a timeout (the read timeout); a port nobody listens on is
    /// unreachable.
    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closed_port_is_unreachable() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", silent.local_addr().expect("address"));
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((tcp, _)) = silent.accept().await {
                open.push(tcp);
            }
        });
        let quiet = secrets_client(
            client(3, &ProxyConfig::default()),
            &endpoint,
            TimeoutConfig::builder()
                .read_timeout(Duration::from_millis(200))
                .build(),
        );
        assert_eq!(
            get(&quiet).await,
            Err(UpstreamError::Timeout { millis: 1000 })
        );
        held.abort();

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", closed.local_addr().expect("address"));
        drop(closed);
        let refused = secrets_client(
            client(3, &ProxyConfig::default()),
            &endpoint,
            TimeoutConfig::builder().build(),
        );
        assert!(matches!(
            get(&refused).await,
            Err(UpstreamError::Unreachable { .. })
        ));
    }
}
