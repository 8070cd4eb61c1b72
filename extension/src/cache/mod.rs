//! The bounded cache in front of the upstream: single-flight, refresh-ahead, stale-on-error, one entry per secret
//! however it is named, batches, and memory of recent answers so that a client retrying in a loop does not hammer the
//! upstream.
//!
//! It knows nothing of HTTP and nothing of the AWS SDK: it stores [`Entry`] values (a [`SecretBody`] and what the
//! upstream said about it) under [`Key`]s and asks an [`Upstream`] (a small trait) for missing ones.
//!
//! Parts and the reasons for them:
//! - **Storage** is a moka cache bounded by entry count *and* bytes. moka has one capacity, so each entry weighs
//!   `max(its bytes, byte_budget / max_entries)`: the total weight limit then bounds both.
//! - **One entry per secret version** ([`alias`]): an answer is stored under every spelling the upstream's own answer
//!   says it has (name, full ARN, partial ARN, and the version id of `AWSCURRENT`), all pointing to one entry, so a
//!   hit is one lookup whatever the spelling and a second spelling costs no second upstream call. The first key is
//!   the canonical one (the full ARN): refreshes and single-flight use it.
//! - **Freshness** is judged by our own per-entry timestamp from a [`Clock`] that is tokio's monotonic clock plus every
//!   pause it did not see (a paused or restored micro-VM), not by moka's TTL (which cannot be paused in tests). moka's
//!   TTL is only the eviction backstop, at TTL + the stale window. Under SnapStart a detected pause (a restore) drops
//!   every cached value before the read that noticed it is answered.
//! - **Single-flight**: all concurrent misses, `refreshNow`s and background refreshes of one key share one spawned
//!   upstream call, and a batch's misses share one upstream batch call. The call runs in its own task, so a client
//!   that hangs up does not cancel it for the others.
//! - **Refresh-ahead**: a hit within the refresh-ahead window of expiry starts a background refresh and still answers
//!   at once; [`Cache::refresh_due`] does the same for every entry on a Lambda INVOKE (a frozen environment runs no
//!   background work), skipping keys in backoff and waiting only within a small budget: an INVOKE must never hold
//!   the function, and a refresh that outlives the budget lands when it lands. Where no INVOKE comes (Lambda
//!   Managed Instances), [`Cache::refresh_read`] does it on a timer instead, for the entries read since their last
//!   fetch only, so that what nobody reads still ages out.
//! - **Stale-on-error**: when a refresh of an expired entry fails transiently (timeout, unreachable, 5xx, throttle),
//!   the last good value is served, marked stale, for up to `max_stale` past expiry. Never for not-found or denied,
//!   and never for `refreshNow`. A key whose upstream failed is in backoff: reads get the stale value at once.
//! - **No hot loops upstream** (`memory.rs`): a not-found or access-denied answer is remembered for `negative_ttl`, and
//!   a `refreshNow` of one key calls upstream at most once per `refresh_now_interval` (requests inside it get what
//!   that call fetched). `refreshNow` bypasses the negative memory.

pub mod alias;
mod memory;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::clock::{Clock, SystemWallClock, WallClock};
use crate::error::UpstreamError;
use crate::metrics::Metrics;
use crate::request::Key;
use crate::secret::SecretBody;
use alias::Home;
pub use alias::Meta;
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

    /// Every SSM parameter under `path` (recursive, decrypted), each with the key it answers. The default has none.
    fn fetch_path(
        &self,
        _path: &str,
    ) -> impl Future<Output = Result<Vec<(Key, Fetched)>, UpstreamError>> + Send {
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

/// One cached value: the body served, what the upstream said about it, and every key it is stored under.
#[derive(Debug)]
pub struct Entry {
    body: SecretBody,
    fetched_at: Instant,
    meta: Meta,
    /// `"<version>"`, built once so that a hit's ETag costs no formatting.
    etag: Option<Bytes>,
    /// The canonical key first, then its aliases.
    keys: Vec<Key>,
    /// Whether a lookup was answered from this entry. A refresh stores a new entry (unread), so this means "read
    /// since the last fetch": the timer-driven refresh ([`Cache::refresh_read`]) keeps only such entries fresh, and
    /// one nobody reads for a TTL is left to age out as it would on demand.
    read: AtomicBool,
}

impl Entry {
    /// The response body.
    pub fn body(&self) -> &SecretBody {
        &self.body
    }
    /// The ETag (quoted), when the upstream gave a version.
    pub fn etag(&self) -> Option<&Bytes> {
        self.etag.as_ref()
    }
    /// What the upstream said about the value.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    fn canonical(&self) -> &Key {
        &self.keys[0]
    }
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
/// What an alias key weighs in the byte budget: its own size plus moka's bookkeeping, not the shared body again.
const ALIAS_WEIGHT: u64 = 96;

impl Backoff {
    /// The wait after `failures` consecutive failures: exponential, capped, with "equal jitter" (half fixed, half
    /// random) so that many environments failing together do not retry in lockstep.
    fn delay(failures: u32) -> Duration {
        let exp = BACKOFF_BASE
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(BACKOFF_MAX);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, UpstreamError>>>;

/// What a lookup answers: the entry and how it was found, or why there is none.
pub type Lookup = Result<(Arc<Entry>, Source), UpstreamError>;

/// A key of a batch that needs the upstream: its place in the answer, the key to fetch, and its expired entry (with
/// whether it may still be served stale) if there is one.
struct Wanted {
    index: usize,
    key: Key,
    expired: Option<(Arc<Entry>, bool)>,
}

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
                    let bytes = if primary(key, e) {
                        ((e.body.len() + key.len()) as u64).max(per_entry_floor)
                    } else {
                        key.len() as u64 + ALIAS_WEIGHT
                    };
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(backstop)
                .eviction_listener(move |key: Arc<Key>, e: Arc<Entry>, _cause| {
                    // Called for every removal, replacements included, so it mirrors every insert of a primary.
                    if let (Some(cache), true) = (weak.upgrade(), primary(&key, &e)) {
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

    /// Looks `key` up, fetching upstream when it is missing, expired, or `refresh_now` is set.
    pub async fn get(self: &Arc<Self>, key: &Key, refresh_now: bool) -> Lookup {
        let now = self.now();
        let cached = if self.caching(key) {
            self.store.get(key).await
        } else {
            None
        };
        if refresh_now {
            // Through whichever spelling: the refresh is of the secret itself.
            let spellings = cached
                .as_ref()
                .map_or(std::slice::from_ref(key), |e| &e.keys[..]);
            return self.refresh_now(spellings, now).await;
        }
        let Some(entry) = cached else {
            self.metrics.miss();
            if let Some(e) = self.remembered_failure(key, now) {
                return Err(e);
            }
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

    /// Whether `entry` (found under `key`) is fresh; a fresh one within the refresh-ahead window starts a background
    /// refresh of its secret.
    fn freshness(self: &Arc<Self>, key: &Key, entry: &Arc<Entry>, now: Instant) -> Freshness {
        // Written once per entry: after that the hit path only reads the flag, so concurrent readers on several
        // cores do not bounce its cache line.
        if !entry.read.load(Ordering::Relaxed) {
            entry.read.store(true, Ordering::Relaxed);
        }
        let ttl = self.policy.ttl(key);
        let age = now.saturating_duration_since(entry.fetched_at);
        if age < ttl {
            if age >= ttl - self.policy.refresh_ahead(ttl) {
                // Refresh-ahead: start the refresh and answer from the cache without waiting for it.
                self.refresh_in_background(entry.canonical().clone());
            }
            return Freshness::Fresh;
        }
        Freshness::Expired {
            stale_allowed: age < ttl + self.policy.max_stale,
        }
    }

    /// An expired entry: fetched again, or (when the upstream fails transiently and staleness is allowed) served as
    /// it is.
    async fn expired(
        self: &Arc<Self>,
        key: &Key,
        entry: Arc<Entry>,
        now: Instant,
        stale_allowed: bool,
    ) -> Lookup {
        let fkey = entry.canonical().clone();
        let stale = |cache: &Self| {
            cache.metrics.stale();
            Ok((Arc::clone(&entry), Source::Stale))
        };
        if let Some(e) = self.remembered_failure(&fkey, now) {
            return Err(e);
        }
        if stale_allowed {
            if let Some(retry_due) = self.backoff_state(&fkey, now) {
                // The upstream failed for this key moments ago: answer at once with the last good value instead of
                // making every request wait for another timeout, and probe the upstream in the background only once
                // the backoff has passed.
                if retry_due {
                    self.refresh_in_background(fkey.clone());
                }
                tracing::debug!(key = %key, "upstream in backoff; serving the last good value");
                return stale(self);
            }
            if self
                .in_flight_for(&fkey)
                .is_some_and(|running| running >= STALE_GRACE)
            {
                // A call for this key has been running longer than the grace: the upstream is slow or gone, and
                // this read would only wait another grace to learn it.
                tracing::debug!(key = %key, "upstream slow; serving the last good value meanwhile");
                return stale(self);
            }
        }
        let flight = self.flight(fkey);
        let result = if stale_allowed {
            // Stale-if-slow: a failing upstream often fails by timing out, so do not wait the whole timeout to find
            // out. Past the grace the last good value is served; the fetch goes on in its own task and fills the
            // cache when it succeeds.
            tokio::select! {
                r = flight => r,
                _ = tokio::time::sleep(STALE_GRACE) => {
                    tracing::debug!(key = %key, "upstream slow; serving the last good value meanwhile");
                    return stale(self);
                }
            }
        } else {
            flight.await
        };
        match result {
            Ok(fresh) => Ok((fresh, Source::Miss)),
            Err(e) if e.is_transient() && stale_allowed => {
                tracing::warn!(
                    key = %key,
                    error = %e,
                    "upstream failed; serving the last good value"
                );
                stale(self)
            }
            Err(e) => Err(e),
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
                self.store.get(key).await
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
                    match self.remembered_failure(key, now) {
                        Some(e) => results.push(Some(Err(e))),
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
                (Ok(entry), _) => Ok((entry, Source::Miss)),
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

    /// `refreshNow`: a fresh upstream call for the secret, or the one another `refreshNow` of it made within the
    /// interval under any of its `spellings` (the canonical key first; just the key asked for when it is not cached).
    async fn refresh_now(self: &Arc<Self>, spellings: &[Key], now: Instant) -> Lookup {
        let recent = spellings.iter().find_map(|k| self.refreshed.get(k, now));
        let flight = match (recent, spellings.first()) {
            (Some(recent), _) => {
                self.metrics.refresh_now_coalesced();
                recent
            }
            (None, Some(key)) => {
                let flight = self.flight(key.clone());
                self.refreshed.put(key.clone(), now, flight.clone());
                flight
            }
            (None, None) => return no_result().map(|e| (e, Source::Refreshed)),
        };
        Ok((flight.await?, Source::Refreshed))
    }

    /// A not-found or access-denied answer for `key` from moments ago, counted as a negative hit.
    fn remembered_failure(&self, key: &Key, now: Instant) -> Option<UpstreamError> {
        if !self.caching(key) {
            return None;
        }
        let e = self.negative.get(key, now)?;
        self.metrics.negative_hit();
        tracing::debug!(key = %key, error = %e, "answered from the memory of a recent upstream refusal");
        Some(e)
    }

    /// Starts a refresh of every entry that is within its refresh-ahead window or past expiry, except keys in
    /// backoff, and waits for them at most `budget`, and not at all while the upstream looks like it is failing (a
    /// key in backoff, or a call running for longer than the budget). Called on each Lambda INVOKE, while the
    /// environment is not frozen; whatever outlives the wait goes on in its own task and is used when it lands.
    pub async fn refresh_due(self: &Arc<Self>, budget: Duration) -> RefreshReport {
        let now = self.now();
        let deadline = Instant::now() + budget;
        let mut report = RefreshReport::default();
        let mut pending = FuturesUnordered::new();
        // One key failing (or a call hanging) means the upstream is probably failing for all: wait for none.
        let failing = self.upstream_failing(budget);
        for (key, entry) in self.store.iter() {
            // Aliases share their secret's entry: refresh each secret once, under its canonical key.
            if !primary(&key, &entry) {
                continue;
            }
            let ttl = self.policy.ttl(&key);
            if now.saturating_duration_since(entry.fetched_at)
                < ttl - self.policy.refresh_ahead(ttl)
            {
                continue;
            }
            report.due += 1;
            match self.backoff_state(&key, now) {
                // Its upstream failed moments ago: waiting on it would only hold the invocation.
                Some(false) => {
                    report.skipped_backoff += 1;
                    self.metrics.refresh_skipped_backoff();
                }
                // Failed before, and its backoff has passed: probe again, but never wait on an upstream that is
                // failing. The probe lands (or backs off further) on its own.
                Some(true) => {
                    report.started += 1;
                    self.refresh_in_background((*key).clone());
                }
                None if failing => {
                    report.started += 1;
                    self.refresh_in_background((*key).clone());
                }
                None => {
                    report.started += 1;
                    pending.push(self.flight((*key).clone()));
                }
            }
        }
        // Failures are logged where they happen (store); here only the count matters.
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, pending.next()).await {
            report.finished += 1;
        }
        report
    }

    /// Refresh-ahead on a timer, for an environment that gets no INVOKE (Lambda Managed Instances): starts a
    /// background refresh of every entry that was read since it was fetched and is within `lead` of expiry (or
    /// within its refresh-ahead window, if that is longer), or past it. It waits for none of them, and it is the same
    /// single-flight, backoff and stale-on-error as [`Cache::refresh_due`]: a key in backoff is left alone until its
    /// retry is due, and a key with a call running is not asked again. An entry nobody read since its last fetch is
    /// not refreshed, so it expires and is evicted as it would be on demand.
    pub fn refresh_read(self: &Arc<Self>, lead: Duration) -> RefreshReport {
        let now = self.now();
        let mut report = RefreshReport::default();
        for (key, entry) in self.store.iter() {
            if !primary(&key, &entry) || !entry.read.load(Ordering::Relaxed) {
                continue;
            }
            let ttl = self.policy.ttl(&key);
            let ahead = self.policy.refresh_ahead(ttl).max(lead).min(ttl);
            if now.saturating_duration_since(entry.fetched_at) < ttl - ahead
                || self.in_flight_for(&key).is_some()
            {
                continue;
            }
            report.due += 1;
            if self.backoff_state(&key, now) == Some(false) {
                report.skipped_backoff += 1;
                self.metrics.refresh_skipped_backoff();
            } else {
                report.started += 1;
                self.refresh_in_background((*key).clone());
            }
        }
        report
    }

    /// Fetches `keys` into the cache (init prefetch), batched where the upstream can. Failures are logged, never
    /// fatal.
    pub async fn prefetch(self: &Arc<Self>, keys: Vec<Key>) {
        let flights = self.batch_flights(keys.clone());
        let results = futures_util::future::join_all(flights).await;
        for (key, result) in keys.iter().zip(results) {
            match result {
                Ok(_) => tracing::info!(key = %key, "prefetched"),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "prefetch failed; will fetch on first use")
                }
            }
        }
    }

    /// Fetches every SSM parameter under `path` into the cache (init prefetch), each under its own key as if it had
    /// been asked for. A failure is logged, never fatal.
    pub async fn prefetch_path(self: &Arc<Self>, path: &str) {
        let started = Instant::now();
        let result = self.upstream.fetch_path(path).await;
        self.metrics.upstream_call(
            "parameter",
            result.as_ref().err().map(UpstreamError::code),
            started.elapsed(),
        );
        match result {
            Ok(values) => {
                let n = values.len();
                for (key, fetched) in values {
                    let _ = self.store(&key, Ok(fetched)).await;
                }
                tracing::info!(path, parameters = n, "prefetched an SSM path");
            }
            Err(e) => tracing::warn!(path, error = %e, "prefetch of an SSM path failed"),
        }
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

    fn publish_size(&self) {
        let (entries, bytes) = self.size();
        self.metrics.set_cache_size(entries, bytes);
    }

    /// Runs moka's pending maintenance (evictions); for tests and metrics.
    pub async fn sync(&self) {
        self.store.run_pending_tasks().await;
    }

    /// The clock's time; a pause it detects is logged, and under SnapStart drops every cached value first.
    fn now(&self) -> Instant {
        let reading = self.clock.read();
        if let Some(pause) = reading.pause {
            self.metrics.pause_detected();
            if self.policy.forget_on_pause {
                self.invalidate_all();
                tracing::info!(
                    pause_secs = pause.as_secs(),
                    "the wall clock jumped ahead of the monotonic clock (a SnapStart restore); every cached value \
                     from before it is dropped"
                );
            } else {
                tracing::info!(
                    pause_secs = pause.as_secs(),
                    "the wall clock jumped ahead of the monotonic clock (a pause it did not see); cached values \
                     are aged by it"
                );
            }
        }
        reading.now
    }

    /// Whether the upstream looks like it is failing: some key's last call failed transiently (it is in backoff), or
    /// some call has been running for longer than `slow`.
    fn upstream_failing(&self, slow: Duration) -> bool {
        let in_backoff = !self
            .backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        in_backoff
            || self
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .any(|(_, started)| started.elapsed() >= slow)
    }

    /// How long the upstream call in progress for `key` has been running, if there is one.
    fn in_flight_for(&self, key: &Key) -> Option<Duration> {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.get(key).map(|(_, started)| started.elapsed())
    }

    /// `None` when the key is not in backoff; otherwise whether its retry is due at `now`.
    fn backoff_state(&self, key: &Key, now: Instant) -> Option<bool> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.get(key).map(|b| now >= b.retry_at)
    }

    fn record_outcome(&self, key: &Key, error: Option<&UpstreamError>) {
        let now = self.clock.now();
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => {
                backoff.remove(key);
                self.negative.forget(key);
            }
            Some(e) if e.is_transient() => {
                let failures = backoff.get(key).map_or(1, |b| b.failures.saturating_add(1));
                let retry_at = now + Backoff::delay(failures);
                backoff.insert(key.clone(), Backoff { failures, retry_at });
            }
            // An answer about the secret itself ends any backoff: it is not an outage. Not-found and denied are
            // remembered for a moment, so a client retrying in a loop does not turn into an upstream loop.
            Some(e) => {
                backoff.remove(key);
                if e.is_refusal() {
                    self.negative.put(key.clone(), now, e.clone());
                }
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

    /// The one in-flight upstream call for `key`, started if there is none.
    fn flight(self: &Arc<Self>, key: Key) -> Flight {
        match self.batch_flights(vec![key]).pop() {
            Some(flight) => flight,
            None => futures_util::future::ready(no_result()).boxed().shared(),
        }
    }

    /// One flight per key, in order: a key already being fetched joins that call; the others share new upstream
    /// calls, one per group of keys the upstream can answer together (a batch when there are several).
    fn batch_flights(self: &Arc<Self>, keys: Vec<Key>) -> Vec<Flight> {
        // The lock is held only to look up or insert, never across an await.
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let mut groups: Vec<Vec<Key>> = Vec::new();
        for key in &keys {
            if inflight.contains_key(key) || groups.iter().any(|g| g.contains(key)) {
                continue;
            }
            match groups.iter_mut().find(|g| {
                g.len() < key.batch_limit()
                    && g[0].batches_with(key, self.policy.home_region.as_deref())
            }) {
                Some(group) => group.push(key.clone()),
                None => groups.push(vec![key.clone()]),
            }
        }
        for group in groups {
            let this = Arc::clone(self);
            let task_keys = group.clone();
            let handle = tokio::spawn(async move {
                let results = this.fetch_upstream(&task_keys).await;
                let mut stored = Vec::with_capacity(results.len());
                for (key, result) in task_keys.iter().zip(results) {
                    stored.push(this.store(key, result).await);
                }
                let mut inflight = this.inflight.lock().unwrap_or_else(|p| p.into_inner());
                for key in &task_keys {
                    inflight.remove(key);
                }
                stored
            });
            let call = async move {
                handle
                    .await
                    .map_err(|e| UpstreamError::Internal(format!("fetch task failed: {e}")))
            }
            .boxed()
            .shared();
            let started = Instant::now();
            for (i, key) in group.into_iter().enumerate() {
                let flight = call
                    .clone()
                    .map(move |r| match r {
                        Ok(stored) => stored.get(i).cloned().unwrap_or_else(no_result),
                        Err(e) => Err(e),
                    })
                    .boxed()
                    .shared();
                inflight.insert(key, (flight, started));
            }
        }
        keys.iter()
            .map(|k| match inflight.get(k) {
                Some((f, _)) => f.clone(),
                None => futures_util::future::ready(no_result()).boxed().shared(),
            })
            .collect()
    }

    /// One upstream call for `keys` (a batch when there are several), counted once in the metrics.
    async fn fetch_upstream(&self, keys: &[Key]) -> Vec<Result<Fetched, UpstreamError>> {
        let started = Instant::now();
        let results = match keys {
            [key] => vec![self.upstream.fetch(key).await],
            keys => self.upstream.fetch_batch(keys).await,
        };
        let elapsed = started.elapsed();
        // Every key of a call is of one kind (`batch_flights` groups them so).
        let kind = keys.first().map_or("secret", Key::kind);
        // A batch that failed as a whole fails every key alike; report the first error as the call's.
        let error = match keys {
            [_] => results
                .first()
                .and_then(|r| r.as_ref().err())
                .map(UpstreamError::code),
            _ => results
                .iter()
                .all(Result::is_err)
                .then(|| {
                    results
                        .first()
                        .and_then(|r| r.as_ref().err())
                        .map(UpstreamError::code)
                })
                .flatten(),
        };
        self.metrics.upstream_call(kind, error, elapsed);
        for (key, result) in keys.iter().zip(&results) {
            match result {
                Ok(f) => tracing::info!(
                    key = %key,
                    bytes = f.body.len(),
                    millis = elapsed.as_millis() as u64,
                    batch = keys.len(),
                    "fetched from upstream"
                ),
                Err(e) => tracing::warn!(
                    key = %key,
                    error = %e,
                    millis = elapsed.as_millis() as u64,
                    "upstream fetch failed"
                ),
            }
        }
        results
    }

    /// Records the outcome of an upstream call for `key` and, on success, stores the value under every key it
    /// answers to.
    async fn store(
        &self,
        key: &Key,
        result: Result<Fetched, UpstreamError>,
    ) -> Result<Arc<Entry>, UpstreamError> {
        self.record_outcome(key, result.as_ref().err());
        let Fetched { body, meta } = result?;
        let keys = self.home.aliases(key, &meta);
        let etag = meta
            .version
            .as_deref()
            .map(|v| Bytes::from(format!("\"{v}\"")));
        let entry = Arc::new(Entry {
            body,
            fetched_at: self.now(),
            meta,
            etag,
            keys,
            read: AtomicBool::new(false),
        });
        if self.caching(key) {
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(
                (entry.body.len() + entry.canonical().len()) as u64,
                Ordering::Relaxed,
            );
            for k in &entry.keys {
                self.store.insert(k.clone(), Arc::clone(&entry)).await;
            }
            self.publish_size();
        }
        Ok(entry)
    }
}

/// A key a batch call had no answer for: our bug, never the client's.
fn no_result() -> Result<Arc<Entry>, UpstreamError> {
    Err(UpstreamError::Internal("a batch key got no result".into()))
}

/// Whether an entry may be served as it is.
enum Freshness {
    Fresh,
    Expired { stale_allowed: bool },
}

#[cfg(test)]
mod tests {
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

    fn policy() -> Policy {
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
        for spelling in [ARN, PARTIAL, "my/db"] {
            assert_eq!(
                text(&cache, spelling, false).await.1,
                Source::Hit,
                "{spelling}"
            );
        }
        let by_version = Key::Secret(SecretKey {
            secret_id: ARN.into(),
            selector: VersionSelector::Id("v-1".into()),
        });
        let (entry, source) = cache.get(&by_version, false).await.expect("value");
        assert_eq!(source, Source::Hit);
        assert_eq!(entry.etag().map(|t| &t[..]), Some(&b"\"v-1\""[..]));
        assert_eq!(calls(&up), 1);
        assert_eq!(cache.size().0, 1, "one entry, however many names");
        // A refresh of any spelling refreshes the secret once, and every spelling sees it.
        tokio::time::advance(Duration::from_secs(101)).await;
        set(&up, Ok("{\"new\":1}"));
        assert_eq!(text(&cache, PARTIAL, false).await.1, Source::Miss);
        assert_eq!(
            text(&cache, "my/db", false).await,
            ("{\"new\":1}".into(), Source::Hit)
        );
        assert_eq!(calls(&up), 2);
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
        for spelling in ["my/db", "my/db", ARN, PARTIAL] {
            assert_eq!(text(&cache, spelling, true).await.1, Source::Refreshed);
        }
        assert_eq!(calls(&up), 1);
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
}
