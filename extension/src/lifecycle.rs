//! The Lambda lifecycle, and the standalone mode used outside Lambda.
//!
//! Lambda mode, in order:
//! 1. the caller has already bound the listener and started serving, so the function's init code can call us;
//! 2. register with the Extensions API ([`crate::extensions_api`]) for SHUTDOWN, and for INVOKE too under SnapStart or
//!    when `PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS` is set ([`InitType::events`]: never on Lambda Managed
//!    Instances, which refuse it, nor when the API refused the first registration); without INVOKE, values in use are
//!    refreshed on a timer ([`crate::refresh_timer`]) and by the reads near their expiry, and the metrics line is
//!    printed on a timer too;
//! 3. prefetch the configured secrets, bounded in time (failures are logged, never fatal);
//! 4. loop on `event/next`: the first call tells Lambda we are ready. On INVOKE (when registered) we start refreshing
//!    what is near or past expiry, and wait for it only within a small budget that never reaches the event's
//!    deadline: every millisecond before we are back on `event/next` is billed to the function and delays its next
//!    event. On SHUTDOWN we stop accepting, drain within
//!    the event's deadline, and exit the process.
//!
//! Standalone mode (no `AWS_LAMBDA_RUNTIME_API`): prefetch, then serve until SIGTERM or SIGINT, then drain.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Upstream};
use crate::clock::WallClock;
use crate::config::{Events, InitType, Prefetch, TagPrefetch, DEFAULT_INVOKE_WAIT};
use crate::extensions_api::{self, Event};
use crate::metrics::Metrics;
use crate::request::{Key, ParameterKey};

/// Grace period for draining connections outside Lambda (Lambda's SHUTDOWN carries its own deadline).
const STANDALONE_GRACE: Duration = Duration::from_secs(2);
/// Time kept back from the SHUTDOWN deadline for exiting the process.
const EXIT_MARGIN: Duration = Duration::from_millis(200);
/// Time kept back from an INVOKE's deadline: the refresh wait ends at least this long before it.
const INVOKE_MARGIN: Duration = Duration::from_millis(10);
/// EMF metric lines are written at most this often while invocations run.
const EMF_INTERVAL: Duration = Duration::from_secs(60);

/// What the lifecycle drives.
#[derive(Debug)]
pub struct Lifecycle<U, W> {
    /// The cache, for prefetch and refreshes.
    pub cache: Arc<Cache<U, W>>,
    /// Counters, for the EMF line.
    pub metrics: Arc<Metrics>,
    /// Cancelled to stop the server.
    pub shutdown: CancellationToken,
    /// The server task; it ends once every connection has drained.
    pub server: JoinHandle<()>,
    /// What to prefetch during init.
    pub prefetch: Vec<Prefetch>,
    /// The secrets to prefetch by tag, and the prefetch's limit and jitter.
    pub prefetch_tags: TagPrefetch,
    /// Budget of that prefetch.
    pub prefetch_timeout: Duration,
    /// `INVOKE_WAIT_MILLIS` when set: how long an INVOKE waits for the refreshes it starts, and on demand whether
    /// INVOKE is registered for at all ([`InitType::events`]).
    pub invoke_budget: Option<Duration>,
    /// How Lambda started the environment. SnapStart: no prefetch before the snapshot, and everything cached is
    /// expired after restore. Managed Instances: SHUTDOWN only, refresh on a timer.
    pub init_type: InitType,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`, when set: how many readers may come at once (logged against the connection
    /// limit).
    pub max_concurrency: Option<u32>,
    /// Most concurrent localhost client connections.
    pub max_client_connections: usize,
    /// The refresh timer's period when no INVOKE comes; `None` when nothing is cached.
    pub refresh_tick: Option<Duration>,
    /// Building the upstream clients ahead of the first read: in Lambda, started once the first `event/next` is on
    /// its way (registering, and that `next`, are what gate the function's init; the warm-up's CPU work must not
    /// delay them), and at once in standalone mode.
    pub warm_up: WarmUp,
}

/// Work started in the background at the point of the lifecycle that suits it.
pub struct WarmUp(pub std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl std::fmt::Debug for WarmUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarmUp")
    }
}

/// Waits for the next event. The first time, `warm_up` is started once that request is on its way, not before: the
/// first `next` ends our part of the function's init, and the warm-up is several milliseconds of CPU (root
/// certificates, client set-up) that would otherwise compete with it, and with the runtime's init, for the one or
/// two CPUs Lambda gives.
async fn next_then_warm_up(
    api: &extensions_api::ExtensionsApi,
    warm_up: &mut Option<WarmUp>,
) -> Result<Event, extensions_api::ApiError> {
    match warm_up.take() {
        Some(work) => once_pending_start(api.next(), work).await,
        None => api.next().await,
    }
}

/// Awaits `first`, and starts `work` in the background once `first` has been polled and is waiting (for `next`: the
/// request has been handed to its connection), or once it is done if it never waits. The work yields once before it
/// runs, so a task that `first` woke (the connection task that writes the request) runs before it.
async fn once_pending_start<F: std::future::Future>(first: F, work: WarmUp) -> F::Output {
    let mut first = std::pin::pin!(first);
    let mut work = Some(work.0);
    let start = |work: &mut Option<_>| {
        if let Some(work) = work.take() {
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                work.await;
            });
        }
    };
    let output = std::future::poll_fn(|cx| {
        let polled = first.as_mut().poll(cx);
        if polled.is_pending() {
            start(&mut work);
        }
        polled
    })
    .await;
    start(&mut work);
    output
}

/// A lifecycle failure: registering or talking to the Extensions API.
#[derive(Debug, thiserror::Error)]
#[error("Lambda Extensions API: {0}")]
pub struct LifecycleError(String);

impl<U: Upstream, W: WallClock> Lifecycle<U, W> {
    /// Runs inside Lambda, registered with the Extensions API at `runtime_api`. Exits the process on SHUTDOWN.
    pub async fn lambda(self, runtime_api: &str) -> Result<(), LifecycleError> {
        let Self {
            cache,
            metrics,
            shutdown,
            server,
            prefetch,
            prefetch_tags,
            prefetch_timeout,
            invoke_budget,
            init_type,
            max_concurrency,
            max_client_connections,
            refresh_tick,
            warm_up,
        } = self;
        let snap_start = init_type == InitType::SnapStart;
        let invoke_wait = invoke_budget.unwrap_or(DEFAULT_INVOKE_WAIT);
        let server = tokio::sync::Mutex::new(Some(server));
        let (api, registration, events) = extensions_api::register_or_shutdown_only(
            runtime_api,
            &extension_name(),
            init_type.events(invoke_budget.is_some()),
        )
        .await
        .map_err(|e| LifecycleError(e.to_string()))?;
        tracing::info!(
            function = %registration.function_name,
            init_type = init_type.as_str(),
            events = ?events.names(),
            max_concurrency,
            "registered with the Extensions API"
        );
        if max_concurrency.is_some_and(|n| n as usize > max_client_connections) {
            tracing::warn!(
                max_concurrency,
                max_client_connections,
                "AWS_LAMBDA_MAX_CONCURRENCY is above PARAMETERS_SECRETS_EXTENSION_MAX_CLIENT_CONNECTIONS: readers \
                 beyond the limit are refused with 503 while it is reached"
            );
        }
        let function_name = registration.function_name;
        if events == Events::ShutdownOnly {
            // Cancelled by the one shutdown token, like the server. In a frozen environment they run once thawed.
            if let Some(tick) = refresh_tick {
                tokio::spawn(crate::refresh_timer::run(
                    Arc::clone(&cache),
                    tick,
                    shutdown.clone(),
                ));
            }
            tokio::spawn(emf_every(
                EMF_INTERVAL,
                Arc::clone(&metrics),
                function_name.clone(),
                shutdown.clone(),
            ));
        }
        if snap_start {
            tracing::info!(
                "SnapStart: no prefetch before the snapshot, so no secret is baked into it"
            );
        } else {
            prefetch_bounded(&cache, prefetch, prefetch_tags, prefetch_timeout).await;
        }
        let mut first = true;
        let mut last_emf = Instant::now();
        let mut warm_up = Some(warm_up);
        let events = async {
            loop {
                // Asking for the next event is how Lambda learns we are done with this one.
                let event = match next_then_warm_up(&api, &mut warm_up).await {
                    Ok(e) => e,
                    Err(e) => {
                        // The API is gone or broken: say so once, so Lambda resets the environment.
                        let _ = api.exit_error("EventNext").await;
                        return Err(LifecycleError(e.to_string()));
                    }
                };
                match event {
                    Event::Invoke {
                        request_id,
                        deadline_ms,
                    } => {
                        if std::mem::replace(&mut first, false) && snap_start {
                            // Restored from a snapshot: whatever was cached before it may be arbitrarily old. (A read
                            // that comes before this event is covered by the cache's own detection of the restore's
                            // clock jump.)
                            cache.invalidate_all();
                        }
                        let left = Duration::from_millis(deadline_ms.saturating_sub(now_millis()));
                        let budget = invoke_wait.min(left.saturating_sub(INVOKE_MARGIN));
                        let r = cache.refresh_due(budget).await;
                        tracing::debug!(
                            request_id = %request_id,
                            due = r.due,
                            started = r.started,
                            skipped_backoff = r.skipped_backoff,
                            finished = r.finished,
                            budget_ms = budget.as_millis() as u64,
                            "invoke"
                        );
                        if last_emf.elapsed() >= EMF_INTERVAL {
                            last_emf = Instant::now();
                            print_emf(&metrics, &function_name);
                        }
                    }
                    Event::Shutdown {
                        reason,
                        deadline_ms,
                    } => {
                        tracing::info!(reason = %reason, "shutdown");
                        drain(&shutdown, &server, deadline_from_epoch_millis(deadline_ms)).await;
                        print_emf(&metrics, &function_name);
                        std::process::exit(0);
                    }
                }
            }
        };
        tokio::select! {
            res = events => res,
            _ = terminate_signal() => {
                drain(&shutdown, &server, tokio::time::Instant::now() + STANDALONE_GRACE).await;
                Ok(())
            }
        }
    }

    /// Runs outside Lambda until SIGTERM or SIGINT.
    pub async fn standalone(self) -> Result<(), LifecycleError> {
        let Self {
            cache,
            shutdown,
            server,
            prefetch,
            prefetch_tags,
            prefetch_timeout,
            warm_up,
            ..
        } = self;
        tokio::spawn(warm_up.0);
        prefetch_bounded(&cache, prefetch, prefetch_tags, prefetch_timeout).await;
        tracing::info!("ready (standalone: no AWS_LAMBDA_RUNTIME_API)");
        terminate_signal().await;
        tracing::info!("signal received; draining");
        let server = tokio::sync::Mutex::new(Some(server));
        drain(
            &shutdown,
            &server,
            tokio::time::Instant::now() + STANDALONE_GRACE,
        )
        .await;
        Ok(())
    }
}

/// The init prefetch: after a random delay of up to the configured jitter, the named secrets and parameters
/// (batched), the SSM paths, and the secrets found by tag (within the limit, less what was named). The caller waits
/// `budget` at most; the work runs in a task of its own, so whatever has not landed by then lands in the background.
async fn prefetch_bounded<U: Upstream, W: WallClock>(
    cache: &Arc<Cache<U, W>>,
    items: Vec<Prefetch>,
    tags: TagPrefetch,
    budget: Duration,
) {
    if items.is_empty() && tags.keys.is_empty() {
        return;
    }
    let mut keys = Vec::new();
    let mut paths = Vec::new();
    for item in items {
        match item {
            Prefetch::Secret(secret_id) => keys.push(Key::current_secret(secret_id)),
            // Decrypted: SecureStrings are what their readers ask for.
            Prefetch::Parameter(name) => keys.push(Key::Parameter(ParameterKey {
                name,
                with_decryption: true,
            })),
            Prefetch::Path(path) => paths.push(path),
        }
    }
    let tag_limit = tags.limit.saturating_sub(keys.len());
    let jitter = if tags.max_jitter.is_zero() {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=tags.max_jitter.as_millis() as u64))
    };
    let cache = Arc::clone(cache);
    let work = tokio::spawn(async move {
        if !jitter.is_zero() {
            tracing::info!(
                delay_ms = jitter.as_millis() as u64,
                "prefetch starts after its jitter"
            );
            tokio::time::sleep(jitter).await;
        }
        let paths = futures_util::future::join_all(paths.iter().map(|p| cache.prefetch_path(p)));
        tokio::join!(
            cache.prefetch(keys),
            paths,
            cache.prefetch_tagged(&tags.keys, tag_limit)
        );
    });
    if tokio::time::timeout(budget, work).await.is_err() {
        tracing::warn!(
            budget_ms = budget.as_millis() as u64,
            "prefetch did not finish within its budget; it goes on in the background"
        );
    }
}

/// Stops accepting and waits for open connections to finish, at most until `deadline`.
async fn drain(
    shutdown: &CancellationToken,
    server: &tokio::sync::Mutex<Option<JoinHandle<()>>>,
    deadline: tokio::time::Instant,
) {
    shutdown.cancel();
    let Some(handle) = server.lock().await.take() else {
        return;
    };
    let until = deadline.checked_sub(EXIT_MARGIN).unwrap_or(deadline);
    if tokio::time::timeout_at(until, handle).await.is_err() {
        tracing::warn!("connections still open at the shutdown deadline; exiting anyway");
    }
}

/// The name Lambda knows the extension by: the executable's file name, as the Extensions API asks (Lambda starts
/// `/opt/extensions/<name>`).
/// Prints the metrics line (CloudWatch's embedded metric format) to stdout, which Lambda sends to the function's logs.
fn print_emf(metrics: &Metrics, function_name: &str) {
    println!("{}", metrics.emf(now_millis(), function_name));
}

/// Prints the metrics line every `interval` until `shutdown`: where no INVOKE comes to print it on.
async fn emf_every(
    interval: Duration,
    metrics: Arc<Metrics>,
    function_name: String,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        print_emf(&metrics, &function_name);
    }
}

fn extension_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "secretcache".to_owned())
}

/// Converts the event's wall-clock deadline (epoch milliseconds) to a monotonic instant.
fn deadline_from_epoch_millis(deadline_ms: u64) -> tokio::time::Instant {
    let left = deadline_ms.saturating_sub(now_millis());
    // Lambda gives about 2 s; a missing or past deadline still gets a short, bounded drain.
    let left = if left == 0 { 500 } else { left.min(10_000) };
    tokio::time::Instant::now() + Duration::from_millis(left)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!(
                "could not install signal handlers; only SHUTDOWN will stop the extension"
            );
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A warm-up that records that it ran, and whether `sent` was already set when it did.
    fn recording(sent: &Arc<AtomicBool>) -> (WarmUp, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = Arc::clone(sent);
        let work = WarmUp(Box::pin(async move {
            let _ = tx.send(sent.load(Ordering::SeqCst));
        }));
        (work, rx)
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_warm_up_starts_while_the_first_next_waits_and_after_its_request_went_out() {
        let sent = Arc::new(AtomicBool::new(false));
        let (work, ran) = recording(&sent);
        let (answer, answered) = tokio::sync::oneshot::channel::<&str>();
        // Stands in for `next`: the connection task it wakes writes the request (sets `sent`); the answer comes
        // only once the warm-up has run, so a helper that waited for the event before starting it would hang.
        let first = {
            let sent = Arc::clone(&sent);
            async move {
                tokio::spawn(async move { sent.store(true, Ordering::SeqCst) });
                answered.await.expect("answered")
            }
        };
        let answerer = tokio::spawn(async move {
            let saw_sent = ran.await.expect("the warm-up ran");
            let _ = answer.send("INVOKE");
            saw_sent
        });
        let event = tokio::time::timeout(Duration::from_secs(5), once_pending_start(first, work))
            .await
            .expect("the warm-up started while the first next was still waiting");
        assert_eq!(event, "INVOKE");
        assert!(
            answerer.await.expect("answerer"),
            "the warm-up ran before the task that sends the request"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_warm_up_still_runs_when_the_first_next_answers_at_once() {
        let sent = Arc::new(AtomicBool::new(false));
        let (work, ran) = recording(&sent);
        let out = once_pending_start(async { 7 }, work).await;
        assert_eq!(out, 7);
        tokio::time::timeout(Duration::from_secs(5), ran)
            .await
            .expect("the warm-up ran")
            .expect("the warm-up sent");
    }
}
