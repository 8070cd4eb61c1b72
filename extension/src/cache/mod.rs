//! The bounded cache in front of the upstream: single-flight, refresh-ahead, stale-on-error, one entry per secret
//! however it is named, batches, and memory of recent answers so that a client retrying in a loop does not hammer the
//! upstream.
//!
//! It knows nothing of HTTP and nothing of the AWS SDK: it stores [`Entry`] values (a [`SecretBody`] and what the
//! upstream said about it) under [`Key`]s and asks an [`Upstream`] (a small trait) for missing ones.
//!
//! Parts and the reasons for them:
//! - **Storage** is a moka cache bounded by entry count *and* bytes. moka has one capacity, so each entry weighs
//!   `max(its bytes, byte_budget / max_entries)`: the total weight limit then bounds both. A secret's other spellings
//!   weigh nothing (the count is of secrets, as the AWS extension's) and are removed when it is evicted.
//! - **One entry per secret version** ([`alias`]): an answer is stored under every spelling the upstream's own answer
//!   says it has (name, full ARN, partial ARN), all pointing to one entry, so a hit is one lookup whatever the
//!   spelling and a second spelling costs no second upstream call; the version id of `AWSCURRENT` finds the same
//!   entry through its spelling's current key. The first key is the canonical one (the full ARN): refreshes and
//!   single-flight use it.
//! - **Freshness** is judged by our own per-entry timestamp from a [`Clock`] that is tokio's monotonic clock plus every
//!   pause it did not see (a paused or restored micro-VM), not by moka's TTL (which cannot be paused in tests). moka's
//!   TTL is only the eviction backstop, at TTL + the stale window. Under SnapStart a detected pause (a restore) drops
//!   every cached value before the read that noticed it is answered.
//! - **Single-flight**: all concurrent misses, `refreshNow`s and background refreshes of one key share one spawned
//!   upstream call, and a batch's misses share one upstream batch call. The call runs in its own task, so a client
//!   that hangs up does not cancel it for the others.
//! - **Refresh-ahead**: a hit within the refresh-ahead window of expiry starts a background refresh and still answers
//!   at once; [`Cache::refresh_read`] does it on a timer for the entries read since their last fetch only, so that
//!   what nobody reads still ages out (on demand, where the extension registers for SHUTDOWN only by default, the
//!   timer runs whenever the environment is thawed; under Managed Instances, always). Where INVOKE is registered for
//!   (SnapStart, or `INVOKE_WAIT_MILLIS` set), [`Cache::refresh_due`] does the same for every entry on each INVOKE,
//!   skipping keys in backoff and waiting only within a small budget: an INVOKE must never hold the function, and a
//!   refresh that outlives the budget lands when it lands.
//! - **Stale-on-error**: when a refresh of an expired entry fails transiently (timeout, unreachable, 5xx, throttle),
//!   the last good value is served, marked stale, for up to `max_stale` past expiry. Never for not-found or denied,
//!   and never for `refreshNow`. A key whose upstream failed is in backoff: reads get the stale value at once.
//! - **No hot loops upstream** (`memory.rs`): a not-found or access-denied answer is remembered for `negative_ttl`, and
//!   a `refreshNow` of one key calls upstream at most once per `refresh_now_interval` (requests inside it get what
//!   that call fetched). `refreshNow` bypasses the negative memory.

pub mod alias;
mod backoff;
mod entry;
mod flight;
mod freshness;
mod memory;
mod refresh;
mod spellings;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::notification::RemovalCause;
use tokio::time::Instant;

use crate::clock::{Clock, SystemWallClock, WallClock};
use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::request::Key;
use crate::secret::SecretBody;
use alias::Home;
pub use alias::Meta;
use backoff::Backoff;
pub use entry::Entry;
use flight::{no_result, Flight, Wanted};
use freshness::Freshness;
use memory::Memory;

/// A value as the upstream returned it: the response body, and what the upstream said about it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body served to clients.
    pub body: SecretBody,
    /// Its ARN, name and version.
    pub meta: Meta,
}

/// Where values come from on a miss.
pub trait Upstream: Send + Sync + 'static {
    /// Fetches the current value for `key`.
    fn fetch(&self, key: &Key) -> impl Future<Output = Result<Fetched, UpstreamError>> + Send;

    /// Fetches several keys, one result per key in order; an upstream with a batch operation makes one call. The
    /// default makes one `fetch` per key, concurrently.
    fn fetch_batch(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Vec<Result<Fetched, UpstreamError>>> + Send {
        futures_util::future::join_all(keys.iter().map(|k| self.fetch(k)))
    }

    /// The same upstream acting as the IAM role `role_arn` (a read that names a `roleArn`), or `None` when it cannot
    /// (the default).
    fn as_role(&self, _role_arn: &str) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Every SSM parameter under `path` (recursive, decrypted), each with the key it answers. The default has none.
    fn fetch_path(
        &self,
        _path: &str,
    ) -> impl Future<Output = Result<Vec<(Key, Fetched)>, UpstreamError>> + Send {
        std::future::ready(Ok(Vec::new()))
    }

    /// The names of the home region's secrets that carry one of the tag keys `keys` (exactly, case-sensitive), at
    /// most `limit`: the init prefetch by tag. The default finds none.
    fn tagged_secrets(
        &self,
        _keys: &[String],
        _limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, UpstreamError>> + Send {
        std::future::ready(Ok(Vec::new()))
    }
}

/// How long values stay fresh, and what may be done around expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// How long a not-found or access-denied answer is remembered (0 disables).
    pub negative_ttl: Duration,
    /// The shortest interval between two upstream calls made for `refreshNow` on one key (0 disables).
    pub refresh_now_interval: Duration,
    /// Drop every cached value when a pause is detected (SnapStart: the pause is a restore from a snapshot).
    pub forget_on_pause: bool,
    /// The region names resolve in; a secret's name aliases its ARN only in this region (and the account).
    pub home_region: Option<String>,
    /// Most keys with an upstream call in flight before a read that needs one more is refused (load shedding; a
    /// read that joins a call already running, and a hit, are never refused).
    pub max_pending_fetches: usize,
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
    /// Fetched upstream because the client asked with `refreshNow` (or within the interval of such a fetch).
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

/// What one [`Cache::refresh_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Entries within their refresh-ahead window or past expiry.
    pub due: usize,
    /// Refreshes started (or joined, when one was already running), probes of failing keys included.
    pub started: usize,
    /// Due keys left alone because their upstream failed moments ago (in backoff).
    pub skipped_backoff: usize,
    /// Refreshes waited for that ended within the budget; the others (and every probe) carry on.
    pub finished: usize,
}

/// What a lookup answers: the entry and how it was found, or why there is none.
pub type Lookup = Result<(Arc<Entry>, Source), UpstreamError>;

/// The cache. Cheap to share behind an `Arc`.
pub struct Cache<U, W = SystemWallClock> {
    upstream: Arc<U>,
    clock: Clock<W>,
    policy: Policy,
    home: Home,
    store: moka::future::Cache<Key, Arc<Entry>>,
    /// The one upstream call per key in progress, and when it started (monotonic, unskewed).
    inflight: Mutex<HashMap<Key, (Flight, Instant)>>,
    /// Keys whose last upstream call failed transiently, and when to try again.
    backoff: Mutex<HashMap<Key, Backoff>>,
    /// Not-found and access-denied answers, remembered for `negative_ttl`.
    negative: Memory<UpstreamError>,
    /// The last `refreshNow` call per key, shared by the `refreshNow`s that follow within the interval.
    refreshed: Memory<Flight>,
    metrics: Arc<Metrics>,
    /// Our own counts: moka's `entry_count` lags until its maintenance runs.
    entries: AtomicU64,
    bytes: AtomicU64,
}

impl<U, W> std::fmt::Debug for Cache<U, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("policy", &self.policy)
            .field("entries", &self.entries.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn primary(key: &Key, e: &Entry) -> bool {
    key == e.canonical()
}

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// A cache over `upstream`, sized and timed by `policy`, ageing entries by `wall`-checked monotonic time.
    pub fn new(upstream: U, wall: W, policy: Policy, metrics: Arc<Metrics>) -> Arc<Self> {
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
                    // Only a secret's own entry weighs: CACHE_SIZE counts secrets, as the AWS extension's does, so
                    // its other spellings (at most two) must not take the room of other secrets. They live no
                    // longer than it does (the listener below).
                    let bytes = if primary(key, e) {
                        ((e.body().len() + key.len()) as u64).max(per_entry_floor)
                    } else {
                        0
                    };
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(backstop)
                .eviction_listener(move |key: Arc<Key>, e: Arc<Entry>, cause: RemovalCause| {
                    // Called for every removal, replacements included, so it mirrors every insert of a primary.
                    if let (Some(cache), true) = (weak.upgrade(), primary(&key, &e)) {
                        cache.entries.fetch_sub(1, Ordering::Relaxed);
                        cache
                            .bytes
                            .fetch_sub((e.body().len() + key.len()) as u64, Ordering::Relaxed);
                        cache.publish_size();
                        if cause.was_evicted() {
                            cache.forget_spellings(e);
                        }
                    }
                })
                .build();
            Self {
                upstream: Arc::new(upstream),
                clock: Clock::new(wall),
                home: Home::new(policy.home_region.clone()),
                negative: Memory::new(policy.negative_ttl),
                refreshed: Memory::new(policy.refresh_now_interval),
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

    /// A cache of its own, with this one's policy and counters, over the upstream acting as `role_arn`: values read as
    /// one role are never served to another. `None` when the upstream cannot act as a role.
    pub fn for_role(&self, role_arn: &str) -> Option<Arc<Self>> {
        let upstream = self.upstream.as_role(role_arn)?;
        Some(Self::new(
            upstream,
            self.clock.wall().clone(),
            self.policy.clone(),
            Arc::clone(&self.metrics),
        ))
    }

    /// Looks `key` up, fetching upstream when it is missing, expired, or `refresh_now` is set.
    pub async fn get(self: &Arc<Self>, key: &Key, refresh_now: bool) -> Lookup {
        let now = self.now();
        let cached = if self.caching(key) {
            self.cached(key).await
        } else {
            None
        };
        if refresh_now {
            // Through whichever spelling: the refresh is of the secret itself.
            let spellings = cached
                .as_ref()
                .map_or(std::slice::from_ref(key), |e| &e.keys[..]);
            let (fresh, source) = self.refresh_now(spellings, now).await?;
            return Ok((self.confirm(key, fresh).await?, source));
        }
        let Some(entry) = cached else {
            self.metrics.miss();
            if let Some(e) = self.remembered_failure(key, now) {
                return Err(e);
            }
            self.admit(key)?;
            let entry = self.flight(key.clone()).await?;
            return Ok((entry, Source::Miss));
        };
        match self.freshness(key, &entry, now) {
            Freshness::Fresh => {
                self.metrics.hit();
                Ok((entry, Source::Hit))
            }
            Freshness::Expired { stale_allowed } => {
                self.metrics.miss();
                self.expired(key, entry, now, stale_allowed).await
            }
        }
    }

    /// Several keys at once: fresh hits from the cache, and every key that needs the upstream in one batch call
    /// (single-flight per key still holds: a key already being fetched is joined, not fetched again). Results are in
    /// the order of `keys`.
    pub async fn get_many(self: &Arc<Self>, keys: &[Key]) -> Vec<Lookup> {
        let now = self.now();
        let mut results: Vec<Option<Lookup>> = Vec::with_capacity(keys.len());
        let mut wanted: Vec<Wanted> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let cached = if self.caching(key) {
                self.cached(key).await
            } else {
                None
            };
            match cached {
                Some(entry) => match self.freshness(key, &entry, now) {
                    Freshness::Fresh => {
                        self.metrics.hit();
                        results.push(Some(Ok((entry, Source::Hit))));
                    }
                    Freshness::Expired { stale_allowed } => {
                        self.metrics.miss();
                        let fkey = entry.canonical().clone();
                        if stale_allowed && self.backoff_state(&fkey, now).is_some() {
                            self.metrics.stale();
                            results.push(Some(Ok((entry, Source::Stale))));
                        } else {
                            results.push(None);
                            wanted.push(Wanted {
                                index: i,
                                key: fkey,
                                expired: Some((entry, stale_allowed)),
                            });
                        }
                    }
                },
                None => {
                    self.metrics.miss();
                    match self
                        .remembered_failure(key, now)
                        .map(Err)
                        .or_else(|| self.admit(key).err().map(Err))
                    {
                        Some(refused) => results.push(Some(refused)),
                        None => {
                            results.push(None);
                            wanted.push(Wanted {
                                index: i,
                                key: key.clone(),
                                expired: None,
                            });
                        }
                    }
                }
            }
        }
        let flights = self.batch_flights(wanted.iter().map(|w| w.key.clone()).collect());
        let fetched = futures_util::future::join_all(flights).await;
        for (
            Wanted {
                index,
                key,
                expired,
            },
            result,
        ) in wanted.into_iter().zip(fetched)
        {
            results[index] = Some(match (result, expired) {
                (Ok(entry), _) => self
                    .confirm(&keys[index], entry)
                    .await
                    .map(|e| (e, Source::Miss)),
                (Err(e), Some((entry, true))) if e.is_transient() => {
                    tracing::warn!(key = %key, error = %e, "upstream failed; serving the last good value");
                    self.metrics.stale();
                    Ok((entry, Source::Stale))
                }
                (Err(e), _) => Err(e),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| no_result().map(|e| (e, Source::Miss))))
            .collect()
    }

    /// Forgets every cached value and remembered answer (after a SnapStart restore, when their age is unknown).
    pub fn invalidate_all(&self) {
        self.store.invalidate_all();
        self.negative.lock().clear();
        self.refreshed.lock().clear();
    }

    /// Number of cached entries and their bytes.
    pub fn size(&self) -> (u64, u64) {
        (
            self.entries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    pub(super) fn publish_size(&self) {
        let (entries, bytes) = self.size();
        self.metrics.set_cache_size(entries, bytes);
    }

    /// Runs moka's pending maintenance (evictions); for tests and metrics.
    pub async fn sync(&self) {
        self.store.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod identity_tests;

#[cfg(test)]
mod tests {
    use super::backoff::{BACKOFF_BASE, BACKOFF_MAX};
    use super::freshness::STALE_GRACE;
    use super::*;
    use crate::clock::tests::ManualWall;
    use crate::request::{SecretKey, VersionSelector};
    use std::sync::atomic::AtomicUsize;

    /// A scripted upstream: counts calls (a batch is one) and answers from a mutable script, after a delay on
    /// tokio's clock, with the ARN, name and version the script says.
    #[derive(Default)]
    struct Scripted {
        calls: AtomicUsize,
        batches: AtomicUsize,
        answer: Mutex<Option<Result<String, UpstreamError>>>,
        meta: Mutex<Meta>,
        delay: Mutex<Duration>,
    }

    impl Scripted {
        async fn answer(&self) -> Result<Fetched, UpstreamError> {
            let delay = *self.delay.lock().expect("lock");
            tokio::time::sleep(delay).await;
            let answer = self
                .answer
                .lock()
                .expect("lock")
                .clone()
                .unwrap_or(Ok("v".into()));
            let meta = self.meta.lock().expect("lock").clone();
            answer.map(|s| Fetched {
                body: SecretBody::new(s.into_bytes()),
                meta,
            })
        }
    }

    impl Upstream for Arc<Scripted> {
        fn fetch(&self, _key: &Key) -> impl Future<Output = Result<Fetched, UpstreamError>> + Send {
            let this = Arc::clone(self);
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                this.answer().await
            }
        }

        fn fetch_batch(
            &self,
            keys: &[Key],
        ) -> impl Future<Output = Vec<Result<Fetched, UpstreamError>>> + Send {
            let (this, n) = (Arc::clone(self), keys.len());
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                this.batches.fetch_add(1, Ordering::SeqCst);
                let one = this.answer().await;
                vec![one; n]
            }
        }
    }

    pub(super) fn policy() -> Policy {
        Policy {
            secret_ttl: Duration::from_secs(100),
            parameter_ttl: Duration::from_secs(100),
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

    fn key(id: &str) -> Key {
        Key::Secret(SecretKey {
            secret_id: id.into(),
            selector: VersionSelector::Current,
        })
    }

    type TestCache = Arc<Cache<Arc<Scripted>, ManualWall>>;

    fn setup(p: Policy) -> (Arc<Scripted>, ManualWall, TestCache) {
        let up = Arc::new(Scripted::default());
        let wall = ManualWall::default();
        let cache = Cache::new(
            Arc::clone(&up),
            wall.clone(),
            p,
            Arc::new(Metrics::default()),
        );
        (up, wall, cache)
    }

    fn set(up: &Scripted, a: Result<&str, UpstreamError>) {
        *up.answer.lock().expect("lock") = Some(a.map(str::to_owned));
    }

    fn calls(up: &Scripted) -> usize {
        up.calls.load(Ordering::SeqCst)
    }

    async fn text(c: &TestCache, k: &str, refresh: bool) -> (String, Source) {
        let (e, s) = c.get(&key(k), refresh).await.expect("value");
        (
            String::from_utf8(e.body().bytes().to_vec()).expect("utf8"),
            s,
        )
    }

    /// Lets spawned tasks (background refreshes) run to completion on the paused clock.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn not_found() -> UpstreamError {
        UpstreamError::NotFound {
            code: "ResourceNotFoundException".into(),
            message: "m".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hit_then_expiry_fetches_anew() {
        let (up, _wall, cache) = setup(policy());
        set(&up, Ok("one"));
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Miss));
        set(&up, Ok("two"));
        tokio::time::advance(Duration::from_secs(99)).await;
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Hit));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(text(&cache, "a", false).await, ("two".into(), Source::Miss));
        assert_eq!(calls(&up), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_fetched_before_a_pause_longer_than_its_ttl_is_not_fresh_after_it() {
        let (up, wall, cache) = setup(policy());
        set(&up, Ok("before"));
        text(&cache, "a", false).await;
        // A paused micro-VM: ten minutes pass on the wall clock and none on the monotonic one.
        wall.step(600);
        set(&up, Ok("after"));
        assert_eq!(
            text(&cache, "a", false).await,
            ("after".into(), Source::Miss)
        );
        assert_eq!(calls(&up), 2);
        // A wall clock set back does not make the new entry any younger than its monotonic age.
        wall.step(-3600);
        tokio::time::advance(Duration::from_secs(100)).await;
        set(&up, Ok("later"));
        assert_eq!(text(&cache, "a", false).await.0, "later");
    }

    #[tokio::test(start_paused = true)]
    async fn under_snap_start_a_restore_drops_every_value_before_the_read_that_notices_it() {
        let (up, wall, cache) = setup(Policy {
            forget_on_pause: true,
            secret_ttl: Duration::from_secs(3600),
            ..policy()
        });
        set(&up, Ok("pre-snapshot"));
        text(&cache, "a", false).await;
        // Restored 90 s later: well within the TTL, but the value is from before the snapshot.
        wall.step(90);
        set(&up, Ok("post-restore"));
        assert_eq!(
            text(&cache, "a", false).await,
            ("post-restore".into(), Source::Miss)
        );
        assert_eq!(
            text(&cache, "a", false).await,
            ("post-restore".into(), Source::Hit)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_call() {
        let (up, _wall, cache) = setup(policy());
        *up.delay.lock().expect("lock") = Duration::from_millis(50);
        let gets = (0..100).map(|_| {
            let c = Arc::clone(&cache);
            tokio::spawn(async move { c.get(&key("a"), false).await.map(|(_, s)| s) })
        });
        for r in futures_util::future::join_all(gets).await {
            assert!(r.expect("join").is_ok());
        }
        assert_eq!(calls(&up), 1);
        let refreshes = (0..20).map(|_| {
            let c = Arc::clone(&cache);
            tokio::spawn(async move { c.get(&key("a"), true).await.map(|(_, s)| s) })
        });
        for r in futures_util::future::join_all(refreshes).await {
            assert_eq!(r.expect("join").expect("ok"), Source::Refreshed);
        }
        assert_eq!(calls(&up), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_now_in_a_loop_calls_upstream_at_most_once_per_interval() {
        let (up, _wall, cache) = setup(Policy {
            refresh_now_interval: Duration::from_secs(1),
            ..policy()
        });
        set(&up, Ok("v1"));
        for i in 0..200 {
            if i == 100 {
                set(&up, Ok("v2"));
            }
            let (v, s) = text(&cache, "a", true).await;
            assert_eq!((v.as_str(), s), ("v1", Source::Refreshed));
            tokio::time::advance(Duration::from_millis(4)).await;
        }
        assert_eq!(calls(&up), 1, "200 refreshNow reads within 0.8 s");
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(text(&cache, "a", true).await.0, "v2");
        assert_eq!(calls(&up), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_remembered_briefly_and_refresh_now_bypasses_the_memory() {
        let (up, _wall, cache) = setup(Policy {
            negative_ttl: Duration::from_secs(5),
            ..policy()
        });
        set(&up, Err(not_found()));
        for _ in 0..200 {
            let e = cache.get(&key("gone"), false).await.expect_err("not found");
            assert!(matches!(e, UpstreamError::NotFound { .. }));
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        assert_eq!(
            calls(&up),
            1,
            "200 reads of a missing secret within a second"
        );
        // The secret is created: refreshNow sees it at once; then plain reads do too.
        set(&up, Ok("created"));
        assert_eq!(text(&cache, "gone", true).await.0, "created");
        assert_eq!(
            text(&cache, "gone", false).await,
            ("created".into(), Source::Hit)
        );
        // After the memory's TTL a missing secret is asked about again.
        set(&up, Err(not_found()));
        assert!(cache.get(&key("other"), false).await.is_err());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(cache.get(&key("other"), false).await.is_err());
        assert_eq!(calls(&up), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_ttl_or_size_never_caches() {
        let (up, _w, cache) = setup(Policy {
            secret_ttl: Duration::ZERO,
            ..policy()
        });
        text(&cache, "a", false).await;
        text(&cache, "a", false).await;
        assert_eq!(calls(&up), 2);
        let (up, _w, cache) = setup(Policy {
            max_entries: 0,
            negative_ttl: Duration::from_secs(5),
            ..policy()
        });
        text(&cache, "a", false).await;
        text(&cache, "a", false).await;
        assert_eq!(calls(&up), 2);
        // With caching off, a refusal is not remembered either: every read asks.
        set(&up, Err(not_found()));
        assert!(cache.get(&key("a"), false).await.is_err());
        assert!(cache.get(&key("a"), false).await.is_err());
        assert_eq!(calls(&up), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_only_for_transient_errors_and_never_for_refresh_now() {
        let (up, _wall, cache) = setup(Policy {
            max_stale: Duration::from_secs(50),
            ..policy()
        });
        set(&up, Ok("good"));
        text(&cache, "a", false).await;
        tokio::time::advance(Duration::from_secs(120)).await;
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        assert_eq!(
            text(&cache, "a", false).await,
            ("good".into(), Source::Stale)
        );
        assert!(
            cache.get(&key("a"), true).await.is_err(),
            "refreshNow must not serve stale"
        );
        set(&up, Err(not_found()));
        // The upstream is in backoff, so the deletion is learnt from the next probe; from then on it is never masked.
        tokio::time::advance(Duration::from_secs(6)).await;
        let _ = cache.get(&key("a"), false).await;
        settle().await;
        assert!(
            cache.get(&key("a"), false).await.is_err(),
            "not-found is never masked"
        );
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(
            cache.get(&key("a"), false).await.is_err(),
            "beyond max_stale"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn during_an_outage_stale_answers_do_not_wait_and_retries_back_off() {
        let (up, _wall, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("good"));
        text(&cache, "a", false).await;
        tokio::time::advance(Duration::from_secs(101)).await;
        set(&up, Err(UpstreamError::Timeout { millis: 1 }));
        assert_eq!(text(&cache, "a", false).await.1, Source::Stale);
        assert_eq!(calls(&up), 2);
        // Within the backoff: stale at once, no upstream call, no time spent.
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(text(&cache, "a", false).await.1, Source::Stale);
        }
        assert_eq!(Instant::now(), started);
        assert_eq!(calls(&up), 2);
        // Once the backoff has passed, one background probe; the answer is still immediate.
        tokio::time::advance(BACKOFF_MAX).await;
        set(&up, Ok("healed"));
        assert_eq!(
            text(&cache, "a", false).await,
            ("good".into(), Source::Stale)
        );
        settle().await;
        assert_eq!(calls(&up), 3);
        assert_eq!(
            text(&cache, "a", false).await,
            ("healed".into(), Source::Hit)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_upstream_gets_stale_after_the_grace_and_the_refresh_lands_later() {
        let (up, _wall, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("old"));
        text(&cache, "a", false).await;
        tokio::time::advance(Duration::from_secs(101)).await;
        set(&up, Ok("new"));
        *up.delay.lock().expect("lock") = Duration::from_millis(600);
        let started = Instant::now();
        assert_eq!(
            text(&cache, "a", false).await,
            ("old".into(), Source::Stale)
        );
        assert_eq!(Instant::now() - started, STALE_GRACE);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(text(&cache, "a", false).await, ("new".into(), Source::Hit));
        assert_eq!(calls(&up), 2);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for failures in 1..40 {
            let d = Backoff::delay(failures);
            let exp = BACKOFF_BASE
                .saturating_mul(1 << (failures - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(d >= exp / 2 && d <= exp, "{failures}: {d:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_ahead_answers_at_once_and_refreshes_behind() {
        let (up, _wall, cache) = setup(Policy {
            refresh_ahead_percent: 20,
            ..policy()
        });
        set(&up, Ok("one"));
        text(&cache, "a", false).await;
        set(&up, Ok("two"));
        tokio::time::advance(Duration::from_secs(85)).await;
        assert_eq!(text(&cache, "a", false).await, ("one".into(), Source::Hit));
        settle().await;
        assert_eq!(calls(&up), 2);
        assert_eq!(text(&cache, "a", false).await, ("two".into(), Source::Hit));
        tokio::time::advance(Duration::from_secs(90)).await;
        let report = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!((report.due, report.started, report.finished), (1, 1, 1));
        assert_eq!(calls(&up), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invoke_waits_for_refreshes_only_within_its_budget_and_they_land_later() {
        let (up, _wall, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("old"));
        text(&cache, "a", false).await;
        text(&cache, "b", false).await;
        tokio::time::advance(Duration::from_secs(101)).await;
        // A black-holed upstream: every call takes three seconds.
        *up.delay.lock().expect("lock") = Duration::from_secs(3);
        set(&up, Ok("new"));
        let started = Instant::now();
        let report = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!(Instant::now() - started, Duration::from_millis(100));
        assert_eq!((report.due, report.started, report.finished), (2, 2, 0));
        // The next INVOKE while those calls still hang does not wait for them again, and a read of an expired value
        // does not wait a grace for them either.
        tokio::time::advance(Duration::from_millis(200)).await;
        let started = Instant::now();
        let again = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!(Instant::now(), started);
        assert_eq!((again.started, again.finished), (2, 0));
        assert_eq!(
            text(&cache, "a", false).await,
            ("old".into(), Source::Stale)
        );
        assert_eq!(Instant::now(), started);
        assert_eq!(calls(&up), 4, "joined, not called again");
        // The refreshes carried on: after the upstream answers, the values are fresh.
        tokio::time::sleep(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(text(&cache, "a", false).await, ("new".into(), Source::Hit));
        assert_eq!(calls(&up), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invoke_does_not_wait_at_all_for_a_key_in_backoff() {
        let (up, _wall, cache) = setup(Policy {
            max_stale: Duration::from_secs(600),
            ..policy()
        });
        set(&up, Ok("good"));
        text(&cache, "a", false).await;
        tokio::time::advance(Duration::from_secs(101)).await;
        // The upstream times out: the first INVOKE's refresh fails, and the key goes into backoff.
        set(&up, Err(UpstreamError::Timeout { millis: 3000 }));
        *up.delay.lock().expect("lock") = Duration::from_secs(3);
        let first = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!(first.started, 1);
        tokio::time::sleep(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(calls(&up), 2);
        // The next INVOKE, inside the backoff: nothing is started and no time passes.
        let started = Instant::now();
        let next = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!(Instant::now(), started);
        assert_eq!((next.due, next.started, next.skipped_backoff), (1, 0, 1));
        assert_eq!(calls(&up), 2);
        assert_eq!(text(&cache, "a", false).await.1, Source::Stale);
        // Once the backoff has passed, an INVOKE probes the failing upstream again, and does not wait for it either.
        tokio::time::advance(BACKOFF_MAX).await;
        let started = Instant::now();
        let probe = cache.refresh_due(Duration::from_millis(100)).await;
        assert_eq!(Instant::now(), started);
        assert_eq!((probe.started, probe.finished), (1, 0));
        settle().await;
        assert_eq!(calls(&up), 3);
    }

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db-AbCdEf";
    const PARTIAL: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:my/db";

    #[tokio::test(start_paused = true)]
    async fn every_spelling_of_a_secret_shares_one_entry_and_one_call() {
        let (up, _wall, cache) = setup(policy());
        *up.meta.lock().expect("lock") = Meta {
            arn: Some(ARN.into()),
            name: Some("my/db".into()),
            version: Some("v-1".into()),
        };
        set(&up, Ok("{}"));
        assert_eq!(text(&cache, "my/db", false).await.1, Source::Miss);
        for spelling in [ARN, "my/db"] {
            assert_eq!(
                text(&cache, spelling, false).await.1,
                Source::Hit,
                "{spelling}"
            );
        }
        // A partial ARN is never derived from an answer (it may be another secret's full ARN): once asked for and
        // answered by this secret, it is one more spelling of the same entry.
        assert_eq!(text(&cache, PARTIAL, false).await.1, Source::Miss);
        assert_eq!(text(&cache, PARTIAL, false).await.1, Source::Hit);
        assert_eq!(text(&cache, "my/db", false).await.1, Source::Hit);
        let by_version = Key::Secret(SecretKey {
            secret_id: ARN.into(),
            selector: VersionSelector::Id("v-1".into()),
        });
        let (entry, source) = cache.get(&by_version, false).await.expect("value");
        assert_eq!(source, Source::Hit);
        assert_eq!(entry.etag().as_deref(), Some(&b"\"v-1\""[..]));
        assert_eq!(calls(&up), 2);
        assert_eq!(cache.size().0, 1, "one entry, however many names");
        // A refresh of any spelling refreshes the secret once, and every spelling sees it.
        tokio::time::advance(Duration::from_secs(101)).await;
        set(&up, Ok("{\"new\":1}"));
        assert_eq!(text(&cache, PARTIAL, false).await.1, Source::Miss);
        assert_eq!(
            text(&cache, "my/db", false).await,
            ("{\"new\":1}".into(), Source::Hit)
        );
        assert_eq!(calls(&up), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_now_of_a_spelling_not_yet_cached_and_then_of_another_is_one_call() {
        let (up, _wall, cache) = setup(Policy {
            refresh_now_interval: Duration::from_secs(1),
            ..policy()
        });
        *up.meta.lock().expect("lock") = Meta {
            arn: Some(ARN.into()),
            name: Some("my/db".into()),
            version: Some("v-1".into()),
        };
        for spelling in ["my/db", "my/db", ARN] {
            assert_eq!(text(&cache, spelling, true).await.1, Source::Refreshed);
        }
        assert_eq!(calls(&up), 1);
        // A partial ARN is a spelling of the secret only once an answer to it said so.
        assert_eq!(text(&cache, PARTIAL, true).await.1, Source::Refreshed);
        assert_eq!(calls(&up), 2);
        assert_eq!(text(&cache, PARTIAL, true).await.1, Source::Refreshed);
        assert_eq!(calls(&up), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_misses_is_one_upstream_call_and_hits_stay_in_the_cache() {
        let (up, _wall, cache) = setup(policy());
        set(&up, Ok("v"));
        text(&cache, "k0", false).await;
        assert_eq!(calls(&up), 1);
        let keys: Vec<Key> = (0..10).map(|i| key(&format!("k{i}"))).collect();
        let answers = cache.get_many(&keys).await;
        assert_eq!(answers.len(), 10);
        assert_eq!(answers[0].as_ref().expect("hit").1, Source::Hit);
        assert!(answers[1..]
            .iter()
            .all(|a| a.as_ref().is_ok_and(|(_, s)| *s == Source::Miss)));
        assert_eq!((calls(&up), up.batches.load(Ordering::SeqCst)), (2, 1));
        // All cached now: a second batch costs nothing.
        cache.get_many(&keys).await;
        assert_eq!(calls(&up), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_joins_a_fetch_already_running_for_one_of_its_keys() {
        let (up, _wall, cache) = setup(policy());
        *up.delay.lock().expect("lock") = Duration::from_millis(50);
        let single = {
            let c = Arc::clone(&cache);
            tokio::spawn(async move { c.get(&key("a"), false).await.map(|(_, s)| s) })
        };
        tokio::task::yield_now().await;
        let answers = cache.get_many(&[key("a"), key("b"), key("c")]).await;
        assert!(answers.iter().all(Result::is_ok));
        assert!(single.await.expect("join").is_ok());
        assert_eq!(calls(&up), 2, "one for a, one batch for b and c");
    }

    /// Answers every read as secret `i` of the account, so each is cached under its ARN and its name.
    fn answer_as(up: &Scripted, i: usize) -> String {
        let name = format!("app/s{i}");
        *up.meta.lock().expect("lock") = Meta {
            arn: Some(format!(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"
            )),
            name: Some(name.clone()),
            version: Some(format!("v{i}")),
        };
        name
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_size_counts_secrets_not_their_spellings() {
        let (up, _w, cache) = setup(Policy {
            max_entries: 10,
            max_bytes: 10 * 1024,
            ..policy()
        });
        for i in 0..10 {
            let name = answer_as(&up, i);
            assert_eq!(text(&cache, &name, false).await.1, Source::Miss);
        }
        cache.sync().await;
        for i in 0..10 {
            let name = answer_as(&up, i);
            assert_eq!(text(&cache, &name, false).await.1, Source::Hit, "{name}");
        }
        assert_eq!(
            calls(&up),
            10,
            "ten secrets, each under two spellings, fit a cache of ten"
        );
        assert_eq!(cache.size().0, 10);
        // Ten others, read over and over so they win their place: whichever secrets are evicted take their names
        // with them, so the store never holds more than two keys per cached secret.
        for _ in 0..3 {
            for i in 10..20 {
                let name = answer_as(&up, i);
                text(&cache, &name, false).await;
            }
            cache.sync().await;
            settle().await;
        }
        cache.sync().await;
        let (entries, _) = cache.size();
        assert!(entries <= 10, "{entries} entries");
        assert!(
            cache.store.entry_count() <= 2 * entries,
            "{} keys for {entries} secrets",
            cache.store.entry_count()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn byte_budget_evicts() {
        let (up, _w, cache) = setup(Policy {
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

    #[tokio::test(start_paused = true)]
    async fn past_the_pending_fetch_cap_a_miss_is_shed_while_hits_and_joins_are_served() {
        let (up, _wall, cache) = setup(Policy {
            max_pending_fetches: 2,
            max_stale: Duration::from_secs(60),
            ..policy()
        });
        set(&up, Ok("v"));
        text(&cache, "cached", false).await;
        *up.delay.lock().expect("lock") = Duration::from_secs(1);
        let waiting: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|k| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move { cache.get(&key(k), false).await.map(|(_, s)| s) })
            })
            .collect();
        settle().await;
        assert!(matches!(
            cache.get(&key("c"), false).await,
            Err(UpstreamError::Shed { pending: 2 })
        ));
        let batch = cache.get_many(&[key("cached"), key("d")]).await;
        assert!(batch[0].is_ok());
        assert!(matches!(batch[1], Err(UpstreamError::Shed { .. })));
        // A hit, and a read that joins a call already running, are never refused.
        assert_eq!(text(&cache, "cached", false).await.1, Source::Hit);
        let join = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { cache.get(&key("a"), false).await.map(|(_, s)| s) })
        };
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        for task in waiting {
            assert_eq!(task.await.expect("task").expect("value"), Source::Miss);
        }
        assert_eq!(join.await.expect("task").expect("value"), Source::Miss);
        assert_eq!(cache.metrics.snapshot().shed, 2);
        assert_eq!(calls(&up), 3);
    }
}
