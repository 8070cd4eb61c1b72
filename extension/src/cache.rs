//! The bounded cache in front of the upstream: single-flight, refresh-ahead and stale-on-error.
//!
//! It knows nothing of HTTP and nothing of the AWS SDK: it stores [`SecretBody`] values under [`Key`]s and asks an
//! [`Upstream`] (a small trait) for missing ones.
//!
//! Parts and the reasons for them:
//! - **Storage** is a moka cache bounded by entry count *and* bytes. moka has one capacity, so each entry weighs
//!   `max(its bytes, byte_budget / max_entries)`: the total weight limit then bounds both.
//! - **Freshness** is judged by our own per-entry timestamp taken from an injectable [`Clock`], not by moka's TTL (which
//!   cannot be paused in tests). moka's TTL is only the eviction backstop, at TTL + the stale window.
//! - **Single-flight**: all concurrent misses, `refreshNow`s and background refreshes of one key share one spawned
//!   upstream call. The call runs in its own task, so a client that hangs up does not cancel it for the others.
//! - **Refresh-ahead**: a hit within the refresh-ahead window of expiry starts a background refresh and still answers
//!   at once; [`Cache::refresh_due`] does the same for every entry, for the Lambda INVOKE event (a frozen environment
//!   runs no background work, so refreshes are started while an invocation is active).
//! - **Stale-on-error**: when a refresh of an expired entry fails transiently (timeout, unreachable, 5xx, throttle),
//!   the last good value is served, marked stale, for up to `max_stale` past expiry. Never for not-found or denied,
//!   and never for `refreshNow`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::request::Key;
use crate::secret::SecretBody;

/// Where values come from on a miss.
pub trait Upstream: Send + Sync + 'static {
    /// Fetches the current value for `key` and serializes it into the response body.
    fn fetch(&self, key: &Key) -> impl Future<Output = Result<SecretBody, UpstreamError>> + Send;
}

/// A source of "now", injectable so freshness tests need no sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The monotonic system clock. It keeps running while a Lambda environment is frozen, which is what expiry needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// How long values stay fresh, and what may be done around expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Freshness of Secrets Manager values; zero disables caching them.
    pub secret_ttl: Duration,
    /// Freshness of SSM parameters; zero disables caching them.
    pub parameter_ttl: Duration,
    /// Fraction of the TTL, before expiry, in which a hit starts a background refresh (0 disables refresh-ahead).
    pub refresh_ahead_percent: u8,
    /// How long past expiry a value may still be served when the upstream fails transiently (0 disables).
    pub max_stale: Duration,
    /// Most entries; 0 disables the cache.
    pub max_entries: u64,
    /// Most bytes of cached bodies.
    pub max_bytes: u64,
}

impl Policy {
    fn ttl(&self, key: &Key) -> Duration {
        match key {
            Key::Secret(_) => self.secret_ttl,
            Key::Parameter(_) => self.parameter_ttl,
        }
    }

    fn refresh_ahead(&self, ttl: Duration) -> Duration {
        ttl * u32::from(self.refresh_ahead_percent.min(100)) / 100
    }
}

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fresh from the cache.
    Hit,
    /// Fetched upstream for this request (or for a concurrent one it waited on).
    Miss,
    /// Fetched upstream because the client asked with `refreshNow`.
    Refreshed,
    /// Expired, and the upstream failed transiently: the last good value.
    Stale,
}

impl Source {
    /// A label for the response header and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Refreshed => "refresh",
            Self::Stale => "stale",
        }
    }
}

#[derive(Debug)]
struct Entry {
    body: SecretBody,
    fetched_at: Instant,
}

/// Exponential backoff with jitter for a key whose upstream calls fail transiently.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    retry_at: Instant,
}

/// How long a read of an expired (but stale-allowed) entry waits for the upstream before it is answered with the
/// last good value. Healthy Secrets Manager calls take tens of milliseconds.
const STALE_GRACE: Duration = Duration::from_millis(250);

/// First retry after about this long; doubles per failure up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Probes run in the background, so a short cap costs no request any latency and recovery is quick.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Backoff {
    /// The wait after `failures` consecutive failures: exponential, capped, with "equal jitter" (half fixed, half
    /// random) so that many environments failing together do not retry in lockstep.
    fn delay(failures: u32, key: &Key) -> Duration {
        let exp = BACKOFF_BASE
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(BACKOFF_MAX);
        let half = exp / 2;
        half + half.mul_f64(jitter(key))
    }
}

/// A number in [0, 1) that differs between calls and keys; no need for a cryptographic source.
fn jitter(key: &Key) -> f64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    key.hash(&mut h);
    Instant::now().hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, UpstreamError>>>;

/// The cache. Cheap to share behind an `Arc`.
pub struct Cache<U, C = SystemClock> {
    upstream: Arc<U>,
    clock: C,
    policy: Policy,
    store: moka::future::Cache<Key, Arc<Entry>>,
    inflight: Mutex<HashMap<Key, Flight>>,
    /// Keys whose last upstream call failed transiently, and when to try again.
    backoff: Mutex<HashMap<Key, Backoff>>,
    metrics: Arc<Metrics>,
    /// Our own counts: moka's `entry_count` lags until its maintenance runs.
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl<U, C> std::fmt::Debug for Cache<U, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("policy", &self.policy)
            .field("entries", &self.entries.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<U: Upstream, C: Clock> Cache<U, C> {
    /// A cache over `upstream`, sized and timed by `policy`.
    pub fn new(upstream: U, clock: C, policy: Policy, metrics: Arc<Metrics>) -> Arc<Self> {
        let per_entry_floor = policy
            .max_bytes
            .checked_div(policy.max_entries)
            .unwrap_or(0);
        let backstop =
            policy.secret_ttl.max(policy.parameter_ttl) + policy.max_stale + Duration::from_secs(1);
        Arc::new_cyclic(|weak: &std::sync::Weak<Self>| {
            let weak = weak.clone();
            let store = moka::future::Cache::builder()
                .max_capacity(policy.max_bytes)
                .weigher(move |key: &Key, e: &Arc<Entry>| {
                    let bytes = (e.body.len() + key.len()) as u64;
                    u32::try_from(bytes.max(per_entry_floor)).unwrap_or(u32::MAX)
                })
                .time_to_live(backstop)
                .eviction_listener(move |key: Arc<Key>, e: Arc<Entry>, _cause| {
                    if let Some(cache) = weak.upgrade() {
                        // Called for every removal, replacements included, so it mirrors every insert.
                        cache.entries.fetch_sub(1, Ordering::Relaxed);
                        cache
                            .bytes
                            .fetch_sub((e.body.len() + key.len()) as u64, Ordering::Relaxed);
                        cache.publish_size();
                    }
                })
                .build();
            Self {
                upstream: Arc::new(upstream),
                clock,
                policy,
                store,
                inflight: Mutex::new(HashMap::new()),
                backoff: Mutex::new(HashMap::new()),
                metrics,
                entries: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            }
        })
    }

    /// Looks `key` up, fetching upstream when it is missing, expired, or `refresh_now` is set.
    pub async fn get(
        self: &Arc<Self>,
        key: &Key,
        refresh_now: bool,
    ) -> Result<(SecretBody, Source), UpstreamError> {
        if refresh_now {
            let entry = self.fetch(key.clone()).await?;
            return Ok((entry.body.clone(), Source::Refreshed));
        }
        let ttl = self.policy.ttl(key);
        let cached = if self.caching(key) {
            self.store.get(key).await
        } else {
            None
        };
        let Some(entry) = cached else {
            self.metrics.miss();
            let entry = self.fetch(key.clone()).await?;
            return Ok((entry.body.clone(), Source::Miss));
        };
        let age = self.clock.now().saturating_duration_since(entry.fetched_at);
        if age < ttl {
            if age >= ttl - self.policy.refresh_ahead(ttl) {
                // Refresh-ahead: start the refresh and answer from the cache without waiting for it.
                self.refresh_in_background(key.clone());
            }
            self.metrics.hit();
            return Ok((entry.body.clone(), Source::Hit));
        }
        self.metrics.miss();
        let stale_allowed = age < ttl + self.policy.max_stale;
        if stale_allowed {
            if let Some(retry_due) = self.backoff_state(key) {
                // The upstream failed for this key moments ago: answer at once with the last good value instead of
                // making every request wait for another timeout, and probe the upstream in the background only once
                // the backoff has passed.
                if retry_due {
                    self.refresh_in_background(key.clone());
                }
                tracing::debug!(key = %key, "upstream in backoff; serving the last good value");
                self.metrics.stale();
                return Ok((entry.body.clone(), Source::Stale));
            }
        }
        let flight = self.flight(key.clone());
        let result = if stale_allowed {
            // Stale-if-slow: a failing upstream often fails by timing out, so do not wait the whole timeout to find
            // out. Past the grace the last good value is served; the fetch goes on in its own task and fills the
            // cache when it succeeds.
            tokio::select! {
                r = flight => r,
                _ = tokio::time::sleep(STALE_GRACE) => {
                    tracing::debug!(key = %key, "upstream slow; serving the last good value meanwhile");
                    self.metrics.stale();
                    return Ok((entry.body.clone(), Source::Stale));
                }
            }
        } else {
            flight.await
        };
        match result {
            Ok(fresh) => Ok((fresh.body.clone(), Source::Miss)),
            Err(e) if e.is_transient() && stale_allowed => {
                tracing::warn!(
                    key = %key,
                    error = %e,
                    stale_for_secs = (age - ttl).as_secs(),
                    "upstream failed; serving the last good value"
                );
                self.metrics.stale();
                Ok((entry.body.clone(), Source::Stale))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a refresh of every entry that is within its refresh-ahead window or past expiry, and waits for them
    /// (bounded by the upstream timeout). Called on each Lambda INVOKE, while the environment is not frozen.
    pub async fn refresh_due(self: &Arc<Self>) -> usize {
        let now = self.clock.now();
        let due: Vec<Key> = self
            .store
            .iter()
            .filter(|(key, entry)| {
                let ttl = self.policy.ttl(key);
                now.saturating_duration_since(entry.fetched_at)
                    >= ttl - self.policy.refresh_ahead(ttl)
            })
            .map(|(key, _)| (*key).clone())
            .collect();
        let n = due.len();
        let flights: Vec<_> = due.into_iter().map(|k| self.flight(k)).collect();
        for (res, _) in futures_util::future::join_all(flights)
            .await
            .into_iter()
            .zip(0..)
        {
            if let Err(e) = res {
                tracing::warn!(error = %e, "background refresh failed; the cached value is kept");
            }
        }
        n
    }

    /// Fetches `keys` into the cache concurrently (init prefetch). Failures are logged, never fatal.
    pub async fn prefetch(self: &Arc<Self>, keys: Vec<Key>) {
        let flights = keys.into_iter().map(|key| {
            let this = Arc::clone(self);
            async move {
                match this.fetch(key.clone()).await {
                    Ok(_) => tracing::info!(key = %key, "prefetched"),
                    Err(e) => tracing::warn!(key = %key, error = %e, "prefetch failed; will fetch on first use"),
                }
            }
        });
        futures_util::future::join_all(flights).await;
    }

    /// Forgets every cached value (after a SnapStart restore, when their age is unknown).
    pub fn invalidate_all(&self) {
        self.store.invalidate_all();
    }

    /// Number of cached entries and their bytes.
    pub fn size(&self) -> (u64, u64) {
        (
            self.entries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    fn publish_size(&self) {
        let (entries, bytes) = self.size();
        self.metrics.set_cache_size(entries, bytes);
    }

    /// Runs moka's pending maintenance (evictions); for tests and metrics.
    pub async fn sync(&self) {
        self.store.run_pending_tasks().await;
    }

    /// `None` when the key is not in backoff; otherwise whether its retry is due.
    fn backoff_state(&self, key: &Key) -> Option<bool> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.get(key).map(|b| self.clock.now() >= b.retry_at)
    }

    fn record_outcome(&self, key: &Key, error: Option<&UpstreamError>) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => {
                backoff.remove(key);
            }
            Some(e) if e.is_transient() => {
                let failures = backoff.get(key).map_or(1, |b| b.failures.saturating_add(1));
                let retry_at = self.clock.now() + Backoff::delay(failures, key);
                backoff.insert(key.clone(), Backoff { failures, retry_at });
            }
            // An answer about the secret itself (not found, denied) ends any backoff: it is not an outage.
            Some(_) => {
                backoff.remove(key);
            }
        }
    }

    fn caching(&self, key: &Key) -> bool {
        self.policy.max_entries > 0 && !self.policy.ttl(key).is_zero()
    }

    fn refresh_in_background(self: &Arc<Self>, key: Key) {
        let flight = self.flight(key);
        // The flight is already a spawned task; this only logs its outcome.
        tokio::spawn(async move {
            if let Err(e) = flight.await {
                tracing::warn!(error = %e, "refresh-ahead failed; the cached value is kept until it expires");
            }
        });
    }

    async fn fetch(self: &Arc<Self>, key: Key) -> Result<Arc<Entry>, UpstreamError> {
        self.flight(key).await
    }

    /// The one in-flight upstream call for `key`, started if there is none.
    fn flight(self: &Arc<Self>, key: Key) -> Flight {
        // The lock is held only to look up or insert, never across an await.
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.get(&key) {
            return f.clone();
        }
        let this = Arc::clone(self);
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            let result = this.fetch_and_store(&task_key).await;
            this.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task_key);
            result
        });
        let flight = async move {
            match handle.await {
                Ok(r) => r,
                Err(e) => Err(UpstreamError::Internal(format!("fetch task failed: {e}"))),
            }
        }
        .boxed()
        .shared();
        inflight.insert(key, flight.clone());
        flight
    }

    async fn fetch_and_store(&self, key: &Key) -> Result<Arc<Entry>, UpstreamError> {
        let started = Instant::now();
        let result = self.upstream.fetch(key).await;
        let elapsed = started.elapsed();
        self.metrics.upstream_call(
            key.kind(),
            result.as_ref().err().map(UpstreamError::code),
            elapsed,
        );
        self.record_outcome(key, result.as_ref().err());
        let body = match result {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, millis = elapsed.as_millis() as u64, "upstream fetch failed");
                return Err(e);
            }
        };
        tracing::info!(key = %key, bytes = body.len(), millis = elapsed.as_millis() as u64, "fetched from upstream");
        let entry = Arc::new(Entry {
            body,
            fetched_at: self.clock.now(),
        });
        if self.caching(key) {
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.bytes
                .fetch_add((entry.body.len() + key.len()) as u64, Ordering::Relaxed);
            self.store.insert(key.clone(), Arc::clone(&entry)).await;
            self.publish_size();
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{SecretKey, VersionSelector};
    use std::sync::atomic::AtomicUsize;

    /// A scripted upstream: counts calls and answers from a mutable script.
    #[derive(Default)]
    struct Scripted {
        calls: AtomicUsize,
        answer: Mutex<Option<Result<String, UpstreamError>>>,
        delay: Mutex<Duration>,
    }

    impl Upstream for Arc<Scripted> {
        fn fetch(
            &self,
            _key: &Key,
        ) -> impl Future<Output = Result<SecretBody, UpstreamError>> + Send {
            let this = Arc::clone(self);
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                let delay = *this.delay.lock().expect("lock");
                tokio::time::sleep(delay).await;
                let answer = this
                    .answer
                    .lock()
                    .expect("lock")
                    .clone()
                    .unwrap_or(Ok("v".into()));
                answer.map(|s| SecretBody::new(s.into_bytes()))
            }
        }
    }

    #[derive(Clone, Default)]
    struct ManualClock(Arc<Mutex<Duration>>, Arc<std::sync::OnceLock<Instant>>);
    impl ManualClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().expect("lock") += d;
        }
    }
    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.1.get_or_init(Instant::now) + *self.0.lock().expect("lock")
        }
    }

    fn policy() -> Policy {
        Policy {
            secret_ttl: Duration::from_secs(100),
            parameter_ttl: Duration::from_secs(100),
            refresh_ahead_percent: 0,
            max_stale: Duration::ZERO,
            max_entries: 10,
            max_bytes: 1 << 20,
        }
    }

    fn key(id: &str) -> Key {
        Key::Secret(SecretKey {
            secret_id: id.into(),
            selector: VersionSelector::Current,
        })
    }

    type TestCache = Arc<Cache<Arc<Scripted>, ManualClock>>;

    fn setup(p: Policy) -> (Arc<Scripted>, ManualClock, TestCache) {
        let up = Arc::new(Scripted::default());
        let clock = ManualClock::default();
        let cache = Cache::new(
            Arc::clone(&up),
            clock.clone(),
            p,
            Arc::new(Metrics::default()),
        );
        (up, clock, cache)
    }

    fn set(up: &Scripted, a: Result<&str, UpstreamError>) {
        *up.answer.lock().expect("lock") = Some(a.map(str::to_owned));
    }

    async fn text(c: &TestCache, k: &str, refresh: bool) -> (String, Source) {
        let (b, s) = c.get(&key(k), refresh).await.expect("value");
        (String::from_utf8(b.bytes().to_vec()).expect("utf8"), s)
    }

    #[tokio::test]
    async fn hit_then_expiry_fetches_anew() {
        let (up, clock, cache) = setup(policy());
        set(&up, Ok("one"));
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Miss));
        set(&up, Ok("two"));
        clock.advance(Duration::from_secs(99));
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Hit));
        clock.advance(Duration::from_secs(2));
        assert_eq!(text(&cache, "a", false).await, ("two".into(), Source::Miss));
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_call() {
        let (up, _clock, cache) = setup(policy());
        *up.delay.lock().expect("lock") = Duration::from_millis(50);
        let gets = (0..100).map(|_| {
            let c = Arc::clone(&cache);
            tokio::spawn(async move { c.get(&key("a"), false).await.map(|(_, s)| s) })
        });
        for r in futures_util::future::join_all(gets).await {
            assert!(r.expect("join").is_ok());
        }
        assert_eq!(up.calls.load(Ordering::SeqCst), 1);
        let refreshes = (0..20).map(|_| {
            let c = Arc::clone(&cache);
            tokio::spawn(async move { c.get(&key("a"), true).await.map(|(_, s)| s) })
        });
        for r in futures_util::future::join_all(refreshes).await {
            assert_eq!(r.expect("join").expect("ok"), Source::Refreshed);
        }
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn zero_ttl_or_size_never_caches() {
        let (up, _c, cache) = setup(Policy {
            secret_ttl: Duration::ZERO,
            ..policy()
        });
        text(&cache, "a", false).await;
        text(&cache, "a", false).await;
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
        let (up, _c, cache) = setup(Policy {
            max_entries: 0,
            ..policy()
        });
        text(&cache, "a", false).await;
        text(&cache, "a", false).await;
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stale_only_for_transient_errors_and_never_for_refresh_now() {
        let (up, clock, cache) = setup(Policy {
            max_stale: Duration::from_secs(50),
            ..policy()
        });
        set(&up, Ok("good"));
        text(&cache, "a", false).await;
        clock.advance(Duration::from_secs(120));
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        assert_eq!(
            text(&cache, "a", false).await,
            ("good".into(), Source::Stale)
        );
        assert!(
            cache.get(&key("a"), true).await.is_err(),
            "refreshNow must not serve stale"
        );
        set(
            &up,
            Err(UpstreamError::NotFound {
                code: "ResourceNotFoundException".into(),
                message: "m".into(),
            }),
        );
        // The upstream is in backoff, so the deletion is learnt from the next probe; from then on it is never masked.
        clock.advance(Duration::from_secs(1));
        let _ = cache.get(&key("a"), false).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            cache.get(&key("a"), false).await.is_err(),
            "not-found is never masked"
        );
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        clock.advance(Duration::from_secs(40));
        assert!(
            cache.get(&key("a"), false).await.is_err(),
            "beyond max_stale"
        );
    }

    #[tokio::test]
    async fn during_an_outage_stale_answers_do_not_wait_and_retries_back_off() {
        let (up, clock, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("good"));
        text(&cache, "a", false).await;
        clock.advance(Duration::from_secs(101));
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        assert_eq!(text(&cache, "a", false).await.1, Source::Stale);
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
        // Within the backoff: stale at once, no upstream call.
        for _ in 0..10 {
            assert_eq!(text(&cache, "a", false).await.1, Source::Stale);
        }
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
        // Once the backoff has passed, one background probe; the answer is still immediate.
        clock.advance(Duration::from_secs(1));
        set(&up, Ok("healed"));
        assert_eq!(
            text(&cache, "a", false).await,
            ("good".into(), Source::Stale)
        );
        for _ in 0..100 {
            if up.calls.load(Ordering::SeqCst) == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            text(&cache, "a", false).await,
            ("healed".into(), Source::Hit)
        );
    }

    #[tokio::test]
    async fn a_slow_upstream_gets_stale_after_the_grace_and_the_refresh_lands_later() {
        let (up, clock, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("old"));
        text(&cache, "a", false).await;
        clock.advance(Duration::from_secs(101));
        set(&up, Ok("new"));
        *up.delay.lock().expect("lock") = Duration::from_millis(600);
        let t = Instant::now();
        assert_eq!(
            text(&cache, "a", false).await,
            ("old".into(), Source::Stale)
        );
        assert!(
            t.elapsed() < Duration::from_millis(550),
            "{:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(text(&cache, "a", false).await, ("new".into(), Source::Hit));
        assert_eq!(up.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let k = key("a");
        for failures in 1..40 {
            let d = Backoff::delay(failures, &k);
            let exp = BACKOFF_BASE
                .saturating_mul(1 << (failures - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(d >= exp / 2 && d <= exp, "{failures}: {d:?}");
        }
    }

    #[tokio::test]
    async fn refresh_ahead_answers_at_once_and_refreshes_behind() {
        let (up, clock, cache) = setup(Policy {
            refresh_ahead_percent: 20,
            ..policy()
        });
        set(&up, Ok("one"));
        text(&cache, "a", false).await;
        set(&up, Ok("two"));
        clock.advance(Duration::from_secs(85));
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Hit));
        for _ in 0..100 {
            if up.calls.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(text(&cache, "a", false).await, ("two".into(), Source::Hit));
        clock.advance(Duration::from_secs(90));
        assert_eq!(cache.refresh_due().await, 1);
        assert_eq!(up.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn byte_budget_evicts() {
        let (up, _c, cache) = setup(Policy {
            max_bytes: 10 * 1024,
            max_entries: 1000,
            ..policy()
        });
        let big = "x".repeat(4 * 1024);
        set(&up, Ok(&big));
        for i in 0..10 {
            text(&cache, &format!("k{i}"), false).await;
        }
        cache.sync().await;
        let (entries, bytes) = cache.size();
        assert!(entries <= 2, "{entries} entries");
        assert!(bytes <= 10 * 1024, "{bytes} bytes");
    }
}
