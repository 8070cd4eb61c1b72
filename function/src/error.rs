//! The one place where errors become HTTP responses.
//!
//! [`ApiError`] is everything a request can fail with. [`ApiError::into_response`] picks the status and writes the
//! JSON body `{"error": "<code>", "message": "<text>"}`:
//! - client mistakes are 4xx with a message that says what to fix, and never echo the path back;
//! - a missing configuration, a schema that does not match, a secret that cannot be used: 503s with a stable code;
//! - the credential chain keeps its meaning (the extension timing out is a 504, not answering a 502);
//! - everything else is a 503 (the database is unavailable) or a generic 500.
//!
//! Who is asking matters ([`Caller`]): an anonymous caller (no authorizer ran) gets the code and a fixed sentence,
//! and only a caller that API Gateway authenticated also gets what to fix (the variable to set, the column that is
//! missing). The log always has everything. No body carries SQL text, a connection string, a host or a password.

use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::credentials::CredentialsError;
use crate::db::DbError;

/// Whether API Gateway authenticated the caller; it decides how much an error body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// No authorizer ran: the body carries the code and a fixed sentence only.
    Anonymous,
    /// A JWT, IAM or Lambda authorizer let the request through: the body also says what to fix.
    Authenticated,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request is malformed; the message says how (in terms of the request, never of our configuration).
    #[error("{0}")]
    BadRequest(String),
    /// The item does not exist.
    #[error("the item does not exist")]
    NotFound,
    /// No such route: `method path`, for the log only.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The route exists, the method does not.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The `Allow` header.
        allow: &'static str,
    },
    /// The body is not JSON.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// The body is too large.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The database layer failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<&'a str>,
}

/// What a response says: the status, the stable code, the sentence for anyone, and what to fix (shown only to an
/// authenticated caller).
struct Parts {
    status: StatusCode,
    code: &'static str,
    public: String,
    detail: Option<String>,
}

impl Parts {
    fn new(status: StatusCode, code: &'static str, public: impl Into<String>) -> Self {
        Self {
            status,
            code,
            public: public.into(),
            detail: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl ApiError {
    fn parts(&self) -> Parts {
        use CredentialsError as C;
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        match self {
            Self::BadRequest(m) => Parts::new(StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            Self::NotFound => Parts::new(StatusCode::NOT_FOUND, "not_found", self.to_string()),
            Self::NoRoute(_) => Parts::new(StatusCode::NOT_FOUND, "no_route", "no such route"),
            Self::MethodNotAllowed { .. } => Parts::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
            ),
            Self::UnsupportedMediaType => Parts::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self.to_string(),
            ),
            Self::PayloadTooLarge { .. } => Parts::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
            ),
            Self::Db(DbError::NotConfigured { variable, .. }) => Parts::new(
                unavailable,
                "database_not_configured",
                "the database is not configured",
            )
            .detail(format!("the database is not configured: set {variable}")),
            Self::Db(DbError::Credentials(c)) => match c {
                C::Timeout(_) => Parts::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "credentials_timeout",
                    "the secrets extension did not answer in time",
                ),
                C::Unreachable { .. } => Parts::new(
                    StatusCode::BAD_GATEWAY,
                    "credentials_unreachable",
                    "the secrets extension is not answering",
                ),
                C::Extension { status: 404, .. } => Parts::new(
                    unavailable,
                    "secret_not_found",
                    "the database secret does not exist",
                ),
                C::Extension {
                    status: 401 | 403, ..
                }
                | C::NoToken => Parts::new(
                    unavailable,
                    "credentials_forbidden",
                    "the function may not read the database secret",
                ),
                // These messages name fields and variables, never values.
                C::InvalidSecret { .. } | C::MissingField { .. } => Parts::new(
                    unavailable,
                    "secret_invalid",
                    "the database secret cannot be used",
                )
                .detail(c.to_string()),
                C::Extension { .. } | C::Transport(_) => Parts::new(
                    StatusCode::BAD_GATEWAY,
                    "credentials_unavailable",
                    "the database credentials could not be fetched",
                ),
            },
            Self::Db(DbError::CredentialsRejected { .. }) => Parts::new(
                unavailable,
                "database_credentials_rejected",
                "the database rejected the credentials",
            ),
            Self::Db(DbError::Schema(problem)) => Parts::new(
                unavailable,
                "database_schema_mismatch",
                "the database schema does not match this function",
            )
            .detail(problem.to_string()),
            Self::Db(DbError::Migrate(_)) => Parts::new(
                unavailable,
                "database_migration_failed",
                "the database schema could not be brought up to date",
            ),
            Self::Db(DbError::Unavailable(_)) => Parts::new(
                unavailable,
                "database_unavailable",
                "the database is unavailable; try again",
            ),
            Self::Db(DbError::SqliteFolder(_) | DbError::Query(_)) => Parts::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ),
        }
    }

    /// The HTTP status this error maps to (the tests' shorthand; responses come from `into_response`).
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.parts().status
    }

    /// How long a client should wait before trying again, when the answer will not change before then.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Db(DbError::CredentialsRejected { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// The response for `caller`. Server-side failures, and the path of a request that matched no route, are
    /// logged here with their detail, once.
    pub(crate) fn into_response(self, caller: Caller) -> Response<Body> {
        let Parts {
            status,
            code,
            public,
            detail,
        } = self.parts();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, error = %self, "request failed");
        } else if let Self::NoRoute(what) = &self {
            tracing::info!(request = %what, "no route");
        }
        let authenticated = caller == Caller::Authenticated;
        let missing = match &self {
            Self::Db(DbError::NotConfigured { variable, .. }) if authenticated => Some(*variable),
            _ => None,
        };
        let message = match detail {
            Some(detail) if authenticated => detail,
            _ => public,
        };
        let mut response = json_response(
            status,
            &ErrorBody {
                error: code,
                message,
                missing,
            },
        );
        if let Self::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up, as Retry-After takes them.
            let secs = wait.as_millis().div_ceil(1000).max(1) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON response. Serialising our own plain types cannot fail; if it ever did, the client gets a bare 500.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response body");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal","message":"internal error"}"#.to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(r.body().as_ref()).expect("json body")
    }

    fn not_configured() -> ApiError {
        ApiError::Db(DbError::NotConfigured {
            variable: "DB_SECRET_ARN",
            detail: "DATABASE_HOST is set but DATABASE_USER is not".into(),
        })
    }

    #[test]
    fn not_configured_is_a_503_naming_the_variable_to_an_authenticated_caller() {
        let r = not_configured().into_response(Caller::Authenticated);
        assert_eq!(r.status(), 503);
        let b = body(&r);
        assert_eq!(b["error"], "database_not_configured");
        assert_eq!(b["missing"], "DB_SECRET_ARN");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(message.contains("DB_SECRET_ARN"), "{message}");
        assert!(
            !message.contains("DATABASE_HOST"),
            "the detail stays in the log"
        );
    }

    #[test]
    fn an_anonymous_caller_gets_the_code_and_no_configuration_detail() {
        let r = not_configured().into_response(Caller::Anonymous);
        assert_eq!(r.status(), 503);
        let b = body(&r);
        assert_eq!(
            b,
            serde_json::json!({"error": "database_not_configured", "message": "the database is not configured"})
        );
        let r =
            ApiError::NoRoute("GET /secret-looking/path".into()).into_response(Caller::Anonymous);
        assert_eq!(r.status(), 404);
        assert!(!String::from_utf8_lossy(r.body().as_ref()).contains("secret-looking"));
    }

    #[test]
    fn rejected_credentials_say_when_to_come_back() {
        let r = ApiError::Db(DbError::CredentialsRejected {
            source_name: "DB_SECRET_ARN",
            retry_after: Some(std::time::Duration::from_millis(4_200)),
        })
        .into_response(Caller::Anonymous);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn upstream_errors_keep_their_meaning() {
        let cases = [
            (
                CredentialsError::Timeout(std::time::Duration::from_secs(1)),
                504,
            ),
            (CredentialsError::Unreachable { port: 2773 }, 502),
            (
                CredentialsError::Extension {
                    status: 404,
                    code: "ResourceNotFoundException".into(),
                    variable: "DB_SECRET_ARN",
                },
                503,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::Db(DbError::Credentials(e)).status(), status);
        }
    }

    #[test]
    fn internal_errors_are_generic() {
        let r = ApiError::Db(DbError::Query(sqlx::Error::RowNotFound))
            .into_response(Caller::Authenticated);
        assert_eq!(r.status(), 500);
        assert_eq!(body(&r)["message"], "internal error");
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let r = ApiError::MethodNotAllowed { allow: "GET, POST" }.into_response(Caller::Anonymous);
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
    }
}
