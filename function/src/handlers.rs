//! The HTTP handlers: routing, query and body validation, and the JSON responses.
//!
//! [`handle`] takes the shared [`App`] and one `lambda_http` request (API Gateway HTTP API v2 or Function URL), so
//! tests call it directly with a fixture event and no socket. Routes:
//! - `GET /items?limit=&offset=`: a page, as a JSON array (the seed note's "items list, or empty array"); `limit`
//!   1-100 (default 50), `offset` >= 0 (default 0). Paging is in headers: `X-Total-Count`, and `Link: <...>;
//!   rel="next"` while there is more;
//! - `GET /items/{id}`: one item, or a 404;
//! - `POST /items`: a JSON body `{"name": ..., "description": ...}`, validated; 201 with a `Location` header;
//! - `DELETE /items/{id}`: 204, or a 404;
//! - `GET /health`: a database round trip.
//!
//! Errors are returned as [`ApiError`] and turned into responses in one place (`error.rs`), which needs to know
//! whether the caller was authenticated by API Gateway ([`Caller`]): only then may a body say which setting is wrong.

use std::future::Future;
use std::pin::Pin;

use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::db::Database;
use crate::error::{json_response, ApiError, Caller};
use crate::store::{self, NewItem};

/// Default page size.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub(crate) const MAX_LIMIT: i64 = 100;
/// The header with the number of items in all.
pub(crate) const TOTAL_COUNT_HEADER: &str = "x-total-count";
/// Largest accepted request body.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest item name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 2000;

/// What every invocation shares: built once per execution environment. It is `Sync` and holds no per-request
/// state, so concurrent invocations (Lambda Managed Instances) share it as they are: one pool, one credential
/// provider, one single-flighted rotation recovery.
#[derive(Debug)]
pub struct App {
    db: Database,
    concurrency: u32,
}

impl App {
    /// The application for `config`. Nothing connects until the first request.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            db: Database::new(config)?,
            concurrency: config.concurrency,
        })
    }

    /// Logs, once per cold start, where the database settings come from and what an operator should fix: no
    /// database (the seed's failure line), a server certificate that will not be verified, the deprecated
    /// Parameter Store tier.
    pub fn log_startup(&self) {
        match self.db.missing_variable() {
            Some(variable) => tracing::error!(
                missing = variable,
                "RuntimeError: {variable} environment variable not set; every request will get a 503 until it is"
            ),
            None => tracing::info!(
                source = self.db.source_name(),
                concurrency = self.concurrency,
                max_connections = self.db.max_connections(),
                "database settings read"
            ),
        }
        if let Some(warning) = self.db.tls_warning() {
            tracing::warn!("{warning}");
        }
        if self.db.is_deprecated_source() {
            tracing::warn!(
                source = crate::config::PARAMETER_STORE_DB_URL,
                "PARAMETER_STORE_DB_URL is deprecated: the database URL in Parameter Store cannot rotate; \
                 store the credentials in Secrets Manager and set DB_SECRET_ARN"
            );
        }
    }
}

/// Handles one request; never fails, since every error becomes a response.
pub async fn handle(app: &App, request: Request) -> Response<Body> {
    let method = request.method().clone();
    // Boxed as `dyn Future + Send` so that Send is proven here, for this lifetime, rather than for every lifetime
    // at `lambda_http::run_concurrent`, where rustc cannot prove it for sqlx's executor futures (rust-lang/rust#102211).
    let routed: Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send + '_>> =
        Box::pin(route(app, &request));
    let response = match routed.await {
        Ok(response) => response,
        Err(e) => e.into_response(caller(&request)),
    };
    // The path is not logged: it can carry ids a client considers private, and the route says enough.
    tracing::info!(
        method = %method,
        status = response.status().as_u16(),
        "request handled"
    );
    response
}

/// Whether API Gateway authenticated the caller (a JWT, IAM or Lambda authorizer ran and left its mark in the
/// request context). A Function URL with `AuthType: NONE`, or a route without an authorizer, is anonymous.
fn caller(request: &Request) -> Caller {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => match &ctx.authorizer {
            Some(a) if a.jwt.is_some() || a.iam.is_some() || !a.fields.is_empty() => {
                Caller::Authenticated
            }
            _ => Caller::Anonymous,
        },
        _ => Caller::Anonymous,
    }
}

async fn route(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    let (stage_prefix, path) = route_path(request);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method();
    match segments.as_slice() {
        ["health"] => match *method {
            Method::GET | Method::HEAD => health(app).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
        },
        ["items"] => match *method {
            Method::GET | Method::HEAD => list(app, request, &stage_prefix).await,
            Method::POST => create(app, request).await,
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }),
        },
        ["items", id] => {
            let id = parse_id(id)?;
            match *method {
                Method::GET | Method::HEAD => get(app, id).await,
                Method::DELETE => delete(app, id).await,
                _ => Err(ApiError::MethodNotAllowed {
                    allow: "GET, HEAD, DELETE",
                }),
            }
        }
        _ => Err(ApiError::NoRoute(format!("{method} {path}"))),
    }
}

/// The stage prefix (`/{stage}`, or empty) and the path without it: lambda_http puts `/{stage}` in front for named
/// stages. The prefix is kept for the links we hand back, so that they work from where the client called.
fn route_path(request: &Request) -> (String, String) {
    let path = request.uri().path();
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    match stage.filter(|s| *s != "$default" && !s.is_empty()) {
        Some(stage) => {
            let prefix = format!("/{stage}");
            match path.strip_prefix(&prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => (prefix, rest.to_owned()),
                _ => (String::new(), path.to_owned()),
            }
        }
        None => (String::new(), path.to_owned()),
    }
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest("the item id must be a positive integer".to_owned()))
}

/// Parses `limit` and `offset`. Absent means the default; present but empty, or anything out of range, is a 400.
pub(crate) fn parse_paging(
    limit: Option<&str>,
    offset: Option<&str>,
) -> Result<(i64, i64), ApiError> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be an integer from 1 to {MAX_LIMIT}"))
            })?,
    };
    let offset = match offset {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest("offset must be an integer of 0 or more".to_owned())
            })?,
    };
    Ok((limit, offset))
}

async fn list(
    app: &App,
    request: &Request,
    stage_prefix: &str,
) -> Result<Response<Body>, ApiError> {
    let query = request.query_string_parameters_ref();
    let (limit, offset) = parse_paging(
        query.and_then(|q| q.first("limit")),
        query.and_then(|q| q.first("offset")),
    )?;
    let page = app
        .db
        .run(move |backend| store::list(backend, limit, offset))
        .await?;
    let mut response = json_response(StatusCode::OK, &page.items);
    let headers = response.headers_mut();
    headers.insert(TOTAL_COUNT_HEADER, HeaderValue::from(page.total));
    if let Some(next) = page.next_offset {
        // Only our own digits and the stage name API Gateway matched go into the header.
        let link = format!("<{stage_prefix}/items?limit={limit}&offset={next}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok(response)
}

async fn get(app: &App, id: i64) -> Result<Response<Body>, ApiError> {
    match app.db.run(move |backend| store::get(backend, id)).await? {
        Some(item) => Ok(json_response(StatusCode::OK, &item)),
        None => Err(ApiError::NotFound),
    }
}

async fn delete(app: &App, id: i64) -> Result<Response<Body>, ApiError> {
    if app
        .db
        .run(move |backend| store::delete(backend, id))
        .await?
    {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        Ok(response)
    } else {
        Err(ApiError::NotFound)
    }
}

async fn health(app: &App) -> Result<Response<Body>, ApiError> {
    let backend = app.db.backend().await?;
    let kind = backend.kind();
    app.db.run(store::ping).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ok", "database": kind}),
    ))
}

/// The body of `POST /items`. Unknown fields are refused, so a misspelt field is an error rather than lost data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateItem {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// Validates a `POST /items` body.
pub(crate) fn validate_new_item(body: &[u8]) -> Result<NewItem, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "a JSON body {\"name\": ...} is required".to_owned(),
        ));
    }
    let parsed: CreateItem = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let name = parsed.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::BadRequest("name must not be empty".to_owned()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must not contain control characters".to_owned(),
        ));
    }
    let description = parsed.description.filter(|d| !d.trim().is_empty());
    // PostgreSQL refuses NUL in text outright (a 500 before this check); the other control characters are refused
    // too, so that what one database stores the other would as well, and no item can forge lines in a log or a
    // terminal that shows it.
    if description
        .as_ref()
        .is_some_and(|d| d.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest(
            "description must not contain control characters".to_owned(),
        ));
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(NewItem { name, description })
}

async fn create(app: &App, request: &Request) -> Result<Response<Body>, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let new_item = validate_new_item(request.body().as_ref())?;
    let item = app
        .db
        .run(move |backend| store::create(backend, new_item.clone()))
        .await?;
    let mut response = json_response(StatusCode::CREATED, &item);
    if let Ok(location) = HeaderValue::from_str(&format!("/items/{}", item.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(parse_paging(None, None).ok(), Some((50, 0)));
        assert_eq!(parse_paging(Some("1"), Some("0")).ok(), Some((1, 0)));
        assert_eq!(parse_paging(Some("100"), Some("7")).ok(), Some((100, 7)));
        for (l, o) in [
            (Some("0"), None),
            (Some("101"), None),
            (Some("-1"), None),
            (Some("ten"), None),
            (Some(""), None),
            (None, Some("-1")),
            (None, Some("x")),
        ] {
            let e = parse_paging(l, o).expect_err("400");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn new_items_are_validated() {
        let ok = validate_new_item(br#"{"name":"  Mug ","description":"blue"}"#).expect("valid");
        assert_eq!(ok.name, "Mug");
        assert_eq!(ok.description.as_deref(), Some("blue"));
        for bad in [
            &b""[..],
            b"   ",
            b"[]",
            b"{}",
            br#"{"name":""}"#,
            br#"{"name":"   "}"#,
            br#"{"name":"a\u0007"}"#,
            br#"{"name":"a","description":"nul \u0000 here"}"#,
            br#"{"name":"a","description":"line\nbreak"}"#,
            br#"{"name":"a","description":"\u001b[31mred"}"#,
            br#"{"name":"x","colour":"red"}"#,
            br#"{"name":5}"#,
        ] {
            let e = validate_new_item(bad).expect_err("invalid");
            assert_eq!(e.status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(201));
        assert_eq!(
            validate_new_item(long.as_bytes())
                .map(|_| ())
                .expect_err("long")
                .status(),
            400
        );
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            validate_new_item(&huge)
                .map(|_| ())
                .expect_err("huge")
                .status(),
            413
        );
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("7").ok(), Some(7));
        for bad in ["0", "-3", "abc", "1.5", ""] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
