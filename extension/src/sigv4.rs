//! SigV4 as an alternative to the token on the localhost API: a request whose `Authorization` header is an AWS
//! Signature Version 4 is accepted when the signature verifies with the credentials the extension itself holds. In
//! Lambda the function and its extensions see the same `AWS_ACCESS_KEY_ID`, secret key and session token, so a caller
//! that signs with the function's credentials (as AWS Systems Manager Cloud Extensions' callers sign with botocore)
//! proves what the token proves, and more.
//!
//! The signature is not made here: the request is rebuilt from what the caller said it signed (its method, target,
//! the headers named in `SignedHeaders`, its `X-Amz-Date`, the credential scope's region and service), signed again
//! with our key by the kept crate `aws-sigv4`, and the two signatures are compared in constant time. Every field is
//! checked first and bounded: the algorithm, one `Credential` of five parts for our access key id, a date that is
//! the scope's date and within AWS's 5-minute skew, `host` and `x-amz-date` among the signed headers, each present
//! once. The body is part of what is verified (the SDK protocol's POSTs; an empty one for the GET routes).

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq;

/// AWS's allowed clock skew between a signature's date and the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The longest `Authorization` header read: a credential scope, a few dozen header names and a signature fit in
/// far less.
const MAX_AUTHORIZATION: usize = 2048;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

mod held;

pub use held::{HeldKeys, Provided};

/// The credentials a signature must verify with: the extension's own, read once at start.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"(redacted)")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "(redacted)"),
            )
            .finish()
    }
}

/// Why a signed request was refused; each is the service's own error, so an SDK reports it plainly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header or a field it needs is missing or malformed.
    #[error("the request signature is incomplete or malformed: {0}")]
    Incomplete(&'static str),
    /// Signed with a key that is not the extension's.
    #[error(
        "the request is signed with an access key id that is not one this extension holds; sign with the \
         credentials its environment gives (a function's AWS_ACCESS_KEY_ID; in a sidecar, the task role's current \
         or previous credentials from the container credentials endpoint), or send the token header instead"
    )]
    UnknownKey,
    /// The extension holds no key to verify with.
    #[error(
        "this extension holds no credentials to verify a signature with (none in its environment, and its \
         credentials provider gave none); send the token header instead"
    )]
    NoKeys,
    /// The signature's date is more than 5 minutes from the extension's clock.
    #[error("signature expired: its date is more than 5 minutes from this extension's clock")]
    Expired,
    /// The signature does not match the request.
    #[error(
        "the request signature we calculated does not match the signature you provided; check your AWS secret \
         access key and signing method"
    )]
    Mismatch,
}

impl SignatureError {
    /// The service's error type for it.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownKey | Self::NoKeys => "UnrecognizedClientException",
            Self::Expired | Self::Mismatch => "InvalidSignatureException",
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Result<Self, SignatureError> {
        use SignatureError::Incomplete;
        if value.len() > MAX_AUTHORIZATION {
            return Err(Incomplete("the Authorization header is too long"));
        }
        let rest = value
            .strip_prefix(ALGORITHM)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(Incomplete("the algorithm must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim) {
            let (slot, v) = if let Some(v) = part.strip_prefix("Credential=") {
                (&mut credential, v)
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                (&mut signed, v)
            } else if let Some(v) = part.strip_prefix("Signature=") {
                (&mut signature, v)
            } else {
                return Err(Incomplete(
                    "an Authorization field other than Credential, SignedHeaders, Signature",
                ));
            };
            if slot.replace(v).is_some() {
                return Err(Incomplete("an Authorization field is given twice"));
            }
        }
        let credential = credential.ok_or(Incomplete("Credential is missing"))?;
        let signed = signed.ok_or(Incomplete("SignedHeaders is missing"))?;
        let signature = signature.ok_or(Incomplete("Signature is missing"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
            return Err(Incomplete(
                "Credential must be <key>/<date>/<region>/<service>/aws4_request",
            ));
        };
        let plain =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !plain(access_key_id) || !plain(region) || !plain(service) {
            return Err(Incomplete(
                "Credential holds characters no key, region or service has",
            ));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Incomplete("the Credential's date must be YYYYMMDD"));
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Incomplete("Signature must be 64 hexadecimal digits"));
        }
        let signed_headers: Vec<&str> = signed.split(';').collect();
        let valid_name = |h: &&str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if signed_headers.len() > 64 || !signed_headers.iter().all(valid_name) {
            return Err(Incomplete(
                "SignedHeaders must be lowercase header names separated by ;",
            ));
        }
        if !signed_headers.contains(&"host") || !signed_headers.contains(&"x-amz-date") {
            return Err(Incomplete("SignedHeaders must include host and x-amz-date"));
        }
        Ok(Self {
            access_key_id,
            date,
            region,
            service,
            signed_headers,
            signature,
        })
    }
}

/// `YYYYMMDDTHHMMSSZ`, as `X-Amz-Date` carries it.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    crate::clock::utc_from_fixed_digits(s, [0..4, 4..6, 6..8, 9..11, 11..13, 13..15])
        .map(Into::into)
}

impl Keys {
    /// The keys from the environment's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `None`
    /// without both keys.
    pub fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id,
            secret_access_key,
            session_token,
        }
    }

    /// Whether `headers` carry a SigV4 `Authorization` header (the caller chose to sign rather than send a token).
    pub fn is_signed(headers: &HeaderMap) -> bool {
        headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-"))
    }

    /// Verifies a request's signature, over its `body`, against these keys at `now`.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        use SignatureError::{Expired, Incomplete, Mismatch, UnknownKey};
        let auth = authorization(headers)?;
        let amz_date = single(headers, "x-amz-date")?.ok_or(Incomplete("X-Amz-Date is missing"))?;
        let signed_at =
            parse_amz_date(amz_date).ok_or(Incomplete("X-Amz-Date must be YYYYMMDDTHHMMSSZ"))?;
        if !amz_date.starts_with(auth.date) {
            return Err(Incomplete("the Credential's date is not X-Amz-Date's"));
        }
        let skew = now
            .duration_since(signed_at)
            .unwrap_or_else(|e| e.duration());
        if skew > MAX_SKEW {
            return Err(Expired);
        }
        if !bool::from(
            auth.access_key_id
                .as_bytes()
                .ct_eq(self.access_key_id.as_bytes()),
        ) {
            return Err(UnknownKey);
        }
        // What the caller signed, but the date and the token, which the signer sets from its parameters.
        let mut signed = Vec::with_capacity(auth.signed_headers.len());
        for name in &auth.signed_headers {
            let value = single(headers, name)?
                .ok_or(Incomplete("a signed header is missing from the request"))?;
            if *name != "x-amz-date" && *name != "x-amz-security-token" {
                signed.push((*name, value));
            }
        }
        let mut settings = SigningSettings::default();
        // Sign exactly the headers the caller named.
        settings.excluded_headers = None;
        let (_, ours) = self.signed(
            method,
            uri,
            &signed,
            body,
            (auth.region, auth.service),
            signed_at,
            settings,
        )?;
        let same_headers = {
            let mut named = auth.signed_headers.clone();
            named.sort_unstable();
            named.dedup();
            named.len() == auth.signed_headers.len()
                && (self.session_token.is_none() || named.contains(&"x-amz-security-token"))
        };
        if same_headers
            && bool::from(
                ours.as_bytes()
                    .ct_eq(auth.signature.to_ascii_lowercase().as_bytes()),
            )
        {
            Ok(())
        } else {
            Err(Mismatch)
        }
    }
}

/// The request's one `Authorization` header, parsed.
fn authorization(headers: &HeaderMap) -> Result<Authorization<'_>, SignatureError> {
    use SignatureError::Incomplete;
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values
        .next()
        .ok_or(Incomplete("the Authorization header is missing"))?;
    if values.next().is_some() {
        return Err(Incomplete("the Authorization header is given twice"));
    }
    let value = value
        .to_str()
        .map_err(|_| Incomplete("the Authorization header is not ASCII"))?;
    Authorization::parse(value)
}

/// The region and service of a signed request's credential scope, once its signature verified.
pub fn scope(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let auth = Authorization::parse(value).ok()?;
    Some((auth.region.to_owned(), auth.service.to_owned()))
}

impl Keys {
    /// Signs a request the extension sends on, now, for the credential scope `(region, service)`: the headers to add
    /// to it (`Authorization`, `X-Amz-Date`, and `X-Amz-Security-Token` with a session token), over `headers` (which
    /// must hold `host`) and `body`.
    pub fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &[(&str, &str)],
        body: &[u8],
        scope: (&str, &str),
    ) -> Result<Vec<(String, String)>, SignatureError> {
        let (added, _) = self.signed(
            method,
            uri,
            headers,
            body,
            scope,
            SystemTime::now(),
            SigningSettings::default(),
        )?;
        Ok(added)
    }

    /// The kept signer over `method uri`, `headers` and `body` for `(region, service)` at `time`: the headers it adds
    /// and the signature.
    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &[(&str, &str)],
        body: &[u8],
        (region, service): (&str, &str),
        time: SystemTime,
        settings: SigningSettings,
    ) -> Result<(Vec<(String, String)>, String), SignatureError> {
        use SignatureError::Incomplete;
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = SignableRequest::new(
            method.as_str(),
            target,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| Incomplete("the request target cannot be signed"))?;
        let identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "secretcache",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|_| Incomplete("the credential scope cannot be signed"))?;
        let (instructions, signature) = sign(request, &params.into())
            .map_err(|_| Incomplete("the request cannot be signed"))?
            .into_parts();
        let added = instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok((added, signature))
    }
}

/// The one value of header `name`, if present; twice is refused (a signature covers one value).
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SignatureError::Incomplete("a signed header is given twice"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| SignatureError::Incomplete("a signed header is not ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const AKID: &str = "ASIAEXAMPLEKEY";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    pub(super) const TOKEN: &str = "session-token";

    fn keys() -> Keys {
        Keys::new(AKID.into(), SECRET.into(), Some(TOKEN.into()))
    }

    /// A GET signed as an SDK signs it (the kept signer, the client's way): its headers, ready for `verify`.
    fn signed_get(target: &str, secret: &str, at: SystemTime) -> HeaderMap {
        signed_get_as(AKID, secret, target, at)
    }

    /// [`signed_get`] with the access key id `akid` (and the session token every test key has).
    pub(super) fn signed_get_as(
        akid: &str,
        secret: &str,
        target: &str,
        at: SystemTime,
    ) -> HeaderMap {
        let identity = Credentials::new(akid, secret, Some(TOKEN.into()), None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("secretsmanager")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .expect("params");
        let request = SignableRequest::new(
            "GET",
            target,
            [("host", "localhost:2773")].into_iter(),
            SignableBody::Bytes(&[]),
        )
        .expect("signable");
        let (instructions, _) = sign(request, &params.into()).expect("sign").into_parts();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:2773"));
        for (name, value) in instructions.headers() {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn verify(target: &str, headers: &HeaderMap, now: SystemTime) -> Result<(), SignatureError> {
        keys().verify(
            &Method::GET,
            &target.parse().expect("uri"),
            headers,
            &[],
            now,
        )
    }

    #[test]
    fn a_request_signed_with_our_keys_verifies_within_the_skew() {
        let now = SystemTime::now();
        let target = "/secretsmanager/get?secretId=prod%2Fdb&versionStage=AWSPREVIOUS";
        let headers = signed_get(target, SECRET, now);
        assert!(Keys::is_signed(&headers));
        assert_eq!(verify(target, &headers, now), Ok(()));
        assert_eq!(
            verify(target, &headers, now + Duration::from_secs(290)),
            Ok(())
        );
        assert_eq!(
            verify(target, &headers, now - Duration::from_secs(290)),
            Ok(())
        );
        assert_eq!(
            verify(target, &headers, now + Duration::from_secs(301)),
            Err(SignatureError::Expired)
        );
        let path = "/secretsmanager/prod%2Fdb?refreshNow=true";
        assert_eq!(verify(path, &signed_get(path, SECRET, now), now), Ok(()));
    }

    #[test]
    fn another_secret_another_target_or_a_missing_header_never_verifies() {
        let now = SystemTime::now();
        let target = "/secretsmanager/get?secretId=a";
        let wrong_secret = signed_get(target, "not-the-secret", now);
        assert_eq!(
            verify(target, &wrong_secret, now),
            Err(SignatureError::Mismatch)
        );
        let headers = signed_get(target, SECRET, now);
        assert_eq!(
            verify("/secretsmanager/get?secretId=b", &headers, now),
            Err(SignatureError::Mismatch)
        );
        let mut no_token = headers.clone();
        no_token.remove("x-amz-security-token");
        assert!(verify(target, &no_token, now).is_err());
        let mut other_host = headers.clone();
        other_host.insert("host", HeaderValue::from_static("evil.example:2773"));
        assert_eq!(
            verify(target, &other_host, now),
            Err(SignatureError::Mismatch)
        );
        let other_key = Keys::new("AKIAOTHER".into(), SECRET.into(), Some(TOKEN.into()));
        assert_eq!(
            other_key.verify(
                &Method::GET,
                &target.parse().expect("uri"),
                &headers,
                &[],
                now
            ),
            Err(SignatureError::UnknownKey)
        );
        let mut twice = headers.clone();
        twice.append("x-amz-date", HeaderValue::from_static("20261204T000000Z"));
        assert!(matches!(
            verify(target, &twice, now),
            Err(SignatureError::Incomplete(_))
        ));
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete_never_a_panic() {
        for bad in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA1 Credential=A/20261204/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            "AWS4-HMAC-SHA256 Credential=A/2026/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=A/20261204/us-east-1/secretsmanager/aws4_request, SignedHeaders=x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=A/20261204/us east/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=A/20261204/us-east-1/secretsmanager/aws4_request, Credential=A/20261204/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
        let long = format!("AWS4-HMAC-SHA256 {}", "x".repeat(MAX_AUTHORIZATION));
        assert!(Authorization::parse(&long).is_err());
        assert_eq!(parse_amz_date("20261304T000000Z"), None);
        assert_eq!(parse_amz_date("2026120AT000000Z"), None);
        assert!(parse_amz_date("20261204T235959Z").is_some());
    }

    #[test]
    fn debug_never_shows_the_secret_key_or_the_token() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
    }
}
