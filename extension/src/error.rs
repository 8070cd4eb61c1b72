//! Errors at the module boundaries, and the one place where an error becomes an HTTP status and body.
//!
//! - [`UpstreamError`]: what went wrong talking to Secrets Manager or SSM, keeping its meaning (not found, denied,
//!   throttled, timed out, unreachable). It is `Clone` because one single-flight fetch answers many waiters.
//! - [`ApiError`]: everything a request can fail with; [`ApiError::into_response`] is the only error-to-HTTP mapping.
//!
//! Bodies follow AWS's error style, `{"__type":"ResourceNotFoundException","message":"..."}`, serialized from
//! `secretcache-client`'s `ErrorBody` (the type clients read them with), so they are always valid JSON. No body or
//! message ever carries a secret value: upstream messages are AWS's own, and our own bugs answer a generic 500 while
//! their detail goes to the log.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use secretcache_client::ErrorBody;

use crate::request::QueryError;

/// The header that names an error's type on every error answer.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// A failed upstream call, classified by what the client should make of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The secret or parameter (or the asked version) does not exist.
    #[error("{code}: {message}")]
    NotFound {
        /// AWS error code, e.g. `ResourceNotFoundException`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// IAM or KMS denied access.
    #[error("{code}: {message}")]
    AccessDenied {
        /// AWS error code, e.g. `AccessDeniedException`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The upstream rejected the request as invalid (e.g. a malformed ARN).
    #[error("{code}: {message}")]
    InvalidRequest {
        /// AWS error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Throttled, still after the SDK's retries.
    #[error("{code}: {message}")]
    Throttled {
        /// AWS error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// No answer within the configured timeout.
    #[error("the upstream did not answer within {millis} ms")]
    Timeout {
        /// The configured timeout.
        millis: u64,
    },
    /// No connection could be made, or it broke.
    #[error("the upstream is unreachable: {detail}")]
    Unreachable {
        /// Connector detail (no secret: requests carry none).
        detail: String,
    },
    /// The upstream answered with a 5xx or an unparseable response.
    #[error("the upstream failed: {code}: {message}")]
    ServerError {
        /// AWS error code, or the HTTP status.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Too many reads are already waiting on upstream calls of their own: this one is refused before it adds another
    /// (load shedding). Never an upstream answer, so never remembered and never a reason for backoff.
    #[error("{pending} reads are waiting on the upstream already; retry shortly")]
    Shed {
        /// The keys in flight when this read was refused.
        pending: usize,
    },
    /// The upstream's answer was larger than the most we read for its operation (see `upstream/http.rs`).
    #[error("the upstream's answer is larger than {limit} bytes, the most read for this operation; it was refused")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// An endpoint override variable holds something that is not a URL.
    #[error("{variable} is not an http(s) URL; fix or unset it to reach the upstream")]
    BadEndpoint {
        /// The variable to fix.
        variable: &'static str,
    },
    /// Something that should not happen (a bug, or a failed task); details are logged, not served.
    #[error("internal error: {0}")]
    Internal(String),
}

impl UpstreamError {
    /// Whether the failure is transient (a later call may succeed), as opposed to an answer about the secret itself.
    /// Only transient failures may ever be papered over with a stale value.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::ServerError { .. }
        )
    }

    /// Whether this is the upstream refusing (the secret does not exist, or we may not read it): an answer worth
    /// remembering for a moment, so that a client retrying in a loop does not become an upstream loop.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::AccessDenied { .. })
    }

    /// A short label for logs and metrics.
    pub fn code(&self) -> &str {
        match self {
            Self::NotFound { code, .. }
            | Self::AccessDenied { code, .. }
            | Self::InvalidRequest { code, .. }
            | Self::Throttled { code, .. }
            | Self::ServerError { code, .. } => code,
            Self::Timeout { .. } => "Timeout",
            Self::Unreachable { .. } => "Unreachable",
            Self::TooLarge { .. } => "ResponseTooLarge",
            Self::BadEndpoint { .. } => "BadEndpoint",
            Self::Shed { .. } => "ThrottlingException",
            Self::Internal(_) => "InternalError",
        }
    }
}

/// Why a request in the SDKs' protocol (`POST` with `X-Amz-Target`) cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum SdkRequestError {
    /// A body past the cap.
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// No `X-Amz-Target`.
    #[error("the X-Amz-Target header is missing; an AWS SDK sends it with every call")]
    MissingTarget,
    /// An operation that is neither served here nor passed on.
    #[error(
        "{0} is not an operation of Secrets Manager (secretsmanager.*) or SSM (AmazonSSM.*), the two services \
         secretcache serves and passes on; call that service's own endpoint for it"
    )]
    UnknownOperation(String),
    /// A request in a form no AWS SDK sends these two services (a compressed body, Smithy RPC v2 CBOR).
    #[error("{0}")]
    UnsupportedForm(&'static str),
    /// An operation to pass on to the service, authenticated by the token alone.
    #[error(
        "operations that secretcache passes on to the service must be signed with this environment's credentials \
         (as an AWS SDK signs them); the token header alone is not enough"
    )]
    ForwardNeedsSignature,
    /// A body that is not the operation's JSON.
    #[error("the request body cannot be read: {0}")]
    Serialization(&'static str),
    /// A member out of the service's bounds.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Why a request to the localhost API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token header.
    #[error("the X-Aws-Parameters-Secrets-Token header is missing")]
    MissingToken,
    /// A token header that does not match.
    #[error("the X-Aws-Parameters-Secrets-Token header is not valid")]
    WrongToken,
    /// The token comes from a file that cannot be used (not a regular file, too large, unreadable): the reason names
    /// the variable and the problem, never a token.
    #[error("the token cannot be checked: {0}")]
    TokenFileUnusable(String),
    /// More than one token header.
    #[error("the X-Aws-Parameters-Secrets-Token header is given more than once")]
    DuplicateToken,
    /// The request came through a proxy (a sign of server-side request forgery).
    #[error("requests with an X-Forwarded-For or Forwarded header are refused")]
    Forwarded,
    /// A method other than GET or HEAD.
    #[error("only GET is supported")]
    MethodNotAllowed,
    /// A request target longer than any valid request needs.
    #[error("the request URI is longer than {0} bytes")]
    UriTooLong(usize),
    /// An unknown path.
    #[error("no such path; use /secretsmanager/get, /systemsmanager/parameters/get or /ping")]
    UnknownPath,
    /// A malformed query.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A `field=` that the value does not have.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// Too many concurrent connections.
    #[error("too many concurrent connections; retry shortly")]
    Overloaded,
    /// A read names a role past the most roles read through at once.
    #[error("at most {0} roles may be read through (PARAMETERS_SECRETS_EXTENSION_MAX_ROLES); this one would be one more")]
    TooManyRoles(usize),
    /// A read names a role, and this upstream cannot act as one.
    #[error("roleArn is not supported here")]
    RolesUnsupported,
    /// An SDK request (AWS JSON 1.1) that cannot be answered.
    #[error(transparent)]
    Sdk(SdkRequestError),
    /// A SigV4-signed request whose signature does not verify with the extension's credentials.
    #[error(transparent)]
    Signature(crate::sigv4::SignatureError),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ApiError {
    /// The HTTP status and AWS-style error type.
    fn status_and_type(&self) -> (StatusCode, &str) {
        match self {
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "MissingAuthenticationTokenException",
            ),
            Self::WrongToken => (StatusCode::FORBIDDEN, "InvalidAuthenticationTokenException"),
            Self::TokenFileUnusable(_) => (
                StatusCode::UNAUTHORIZED,
                "AuthenticationTokenUnavailableException",
            ),
            Self::DuplicateToken => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            Self::Sdk(e) => match e {
                SdkRequestError::BodyTooLarge(_) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "SerializationException")
                }
                SdkRequestError::MissingTarget | SdkRequestError::UnknownOperation(_) => {
                    (StatusCode::BAD_REQUEST, "UnknownOperationException")
                }
                SdkRequestError::Serialization(_) => {
                    (StatusCode::BAD_REQUEST, "SerializationException")
                }
                SdkRequestError::Invalid(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
                SdkRequestError::UnsupportedForm(_) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaTypeException",
                ),
                SdkRequestError::ForwardNeedsSignature => {
                    (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
                }
            },
            Self::Signature(e) => (
                match e {
                    crate::sigv4::SignatureError::Incomplete(_) => StatusCode::BAD_REQUEST,
                    _ => StatusCode::FORBIDDEN,
                },
                e.error_type(),
            ),
            Self::Forwarded => (StatusCode::BAD_REQUEST, "ForwardedRequestException"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedException"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "InvalidRequestException"),
            Self::UnknownPath => (StatusCode::NOT_FOUND, "UnknownOperationException"),
            Self::Query(_) => (StatusCode::BAD_REQUEST, "InvalidParameterException"),
            Self::Projection(ProjectionError::NoSuchField(_)) => {
                (StatusCode::NOT_FOUND, "FieldNotFoundException")
            }
            Self::Projection(ProjectionError::NotAnObject(_)) => {
                (StatusCode::BAD_REQUEST, "ValueNotAJsonObjectException")
            }
            Self::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "TooManyConnectionsException",
            ),
            Self::TooManyRoles(_) | Self::RolesUnsupported => {
                (StatusCode::BAD_REQUEST, "InvalidParameterException")
            }
            Self::Upstream(u) => match u {
                UpstreamError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code.as_str()),
                UpstreamError::AccessDenied { code, .. } => (StatusCode::FORBIDDEN, code.as_str()),
                UpstreamError::InvalidRequest { code, .. } => {
                    (StatusCode::BAD_REQUEST, code.as_str())
                }
                UpstreamError::Throttled { code, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, code.as_str())
                }
                UpstreamError::Timeout { .. } => {
                    (StatusCode::GATEWAY_TIMEOUT, "UpstreamTimeoutException")
                }
                UpstreamError::Unreachable { .. } => {
                    (StatusCode::BAD_GATEWAY, "UpstreamUnreachableException")
                }
                UpstreamError::ServerError { code, .. } => (StatusCode::BAD_GATEWAY, code.as_str()),
                UpstreamError::TooLarge { .. } => {
                    (StatusCode::BAD_GATEWAY, "UpstreamResponseTooLargeException")
                }
                UpstreamError::BadEndpoint { .. } => (
                    StatusCode::BAD_GATEWAY,
                    "InvalidEndpointConfigurationException",
                ),
                UpstreamError::Shed { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException")
                }
                UpstreamError::Internal(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
                }
            },
        }
    }

    /// The response for this error: the only place errors become HTTP.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, kind) = self.status_and_type();
        let message = match &self {
            // Our own bug: the detail is for the log, the client gets a generic sentence.
            Self::Upstream(UpstreamError::Internal(detail)) => {
                tracing::error!(error = %detail, "internal error");
                "internal error; see the extension's log".to_string()
            }
            Self::Upstream(UpstreamError::NotFound { message, .. })
            | Self::Upstream(UpstreamError::AccessDenied { message, .. })
            | Self::Upstream(UpstreamError::InvalidRequest { message, .. })
            | Self::Upstream(UpstreamError::Throttled { message, .. }) => message.clone(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            kind: kind.into(),
            message: message.into(),
        };
        // The type in a header too, as AWS services and Cloud Extensions send it: SDKs and clients written for those
        // read the error's type from `X-Amzn-Errortype` first.
        let mut builder = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(ERROR_TYPE_HEADER, kind);
        if matches!(self, Self::Upstream(UpstreamError::Shed { .. })) {
            builder = builder.header(header::RETRY_AFTER, "1");
        }
        if matches!(self, Self::Overloaded) {
            builder = builder
                .header(header::CONNECTION, "close")
                .header(header::RETRY_AFTER, "1");
        }
        builder
            // Serializing two strings cannot fail; an empty body would be the answer if it ever did.
            .body(Full::new(Bytes::from(
                serde_json::to_vec(&body).unwrap_or_default(),
            )))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
    }
}

/// Why a field could not be projected. Messages name the field, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// The value is not a JSON object (a plain string, a binary secret).
    #[error("the value is not a JSON object, so it has no field {0:?}")]
    NotAnObject(String),
    /// The object has no such top-level key.
    #[error("the value has no field {0:?}")]
    NoSuchField(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: ApiError) -> u16 {
        e.into_response().status().as_u16()
    }

    #[test]
    fn every_error_names_its_type_in_x_amzn_errortype_and_in_the_body() {
        for e in [
            ApiError::MissingToken,
            ApiError::UnknownPath,
            ApiError::Overloaded,
            ApiError::Upstream(UpstreamError::NotFound {
                code: "ResourceNotFoundException".into(),
                message: "m".into(),
            }),
            ApiError::Upstream(UpstreamError::Timeout { millis: 1 }),
            ApiError::Upstream(UpstreamError::Internal("bug".into())),
            ApiError::Upstream(UpstreamError::Shed { pending: 100 }),
        ] {
            let (_, kind) = e.status_and_type();
            let kind = kind.to_owned();
            let resp = e.into_response();
            let header = resp
                .headers()
                .get(ERROR_TYPE_HEADER)
                .expect("x-amzn-errortype");
            assert_eq!(header.to_str().expect("text"), kind);
        }
    }

    #[test]
    fn a_shed_read_is_a_429_throttling_with_retry_after() {
        let resp = ApiError::Upstream(UpstreamError::Shed { pending: 100 }).into_response();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(
            resp.headers().get(ERROR_TYPE_HEADER).map(|v| v.as_bytes()),
            Some(&b"ThrottlingException"[..])
        );
    }

    #[test]
    fn statuses_follow_the_spec() {
        let nf = UpstreamError::NotFound {
            code: "ResourceNotFoundException".into(),
            message: "m".into(),
        };
        assert_eq!(status(ApiError::MissingToken), 401);
        assert_eq!(status(ApiError::WrongToken), 403);
        assert_eq!(
            status(ApiError::TokenFileUnusable(
                "the token file is a FIFO".into()
            )),
            401
        );
        assert_eq!(status(ApiError::MethodNotAllowed), 405);
        assert_eq!(
            status(ApiError::Query(QueryError::Missing("secretId"))),
            400
        );
        assert_eq!(status(nf.clone().into()), 404);
        assert_eq!(status(UpstreamError::Timeout { millis: 1 }.into()), 504);
        assert_eq!(
            status(UpstreamError::Unreachable { detail: "x".into() }.into()),
            502
        );
        assert_eq!(
            status(
                UpstreamError::Throttled {
                    code: "T".into(),
                    message: "m".into()
                }
                .into()
            ),
            429
        );
        assert_eq!(
            status(
                UpstreamError::AccessDenied {
                    code: "A".into(),
                    message: "m".into()
                }
                .into()
            ),
            403
        );
        assert_eq!(status(UpstreamError::Internal("bug".into()).into()), 500);
        assert_eq!(
            status(
                UpstreamError::BadEndpoint {
                    variable: "AWS_ENDPOINT_URL"
                }
                .into()
            ),
            502
        );
        let too_large = status(UpstreamError::TooLarge { limit: 1024 }.into());
        assert_eq!(too_large, 502);
        assert!(!nf.is_transient());
        assert!(UpstreamError::Timeout { millis: 1 }.is_transient());
    }

    #[test]
    fn bodies_are_aws_style_json_and_internal_detail_is_hidden() {
        let r =
            ApiError::Upstream(UpstreamError::Internal("detail \"quoted\"".into())).into_response();
        let body = http_body_util::BodyExt::collect(r.into_body());
        let bytes = futures_executor_block_on(body);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["__type"], "InternalFailure");
        assert!(!v["message"].as_str().unwrap_or_default().contains("quoted"));
    }

    fn futures_executor_block_on(
        f: impl std::future::Future<
            Output = Result<http_body_util::Collected<Bytes>, std::convert::Infallible>,
        >,
    ) -> Bytes {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }
}
