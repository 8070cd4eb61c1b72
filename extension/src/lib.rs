//! secretcache: a Lambda external extension that serves Secrets Manager secrets and SSM parameters from a localhost
//! cache, as a drop-in replacement for the AWS Parameters and Secrets Lambda Extension.
//!
//! The public surface is small: [`run`] and what `main.rs` calls, [`embed`] (the types an in-process test wires
//! together) and [`fuzzing`]. Everything else is private; `docs/architecture.md` maps it. The modules, one
//! responsibility each:
//! - `config`: typed configuration from the environment, validated before anything binds;
//! - `request`: strict parsing of query strings into cache keys;
//! - `respond`: bodies beyond the cached one (a field as text, batch bodies);
//! - `cache`: the bounded cache with single-flight, refresh-ahead, stale-on-error and refusal memory;
//! - `clock`: monotonic time that also counts the pauses a frozen or restored micro-VM hides from it;
//! - `upstream`: the AWS SDK clients and the success bodies;
//! - `server`: the localhost HTTP server and its request checks;
//! - `roles`: a cache per IAM role that reads name (`roleArn`), bounded;
//! - `token`: the token a request must carry, from a variable or (in containers) a file that may change;
//! - `extensions_api`: the three calls of the Lambda Extensions API;
//! - `lifecycle`: the Lambda lifecycle on that API, and standalone mode;
//! - `refresh_timer`: refresh driven by time where no INVOKE comes (Lambda Managed Instances);
//! - `error`: errors, and the one mapping to HTTP;
//! - `secret`, `metrics`, `logging`: the secret-holding type, counters, tracing set-up;
//! - `health`: `secretcache ping`, a container health check;
//! - `wrapper` and `reference`: `secretcache exec`, the exec wrapper that puts referenced secrets
//!   into a runtime's environment, and the grammar of those references;
//! - [`fuzzing`]: property checks shared by the fuzz targets and their regression tests.

mod cache;
mod clock;
mod config;
mod error;
mod extensions_api;
pub mod fuzzing;
mod health;
mod lifecycle;
mod logging;
mod metrics;
mod reference;
mod refresh_timer;
mod request;
mod respond;
mod roles;
mod secret;
mod server;
mod sigv4;
mod token;
mod upstream;
mod wrapper;

// What the binary (`main.rs`) needs of the library.
pub use config::{Config, ProcessEnv};
pub use health::ping;
pub use logging::{init as init_logging, report as report_diagnostics};
pub use server::{bind, BindError};
pub use wrapper::{main as wrapper_main, requested as wrapper_requested};

/// The few types an embedder or an in-process test wires together: a [`Cache`] over an
/// [`Upstream`](embed::Upstream), served by an [`App`] through [`handle`](embed::handle) (one request in,
/// one response out, no socket). `extension/tests/gate.rs` drives the
/// request gate this way; everything else in the crate is private to it.
pub mod embed {
    pub use crate::cache::{Cache, Fetched, Meta, Policy, Upstream};
    pub use crate::clock::SystemWallClock;
    pub use crate::config::{Config, AWS_SESSION_TOKEN};
    pub use crate::error::UpstreamError;
    pub use crate::metrics::Metrics;
    pub use crate::request::{Key, VersionSelector};
    pub use crate::secret::SecretBody;
    pub use crate::server::{bind, handle, serve, App};
    pub use crate::token::{TokenSource, Tokens};

    /// The exec wrapper's resolution, as `extension/tests/wrapper_resolve.rs` drives it against a served cache.
    pub mod wrapper {
        pub use crate::reference::{parse as parse_reference, Reference};
        pub use crate::wrapper::{resolve, Reason, BUDGET, STARTUP_WAIT};
    }
}

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Policy};
use crate::clock::SystemWallClock;
use crate::lifecycle::{Lifecycle, LifecycleError};
use crate::metrics::Metrics;
use crate::server::App;
use crate::token::Tokens;
use crate::upstream::AwsUpstream;

/// The longest an SDK operation passed on to the service may take (writes such as RotateSecret included).
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An endpoint override's URL, where one is configured.
fn endpoint_url(endpoint: &config::Endpoint) -> Option<String> {
    match endpoint {
        config::Endpoint::Url { url, .. } => Some(url.clone()),
        // An invalid override fails the forwarded call as it fails reads, never goes to AWS instead.
        config::Endpoint::Invalid(_) => Some(String::new()),
        config::Endpoint::Default => None,
    }
}

/// Runs the extension on already-bound listeners ([`server::bind`]) until shutdown.
///
/// The listeners are bound by the caller *before* this registers with the Extensions API, so the function's init code
/// can already read secrets.
pub async fn run(config: Config, listeners: Vec<TcpListener>) -> Result<(), LifecycleError> {
    let metrics = Arc::new(Metrics::default());
    metrics.set_config_errors(config.diagnostics.errors.len() as u64);
    // The SDK clients are built in the background (in Lambda, once registered): registration, and so the function's
    // init, need not wait for them, and a read that comes first waits for the same build.
    let upstream = AwsUpstream::new(&config, Arc::clone(&metrics));
    let warm_up = lifecycle::WarmUp(Box::pin({
        let upstream = upstream.clone();
        async move { upstream.warm_up().await }
    }));
    let cache = Cache::new(
        upstream.clone(),
        SystemWallClock,
        Policy::from(&config),
        Arc::clone(&metrics),
    );
    let tokens = Tokens::load(config.tokens.clone()).await;
    let mut app = App::new(
        Arc::clone(&cache),
        Arc::clone(&tokens),
        &config.token_headers,
        config.path_prefix.clone(),
        Arc::clone(&metrics),
    );
    app.roles.max = config.max_roles;
    // A signature verifies with the environment's keys (Lambda) or, where there are none (a sidecar), with what the
    // credentials provider gives, which is what it gives the caller too.
    app.signing_keys = Some(match config.signing_keys.clone() {
        Some(keys) => sigv4::HeldKeys::Fixed(keys),
        None => {
            let upstream = upstream.clone();
            sigv4::HeldKeys::Provided(sigv4::Provided::new(Arc::new(move || {
                let upstream = upstream.clone();
                Box::pin(async move { upstream.own_credentials().await })
            })))
        }
    });
    app.passthrough = Some(Arc::new(server::Passthrough {
        forwarder: upstream::Forwarder::new(&config.proxy),
        secrets_url: endpoint_url(&config.secrets_endpoint),
        ssm_url: endpoint_url(&config.ssm_endpoint),
        timeout: FORWARD_TIMEOUT,
        listings: server::Listings::new(config.secrets.ttl, config.ssm.ttl),
    }));
    let app = Arc::new(app);
    let shutdown = CancellationToken::new();
    // A token from a file is re-read when the file changes (a rotated token in a sidecar's shared volume).
    tokio::spawn(tokens.watch(shutdown.clone()));
    let server = tokio::spawn(server::serve(
        listeners,
        app,
        config.max_client_connections,
        shutdown.clone(),
    ));
    let lifecycle = Lifecycle {
        cache,
        metrics,
        shutdown,
        server,
        prefetch: config.prefetch.clone(),
        prefetch_tags: config.prefetch_tags.clone(),
        prefetch_timeout: config.prefetch_timeout,
        invoke_budget: config.invoke_budget,
        init_type: config.init_type,
        max_concurrency: config.max_concurrency,
        max_client_connections: config.max_client_connections,
        refresh_tick: refresh_timer::tick(&Policy::from(&config)),
        warm_up,
    };
    if let Some(runtime_api) = &config.runtime_api {
        lifecycle.lambda(runtime_api).await
    } else {
        lifecycle.standalone().await
    }
}

impl From<&Config> for Policy {
    fn from(c: &Config) -> Self {
        Self {
            secret_ttl: c.secrets.ttl,
            parameter_ttl: c.ssm.ttl,
            refresh_ahead_percent: c.refresh_ahead_percent,
            max_stale: c.max_stale,
            max_entries: c.cache_size,
            max_bytes: c.cache_bytes,
            negative_ttl: c.negative_ttl,
            refresh_now_interval: c.refresh_now_interval,
            max_pending_fetches: c.max_pending_fetches,
            // Under SnapStart a pause is a restore: values from before the snapshot must not be served after it.
            forget_on_pause: c.init_type == crate::config::InitType::SnapStart,
            home_region: c.region.clone(),
        }
    }
}
