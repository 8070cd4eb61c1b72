//! The localhost HTTP server: routing, request checks, and the connection loop with its drain on shutdown.
//!
//! Parts:
//! - [`App`] and [`handle`]: one request in, one response out, callable without a socket (tests do);
//! - [`bind`]: the loopback listeners: `127.0.0.1` always, and `[::1]` on the same port where the host has IPv6
//!   loopback, so a client that resolves `localhost` to `::1` first (Node before 20) is served too;
//! - [`serve`]: accepts on those listeners until the shutdown token is cancelled, then stops accepting, asks every
//!   open connection to finish its current request, and waits for them all.
//!
//! Hardening, after the AWS Secrets Manager Agent: loopback only; every path but `/ping` needs the token header,
//! compared as fixed-length SHA-256 digests in constant time (so neither its content nor its length leaks through
//! timing); `X-Forwarded-For` and `Forwarded` are refused (a proxied request is a sign of SSRF); only GET (and HEAD)
//! are served; connections are capped; a client that dribbles its headers is cut off after a timeout. The server
//! knows nothing of the SDK: it sees the cache only.

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use secretcache_client::contract::path;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::{Cache, Source, Upstream};
use crate::clock::{SystemWallClock, WallClock};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{BatchRequest, Key, ParameterRequest, SecretRequest};
use crate::respond::{self, Item, Kind, ProjectionError};
use crate::roles::{RoleCaches, DEFAULT_MAX_ROLES};
use crate::token::Tokens;

// The header that carries the execution environment's session token; how a value was served (`hit`, `miss`,
// `refresh` or `stale`); and `true` when the value is past its TTL and served because the upstream failed.
pub use secretcache_client::contract::{CACHE_HEADER, STALE_HEADER, TOKEN_HEADER};
// The same names, parsed once: a lookup or insert by `&str` would validate and lower-case the name on every request.
static CACHE_NAME: HeaderName = HeaderName::from_static(CACHE_HEADER);
static STALE_NAME: HeaderName = HeaderName::from_static(STALE_HEADER);
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// The longest request target served: an ARN is at most 2048 bytes, so twice that, percent-encoded, is ample.
const MAX_URI_LEN: usize = 8 * 1024;
/// hyper's read buffer: large enough that an oversized URI reaches our handler and gets a JSON 414, instead of
/// hyper's bodyless 431; small enough to bound memory per connection.
const MAX_BUF: usize = 96 * 1024;
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the request handler needs.
pub struct App<U, W = SystemWallClock> {
    /// The cache, in front of the upstream.
    pub cache: Arc<Cache<U, W>>,
    /// The tokens a request may carry.
    pub tokens: Arc<Tokens>,
    /// The headers it may carry one in (the AWS extension's, and the Agent's `X-Vault-Token`), parsed once.
    pub token_headers: Vec<HeaderName>,
    /// The prefix of path-based reads (`/v1/<secretId>`).
    pub path_prefix: String,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// A cache per role named in a read's `roleArn`, each over the upstream acting as that role.
    pub roles: RoleCaches<U, W>,
}

impl<U, W> App<U, W> {
    /// The handler's state: `token_headers` that are not valid header names are dropped (with a log line).
    pub fn new(
        cache: Arc<Cache<U, W>>,
        tokens: Arc<Tokens>,
        token_headers: &[String],
        path_prefix: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        let token_headers = token_headers
            .iter()
            .filter_map(|h| match HeaderName::try_from(h.as_str()) {
                Ok(name) => Some(name),
                Err(_) => {
                    tracing::error!(header = %h, "not a valid header name; it is not accepted for the token");
                    None
                }
            })
            .collect();
        Self {
            cache,
            tokens,
            token_headers,
            path_prefix,
            metrics,
            roles: RoleCaches::new(DEFAULT_MAX_ROLES),
        }
    }
}

impl<U, W> std::fmt::Debug for App<U, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

enum Route {
    Secret,
    /// `<prefix><secretId>`, as the AWS Secrets Manager Agent (`/v1/`) and Cloud Extensions (`/secretsmanager/`)
    /// serve it: the id is the path after this many bytes.
    SecretByPath(usize),
    Parameter,
    /// `/systemsmanager/parameters/<name>`, as Cloud Extensions serves it.
    ParameterByPath,
    SecretBatch,
    ParameterBatch,
    Metrics,
}

/// Answers one request. Every failure goes through [`ApiError::into_response`].
pub async fn handle<U: Upstream, W: WallClock, B>(
    app: &App<U, W>,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    match route(app, &req).await {
        Ok(resp) => resp,
        Err(e) => {
            if matches!(e, ApiError::WrongToken | ApiError::Forwarded) {
                tracing::warn!(path = req.uri().path(), error = %e, "refused request");
            } else {
                tracing::debug!(path = req.uri().path(), error = %e, "request failed");
            }
            e.into_response()
        }
    }
}

async fn route<U: Upstream, W: WallClock, B>(
    app: &App<U, W>,
    req: &Request<B>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    if req.headers().contains_key(&FORWARDED_FOR) || req.headers().contains_key(&FORWARDED) {
        return Err(ApiError::Forwarded);
    }
    if req.uri().path().len() + req.uri().query().map_or(0, str::len) > MAX_URI_LEN {
        return Err(ApiError::UriTooLong(MAX_URI_LEN));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let route = match req.uri().path() {
        // Readiness checks need no token, as with the Agent.
        path::PING => {
            return Ok(text(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"healthy"),
            ))
        }
        path::SECRET | path::SECRET_SLASH => Route::Secret,
        path::PARAMETER | path::PARAMETER_SLASH => Route::Parameter,
        path::SECRET_BATCH | path::SECRET_BATCH_SLASH => Route::SecretBatch,
        path::PARAMETER_BATCH | path::PARAMETER_BATCH_SLASH => Route::ParameterBatch,
        path::METRICS => Route::Metrics,
        p if p.starts_with(app.path_prefix.as_str()) => Route::SecretByPath(app.path_prefix.len()),
        p if p.len() > path::SECRET_PATH_PREFIX.len()
            && p.starts_with(path::SECRET_PATH_PREFIX) =>
        {
            Route::SecretByPath(path::SECRET_PATH_PREFIX.len())
        }
        p if p.len() > path::PARAMETER_PATH_PREFIX.len()
            && p.starts_with(path::PARAMETER_PATH_PREFIX) =>
        {
            Route::ParameterByPath
        }
        _ => {
            check_token(app, req).await?;
            return Err(ApiError::UnknownPath);
        }
    };
    check_token(app, req).await?;
    let query = req.uri().query().unwrap_or("");
    match route {
        Route::Secret | Route::SecretByPath(_) => {
            let r = match route {
                Route::SecretByPath(prefix) => {
                    SecretRequest::parse_path(&req.uri().path()[prefix..], query)?
                }
                _ => SecretRequest::parse(query)?,
            };
            let cache = app.roles.cache_for(&app.cache, r.role.as_deref())?;
            one(
                &cache,
                req,
                Key::Secret(r.key),
                r.refresh_now,
                r.field,
                Kind::Secret,
            )
            .await
        }
        Route::Parameter | Route::ParameterByPath => {
            let r = match route {
                Route::ParameterByPath => ParameterRequest::parse_path(
                    &req.uri().path()[path::PARAMETER_PATH_PREFIX.len()..],
                    query,
                )?,
                _ => ParameterRequest::parse(query)?,
            };
            let cache = app.roles.cache_for(&app.cache, r.role.as_deref())?;
            one(
                &cache,
                req,
                Key::Parameter(r.key),
                r.refresh_now,
                r.field,
                Kind::Parameter,
            )
            .await
        }
        Route::SecretBatch | Route::ParameterBatch => {
            let (batch_request, kind) = match route {
                Route::SecretBatch => (BatchRequest::secrets(query)?, Kind::Secret),
                _ => (BatchRequest::parameters(query)?, Kind::Parameter),
            };
            let cache = app
                .roles
                .cache_for(&app.cache, batch_request.role.as_deref())?;
            batch(&cache, req, batch_request, kind).await
        }
        Route::Metrics => Ok(text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            Bytes::from(app.metrics.prometheus()),
        )),
    }
}

/// One secret or parameter: its body, or one field of it as text; a 304 when the client already has its version.
async fn one<U: Upstream, W: WallClock, B>(
    cache: &Arc<Cache<U, W>>,
    req: &Request<B>,
    key: Key,
    refresh_now: bool,
    field: Option<String>,
    kind: Kind,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (entry, source) = cache.get(&key, refresh_now).await?;
    match source {
        Source::Hit => tracing::debug!(key = %key, "cache hit"),
        Source::Stale => {}
        Source::Miss | Source::Refreshed => {
            tracing::debug!(key = %key, source = source.as_str(), "served")
        }
    }
    // A projection is another representation of the version: its own tag, so a 304 never answers one for another.
    let etag = match &field {
        None => entry.etag().cloned(),
        Some(f) => entry.etag().map(|t| projection_tag(t, f)),
    };
    if let Some(tag) = &etag {
        if not_modified(req, tag) {
            return Ok(answered(
                StatusCode::NOT_MODIFIED,
                None,
                Bytes::new(),
                source,
                etag,
            ));
        }
    }
    let resp = match field {
        None => answered(
            StatusCode::OK,
            Some("application/json"),
            entry.body().bytes(),
            source,
            etag,
        ),
        Some(field) => {
            let value = respond::project(entry.body(), kind, &field)?;
            answered(
                StatusCode::OK,
                Some("text/plain; charset=utf-8"),
                value.bytes(),
                source,
                etag,
            )
        }
    };
    Ok(resp)
}

/// Several secrets or parameters in one request: hits from the cache, misses in one upstream batch call.
async fn batch<U: Upstream, W: WallClock, B>(
    cache: &Arc<Cache<U, W>>,
    req: &Request<B>,
    batch: BatchRequest,
    kind: Kind,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let results = cache.get_many(&batch.keys).await;
    let field = batch.field.as_deref();
    let mut projections = Vec::with_capacity(results.len());
    for result in &results {
        projections.push(match (result, field) {
            (Ok((entry, _)), Some(f)) => Some(respond::project(entry.body(), kind, f)),
            _ => None,
        });
    }
    let items: Vec<Item> = results
        .iter()
        .zip(projections)
        .map(|(result, projection)| match (result, projection) {
            (Ok((entry, _)), None) => Item::Value(entry.body()),
            (Ok((entry, _)), Some(Ok(value))) => Item::Field {
                value,
                arn: entry.meta().arn.as_deref(),
                name: entry.meta().name.as_deref(),
                version: entry.meta().version.as_deref(),
            },
            (Ok(_), Some(Err(e))) => Item::Error {
                code: match e {
                    ProjectionError::NoSuchField(_) => "FieldNotFoundException",
                    ProjectionError::NotAnObject(_) => "ValueNotAJsonObjectException",
                },
                message: e.to_string(),
            },
            (Err(e), _) => Item::from_error(e),
        })
        .collect();
    // The worst of the answers: a client that sees "stale" knows one of them is.
    let source = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, s)| *s))
        .max_by_key(|s| match s {
            Source::Hit => 0,
            Source::Miss => 1,
            Source::Refreshed => 2,
            Source::Stale => 3,
        })
        .unwrap_or(Source::Miss);
    // One ETag for the whole answer, from every version in it; none when any id failed.
    let etag = results
        .iter()
        .map(|r| r.as_ref().ok().and_then(|(e, _)| e.etag()))
        .collect::<Option<Vec<_>>>()
        .map(|tags| {
            let mut h = Sha256::new();
            for t in tags {
                h.update(t);
                h.update(b",");
            }
            h.update(field.unwrap_or_default().as_bytes());
            let d = h.finalize();
            let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
            Bytes::from(format!("\"b-{hex}\""))
        });
    if let Some(tag) = &etag {
        if not_modified(req, tag) {
            return Ok(answered(
                StatusCode::NOT_MODIFIED,
                None,
                Bytes::new(),
                source,
                etag,
            ));
        }
    }
    let body = match kind {
        Kind::Secret => respond::secret_batch(&batch.ids, &items, field),
        Kind::Parameter => respond::parameter_batch(&batch.ids, &items, field),
    };
    Ok(answered(
        StatusCode::OK,
        Some("application/json"),
        body.bytes(),
        source,
        etag,
    ))
}

/// The ETag of one field of a version: the version's tag with a digest of the field's name (`"v1-f0a1b2c3d4e5"`).
fn projection_tag(version_tag: &[u8], field: &str) -> Bytes {
    let inner = version_tag
        .strip_prefix(b"\"")
        .and_then(|t| t.strip_suffix(b"\""))
        .unwrap_or(version_tag);
    let digest = Sha256::digest(field.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let mut tag = Vec::with_capacity(inner.len() + 17);
    tag.push(b'"');
    tag.extend_from_slice(inner);
    tag.extend_from_slice(b"-f");
    tag.extend_from_slice(hex.as_bytes());
    tag.push(b'"');
    Bytes::from(tag)
}

/// Whether `If-None-Match` names `etag` (or `*`): the client already holds this version.
fn not_modified<B>(req: &Request<B>, etag: &[u8]) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .map(|t| t.strip_prefix(b"W/").unwrap_or(t))
        .any(|t| t == etag || t == b"*")
}

/// A success (or 304) with our cache headers and the ETag.
fn answered(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
    source: Source,
    etag: Option<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    headers.insert(
        CACHE_NAME.clone(),
        HeaderValue::from_static(source.as_str()),
    );
    if source == Source::Stale {
        headers.insert(STALE_NAME.clone(), HeaderValue::from_static("true"));
    }
    // A version id is a UUID (or a number): always a valid header value, so the check never copies.
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_maybe_shared(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    resp
}

/// The request's token: the first configured header it carries (each at most once), checked against the accepted
/// tokens.
async fn check_token<U, W, B>(app: &App<U, W>, req: &Request<B>) -> Result<(), ApiError> {
    for name in &app.token_headers {
        let mut values = req.headers().get_all(name).iter();
        let Some(given) = values.next() else {
            continue;
        };
        if values.next().is_some() {
            return Err(ApiError::DuplicateToken);
        }
        return if app.tokens.accepts(given.as_bytes()).await {
            Ok(())
        } else if let Some(reason) = app.tokens.file_problem() {
            Err(ApiError::TokenFileUnusable(reason))
        } else {
            Err(ApiError::WrongToken)
        };
    }
    Err(ApiError::MissingToken)
}

fn text(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The port cannot be served on: the one failure that stops the extension, with what to change.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on 127.0.0.1:{port}: {source}; set PARAMETERS_SECRETS_EXTENSION_HTTP_PORT to a free port \
         (in Lambda, 9001 is taken by the Runtime API)")]
pub struct BindError {
    /// The port asked for.
    pub port: u16,
    /// Why the system refused.
    pub source: std::io::Error,
}

/// Binds `127.0.0.1:port`, and `[::1]:port` where the host has IPv6 loopback. Only the first is required: a host
/// without IPv6 (or with `::1` taken by someone else) is served on IPv4 alone, with a log line saying why.
pub async fn bind(port: u16) -> Result<Vec<TcpListener>, BindError> {
    let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| BindError { port, source })?;
    // Port 0 (tests) means "any": IPv6 then takes the port IPv4 got, so both are one address for clients.
    let port = v4.local_addr().map_or(port, |a| a.port());
    let mut listeners = vec![v4];
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await {
        Ok(v6) => listeners.push(v6),
        // No `::1` configured, or no IPv6 at all (EAFNOSUPPORT, 97 on Linux, has no ErrorKind of its own).
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(97) =>
        {
            tracing::debug!(error = %e, "no IPv6 loopback on this host; serving 127.0.0.1 only");
        }
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot listen on [::1]; serving 127.0.0.1 only");
        }
    }
    Ok(listeners)
}

/// Serves connections from `listeners` until `shutdown` is cancelled, then drains them.
///
/// Returns when every connection has finished; the caller bounds that wait with the shutdown deadline.
pub async fn serve<U: Upstream, W: WallClock>(
    listeners: Vec<TcpListener>,
    app: Arc<App<U, W>>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                Arc::clone(&app),
                Arc::clone(&permits),
                tracker.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for a in accepting {
        let _ = a.await;
    }
    tracker.close();
    tracker.wait().await;
}

/// Accepts on one listener until shutdown; every connection is a task of `tracker`, sharing one connection cap.
async fn accept_loop<U: Upstream, W: WallClock>(
    listener: TcpListener,
    app: Arc<App<U, W>>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Over the cap, the connection is still answered, with a quick 503 and a close, so the client is told why.
        let permit = Arc::clone(&permits).try_acquire_owned().ok();
        let app = Arc::clone(&app);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let over_limit = permit.is_none();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = Arc::clone(&app);
                async move {
                    let resp = if over_limit {
                        ApiError::Overloaded.into_response()
                    } else {
                        handle(&app, req).await
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(!over_limit)
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    // Finish the request in progress, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
}
