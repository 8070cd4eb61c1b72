//! Refresh driven by time, for an execution environment that gets no INVOKE: on demand and with provisioned
//! concurrency unless `PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS` is set (an invocation then never wakes the
//! extension, `InitType::events`), Lambda Managed Instances (where an extension registers for SHUTDOWN only), or any
//! mode whose API refused our INVOKE registration.
//!
//! Managed Instances are never frozen and may live for hours; an on-demand environment is frozen between
//! invocations, so there the timer fires once the environment is thawed (an invocation, or a read during one). Either
//! way a task wakes every [`tick`] and asks the cache to refresh what readers are using ([`Cache::refresh_read`]):
//! every entry read since its last fetch that will expire within two ticks. The cache's own single-flight, backoff
//! and stale-on-error rules apply, as they do to a refresh started by a hit or an INVOKE. Entries nobody reads are not refreshed, so a secret
//! the function stopped using ages out and is evicted as on demand, instead of costing an upstream call per TTL for
//! the life of the environment.
//!
//! The task ends when the one shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::cache::{Cache, Policy, Upstream};
use crate::clock::WallClock;

/// The tick is this fraction of the smallest TTL: each read entry is looked at about ten times per TTL.
const TICK_DIVISOR: u32 = 10;
/// Shortest tick. TTLs are whole seconds, so a tenth of one is never shorter; the bound says so.
pub const MIN_TICK: Duration = Duration::from_millis(100);
/// Longest tick: with long TTLs a tick still comes twice a minute, which costs one walk over at most
/// `CACHE_SIZE` entries.
pub const MAX_TICK: Duration = Duration::from_secs(30);
/// How many ticks before expiry a read entry is refreshed: one for the tick that may have just passed, one for the
/// upstream call to land before the value expires.
const LEAD_TICKS: u32 = 2;

/// The refresh timer's period for `policy`: a tenth of the smallest TTL in use, within [`MIN_TICK`] and
/// [`MAX_TICK`]. `None` when nothing is cached (no TTL, or a cache of size 0): there is nothing to refresh.
pub fn tick(policy: &Policy) -> Option<Duration> {
    if policy.max_entries == 0 {
        return None;
    }
    let smallest = [policy.secret_ttl, policy.parameter_ttl]
        .into_iter()
        .filter(|ttl| !ttl.is_zero())
        .min()?;
    Some((smallest / TICK_DIVISOR).clamp(MIN_TICK, MAX_TICK))
}

/// Refreshes what readers use, every `tick`, until `shutdown` is cancelled.
pub async fn run<U: Upstream, W: WallClock>(
    cache: Arc<Cache<U, W>>,
    tick: Duration,
    shutdown: CancellationToken,
) {
    let lead = tick * LEAD_TICKS;
    let mut interval = tokio::time::interval(tick);
    // After a stall (a busy CPU) one tick is enough: the lead covers what was missed.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(
        tick_ms = tick.as_millis() as u64,
        "no INVOKE events: refreshing the values in use on a timer"
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => {
                let r = cache.refresh_read(lead);
                if r.due > 0 {
                    tracing::debug!(
                        due = r.due,
                        started = r.started,
                        skipped_backoff = r.skipped_backoff,
                        "timer refresh"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::cache::{Fetched, Meta, Source};
    use crate::clock::tests::ManualWall;
    use crate::error::UpstreamError;
    use crate::metrics::Metrics;
    use crate::request::{Key, SecretKey, VersionSelector};
    use crate::secret::SecretBody;

    /// Answers the current value of `value` and counts the calls.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        value: Mutex<String>,
    }

    impl Upstream for Arc<Counting> {
        fn fetch(&self, _key: &Key) -> impl Future<Output = Result<Fetched, UpstreamError>> + Send {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let value = self.value.lock().expect("lock").clone();
            std::future::ready(Ok(Fetched {
                body: SecretBody::new(value.into_bytes()),
                meta: Meta::default(),
            }))
        }
    }

    const TTL: Duration = Duration::from_secs(10);

    fn policy() -> Policy {
        Policy {
            secret_ttl: TTL,
            parameter_ttl: Duration::from_secs(300),
            refresh_ahead_percent: 0,
            max_stale: Duration::ZERO,
            max_entries: 10,
            max_bytes: 1 << 20,
            negative_ttl: Duration::ZERO,
            refresh_now_interval: Duration::ZERO,
            forget_on_pause: false,
            home_region: Some("us-east-1".into()),
            max_pending_fetches: 0,
        }
    }

    type TestCache = Arc<Cache<Arc<Counting>, ManualWall>>;

    /// A cache over a counting upstream answering `v1`, with the timer running on it.
    fn setup() -> (Arc<Counting>, TestCache, CancellationToken) {
        let up = Arc::new(Counting::default());
        *up.value.lock().expect("lock") = "v1".into();
        let cache = Cache::new(
            Arc::clone(&up),
            ManualWall::default(),
            policy(),
            Arc::new(Metrics::default()),
        );
        let shutdown = CancellationToken::new();
        let period = tick(&policy()).expect("a tick");
        tokio::spawn(run(Arc::clone(&cache), period, shutdown.clone()));
        (up, cache, shutdown)
    }

    async fn read(cache: &TestCache) -> (String, Source) {
        let key = Key::Secret(SecretKey {
            secret_id: "db".into(),
            selector: VersionSelector::Current,
        });
        let (entry, source) = cache.get(&key, false).await.expect("a value");
        (
            String::from_utf8(entry.body().bytes().to_vec()).expect("utf8"),
            source,
        )
    }

    fn calls(up: &Counting) -> usize {
        up.calls.load(Ordering::SeqCst)
    }

    #[test]
    fn the_tick_is_a_tenth_of_the_smallest_ttl_in_use_within_bounds() {
        assert_eq!(tick(&policy()), Some(Duration::from_secs(1)));
        let mut p = policy();
        p.secret_ttl = Duration::ZERO;
        assert_eq!(tick(&p), Some(MAX_TICK), "only the 300 s TTL is in use");
        p.parameter_ttl = Duration::from_secs(1);
        assert_eq!(tick(&p), Some(MIN_TICK));
        p.parameter_ttl = Duration::ZERO;
        assert_eq!(tick(&p), None, "nothing is cached");
        let mut p = policy();
        p.max_entries = 0;
        assert_eq!(tick(&p), None, "the cache is off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_entry_is_refreshed_before_it_expires_with_no_invoke() {
        let (up, cache, shutdown) = setup();
        assert_eq!(read(&cache).await, ("v1".into(), Source::Miss));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(read(&cache).await, ("v1".into(), Source::Hit));
        *up.value.lock().expect("lock") = "v2".into();
        // Just before the first value would expire, with no INVOKE and no read since: the timer has refreshed it.
        tokio::time::sleep(TTL - Duration::from_millis(1_100)).await;
        assert_eq!(calls(&up), 2);
        assert_eq!(read(&cache).await, ("v2".into(), Source::Hit));
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_nobody_reads_is_not_refreshed_and_ages_out() {
        let (up, cache, shutdown) = setup();
        // Fetched (the read that fetched it does not count as a read of the entry), then never read again.
        assert_eq!(read(&cache).await.1, Source::Miss);
        tokio::time::sleep(TTL * 10).await;
        assert_eq!(calls(&up), 1, "no refresh of an unread entry");
        assert_eq!(read(&cache).await.1, Source::Miss, "it expired");
        assert_eq!(calls(&up), 2);

        // Read once (a hit), it is refreshed once; its refreshed value, unread, then ages out too.
        assert_eq!(read(&cache).await.1, Source::Hit);
        tokio::time::sleep(TTL * 10).await;
        assert_eq!(calls(&up), 3, "one refresh for the one read");
        assert_eq!(read(&cache).await.1, Source::Miss);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_ends_with_the_shutdown_token() {
        let up = Arc::new(Counting::default());
        let cache = Cache::new(
            Arc::clone(&up),
            ManualWall::default(),
            policy(),
            Arc::new(Metrics::default()),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(cache, Duration::from_secs(1), shutdown.clone()));
        shutdown.cancel();
        task.await.expect("the task ended on its own");
    }
}
