//! The upstream client: Secrets Manager and SSM Parameter Store through the AWS SDK.
//!
//! Parts:
//! - [`AwsUpstream::new`]: returns at once; each SDK client is built once, on first use or by
//!   [`AwsUpstream::warm_up`], over our HTTP/1.1 client (`upstream/http.rs`: rustls with ring, our timeouts, a pool of
//!   `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`). Building them loads the AWS configuration and the system's root
//!   certificates, a few milliseconds that would otherwise delay registration and so the start of the function's
//!   init; the warm-up then rehearses a first call of each service without the network
//!   (`upstream/rehearsal.rs`). Endpoints honour `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` and
//!   `AWS_ENDPOINT_URL_SSM`.
//! - **Any region**: an ARN of another region is fetched with clients for that region, built the first time one is
//!   asked for (sent to the home region, it would fail). The region comes from a caller's request, so it is checked
//!   for AWS's form when the request is parsed, and at most [`MAX_REGION_CLIENTS`] regions' clients are held (least
//!   recently used dropped first, counted in `/metrics`). **Any account**: with a role configured, every call uses
//!   its credentials, from the SDK's assume-role provider (STS), cached and refreshed by the SDK.
//! - the [`Upstream`] impl: one call per key, serialized straight into the response body that the cache keeps, in the
//!   AWS extension's shape (PascalCase, nulls kept, RFC 3339 dates with milliseconds, base64 binary), from the body
//!   types of `secretcache-client`, which clients read back (they borrow from the SDK's output: no extra copy), with
//!   the ARN, name and version the cache learns aliases and ETags from; and batches: BatchGetSecretValue (20 secrets)
//!   and GetParameters (10 names), falling back to one call per key, once and for the life of the environment, when
//!   the role may not batch;
//! - [`classify`]: an SDK error becomes an [`UpstreamError`] that keeps its meaning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::SharedCredentialsProvider;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use tokio::sync::{OnceCell, Semaphore};

use crate::cache::{Fetched, Upstream};
use crate::config::{Config, Endpoint, SdkSource, SourceConfig};
use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::request::{arn_region, Key, ParameterKey, SecretKey, VersionSelector};

mod batch;
mod body;
mod classify;
mod clients;
mod credentials_file;
mod http;
mod rehearsal;
mod tagged;

pub use crate::config::AssumeRole;
use batch::{match_parameter_batch, match_secret_batch};
use body::{parameter_fetched, secret_fetched};
pub use classify::classify;
use clients::{lambda_sdk, timeouts, usable};
pub use http::{ForwardError, Forwarder};

/// Secrets Manager and SSM clients, built once and shared by every fetch. Clones share them.
#[derive(Debug, Clone)]
pub struct AwsUpstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_connections: usize,
    secrets_config: SourceConfig,
    ssm_config: SourceConfig,
    secrets_endpoint: Endpoint,
    ssm_endpoint: Endpoint,
    /// The region names resolve in; ARNs of other regions get clients of their own.
    home_region: Option<String>,
    role: Option<AssumeRole>,
    sdk_source: SdkSource,
    /// What the upstream was built from, for the same upstream acting as another role.
    config: Config,
    /// The AWS configuration every client is built from (the role's credentials when one is configured).
    sdk: OnceCell<SdkConfig>,
    /// The extension's own credentials, before any role is assumed: what a caller in the same task or function
    /// holds too (set with `sdk`).
    own: std::sync::OnceLock<Option<SharedCredentialsProvider>>,
    /// The home region's clients.
    home: OnceCell<Arc<Clients>>,
    /// Other regions' clients, built the first time an ARN of theirs is asked for; bounded, least recently used out.
    regions: moka::future::Cache<String, Arc<Clients>>,
    /// For the count of other regions' clients held and dropped.
    metrics: Arc<Metrics>,
    /// Bounds concurrent upstream calls, and so the connections they open, to the configured pool size.
    permits: Semaphore,
    /// Set once the role has been refused BatchGetSecretValue / GetParameters: from then on, one call per key.
    secrets_batch_denied: AtomicBool,
    ssm_batch_denied: AtomicBool,
}

#[derive(Debug)]
struct Clients {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

/// The most regions other than the home one whose clients are held at once. A function reads from a few regions at
/// most; past this, the least recently used region's clients are dropped and built again if it is asked for again.
pub const MAX_REGION_CLIENTS: u64 = 8;

impl AwsUpstream {
    /// An upstream for `config`; the clients are built from the environment's AWS configuration (region,
    /// credentials, endpoint overrides) on first use. `metrics` counts the other regions' clients.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self::with_role(config, config.role.clone(), metrics)
    }

    fn with_role(config: &Config, role: Option<AssumeRole>, metrics: Arc<Metrics>) -> Self {
        let evictions = Arc::clone(&metrics);
        let regions = moka::future::Cache::builder()
            .max_capacity(MAX_REGION_CLIENTS)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .eviction_listener(move |region: Arc<String>, _, cause| {
                if cause.was_evicted() {
                    tracing::info!(region = %region, "dropped the clients of the least recently used region");
                    evictions.set_region_clients(0, 1);
                }
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                max_connections: config.max_connections,
                secrets_config: config.secrets,
                ssm_config: config.ssm,
                secrets_endpoint: config.secrets_endpoint.clone(),
                ssm_endpoint: config.ssm_endpoint.clone(),
                home_region: config.region.clone(),
                role,
                config: config.clone(),
                sdk_source: config.sdk_source,
                sdk: OnceCell::new(),
                own: std::sync::OnceLock::new(),
                home: OnceCell::new(),
                regions,
                metrics,
                permits: Semaphore::new(config.max_connections),
                secrets_batch_denied: AtomicBool::new(false),
                ssm_batch_denied: AtomicBool::new(false),
            }),
        }
    }

    /// Builds the home region's clients now, if no fetch has yet. Concurrent callers and fetches wait for the one
    /// build.
    ///
    /// Then rehearses a first call of each service (`upstream/rehearsal.rs`), so that the first real read does not
    /// pay for what the SDK sets up lazily. Reads do not wait for the rehearsal: the clients are ready before it
    /// starts.
    pub async fn warm_up(&self) {
        let started = std::time::Instant::now();
        let clients = self.clients(None).await;
        tracing::debug!(
            millis = started.elapsed().as_millis() as u64,
            "upstream clients ready"
        );
        let started = std::time::Instant::now();
        match rehearsal::rehearse(&clients.secrets, &clients.ssm).await {
            Ok(()) => tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                "first calls rehearsed"
            ),
            Err(e) => tracing::debug!(error = %e, "the rehearsal of a first call failed"),
        }
    }

    /// The AWS configuration, loaded once: the SDK's default chain for region and credentials, our HTTP client, and
    /// the role's credentials (cached and refreshed by the SDK) when a role is configured.
    async fn sdk(&self) -> &SdkConfig {
        let inner = &self.inner;
        inner
            .sdk
            .get_or_init(|| async {
                let http = http::client(inner.max_connections, &inner.config.proxy);
                let started = std::time::Instant::now();
                let base = match (inner.sdk_source, &inner.home_region) {
                    (SdkSource::LambdaEnvironment, Some(region)) => lambda_sdk(http, region),
                    _ => {
                        let mut loader =
                            aws_config::defaults(BehaviorVersion::latest()).http_client(http);
                        // The variable, or the Agent configuration file's `region`, which the SDK would not read
                        // itself.
                        if let Some(region) = &inner.home_region {
                            loader = loader.region(Region::new(region.clone()));
                        }
                        loader.load().await
                    }
                };
                tracing::debug!(
                    source = ?inner.sdk_source,
                    micros = started.elapsed().as_micros() as u64,
                    "AWS configuration loaded"
                );
                let base = match &inner.config.credentials_file {
                    Some(path) => {
                        tracing::info!(
                            path = %path.display(),
                            "calls sign with the credentials file's default profile, read again every 5 minutes"
                        );
                        let file = credentials_file::CredentialsFile::new(
                            path.clone(),
                            http::client(inner.max_connections, &inner.config.proxy),
                        );
                        base.into_builder()
                            .credentials_provider(SharedCredentialsProvider::new(file))
                            .build()
                    }
                    None => base,
                };
                let _ = inner.own.set(base.credentials_provider());
                let Some(role) = &inner.role else {
                    return base;
                };
                let mut builder = AssumeRoleProvider::builder(&role.arn)
                    .session_name("secretcache")
                    .configure(&base);
                if let Some(id) = &role.external_id {
                    builder = builder.external_id(id);
                }
                let provider = builder.build().await;
                tracing::info!(role = %role.arn, "calls use credentials of the assumed role");
                base.into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .build()
            })
            .await
    }

    /// The extension's own current credentials (its environment's or its provider's, not an assumed role's), asked
    /// of the provider now; for verifying a caller's signature where no keys are in the environment (a sidecar).
    pub async fn own_credentials(&self) -> Result<aws_credential_types::Credentials, String> {
        use aws_credential_types::provider::ProvideCredentials;
        self.sdk().await;
        let provider = self
            .inner
            .own
            .get()
            .cloned()
            .flatten()
            .ok_or("no credentials provider is configured")?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
    }

    /// The clients for `region` (an ARN's); `None`, or the home region, is the home clients.
    async fn clients(&self, region: Option<&str>) -> Arc<Clients> {
        let Some(region) = region.filter(|r| Some(*r) != self.inner.home_region.as_deref()) else {
            return Arc::clone(self.inner.home.get_or_init(|| self.build(None)).await);
        };
        if let Some(clients) = self.inner.regions.get(region).await {
            return clients;
        }
        // Concurrent first reads of one region share one build.
        let clients = self
            .inner
            .regions
            .get_with_by_ref(region, self.build(Some(region)))
            .await;
        self.inner.regions.run_pending_tasks().await;
        self.inner
            .metrics
            .set_region_clients(self.inner.regions.entry_count(), 0);
        clients
    }

    async fn build(&self, region: Option<&str>) -> Arc<Clients> {
        let sdk = self.sdk().await;
        let started = std::time::Instant::now();
        let mut secrets = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .timeout_config(timeouts(self.inner.secrets_config));
        let mut ssm =
            aws_sdk_ssm::config::Builder::from(sdk).timeout_config(timeouts(self.inner.ssm_config));
        // Set here, from the configuration read once, in either way of loading: the SDK's own loader reads these
        // variables too, the Lambda one does not.
        if let Endpoint::Url { url, .. } = &self.inner.secrets_endpoint {
            secrets = secrets.endpoint_url(url);
        }
        if let Endpoint::Url { url, .. } = &self.inner.ssm_endpoint {
            ssm = ssm.endpoint_url(url);
        }
        if let Some(r) = region {
            tracing::info!(region = r, "building clients for another region");
            secrets = secrets.region(Region::new(r.to_owned()));
            ssm = ssm.region(Region::new(r.to_owned()));
        }
        let clients = Arc::new(Clients {
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
            ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
        });
        tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            "upstream clients built"
        );
        clients
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, UpstreamError> {
        self.inner
            .permits
            .acquire()
            .await
            .map_err(|_| UpstreamError::Internal("upstream semaphore closed".into()))
    }

    async fn get_secret(&self, key: &SecretKey) -> Result<Fetched, UpstreamError> {
        usable(&self.inner.secrets_endpoint)?;
        let clients = self.clients(arn_region(&key.secret_id)).await;
        let mut call = clients.secrets.get_secret_value().secret_id(&key.secret_id);
        call = match &key.selector {
            VersionSelector::Current => call,
            VersionSelector::Id(id) => call.version_id(id),
            VersionSelector::Stage(stage) => call.version_stage(stage),
            VersionSelector::IdAndStage(id, stage) => call.version_id(id).version_stage(stage),
        };
        let out = call
            .send()
            .await
            .map_err(|e| classify(e, self.inner.secrets_config.timeout))?;
        secret_fetched(&out)
    }

    async fn get_parameter(&self, key: &ParameterKey) -> Result<Fetched, UpstreamError> {
        usable(&self.inner.ssm_endpoint)?;
        let out = self
            .clients(arn_region(&key.name))
            .await
            .ssm
            .get_parameter()
            .name(&key.name)
            .with_decryption(key.with_decryption)
            .send()
            .await
            .map_err(|e| classify(e, self.inner.ssm_config.timeout))?;
        parameter_fetched(&out)
    }

    /// BatchGetSecretValue for secrets' current versions (one region). `None` when the role may not call it.
    async fn batch_secrets(
        &self,
        keys: &[&SecretKey],
    ) -> Option<Vec<Result<Fetched, UpstreamError>>> {
        if self.inner.secrets_batch_denied.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(e) = usable(&self.inner.secrets_endpoint) {
            return Some(keys.iter().map(|_| Err(e.clone())).collect());
        }
        let region = keys.first().and_then(|k| arn_region(&k.secret_id));
        let clients = self.clients(region).await;
        let ids = keys.iter().map(|k| k.secret_id.clone()).collect();
        let out = match clients
            .secrets
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids))
            .send()
            .await
            .map_err(|e| classify(e, self.inner.secrets_config.timeout))
        {
            Ok(out) => out,
            Err(UpstreamError::AccessDenied { .. }) => {
                self.inner
                    .secrets_batch_denied
                    .store(true, Ordering::Relaxed);
                tracing::warn!(
                    "the role may not call secretsmanager:BatchGetSecretValue; batches are fetched one \
                     GetSecretValue per secret from now on"
                );
                return None;
            }
            Err(e) => return Some(keys.iter().map(|_| Err(e.clone())).collect()),
        };
        let ids: Vec<&str> = keys.iter().map(|k| k.secret_id.as_str()).collect();
        let mut results = Vec::with_capacity(keys.len());
        for (key, matched) in keys.iter().zip(match_secret_batch(&out, &ids)) {
            results.push(match matched {
                Some(result) => result,
                None => self.get_secret(key).await,
            });
        }
        Some(results)
    }

    /// GetParameters for parameters (one region, one decryption setting). `None` when the role may not call it.
    async fn batch_parameters(
        &self,
        keys: &[&ParameterKey],
    ) -> Option<Vec<Result<Fetched, UpstreamError>>> {
        if self.inner.ssm_batch_denied.load(Ordering::Relaxed) {
            return None;
        }
        if let Err(e) = usable(&self.inner.ssm_endpoint) {
            return Some(keys.iter().map(|_| Err(e.clone())).collect());
        }
        let region = keys.first().and_then(|k| arn_region(&k.name));
        let decrypt = keys.first().is_some_and(|k| k.with_decryption);
        let names = keys.iter().map(|k| k.name.clone()).collect();
        let out = match self
            .clients(region)
            .await
            .ssm
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(decrypt)
            .send()
            .await
            .map_err(|e| classify(e, self.inner.ssm_config.timeout))
        {
            Ok(out) => out,
            Err(UpstreamError::AccessDenied { .. }) => {
                self.inner.ssm_batch_denied.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "the role may not call ssm:GetParameters; batches are fetched one GetParameter per name \
                     from now on"
                );
                return None;
            }
            Err(e) => return Some(keys.iter().map(|_| Err(e.clone())).collect()),
        };
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        let mut results = Vec::with_capacity(keys.len());
        for (key, matched) in keys.iter().zip(match_parameter_batch(&out, &names)) {
            results.push(match matched {
                Some(result) => result,
                None => self.get_parameter(key).await,
            });
        }
        Some(results)
    }

    /// Every parameter under `path` (recursive, decrypted), as `(key, value)` pairs ready for the cache; for the init
    /// prefetch of an SSM path. Pages are fetched until the path ends.
    async fn parameters_by_path(&self, path: &str) -> Result<Vec<(Key, Fetched)>, UpstreamError> {
        usable(&self.inner.ssm_endpoint)?;
        let clients = self.clients(None).await;
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let _permit = self.permit().await?;
            let out = clients
                .ssm
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify(e, self.inner.ssm_config.timeout))?;
            for p in out.parameters() {
                let Some(name) = p.name() else { continue };
                let single = GetParameterOutput::builder().parameter(p.clone()).build();
                let key = Key::Parameter(ParameterKey {
                    name: name.to_owned(),
                    with_decryption: true,
                });
                found.push((key, parameter_fetched(&single)?));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

impl Upstream for AwsUpstream {
    /// The same configuration with credentials of `role_arn` (assumed from the extension's own credentials, cached and
    /// refreshed by the SDK), and clients, pools and connections of its own.
    fn as_role(&self, role_arn: &str) -> Option<Self> {
        let role = AssumeRole {
            arn: role_arn.to_owned(),
            external_id: None,
        };
        Some(Self::with_role(
            &self.inner.config,
            Some(role),
            Arc::clone(&self.inner.metrics),
        ))
    }

    async fn fetch(&self, key: &Key) -> Result<Fetched, UpstreamError> {
        let _permit = self.permit().await?;
        match key {
            Key::Secret(k) => self.get_secret(k).await,
            Key::Parameter(k) => self.get_parameter(k).await,
        }
    }

    /// One BatchGetSecretValue or GetParameters call for keys the cache grouped (same kind, region and, for
    /// parameters, decryption); one call per key when the role may not batch.
    async fn fetch_batch(&self, keys: &[Key]) -> Vec<Result<Fetched, UpstreamError>> {
        let secrets: Vec<&SecretKey> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Secret(s) => Some(s),
                Key::Parameter(_) => None,
            })
            .collect();
        let parameters: Vec<&ParameterKey> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Parameter(p) => Some(p),
                Key::Secret(_) => None,
            })
            .collect();
        let batched = {
            let _permit = match self.permit().await {
                Ok(p) => p,
                Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
            };
            if secrets.len() == keys.len() {
                self.batch_secrets(&secrets).await
            } else if parameters.len() == keys.len() {
                self.batch_parameters(&parameters).await
            } else {
                None
            }
        };
        match batched {
            Some(results) => results,
            None => futures_util::future::join_all(keys.iter().map(|k| self.fetch(k))).await,
        }
    }

    async fn fetch_path(&self, path: &str) -> Result<Vec<(Key, Fetched)>, UpstreamError> {
        self.parameters_by_path(path).await
    }

    async fn tagged_secrets(
        &self,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<String>, UpstreamError> {
        self.secrets_tagged(keys, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::batch::parameter_selector;
    use super::body::{parameter_body, rfc3339_millis, secret_body};
    use super::classify::classify_service;
    use super::*;
    use aws_sdk_secretsmanager::error::SdkError;
    use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::types::SecretValueEntry;
    use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
    use aws_smithy_types::{Blob, DateTime};
    use secretcache_client::body::{GetParameterBody, GetSecretValueBody};
    use std::time::Duration;

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

    /// What `classify` makes of what the SDK returns for a scripted HTTP response, through the SDK's own error
    /// parsing (aws-smithy-mocks intercepts the call; nothing leaves the process).
    async fn classified(status: u16, error_type: &str) -> UpstreamError {
        use aws_sdk_secretsmanager::config::http::HttpResponse as Raw;
        use aws_sdk_secretsmanager::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        use aws_smithy_types::body::SdkBody;
        let body = format!("{{\"__type\":\"{error_type}\",\"message\":\"scripted\"}}");
        let rule = mock!(Client::get_secret_value).then_http_response(move || {
            Raw::new(
                status.try_into().expect("status"),
                SdkBody::from(body.clone()),
            )
        });
        // No retries: what classify sees is the SDK's error after them, and their backoff would be real sleeping.
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
        let err = client
            .get_secret_value()
            .secret_id("s")
            .send()
            .await
            .expect_err("a scripted error");
        classify(err, Duration::from_secs(3))
    }

    #[tokio::test]
    async fn sdk_errors_keep_their_meaning_through_the_sdk() {
        assert!(matches!(
            classified(400, "ResourceNotFoundException").await,
            UpstreamError::NotFound { code, .. } if code == "ResourceNotFoundException"
        ));
        assert!(matches!(
            classified(400, "AccessDeniedException").await,
            UpstreamError::AccessDenied { .. }
        ));
        assert!(matches!(
            classified(400, "DecryptionFailure").await,
            UpstreamError::AccessDenied { .. }
        ));
        assert!(matches!(
            classified(400, "ThrottlingException").await,
            UpstreamError::Throttled { .. }
        ));
        assert!(matches!(
            classified(500, "InternalServiceError").await,
            UpstreamError::ServerError { .. }
        ));
        assert!(matches!(
            classified(400, "InvalidRequestException").await,
            UpstreamError::InvalidRequest { .. }
        ));
        assert!(matches!(
            classified(403, "").await,
            UpstreamError::AccessDenied { .. }
        ));
    }

    #[test]
    fn transport_failures_are_timeouts_or_unreachable() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        type E = SdkError<
            aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            HttpResponse,
        >;
        let t = Duration::from_millis(1500);
        assert_eq!(
            classify(E::timeout_error("slow"), t),
            UpstreamError::Timeout { millis: 1500 }
        );
        assert_eq!(
            classify(
                E::dispatch_failure(ConnectorError::timeout("slow".into())),
                t
            ),
            UpstreamError::Timeout { millis: 1500 }
        );
        assert!(matches!(
            classify(E::dispatch_failure(ConnectorError::io("refused".into())), t),
            UpstreamError::Unreachable { .. }
        ));
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

    fn secret_entry(arn: &str, name: &str, value: &str) -> SecretValueEntry {
        SecretValueEntry::builder()
            .arn(arn)
            .name(name)
            .secret_string(value)
            .version_id("v")
            .build()
    }

    fn values(results: Vec<Option<Result<Fetched, UpstreamError>>>) -> Vec<Option<String>> {
        results
            .into_iter()
            .map(|r| {
                r.map(|r| match r {
                    Ok(f) => {
                        let v: serde_json::Value =
                            serde_json::from_slice(&f.body.bytes()).expect("json");
                        v.get("SecretString")
                            .or_else(|| v["Parameter"].get("Value"))
                            .and_then(|s| s.as_str())
                            .unwrap_or_default()
                            .to_owned()
                    }
                    Err(e) => format!("error {}", e.code()),
                })
            })
            .collect()
    }

    const A_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db-AbCdEf";

    #[test]
    fn identity_batch_answers_match_full_arns_first_so_a_look_alike_never_takes_another_secrets_id()
    {
        // B is named `<A's name>-<A's suffix>`: its partial ARN is A's full ARN.
        let b_arn = format!("{A_ARN}-XyZ123");
        for order in [[0, 1], [1, 0]] {
            let entries = [
                secret_entry(&b_arn, "my/db-AbCdEf", "B"),
                secret_entry(A_ARN, "my/db", "A"),
            ];
            let out = BatchGetSecretValueOutput::builder()
                .set_secret_values(Some(order.iter().map(|i| entries[*i].clone()).collect()))
                .build();
            assert_eq!(
                values(match_secret_batch(&out, &["my/db-AbCdEf", A_ARN])),
                [Some("B".to_owned()), Some("A".to_owned())]
            );
        }
    }

    #[test]
    fn identity_batch_names_and_partial_arns_match_only_beyond_doubt() {
        let home = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-HomeHm";
        let foreign = "arn:aws:secretsmanager:us-east-1:999999999999:secret:db-Foreig";
        let both = BatchGetSecretValueOutput::builder()
            .secret_values(secret_entry(foreign, "db", "foreign"))
            .secret_values(secret_entry(home, "db", "home"))
            .build();
        // The name takes the one secret of that name no ARN id took.
        assert_eq!(
            values(match_secret_batch(&both, &[foreign, "db"])),
            [Some("foreign".to_owned()), Some("home".to_owned())]
        );
        // Both taken by ARN ids: the name is asked for alone.
        assert_eq!(
            values(match_secret_batch(&both, &[foreign, "db", home])),
            [Some("foreign".to_owned()), None, Some("home".to_owned())]
        );
        // An error the upstream reports for the name wins over a value of the same name.
        let refused = BatchGetSecretValueOutput::builder()
            .secret_values(secret_entry(foreign, "db", "foreign"))
            .errors(
                aws_sdk_secretsmanager::types::ApiErrorType::builder()
                    .secret_id("db")
                    .error_code("ResourceNotFoundException")
                    .build(),
            )
            .build();
        assert_eq!(
            values(match_secret_batch(&refused, &[foreign, "db"])),
            [
                Some("foreign".to_owned()),
                Some("error ResourceNotFoundException".to_owned())
            ]
        );
        // A partial ARN matches the one secret that extends it; no answer at all leaves the id to a call of its own.
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db";
        assert_eq!(
            values(match_secret_batch(&both, &[partial, "other"])),
            [Some("home".to_owned()), None]
        );
    }

    fn parameter(
        name: &str,
        selector: Option<&str>,
        version: i64,
        value: &str,
    ) -> aws_sdk_ssm::types::Parameter {
        aws_sdk_ssm::types::Parameter::builder()
            .name(name)
            .set_selector(selector.map(str::to_owned))
            .version(version)
            .value(value)
            .build()
    }

    #[test]
    fn identity_a_selected_parameter_version_is_never_matched_to_the_plain_name() {
        // As SSM answers GetParameters(["/p:1", "/p"]): each selected answer carries its selector.
        let real = GetParametersOutput::builder()
            .parameters(parameter("/p", Some(":1"), 1, "old"))
            .parameters(parameter("/p", None, 2, "new"))
            .build();
        assert_eq!(
            values(match_parameter_batch(&real, &["/p:1", "/p"])),
            [Some("old".to_owned()), Some("new".to_owned())]
        );
        // A label, and the latest asked for by number too.
        let labelled = GetParametersOutput::builder()
            .parameters(parameter("/p", Some(":prod"), 1, "old"))
            .parameters(parameter("/p", Some(":2"), 2, "new"))
            .parameters(parameter("/p", None, 2, "new"))
            .build();
        assert_eq!(
            values(match_parameter_batch(&labelled, &["/p", "/p:prod", "/p:2"])),
            [
                Some("new".to_owned()),
                Some("old".to_owned()),
                Some("new".to_owned())
            ]
        );
        // Without selectors (moto's answers): a version is checked by number, a label cannot be, and the plain name
        // with two candidates is asked for alone.
        let bare = GetParametersOutput::builder()
            .parameters(parameter("/p", None, 1, "old"))
            .parameters(parameter("/p", None, 2, "new"))
            .build();
        assert_eq!(
            values(match_parameter_batch(&bare, &["/p:1", "/p", "/p:prod"])),
            [Some("old".to_owned()), None, None]
        );
        let missing = GetParametersOutput::builder()
            .invalid_parameters("/gone")
            .build();
        assert_eq!(
            values(match_parameter_batch(&missing, &["/gone"])),
            [Some("error ParameterNotFound".to_owned())]
        );
    }

    #[test]
    fn parameter_selectors_are_split_after_the_name_or_the_arns_resource() {
        assert_eq!(parameter_selector("/p"), ("/p", None));
        assert_eq!(parameter_selector("/p:3"), ("/p", Some("3")));
        assert_eq!(parameter_selector("p:prod"), ("p", Some("prod")));
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/p";
        assert_eq!(parameter_selector(arn), (arn, None));
        assert_eq!(parameter_selector(&format!("{arn}:4")), (arn, Some("4")));
    }

    #[tokio::test]
    async fn other_regions_clients_are_bounded_whatever_regions_callers_name() {
        let vars: std::collections::HashMap<String, String> = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let metrics = Arc::new(Metrics::default());
        let upstream = AwsUpstream::new(&Config::load(&vars, None), Arc::clone(&metrics));
        let n = 2_000u64;
        for i in 0..n {
            let region = format!("zz-made-up-{}", i % 1000);
            let region = format!("{region}{}", if i >= 1000 { "-1" } else { "" });
            upstream.clients(Some(&region)).await;
        }
        upstream.inner.regions.run_pending_tasks().await;
        let s = metrics.snapshot();
        assert!(s.region_clients <= MAX_REGION_CLIENTS, "{s:?}");
        assert_eq!(s.region_clients_evicted, n - s.region_clients, "{s:?}");
        assert!(metrics
            .prometheus()
            .contains(&format!("secretcache_region_clients {}", s.region_clients)));
    }
}
