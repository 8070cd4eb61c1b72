//! The AWS SDKs' own protocol on the extension's port (AWS JSON 1.1): an application points its SDK at the extension
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`) and keeps its code. Served at `/` and at Cloud
//! Extensions' `/secretsmanager` and `/parameterstore`, dispatched on `X-Amz-Target`:
//! - `secretsmanager.GetSecretValue` (`SecretId`, `VersionId`, `VersionStage`);
//! - `AmazonSSM.GetParameter` (`Name`, with a `:version` or `:label` selector, `WithDecryption`).
//!
//! Both read through the same cache entries as the HTTP routes. The answer is the cached body, which is the
//! service's own JSON, with its date in the protocol's form (epoch seconds, where the HTTP routes keep the AWS
//! extension's RFC 3339 string). Errors are the service's shapes (`__type`, `message`, `X-Amzn-Errortype`), so each
//! SDK raises its usual exception. A request is authenticated by its SigV4 signature (the SDK signs every call),
//! verified over the body with the extension's own credentials, or by the token header. Any other operation is
//! answered 400 `UnknownOperationException`, naming what is served: writes are not forwarded yet.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;

use super::{check_token, handlers::answered, App, FORWARDED, FORWARDED_FOR};
use crate::cache::Upstream;
use crate::clock::WallClock;
use crate::error::{ApiError, SdkRequestError};
use crate::request::{Key, ParameterKey, SecretKey, VersionSelector};

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
struct GetParameter {
    name: String,
    #[serde(default)]
    with_decryption: bool,
}

/// Answers one SDK request; every failure is the service's error shape.
pub(super) async fn serve<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return ApiError::Sdk(SdkRequestError::BodyTooLarge(MAX_BODY)).into_response(),
    };
    let req = Request::from_parts(parts, ());
    match answer(app, &req, &body).await {
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
) -> Result<Response<Full<Bytes>>, ApiError> {
    if req.headers().contains_key(&FORWARDED_FOR) || req.headers().contains_key(&FORWARDED) {
        return Err(ApiError::Forwarded);
    }
    if !is_sdk_path(req.uri().path()) {
        return Err(ApiError::MethodNotAllowed);
    }
    check_token(app, req, body).await?;
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Sdk(SdkRequestError::MissingTarget))?;
    let key = match target {
        "secretsmanager.GetSecretValue" => {
            let r: GetSecretValue = parse(body)?;
            bounded("SecretId", &r.secret_id)?;
            let selector = match (non_empty(r.version_id), non_empty(r.version_stage)) {
                (Some(id), Some(stage)) => VersionSelector::IdAndStage(id, stage),
                (Some(id), None) => VersionSelector::Id(id),
                (None, Some(stage)) if stage != "AWSCURRENT" => VersionSelector::Stage(stage),
                (None, _) => VersionSelector::Current,
            };
            Key::Secret(SecretKey {
                secret_id: r.secret_id,
                selector,
            })
        }
        "AmazonSSM.GetParameter" => {
            let r: GetParameter = parse(body)?;
            bounded("Name", &r.name)?;
            Key::Parameter(ParameterKey {
                name: r.name,
                with_decryption: r.with_decryption,
            })
        }
        other => {
            return Err(ApiError::Sdk(SdkRequestError::UnknownOperation(
                other.chars().take(128).collect(),
            )))
        }
    };
    if let Some(region) = key.region() {
        if !crate::request::is_region(region) {
            return Err(ApiError::Sdk(SdkRequestError::Invalid(
                "the ARN's region is not an AWS region",
            )));
        }
    }
    let (entry, source) = app.cache.get(&key, false).await?;
    let date_field = match key {
        Key::Secret(_) => "CreatedDate",
        Key::Parameter(_) => "LastModifiedDate",
    };
    let body = with_epoch_date(&entry.body().bytes(), date_field);
    let mut resp = answered(StatusCode::OK, None, body, source, entry.etag().cloned());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Ok(resp)
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
fn with_epoch_date(body: &Bytes, member: &str) -> Bytes {
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
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let month = time::Month::try_from(u8::try_from(n(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        month,
        u8::try_from(n(8..10)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(14..16)?).ok()?,
        u8::try_from(n(17..19)?).ok()?,
    )
    .ok()?;
    let secs = time::PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    Some(format!("{secs}.{:03}", n(20..23)?))
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
