//! The SDK protocol's operations that are not served from the cache's entries (writes, `DescribeSecret`, lists):
//! passed on to the service as they are, signed again with the extension's credentials once the caller's own signature
//! verified with them; a successful write makes the cache forget what it names. The two listing reads
//! (`GetParametersByPath`, `BatchGetSecretValue` with `Filters`) are answered from a kept answer to the same request
//! while it is fresh ([`super::listings`]).

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use super::super::{handlers::answered, App};
use crate::cache::{Source, Upstream};
use crate::clock::WallClock;
use crate::error::{ApiError, SdkRequestError};

/// How the operations not served from the cache go on to the service.
#[derive(Debug)]
pub struct Passthrough {
    /// The client.
    pub forwarder: crate::upstream::Forwarder,
    /// Secrets Manager's endpoint override, if one is configured (the service's regional endpoint otherwise).
    pub secrets_url: Option<String>,
    /// SSM's.
    pub ssm_url: Option<String>,
    /// The longest a forwarded call may take.
    pub timeout: std::time::Duration,
    /// The kept answers of the listing reads.
    pub listings: super::listings::Listings,
}

/// An operation of the two services that is not served from the cache (a write, `DescribeSecret`, a list), passed on
/// to the service unchanged in meaning: only when the caller's signature verifies with the extension's own
/// credentials (so it grants nothing the caller lacked), signed again with them for the service's endpoint, and the
/// service's answer returned as it is. A successful write forgets what the cache holds for the id it names, so the
/// environment reads its own writes.
pub(super) async fn forward<U: Upstream, W: WallClock>(
    app: &App<U, W>,
    req: &Request<()>,
    body: &Bytes,
    target: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    use crate::error::UpstreamError;
    let unknown = || {
        ApiError::Sdk(SdkRequestError::UnknownOperation(
            target.chars().take(128).collect(),
        ))
    };
    let service = match target.split_once('.') {
        Some(("secretsmanager", op)) if is_operation(op) => "secretsmanager",
        Some(("AmazonSSM", op)) if is_operation(op) => "ssm",
        _ => return Err(unknown()),
    };
    let (Some(pass), Some(keys)) = (&app.passthrough, &app.signing_keys) else {
        return Err(unknown());
    };
    // The caller's own signature, whatever else it sent: a token alone does not pass a write on.
    if !crate::sigv4::Keys::is_signed(req.headers()) {
        return Err(ApiError::Sdk(SdkRequestError::ForwardNeedsSignature));
    }
    let keys = keys.verify(req, body).await.map_err(ApiError::Signature)?;
    let (region, _) = crate::sigv4::scope(req.headers()).ok_or(ApiError::Sdk(
        SdkRequestError::Invalid("the signature's credential scope cannot be read"),
    ))?;
    if !crate::request::is_region(&region) {
        return Err(ApiError::Sdk(SdkRequestError::Invalid(
            "the signature's region is not an AWS region",
        )));
    }
    // A listing read is answered from a kept answer to the same request, while it is fresh.
    let listing = super::listings::lists(target)
        .then(|| super::listings::key_of(&region, target, body))
        .flatten();
    if let Some(key) = &listing {
        if let Some(kept) = pass.listings.get(service, key, app.cache.now()).await {
            let mut resp = answered(StatusCode::OK, None, kept.body.bytes(), Source::Hit, None);
            if let Some(ct) = &kept.content_type {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            return Ok(resp);
        }
    }
    let base = match service {
        "secretsmanager" => pass.secrets_url.clone(),
        _ => pass.ssm_url.clone(),
    }
    .unwrap_or_else(|| {
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{service}.{region}.{domain}")
    });
    let uri: http::Uri = format!("{}/", base.trim_end_matches('/'))
        .parse()
        .map_err(|_| {
            ApiError::Upstream(UpstreamError::Internal(
                "the service's endpoint is not a URL".into(),
            ))
        })?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.1")
        .to_owned();
    let headers = [
        ("host", host.as_str()),
        ("content-type", content_type.as_str()),
        ("x-amz-target", target),
    ];
    let signed = keys
        .sign(
            &http::Method::POST,
            &uri,
            &headers,
            body,
            (&region, service),
        )
        .map_err(ApiError::Signature)?;
    let mut builder = Request::post(uri.clone());
    for (name, value) in headers.iter().skip(1) {
        builder = builder.header(*name, *value);
    }
    for (name, value) in &signed {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let outgoing = builder.body(Full::new(body.clone())).map_err(|_| {
        ApiError::Upstream(UpstreamError::Internal(
            "the forwarded request cannot be built".into(),
        ))
    })?;
    let fetched_at = app.cache.now();
    let answer = pass
        .forwarder
        .send(outgoing, pass.timeout)
        .await
        .map_err(|e| {
            ApiError::Upstream(match e {
                crate::upstream::ForwardError::Timeout(t) => UpstreamError::Timeout {
                    millis: t.as_millis() as u64,
                },
                crate::upstream::ForwardError::TooLarge(limit) => UpstreamError::TooLarge { limit },
                crate::upstream::ForwardError::Unreachable(detail) => {
                    UpstreamError::Unreachable { detail }
                }
            })
        })?;
    let op = target.split_once('.').map_or(target, |(_, op)| op);
    if answer.status().is_success() && is_write(op) {
        for id in named_ids(body) {
            app.cache.invalidate_named(&id).await;
        }
        pass.listings.forget(service);
        tracing::info!(
            operation = target,
            "forwarded a write; the cache forgot what it names"
        );
    } else {
        tracing::debug!(
            operation = target,
            status = answer.status().as_u16(),
            "forwarded"
        );
    }
    let (head, bytes) = answer.into_parts();
    if let (Some(key), true) = (listing, head.status.is_success()) {
        let content_type = head.headers.get(header::CONTENT_TYPE).cloned();
        pass.listings
            .put(service, key, bytes.clone(), content_type, fetched_at)
            .await;
    }
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = head.status;
    for name in ["content-type", "x-amzn-requestid", "x-amzn-errortype"] {
        if let Some(v) = head.headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    Ok(resp)
}

/// An operation name as the services spell them: letters only, bounded.
fn is_operation(op: &str) -> bool {
    !op.is_empty() && op.len() <= 64 && op.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Whether an operation changes what a read would answer (anything but reads, descriptions and lists).
fn is_write(op: &str) -> bool {
    !["Get", "Describe", "List", "BatchGet", "Validate"]
        .iter()
        .any(|read| op.starts_with(read))
}

/// The ids a write names: `SecretId` (Secrets Manager), `Name` or `Names` (SSM).
fn named_ids(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Named {
        secret_id: Option<String>,
        name: Option<String>,
        #[serde(default)]
        names: Vec<String>,
    }
    match serde_json::from_slice::<Named>(body) {
        Ok(n) => n
            .secret_id
            .into_iter()
            .chain(n.name)
            .chain(n.names)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_what_is_not_a_read_and_they_name_their_ids() {
        for write in [
            "PutSecretValue",
            "UpdateSecretVersionStage",
            "RotateSecret",
            "PutParameter",
            "DeleteParameters",
        ] {
            assert!(is_write(write), "{write}");
        }
        for read in [
            "GetSecretValue",
            "DescribeSecret",
            "ListSecrets",
            "BatchGetSecretValue",
            "GetParametersByPath",
        ] {
            assert!(!is_write(read), "{read}");
        }
        assert_eq!(
            named_ids(br#"{"SecretId":"prod/db","SecretString":"x"}"#),
            ["prod/db"]
        );
        assert_eq!(
            named_ids(br#"{"Name":"/p","Value":"v","Overwrite":true}"#),
            ["/p"]
        );
        assert_eq!(named_ids(br#"{"Names":["/a","/b"]}"#), ["/a", "/b"]);
        assert!(named_ids(b"not json").is_empty());
        assert!(is_operation("PutSecretValue"));
        assert!(!is_operation("Put.Secret") && !is_operation("") && !is_operation(&"A".repeat(65)));
    }
}
