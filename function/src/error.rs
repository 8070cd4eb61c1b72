//! The one place where errors become HTTP responses.
//!
//! [`ApiError`] is everything a request can fail with. [`ApiError::into_response`] picks the status and writes the
//! JSON body `{"error": "<code>", "message": "<text>"}`:
//! - client mistakes are 4xx with a message that says what to fix;
//! - a missing configuration is a 503 whose body names the variable to set (the original bug was a bare 500);
//! - the credential chain keeps its meaning (the extension timing out is a 504, not answering a 502);
//! - everything else is a 503 (the database is unavailable) or a generic 500, with the detail only in the log.
//!
//! No body carries SQL text, a connection string or a password: 5xx bodies are fixed sentences, and the detail that
//! goes to the log comes from error types whose `Display` never includes them.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::credentials::CredentialsError;
use crate::db::DbError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No such route.
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

impl ApiError {
    /// The status, the stable error code and the public message.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use CredentialsError as C;
        match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route", self.to_string()),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self.to_string(),
            ),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
            ),
            Self::Db(DbError::NotConfigured { variable, detail }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_not_configured",
                format!("the database is not configured: set {variable} ({detail})"),
            ),
            Self::Db(DbError::Credentials(c)) => match c {
                C::Timeout(_) => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "credentials_timeout",
                    "the secrets extension did not answer in time".to_owned(),
                ),
                C::Unreachable { .. } => (
                    StatusCode::BAD_GATEWAY,
                    "credentials_unreachable",
                    "the secrets extension is not answering".to_owned(),
                ),
                C::Extension { status: 404, .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secret_not_found",
                    "the secret named by DB_SECRET_ARN does not exist".to_owned(),
                ),
                C::Extension {
                    status: 401 | 403, ..
                }
                | C::NoToken => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "credentials_forbidden",
                    "the function may not read the database secret".to_owned(),
                ),
                C::InvalidSecret(_) | C::MissingField { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secret_invalid",
                    // These messages name fields and variables, never values.
                    c.to_string(),
                ),
                C::Extension { .. } | C::Transport(_) => (
                    StatusCode::BAD_GATEWAY,
                    "credentials_unavailable",
                    "the database credentials could not be fetched".to_owned(),
                ),
            },
            Self::Db(DbError::CredentialsRejected { .. }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_credentials_rejected",
                "the database rejected the credentials".to_owned(),
            ),
            Self::Db(DbError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; try again".to_owned(),
            ),
            Self::Db(DbError::SqliteFolder(_) | DbError::Migrate(_) | DbError::Query(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_owned(),
            ),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The response. Server-side failures are logged here, with their detail, once.
    pub fn into_response(self) -> Response<Body> {
        let (status, code, message) = self.parts();
        let missing = match &self {
            Self::Db(DbError::NotConfigured { variable, .. }) => Some(*variable),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code, error = %self, "request failed");
        }
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
        response
    }
}

/// A JSON response. Serialising our own plain types cannot fail; if it ever did, the client gets a bare 500.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
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

    #[test]
    fn not_configured_is_a_503_naming_the_variable() {
        let r = ApiError::Db(DbError::NotConfigured {
            variable: "DB_SECRET_ARN",
            detail: "nothing set".into(),
        })
        .into_response();
        assert_eq!(r.status(), 503);
        let b = body(&r);
        assert_eq!(b["error"], "database_not_configured");
        assert_eq!(b["missing"], "DB_SECRET_ARN");
        assert!(b["message"]
            .as_str()
            .unwrap_or_default()
            .contains("DB_SECRET_ARN"));
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
        let r = ApiError::Db(DbError::Query(sqlx::Error::RowNotFound)).into_response();
        assert_eq!(r.status(), 500);
        assert_eq!(body(&r)["message"], "internal error");
    }

    #[test]
    fn method_not_allowed_says_what_is() {
        let r = ApiError::MethodNotAllowed { allow: "GET, POST" }.into_response();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET, POST");
    }
}
