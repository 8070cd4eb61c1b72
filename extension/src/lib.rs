//! secretcache: a Lambda external extension that serves Secrets Manager secrets and SSM parameters from a localhost
//! cache, as a drop-in replacement for the AWS Parameters and Secrets Lambda Extension.
//!
//! Layout, one responsibility a module:
//! - [`config`]: typed configuration from the environment, validated before anything binds;
//! - [`request`]: strict parsing of query strings into cache keys;
//! - [`respond`]: bodies beyond the cached one (a field as text, batch bodies);
//! - [`cache`]: the bounded cache with single-flight, refresh-ahead, stale-on-error and refusal memory;
//! - [`clock`]: monotonic time that also counts the pauses a frozen or restored micro-VM hides from it;
//! - [`upstream`]: the AWS SDK clients and the success bodies;
//! - [`server`]: the localhost HTTP server and its request checks;
//! - [`token`]: the token a request must carry, from a variable or (in containers) a file that may change;
//! - [`extensions_api`]: the three calls of the Lambda Extensions API;
//! - [`lifecycle`]: the Lambda lifecycle on that API, and standalone mode;
//! - [`refresh_timer`]: refresh driven by time where no INVOKE comes (Lambda Managed Instances);
//! - [`error`]: errors, and the one mapping to HTTP;
//! - [`secret`], [`metrics`], [`logging`]: the secret-holding type, counters, tracing set-up;
//! - [`health`]: `secretcache ping`, a container health check;
//! - [`wrapper`] and [`reference`](mod@reference): `secretcache exec`, the exec wrapper that puts referenced secrets
//!   into a runtime's environment, and the grammar of those references;
//! - [`fuzzing`]: property checks shared by the fuzz targets and their regression tests.

pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod extensions_api;
pub mod fuzzing;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod reference;
pub mod refresh_timer;
pub mod request;
pub mod respond;
pub mod secret;
pub mod server;
pub mod token;
pub mod upstream;
pub mod wrapper;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Policy};
use crate::clock::SystemWallClock;
use crate::config::Config;
use crate::lifecycle::{Lifecycle, LifecycleError};
use crate::metrics::Metrics;
use crate::server::App;
use crate::token::Tokens;
use crate::upstream::AwsUpstream;

/// Runs the extension on already-bound listeners ([`server::bind`]) until shutdown.
///
/// The listeners are bound by the caller *before* this registers with the Extensions API, so the function's init code
/// can already read secrets.
pub async fn run(config: Config, listeners: Vec<TcpListener>) -> Result<(), LifecycleError> {
    let metrics = Arc::new(Metrics::default());
    metrics.set_config_errors(config.diagnostics.errors.len() as u64);
    // The SDK clients are built in the background (in Lambda, once registered): registration, and so the function's
    // init, need not wait for them, and a read that comes first waits for the same build.
    let upstream = AwsUpstream::new(&config);
    let warm_up = lifecycle::WarmUp(Box::pin({
        let upstream = upstream.clone();
        async move { upstream.warm_up().await }
    }));
    let cache = Cache::new(
        upstream,
        SystemWallClock,
        Policy::from(&config),
        Arc::clone(&metrics),
    );
    let tokens = Tokens::new(config.tokens.clone());
    let app = Arc::new(App::new(
        Arc::clone(&cache),
        Arc::clone(&tokens),
        &config.token_headers,
        config.path_prefix.clone(),
        Arc::clone(&metrics),
    ));
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
            // Under SnapStart a pause is a restore: values from before the snapshot must not be served after it.
            forget_on_pause: c.init_type == crate::config::InitType::SnapStart,
            home_region: c.region.clone(),
        }
    }
}
