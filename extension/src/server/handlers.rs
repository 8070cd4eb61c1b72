//! The two answering handlers behind the router: one secret or parameter (with its field projection and 304s),
//! and a batch; and how an answer carries its cache headers.

use crate::cache::{Cache, Lookup, Source, Upstream};
use crate::clock::WallClock;
use crate::error::ApiError;
use crate::error::ProjectionError;
use crate::request::{BatchRequest, Key};
use crate::respond::{self, Item, Kind};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::{CACHE_NAME, STALE_NAME};

/// One secret or parameter: its body, or one field of it as text; a 304 when the client already has its version.
pub(super) async fn one<U: Upstream, W: WallClock, B>(
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
        None => entry.etag(),
        Some(f) => entry.etag().map(|t| projection_tag(&t, f)),
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
pub(super) async fn batch<U: Upstream, W: WallClock, B>(
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
                arn: entry.arn(),
                name: entry.name(),
                version: entry.version(),
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
    let source = worst_source(&results);
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
/// The worst of several answers: a client that sees "stale" knows one of them is.
pub(super) fn worst_source(results: &[Lookup]) -> Source {
    results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, s)| *s))
        .max_by_key(|s| match s {
            Source::Hit => 0,
            Source::Miss => 1,
            Source::Refreshed => 2,
            Source::Stale => 3,
        })
        .unwrap_or(Source::Miss)
}

pub(super) fn answered(
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
