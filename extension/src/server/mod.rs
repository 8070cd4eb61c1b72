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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use secretcache_client::contract::path;

use crate::cache::{Cache, Upstream};
use crate::clock::{SystemWallClock, WallClock};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::{BatchRequest, Key, ParameterRequest, SecretRequest};
use crate::respond::Kind;
use crate::roles::{RoleCaches, DEFAULT_MAX_ROLES};
use crate::token::{Accepted, Tokens};

mod handlers;
mod listen;
pub(crate) mod sdk;

use handlers::{batch, one};
pub use listen::{bind, serve, BindError};
pub use sdk::{Listings, Passthrough};

// The header that carries the execution environment's session token; how a value was served (`hit`, `miss`,
// `refresh` or `stale`); and `true` when the value is past its TTL and served because the upstream failed.
pub use secretcache_client::contract::{CACHE_HEADER, STALE_HEADER};
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
    /// The keys a SigV4-signed request must verify with, if the extension holds any.
    pub signing_keys: Option<crate::sigv4::HeldKeys>,
    /// How the SDK protocol's operations not served from the cache go on to the service (none: they are refused).
    pub passthrough: Option<Arc<sdk::Passthrough>>,
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
            signing_keys: None,
            passthrough: None,
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

/// Answers one request. Every failure goes through the one mapping of errors to HTTP (`ApiError::into_response`).
pub async fn handle<U: Upstream, W: WallClock, B>(
    app: &App<U, W>,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    handle_on(app, req, &Accepted::default()).await
}

/// [`handle`] for a request on a connection whose accepted token `seen` remembers (`token::Accepted`).
pub(super) async fn handle_on<U: Upstream, W: WallClock, B>(
    app: &App<U, W>,
    req: Request<B>,
    seen: &Accepted,
) -> Response<Full<Bytes>> {
    match route(app, &req, seen).await {
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
    seen: &Accepted,
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
            check_token(app, req, &[], seen).await?;
            return Err(ApiError::UnknownPath);
        }
    };
    check_token(app, req, &[], seen).await?;
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

/// The request's token: the first configured header it carries (each at most once), checked against the accepted
/// tokens.
use crate::sigv4::SignatureError;

async fn check_token<U, W, B>(
    app: &App<U, W>,
    req: &Request<B>,
    body: &[u8],
    seen: &Accepted,
) -> Result<(), ApiError> {
    for name in &app.token_headers {
        let mut values = req.headers().get_all(name).iter();
        let Some(given) = values.next() else {
            continue;
        };
        if values.next().is_some() {
            return Err(ApiError::DuplicateToken);
        }
        return if app.tokens.accepts_on(seen, given.as_bytes()).await {
            Ok(())
        } else if let Some(reason) = app.tokens.file_problem() {
            Err(ApiError::TokenFileUnusable(reason))
        } else {
            Err(ApiError::WrongToken)
        };
    }
    // No token: a SigV4 signature made with the extension's own credentials is the other way in.
    if crate::sigv4::Keys::is_signed(req.headers()) {
        let keys = app
            .signing_keys
            .as_ref()
            .ok_or(ApiError::Signature(SignatureError::NoKeys))?;
        return keys
            .verify(req, body)
            .await
            .map(drop)
            .map_err(ApiError::Signature);
    }
    Err(ApiError::MissingToken)
}

pub(super) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
