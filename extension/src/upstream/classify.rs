//! An SDK error becomes an [`UpstreamError`] that keeps its meaning: service codes, HTTP statuses, STS's refusals
//! of an assumed role, timeouts and transport failures.

use std::time::Duration;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::error::UpstreamError;

use super::http;

/// Maps an SDK error to what it means for the client.
pub fn classify<E: ProvideErrorMetadata>(
    err: SdkError<E, HttpResponse>,
    timeout: Duration,
) -> UpstreamError {
    let timeout = UpstreamError::Timeout {
        millis: timeout.as_millis() as u64,
    };
    // An answer past its size cap (upstream/http.rs): a 502 that says so, not "unreachable".
    if let SdkError::DispatchFailure(f) = &err {
        if let Some(http::TooLarge { limit }) =
            f.as_connector_error().and_then(|c| http::too_large(c))
        {
            return UpstreamError::TooLarge { limit };
        }
    }
    match err {
        SdkError::TimeoutError(_) => timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => timeout,
        // Credentials of a role are resolved before the call is dispatched: a refused AssumeRole surfaces here.
        SdkError::DispatchFailure(f) if assume_role_failure(&f).is_some() => {
            assume_role_failure(&f).unwrap_or(timeout)
        }
        // No credentials to sign with (a credentials file that is missing or holds long-lived keys): said plainly,
        // and transient, as a credential helper that failed one refresh is: a cached value is still served.
        SdkError::DispatchFailure(f) if credentials_failure(&f).is_some() => {
            UpstreamError::Unreachable {
                detail: credentials_failure(&f).unwrap_or_default(),
            }
        }
        SdkError::DispatchFailure(f) => UpstreamError::Unreachable {
            detail: f
                .as_connector_error()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "dispatch failure".into()),
        },
        SdkError::ResponseError(_) => UpstreamError::ServerError {
            code: "InvalidResponse".into(),
            message: "the upstream sent a response that could not be parsed".into(),
        },
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let e = se.err();
            classify_service(e.code(), e.message(), status)
        }
        SdkError::ConstructionFailure(_) => {
            UpstreamError::Internal("could not construct the upstream request".into())
        }
        other => UpstreamError::Internal(format!("unexpected SDK error: {other}")),
    }
}

/// Why no credentials could be had to sign the call, found in the dispatch failure's chain of causes, with the
/// provider's own reasons (they name files and settings, never a key).
fn credentials_failure(
    failure: &aws_smithy_runtime_api::client::result::DispatchFailure,
) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    causes(failure)
        .find_map(|e| e.downcast_ref::<CredentialsError>())
        .map(|credentials| {
            format!(
                "no credentials to sign with: {}",
                aws_smithy_types::error::display::DisplayErrorContext(credentials)
            )
        })
}

/// A dispatch failure's connector error and its chain of sources.
fn causes(
    failure: &aws_smithy_runtime_api::client::result::DispatchFailure,
) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(
        failure
            .as_connector_error()
            .map(|c| c as &(dyn std::error::Error + 'static)),
        |e| e.source(),
    )
}

/// What STS said when the role's credentials could not be had, found in the dispatch failure's chain of causes: a
/// refusal keeps its meaning (403 AccessDenied, with STS's message), anything else is the role's STS being unreachable.
pub(super) fn assume_role_failure(
    failure: &aws_smithy_runtime_api::client::result::DispatchFailure,
) -> Option<UpstreamError> {
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let sts = causes(failure)
        .find_map(|e| e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>())?;
    Some(match sts {
        SdkError::ServiceError(se) => {
            let err = se.err();
            match classify_service(err.code(), err.message(), se.raw().status().as_u16()) {
                UpstreamError::InvalidRequest { code, message } => {
                    UpstreamError::AccessDenied { code, message }
                }
                other => other,
            }
        }
        _ => UpstreamError::Unreachable {
            detail: "could not reach STS for the role's credentials".into(),
        },
    })
}

/// Classifies an AWS error response by its code, falling back to its HTTP status.
pub(super) fn classify_service(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> UpstreamError {
    let code_s = code.unwrap_or("").to_owned();
    let message = message.unwrap_or("").to_owned();
    let with = |c: &str| {
        if code_s.is_empty() {
            c.to_owned()
        } else {
            code_s.clone()
        }
    };
    match code.unwrap_or("") {
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            UpstreamError::NotFound {
                code: code_s,
                message,
            }
        }
        "AccessDeniedException"
        | "DecryptionFailure"
        | "UnrecognizedClientException"
        | "InvalidKeyId"
        | "KMSAccessDeniedException" => UpstreamError::AccessDenied {
            code: code_s,
            message,
        },
        "ThrottlingException" | "TooManyRequestsException" | "ThrottledException" => {
            UpstreamError::Throttled {
                code: code_s,
                message,
            }
        }
        _ if status == 404 => UpstreamError::NotFound {
            code: with("ResourceNotFoundException"),
            message,
        },
        _ if status == 403 || status == 401 => UpstreamError::AccessDenied {
            code: with("AccessDeniedException"),
            message,
        },
        _ if status == 429 => UpstreamError::Throttled {
            code: with("ThrottlingException"),
            message,
        },
        _ if status >= 500 => UpstreamError::ServerError {
            code: with(&status.to_string()),
            message,
        },
        _ => UpstreamError::InvalidRequest {
            code: with("InvalidRequestException"),
            message,
        },
    }
}
