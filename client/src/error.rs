//! What can go wrong, as a caller sees it: [`Error`] for a read, [`ConfigError`] for the environment a client is built
//! from.
//!
//! Neither ever carries a body or a value: an error message goes into log lines, and a body may hold a secret. What
//! an extension's error body does say is reduced to its `__type` code, and only when that is a plain code.

use std::time::Duration;

use crate::body::ErrorBody;

/// An environment value that cannot be used. It names the variable, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The port variable is not a port.
    #[error("{variable} is invalid: expected a port, 1-65535")]
    InvalidPort {
        /// The variable.
        variable: &'static str,
    },
}

/// Why a read failed. It carries the extension's status and error code, never a body or a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither token variable is set, so the extension would refuse the request.
    #[error("neither AWS_SESSION_TOKEN nor AWS_CONTAINER_AUTHORIZATION_TOKEN is set; the secrets extension requires one")]
    NoToken,
    /// Nothing answers on the extension's port, even after the cold-start wait.
    #[error("the secrets extension on 127.0.0.1:{port} is not answering (is its layer attached?)")]
    Unreachable {
        /// The port tried.
        port: u16,
    },
    /// One call ran past the timeout.
    #[error("the secrets extension did not answer within {0:?}")]
    Timeout(Duration),
    /// The extension answered with an error status.
    #[error("the secrets extension answered {status} ({code})")]
    Status {
        /// The HTTP status: 404 not found, 401/403 the token, 403 denied upstream, 429 throttled, 502/504 the
        /// upstream failing or timing out (the extension's contract).
        status: u16,
        /// The error body's `__type` (e.g. `ResourceNotFoundException`), or `unknown` when there is none or it is
        /// not a plain code.
        code: String,
    },
    /// A 200 whose body is not the JSON the path answers with.
    #[error("the secrets extension's answer is not {expected} JSON")]
    InvalidBody {
        /// `GetSecretValue`, `GetParameter`, or (batches) `BatchGetSecretValue` or `GetParameters`.
        expected: &'static str,
    },
    /// The token cannot be sent in a header (it holds a control character).
    #[error("the token cannot be sent in an HTTP header")]
    InvalidToken,
    /// A transport failure other than the ones above (a broken connection, an answer over 256 KiB).
    #[error("talking to the secrets extension failed: {0}")]
    Transport(String),
}

impl Error {
    /// The extension's HTTP status, when it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The extension's error code (`__type`), when it answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The secret or parameter (or the version asked for) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The error for an answer with `status` and the error body `body`.
    pub(crate) fn from_answer(status: u16, body: &[u8]) -> Self {
        Self::Status {
            status,
            code: error_code(body),
        }
    }
}

/// The error body's `__type`, if it is a plain code; it goes into log lines, so nothing else is let through.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.kind)
        .filter(|k| {
            !k.is_empty()
                && k.len() <= 64
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
        .map_or_else(|| "unknown".to_owned(), |k| k.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_and_sanitised() {
        assert_eq!(
            error_code(br#"{"__type":"ResourceNotFoundException","message":"x"}"#),
            "ResourceNotFoundException"
        );
        assert_eq!(error_code(br#"{"__type":"<script>"}"#), "unknown");
        assert_eq!(error_code(br#"{"message":"no type"}"#), "unknown");
        assert_eq!(error_code(b"garbage"), "unknown");
    }
}
