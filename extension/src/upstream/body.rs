//! Answers as bodies: GetSecretValue and GetParameter results serialized in the AWS extension's shape (PascalCase,
//! nulls kept, RFC 3339 dates with milliseconds, base64 binary), into buffers sized up front.

use std::borrow::Cow;

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_smithy_types::DateTime;
use base64::Engine as _;
use secretcache_client::body::{
    GetParameterBody, GetSecretValueBody, Parameter, ResultMetadata, SecretText,
};
use serde::Serialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::cache::{Fetched, Meta};
use crate::error::UpstreamError;
use crate::secret::SecretBody;

/// The body and what the upstream said about a GetSecretValue answer.
pub(super) fn secret_fetched(out: &GetSecretValueOutput) -> Result<Fetched, UpstreamError> {
    Ok(Fetched {
        body: secret_body(out)?,
        meta: Meta {
            arn: out.arn().map(str::to_owned),
            name: out.name().map(str::to_owned),
            version: out.version_id().map(str::to_owned),
        },
    })
}

/// The body and what the upstream said about a GetParameter answer.
pub(super) fn parameter_fetched(out: &GetParameterOutput) -> Result<Fetched, UpstreamError> {
    let p = out.parameter();
    Ok(Fetched {
        body: parameter_body(out)?,
        meta: Meta {
            arn: p.and_then(|p| p.arn()).map(str::to_owned),
            name: p.and_then(|p| p.name()).map(str::to_owned),
            version: p.map(|p| p.version().to_string()),
        },
    })
}

/// Serializes a GetSecretValue result in the AWS extension's shape.
pub fn secret_body(out: &GetSecretValueOutput) -> Result<SecretBody, UpstreamError> {
    let json = GetSecretValueBody {
        arn: out.arn().map(Cow::Borrowed),
        created_date: out.created_date().map(|d| Cow::Owned(rfc3339_millis(d))),
        name: out.name().map(Cow::Borrowed),
        secret_binary: out.secret_binary().map(|b| {
            SecretText::from(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
        }),
        secret_string: out.secret_string().map(SecretText::borrowed),
        version_id: out.version_id().map(Cow::Borrowed),
        version_stages: out.version_stages.as_deref().map(Cow::Borrowed),
        result_metadata: ResultMetadata {},
    };
    to_body(&json, out.secret_string().map_or(0, str::len))
}

/// Serializes a GetParameter result in the AWS extension's shape.
pub fn parameter_body(out: &GetParameterOutput) -> Result<SecretBody, UpstreamError> {
    let p = out.parameter();
    let json = GetParameterBody {
        parameter: p.map(|p| Parameter {
            arn: p.arn().map(Cow::Borrowed),
            data_type: p.data_type().map(Cow::Borrowed),
            last_modified_date: p
                .last_modified_date()
                .map(|d| Cow::Owned(rfc3339_millis(d))),
            name: p.name().map(Cow::Borrowed),
            selector: p.selector().map(Cow::Borrowed),
            source_result: p.source_result().map(Cow::Borrowed),
            r#type: p.r#type().map(|t| Cow::Borrowed(t.as_str())),
            value: p.value().map(SecretText::borrowed),
            version: p.version(),
        }),
        result_metadata: ResultMetadata {},
    };
    to_body(&json, p.and_then(|p| p.value()).map_or(0, str::len))
}

/// Serializes into a buffer sized up front, so the secret is not left behind in freed, reallocated memory.
pub(super) fn to_body(
    json: &impl Serialize,
    secret_len: usize,
) -> Result<SecretBody, UpstreamError> {
    let mut buf = Vec::with_capacity(secret_len * 2 + 1024);
    serde_json::to_writer(&mut buf, json).map_err(|e| {
        UpstreamError::Internal(format!(
            "could not serialize the response: {}",
            e.classify() as u8
        ))
    })?;
    Ok(SecretBody::new(buf))
}

/// The AWS extension's date format: RFC 3339 in UTC with milliseconds.
const RFC3339_MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// RFC 3339 in UTC with milliseconds, e.g. `2022-11-16T08:22:40.499Z`, as the AWS extension writes dates. A date
/// outside years 0 to 9999 (never sent by AWS) falls back to the SDK's own RFC 3339 form.
pub fn rfc3339_millis(t: &DateTime) -> String {
    let nanos = i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| at.format(RFC3339_MILLIS).ok())
        .unwrap_or_else(|| t.to_string())
}
