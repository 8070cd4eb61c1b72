//! The upstream client: Secrets Manager and SSM Parameter Store through the AWS SDK.
//!
//! Parts:
//! - [`AwsUpstream::new`]: returns at once; each SDK client is built once, on first use or by
//!   [`AwsUpstream::warm_up`] (rustls with ring, our timeouts, a pool of `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`).
//!   Building them loads the AWS configuration and the system's root certificates, a few milliseconds that would
//!   otherwise delay registration and so the start of the function's init. Endpoints honour `AWS_ENDPOINT_URL`,
//!   `AWS_ENDPOINT_URL_SECRETS_MANAGER` and `AWS_ENDPOINT_URL_SSM` through `aws-config`.
//! - the [`Upstream`] impl: one call per key, serialized straight into the response body that the cache keeps, in the
//!   AWS extension's shape (PascalCase, nulls kept, RFC 3339 dates with milliseconds, base64 binary), from the body
//!   types of `secretcache-client`, which clients read back (they borrow from the SDK's output: no extra copy);
//! - [`classify`]: an SDK error becomes an [`UpstreamError`] that keeps its meaning.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_smithy_http_client::tls;
use aws_smithy_types::DateTime;
use base64::Engine as _;
use secretcache_client::body::{
    GetParameterBody, GetSecretValueBody, Parameter, ResultMetadata, SecretText,
};
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore};

use crate::cache::Upstream;
use crate::config::{Config, Endpoint, SourceConfig};
use crate::error::UpstreamError;
use crate::request::{Key, ParameterKey, SecretKey, VersionSelector};
use crate::secret::SecretBody;

/// Secrets Manager and SSM clients, built once and shared by every fetch. Clones share them.
#[derive(Debug, Clone)]
pub struct AwsUpstream {
    clients: Arc<OnceCell<Clients>>,
    max_connections: usize,
    secrets_config: SourceConfig,
    ssm_config: SourceConfig,
    secrets_endpoint: Endpoint,
    ssm_endpoint: Endpoint,
    /// Bounds concurrent upstream calls, and so the connections they open, to the configured pool size.
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct Clients {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

impl AwsUpstream {
    /// An upstream for `config`; the clients are built from the environment's AWS configuration (region,
    /// credentials, endpoint overrides) on first use.
    pub fn new(config: &Config) -> Self {
        Self {
            clients: Arc::new(OnceCell::new()),
            max_connections: config.max_connections,
            secrets_config: config.secrets,
            ssm_config: config.ssm,
            secrets_endpoint: config.secrets_endpoint.clone(),
            ssm_endpoint: config.ssm_endpoint.clone(),
            permits: Arc::new(Semaphore::new(config.max_connections)),
        }
    }

    /// Builds the clients now, if no fetch has yet. Concurrent callers and fetches wait for the one build.
    pub async fn warm_up(&self) {
        let started = std::time::Instant::now();
        self.clients().await;
        tracing::debug!(
            millis = started.elapsed().as_millis() as u64,
            "upstream clients ready"
        );
    }

    async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .pool_max_idle_per_host(self.max_connections)
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let sdk = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .load()
                    .await;
                let secrets = aws_sdk_secretsmanager::config::Builder::from(&sdk)
                    .timeout_config(timeouts(self.secrets_config))
                    .build();
                let ssm = aws_sdk_ssm::config::Builder::from(&sdk)
                    .timeout_config(timeouts(self.ssm_config))
                    .build();
                Clients {
                    secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
                    ssm: aws_sdk_ssm::Client::from_conf(ssm),
                }
            })
            .await
    }

    async fn get_secret(&self, key: &SecretKey) -> Result<SecretBody, UpstreamError> {
        usable(&self.secrets_endpoint)?;
        let mut call = self
            .clients()
            .await
            .secrets
            .get_secret_value()
            .secret_id(&key.secret_id);
        call = match &key.selector {
            VersionSelector::Current => call,
            VersionSelector::Id(id) => call.version_id(id),
            VersionSelector::Stage(stage) => call.version_stage(stage),
            VersionSelector::IdAndStage(id, stage) => call.version_id(id).version_stage(stage),
        };
        let out = call
            .send()
            .await
            .map_err(|e| classify(e, self.secrets_config.timeout))?;
        secret_body(&out)
    }

    async fn get_parameter(&self, key: &ParameterKey) -> Result<SecretBody, UpstreamError> {
        usable(&self.ssm_endpoint)?;
        let out = self
            .clients()
            .await
            .ssm
            .get_parameter()
            .name(&key.name)
            .with_decryption(key.with_decryption)
            .send()
            .await
            .map_err(|e| classify(e, self.ssm_config.timeout))?;
        parameter_body(&out)
    }
}

impl Upstream for AwsUpstream {
    async fn fetch(&self, key: &Key) -> Result<SecretBody, UpstreamError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| UpstreamError::Internal("upstream semaphore closed".into()))?;
        match key {
            Key::Secret(k) => self.get_secret(k).await,
            Key::Parameter(k) => self.get_parameter(k).await,
        }
    }
}

/// An endpoint override that is not a URL would fail inside the SDK with an opaque construction error; say which
/// variable to fix instead.
fn usable(endpoint: &Endpoint) -> Result<(), UpstreamError> {
    match endpoint {
        Endpoint::Invalid(variable) => Err(UpstreamError::BadEndpoint { variable }),
        Endpoint::Default | Endpoint::Url(_) => Ok(()),
    }
}

fn timeouts(source: SourceConfig) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(source.timeout)
        .operation_attempt_timeout(source.timeout)
        .connect_timeout(source.timeout.min(Duration::from_secs(2)))
        .build()
}

/// Maps an SDK error to what it means for the client.
pub fn classify<E: ProvideErrorMetadata>(
    err: SdkError<E, HttpResponse>,
    timeout: Duration,
) -> UpstreamError {
    let timeout = UpstreamError::Timeout {
        millis: timeout.as_millis() as u64,
    };
    match err {
        SdkError::TimeoutError(_) => timeout,
        SdkError::DispatchFailure(f) if f.is_timeout() => timeout,
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

/// Classifies an AWS error response by its code, falling back to its HTTP status.
fn classify_service(code: Option<&str>, message: Option<&str>, status: u16) -> UpstreamError {
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
fn to_body(json: &impl Serialize, secret_len: usize) -> Result<SecretBody, UpstreamError> {
    let mut buf = Vec::with_capacity(secret_len * 2 + 1024);
    serde_json::to_writer(&mut buf, json).map_err(|e| {
        UpstreamError::Internal(format!(
            "could not serialize the response: {}",
            e.classify() as u8
        ))
    })?;
    Ok(SecretBody::new(buf))
}

/// RFC 3339 in UTC with milliseconds, e.g. `2022-11-16T08:22:40.499Z`, as the AWS extension writes dates.
pub fn rfc3339_millis(t: &DateTime) -> String {
    let secs = t.secs();
    let millis = t.subsec_nanos() / 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;

    #[test]
    fn dates_have_milliseconds() {
        let t = DateTime::from_secs_and_nanos(1_668_586_960, 499_000_000);
        assert_eq!(rfc3339_millis(&t), "2022-11-16T08:22:40.499Z");
        assert_eq!(
            rfc3339_millis(&DateTime::from_secs(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(&DateTime::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn secret_body_has_the_aws_shape() {
        let out = GetSecretValueOutput::builder()
            .arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf")
            .name("db")
            .secret_string("{\"password\":\"p\"}")
            .version_id("v1")
            .version_stages("AWSCURRENT")
            .created_date(DateTime::from_secs_and_nanos(1_668_586_960, 499_000_000))
            .build();
        let body = secret_body(&out).expect("body");
        let text = String::from_utf8(body.bytes().to_vec()).expect("utf8");
        assert_eq!(
            text,
            "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf\",\
             \"CreatedDate\":\"2022-11-16T08:22:40.499Z\",\"Name\":\"db\",\"SecretBinary\":null,\
             \"SecretString\":\"{\\\"password\\\":\\\"p\\\"}\",\"VersionId\":\"v1\",\
             \"VersionStages\":[\"AWSCURRENT\"],\"ResultMetadata\":{}}"
        );
        let bin = GetSecretValueOutput::builder()
            .name("b")
            .secret_binary(Blob::new(vec![0u8, 1, 2, 255]))
            .build();
        let v: serde_json::Value =
            serde_json::from_slice(&secret_body(&bin).expect("body").bytes()).expect("json");
        assert_eq!(v["SecretBinary"], "AAEC/w==");
        assert!(v["SecretString"].is_null());
    }

    #[test]
    fn a_client_reads_back_what_is_served() {
        let out = GetSecretValueOutput::builder()
            .name("db")
            .secret_string("{\"password\":\"p\u{e9}\\\"\"}")
            .version_stages("AWSCURRENT")
            .build();
        let read: GetSecretValueBody =
            serde_json::from_slice(&secret_body(&out).expect("body").bytes())
                .expect("client reads it");
        assert_eq!(read.name.as_deref(), Some("db"));
        assert_eq!(
            read.version_stages.as_deref(),
            Some(&["AWSCURRENT".to_owned()][..])
        );
        let secret = read.into_secret_string().expect("a string");
        assert_eq!(
            secretcache_client::ExposeSecret::expose_secret(&secret),
            out.secret_string().expect("set")
        );

        let out = GetParameterOutput::builder()
            .parameter(
                aws_sdk_ssm::types::Parameter::builder()
                    .name("/p")
                    .value("v")
                    .version(2)
                    .build(),
            )
            .build();
        let read: GetParameterBody =
            serde_json::from_slice(&parameter_body(&out).expect("body").bytes())
                .expect("client reads it");
        assert_eq!(read.parameter.as_ref().map(|p| p.version), Some(2));
        let value = read.into_value().expect("a value");
        assert_eq!(secretcache_client::ExposeSecret::expose_secret(&value), "v");
    }

    #[test]
    fn service_errors_keep_their_meaning() {
        assert!(matches!(
            classify_service(Some("ResourceNotFoundException"), Some("m"), 400),
            UpstreamError::NotFound { .. }
        ));
        assert!(matches!(
            classify_service(Some("ParameterNotFound"), None, 400),
            UpstreamError::NotFound { .. }
        ));
        assert!(matches!(
            classify_service(Some("AccessDeniedException"), None, 400),
            UpstreamError::AccessDenied { .. }
        ));
        assert!(matches!(
            classify_service(Some("ThrottlingException"), None, 400),
            UpstreamError::Throttled { .. }
        ));
        assert!(matches!(
            classify_service(Some("InternalServiceError"), None, 500),
            UpstreamError::ServerError { .. }
        ));
        assert!(matches!(
            classify_service(None, None, 503),
            UpstreamError::ServerError { .. }
        ));
        assert!(matches!(
            classify_service(Some("InvalidParameterException"), None, 400),
            UpstreamError::InvalidRequest { .. }
        ));
    }
}
