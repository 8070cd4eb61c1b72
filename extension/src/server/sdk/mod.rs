//! The AWS SDKs' own protocol on the extension's port (AWS JSON 1.1): an application points its SDK at the extension
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`) and keeps its code. Served at `/` and at Cloud
//! Extensions' `/secretsmanager` and `/parameterstore`, dispatched on `X-Amz-Target`:
//! - `secretsmanager.GetSecretValue` (`SecretId`, `VersionId`, `VersionStage`);
//! - `secretsmanager.BatchGetSecretValue` with `SecretIdList` (up to 20; hits from the cache, misses in one upstream
//!   batch), each failed id in `Errors` as the service lists it;
//! - `AmazonSSM.GetParameter` (`Name`, with a `:version` or `:label` selector, `WithDecryption`);
//! - `AmazonSSM.GetParameters` (`Names`, up to 10, `WithDecryption`), a name that does not exist in
//!   `InvalidParameters`.
//!
//! Both read through the same cache entries as the HTTP routes. The answer is the cached body, which is the
//! service's own JSON, with its date in the protocol's form (epoch seconds, where the HTTP routes keep the AWS
//! extension's RFC 3339 string). Errors are the service's shapes (`__type`, `message`, `X-Amzn-Errortype`), so each
//! SDK raises its usual exception. A request is authenticated by its SigV4 signature (the SDK signs every call),
//! verified over the body with the extension's own credentials, or by the token header. Any other operation of the
//! two services (writes, `DescribeSecret`, lists) is passed on to the service ([`forward`]) once the caller's signature
//! verified; the two listing reads (`GetParametersByPath`, `BatchGetSecretValue` with `Filters`) keep their answers
//! for the TTL ([`listings`]).

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use super::{check_token, handlers::answered, App, FORWARDED, FORWARDED_FOR};
use crate::cache::Upstream;
use crate::clock::WallClock;
use crate::error::{ApiError, SdkRequestError};
use crate::request::{Key, ParameterKey, SecretKey, VersionSelector};
use crate::token::Accepted;

mod forward;
pub(crate) mod listings;

pub use forward::Passthrough;
pub use listings::Listings;

/// The largest request body read: a GetSecretValue or GetParameter request is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// The paths the SDK protocol is served at: the root (an SDK's endpoint override) and Cloud Extensions' two.
pub(super) fn is_sdk_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/secretsmanager" | "/secretsmanager/" | "/parameterstore" | "/parameterstore/"
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValue {
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetSecretValue {
    secret_id_list: Option<Vec<String>>,
    filters: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParameters {
    names: Vec<String>,
    #[serde(default)]
    with_decryption: bool,
}

/// One id's failure in a BatchGetSecretValue answer, as the service writes it.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchError<'a> {
    secret_id: &'a str,
    error_code: &'a str,
    message: String,
}

/// The `Parameter` member of a cached GetParameter body, as it is (no copy, no re-serialization).
#[derive(Deserialize)]
struct CachedParameter<'a> {
    #[serde(borrow, rename = "Parameter")]
    parameter: &'a serde_json::value::RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetParameter {
    name: String,
    #[serde(default)]
    with_decryption: bool,
}

/// Answers one SDK request; every failure is the service's error shape.
pub(super) async fn serve<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    req: Request<hyper::body::Incoming>,
    seen: &Accepted,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return ApiError::Sdk(SdkRequestError::BodyTooLarge(MAX_BODY)).into_response(),
    };
    let req = Request::from_parts(parts, ());
    match answer(app, &req, &body, seen).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(target = ?req.headers().get("x-amz-target"), error = %e, "SDK request failed");
            e.into_response()
        }
    }
}

async fn answer<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    req: &Request<()>,
    body: &Bytes,
    seen: &Accepted,
) -> Result<Response<Full<Bytes>>, ApiError> {
    if req.headers().contains_key(&FORWARDED_FOR) || req.headers().contains_key(&FORWARDED) {
        return Err(ApiError::Forwarded);
    }
    if !is_sdk_path(req.uri().path()) {
        return Err(ApiError::MethodNotAllowed);
    }
    check_token(app, req, body, seen).await?;
    in_json_form(req.headers())?;
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Sdk(SdkRequestError::MissingTarget))?;
    let key = match read_of(target, body)? {
        Read::One(key) => key,
        Read::Secrets(keys) => return Ok(batch_of_secrets(app, &keys).await),
        Read::Parameters(keys) => return batch_of_parameters(app, &keys).await,
        Read::PassOn => return forward::forward(app, req, body, target).await,
    };
    let (entry, source) = app.cache.get(&key, false).await?;
    let date_field = match key {
        Key::Secret(_) => "CreatedDate",
        Key::Parameter(_) => "LastModifiedDate",
    };
    let body = with_epoch_date(&entry.body().bytes(), date_field);
    let mut resp = json_answer(body, source);
    if let Some(tag) = entry
        .etag()
        .and_then(|t| HeaderValue::from_maybe_shared(t.clone()).ok())
    {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    Ok(resp)
}

/// Refuses, plainly, the request forms no current AWS SDK sends Secrets Manager or SSM, rather than failing to read
/// them as JSON: a compressed body (`Content-Encoding`; the SDKs compress only operations marked for it, none of
/// these) and Smithy RPC v2 CBOR (`smithy-protocol: rpc-v2-cbor`; both services speak AWS JSON 1.1). `Expect:
/// 100-continue` needs nothing here: the server answers it when the body is read.
fn in_json_form(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let unsupported = |why| Err(ApiError::Sdk(SdkRequestError::UnsupportedForm(why)));
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return unsupported(
            "a compressed request body (Content-Encoding) is not read: send the JSON as it is, as the AWS SDKs do \
             for Secrets Manager and SSM",
        );
    }
    let cbor = headers
        .get("smithy-protocol")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"rpc-v2-cbor"))
        || headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/cbor"));
    if cbor {
        return unsupported(
            "Smithy RPC v2 CBOR is not served: secretcache speaks AWS JSON 1.1 (application/x-amz-json-1.1), the \
             protocol of Secrets Manager and SSM",
        );
    }
    Ok(())
}

/// What an SDK request asks for, read from its `X-Amz-Target` and its body alone.
#[derive(Debug)]
pub(crate) enum Read {
    /// One secret or parameter, answered from the cache.
    One(Key),
    /// BatchGetSecretValue's secrets (1 to 20, current versions).
    Secrets(Vec<Key>),
    /// GetParameters' parameters (1 to 10).
    Parameters(Vec<Key>),
    /// Any other operation: passed on to the service.
    PassOn,
}

/// Reads an SDK request: exactly one of [`Read`]'s answers, or the service's error for a body that is not the
/// operation's (ids empty or past 2048 characters, a list past the service's bound, an ARN of no AWS region).
pub(crate) fn read_of(target: &str, body: &[u8]) -> Result<Read, ApiError> {
    let read = match target {
        "secretsmanager.GetSecretValue" => {
            let r: GetSecretValue = parse(body)?;
            bounded("SecretId", &r.secret_id)?;
            let selector = match (non_empty(r.version_id), non_empty(r.version_stage)) {
                (Some(id), Some(stage)) => VersionSelector::IdAndStage(id, stage),
                (Some(id), None) => VersionSelector::Id(id),
                (None, Some(stage)) if stage != "AWSCURRENT" => VersionSelector::Stage(stage),
                (None, _) => VersionSelector::Current,
            };
            Read::One(Key::Secret(SecretKey {
                secret_id: r.secret_id,
                selector,
            }))
        }
        "secretsmanager.BatchGetSecretValue" => {
            let r: BatchGetSecretValue = parse(body)?;
            // The Filters form lists secrets by what they are, not by id: the service answers it.
            if r.filters.is_some() {
                return Ok(Read::PassOn);
            }
            let ids = r.secret_id_list.unwrap_or_default();
            if ids.is_empty() || ids.len() > 20 {
                return Err(ApiError::Sdk(SdkRequestError::Invalid(
                    "SecretIdList must name 1 to 20 secrets",
                )));
            }
            for id in &ids {
                bounded("SecretId", id)?;
            }
            let keys: Vec<Key> = ids.into_iter().map(Key::current_secret).collect();
            Read::Secrets(keys)
        }
        "AmazonSSM.GetParameters" => {
            let r: GetParameters = parse(body)?;
            if r.names.is_empty() || r.names.len() > 10 {
                return Err(ApiError::Sdk(SdkRequestError::Invalid(
                    "Names must name 1 to 10 parameters",
                )));
            }
            for name in &r.names {
                bounded("Name", name)?;
            }
            let keys: Vec<Key> = r
                .names
                .into_iter()
                .map(|name| {
                    Key::Parameter(ParameterKey {
                        name,
                        with_decryption: r.with_decryption,
                    })
                })
                .collect();
            Read::Parameters(keys)
        }
        "AmazonSSM.GetParameter" => {
            let r: GetParameter = parse(body)?;
            bounded("Name", &r.name)?;
            Read::One(Key::Parameter(ParameterKey {
                name: r.name,
                with_decryption: r.with_decryption,
            }))
        }
        _ => Read::PassOn,
    };

    let keys: &[Key] = match &read {
        Read::One(key) => std::slice::from_ref(key),
        Read::Secrets(keys) | Read::Parameters(keys) => keys,
        Read::PassOn => &[],
    };
    for key in keys {
        if let Some(region) = key.region() {
            if !crate::request::is_region(region) {
                return Err(ApiError::Sdk(SdkRequestError::Invalid(
                    "the ARN's region is not an AWS region",
                )));
            }
        }
    }
    Ok(read)
}

/// BatchGetSecretValue's answer: each found secret's cached body in `SecretValues` (a GetSecretValue body is a
/// `SecretValueEntry` with one member more, which SDKs ignore), each failure in `Errors`.
async fn batch_of_secrets<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    keys: &[Key],
) -> Response<Full<Bytes>> {
    let results = app.cache.get_many(keys).await;
    let mut out = Vec::with_capacity(256 + results.len() * 512);
    out.extend_from_slice(b"{\"SecretValues\":[");
    let mut errors = Vec::new();
    let mut first = true;
    for (key, result) in keys.iter().zip(&results) {
        match result {
            Ok((entry, _)) => {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&with_epoch_date(&entry.body().bytes(), "CreatedDate"));
            }
            Err(e) => errors.push(BatchError {
                secret_id: match key {
                    Key::Secret(k) => &k.secret_id,
                    Key::Parameter(k) => &k.name,
                },
                error_code: e.code(),
                message: e.to_string(),
            }),
        }
    }
    out.extend_from_slice(b"],\"Errors\":");
    // Ids and messages only: serializing them cannot fail.
    out.extend_from_slice(&serde_json::to_vec(&errors).unwrap_or_else(|_| b"[]".to_vec()));
    out.push(b'}');
    json_answer(Bytes::from(out), super::handlers::worst_source(&results))
}

/// GetParameters' answer: each found parameter's cached `Parameter` in `Parameters`, the names that do not exist in
/// `InvalidParameters`; any other failure (denied, throttled, unreachable) fails the call, as the service's would.
async fn batch_of_parameters<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    keys: &[Key],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let results = app.cache.get_many(keys).await;
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    for (key, result) in keys.iter().zip(&results) {
        match result {
            Ok((entry, _)) => {
                found.push(with_epoch_date(&entry.body().bytes(), "LastModifiedDate"))
            }
            Err(crate::error::UpstreamError::NotFound { .. }) => {
                if let Key::Parameter(k) = key {
                    invalid.push(k.name.as_str());
                }
            }
            Err(e) => return Err(ApiError::Upstream(e.clone())),
        }
    }
    let mut out = Vec::with_capacity(256 + found.iter().map(Bytes::len).sum::<usize>());
    out.extend_from_slice(b"{\"Parameters\":[");
    for (i, body) in found.iter().enumerate() {
        let cached: CachedParameter<'_> = serde_json::from_slice(body).map_err(|_| {
            ApiError::Upstream(crate::error::UpstreamError::Internal(
                "a cached parameter body has no Parameter member".into(),
            ))
        })?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(cached.parameter.get().as_bytes());
    }
    out.extend_from_slice(b"],\"InvalidParameters\":");
    out.extend_from_slice(&serde_json::to_vec(&invalid).unwrap_or_else(|_| b"[]".to_vec()));
    out.push(b'}');
    Ok(json_answer(
        Bytes::from(out),
        super::handlers::worst_source(&results),
    ))
}

fn json_answer(body: Bytes, source: crate::cache::Source) -> Response<Full<Bytes>> {
    let mut resp = answered(StatusCode::OK, None, body, source, None);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    resp
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Sdk(SdkRequestError::Serialization(match e.classify() {
            serde_json::error::Category::Data => {
                "a required member is missing or of the wrong type"
            }
            _ => "the body is not a JSON object",
        }))
    })
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// An id within the service's own bound (2048 characters), not empty.
fn bounded(member: &'static str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > 2048 {
        return Err(ApiError::Sdk(SdkRequestError::Invalid(match member {
            "SecretId" => "SecretId must be 1 to 2048 characters",
            _ => "Name must be 1 to 2048 characters",
        })));
    }
    Ok(())
}

/// The cached body with its date member (`"CreatedDate":"2022-11-16T08:22:40.499Z"`, as the HTTP routes answer it)
/// as epoch seconds (`"CreatedDate":1668586960.499`), the AWS JSON protocol's timestamp form, which some SDKs (the
/// Rust one) insist on. The member is found only before any value member: the body is our own serialization, whose
/// first members are the ARN and the date (for a parameter, inside `"Parameter":{` after `ARN` and `DataType`), and
/// neither can hold a quote, so no secret text is ever searched or rewritten. A body without it is returned as is.
pub(crate) fn with_epoch_date(body: &Bytes, member: &str) -> Bytes {
    let pattern = format!("\"{member}\":\"");
    let Some(at) = find(body, pattern.as_bytes()) else {
        return body.clone();
    };
    // Nothing before the member may be a value that could hold text of a caller's or a secret's.
    let before = &body[..at];
    if before.contains(&b'\\')
        || find(before, b"\"SecretString\"").is_some()
        || find(before, b"\"Value\"").is_some()
    {
        return body.clone();
    }
    let start = at + pattern.len();
    let Some(len) = body[start..].iter().position(|&b| b == b'"') else {
        return body.clone();
    };
    let Some(seconds) = std::str::from_utf8(&body[start..start + len])
        .ok()
        .and_then(epoch_seconds)
    else {
        return body.clone();
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(format!("\"{member}\":{seconds}").as_bytes());
    out.extend_from_slice(&body[start + len + 1..]);
    Bytes::from(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `2022-11-16T08:22:40.499Z` as `1668586960.499`.
fn epoch_seconds(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let secs = crate::clock::utc_from_fixed_digits(s, [0..4, 5..7, 8..10, 11..13, 14..16, 17..19])?
        .unix_timestamp();
    let millis = s
        .get(20..23)
        .filter(|m| m.bytes().all(|c| c.is_ascii_digit()))?;
    Some(format!("{secs}.{millis}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_epoch_seconds_and_nothing_else_moves() {
        let body = Bytes::from_static(
            br#"{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf","CreatedDate":"2022-11-16T08:22:40.499Z","Name":"a","SecretString":"\"CreatedDate\":\"x\"","VersionId":"v"}"#,
        );
        let out = with_epoch_date(&body, "CreatedDate");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf-8"),
            r#"{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:a-AbCdEf","CreatedDate":1668586960.499,"Name":"a","SecretString":"\"CreatedDate\":\"x\"","VersionId":"v"}"#
        );
        let p = Bytes::from_static(
            br#"{"Parameter":{"ARN":"arn:aws:ssm:us-east-1:1:parameter/p","DataType":"text","LastModifiedDate":"2024-01-02T03:04:05.006Z","Name":"/p","Type":"String","Value":"v","Version":1}}"#,
        );
        let out = with_epoch_date(&p, "LastModifiedDate");
        assert!(std::str::from_utf8(&out)
            .expect("utf-8")
            .contains(r#""LastModifiedDate":1704164645.006,"#));
    }

    #[test]
    fn a_date_member_after_a_value_or_a_malformed_date_is_left_alone() {
        for body in [
            br#"{"Name":"a","SecretString":"s","CreatedDate":"2022-11-16T08:22:40.499Z"}"#
                .as_slice(),
            br#"{"ARN":"a","CreatedDate":"2022-13-16T08:22:40.499Z"}"#.as_slice(),
            br#"{"ARN":"a","CreatedDate":"yesterday"}"#.as_slice(),
            br#"{"ARN":"a"}"#.as_slice(),
        ] {
            let body = Bytes::copy_from_slice(body);
            assert_eq!(with_epoch_date(&body, "CreatedDate"), body);
        }
    }

    #[test]
    fn only_the_sdk_paths_are_sdk_paths() {
        for p in ["/", "/secretsmanager", "/parameterstore/"] {
            assert!(is_sdk_path(p), "{p}");
        }
        for p in ["/secretsmanager/get", "/v1/x", "/ping", ""] {
            assert!(!is_sdk_path(p), "{p}");
        }
    }
}
