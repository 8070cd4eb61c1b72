//! How the SDK clients are configured: Lambda's environment as an AWS configuration, endpoint checks, timeouts.

use std::time::Duration;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{Endpoint, SourceConfig};
use crate::error::UpstreamError;

/// Lambda's environment as an AWS configuration: the region and the execution role's credentials are in the
/// environment, so there is nothing to look for (no profile files, no instance metadata, no SSO or process
/// providers) and nothing to wait on before the first call. The HTTP client is shared by every service client.
pub(super) fn lambda_sdk(http: SharedHttpClient, region: &str) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(http)
        .time_source(SharedTimeSource::new(SystemTimeSource::new()))
        .retry_config(RetryConfig::standard());
    if let Some(sleep) = default_async_sleep() {
        builder = builder.sleep_impl(sleep);
    }
    builder.build()
}

/// An endpoint override that is not a URL would fail inside the SDK with an opaque construction error; say which
/// variable to fix instead.
pub(super) fn usable(endpoint: &Endpoint) -> Result<(), UpstreamError> {
    match endpoint {
        Endpoint::Invalid(variable) => Err(UpstreamError::BadEndpoint { variable }),
        Endpoint::Default | Endpoint::Url { .. } => Ok(()),
    }
}

pub(super) fn timeouts(source: SourceConfig) -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_timeout(source.timeout)
        .operation_attempt_timeout(source.timeout)
        .connect_timeout(source.timeout.min(Duration::from_secs(2)))
        .build()
}
