//! Single-flight: one upstream call per key however many readers miss at once, batches of misses in one call, and
//! storing answers (with their aliases and ETags) once they land.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use moka::ops::compute::{CompResult, Op};
use tokio::time::Instant;

use super::alias::Meta;
use crate::clock::WallClock;
use crate::error::UpstreamError;
use crate::request::Key;

use super::alias;
use super::{Cache, Entry, Fetched, Upstream};

/// The ETag of an answer: its version, quoted, and for a parameter read without decryption a distinct tag (its value
/// may be the ciphertext of the same version), so that `If-None-Match` from one never answers 304 for the other.
pub(super) fn entity_tag(key: &Key, meta: &Meta) -> Option<String> {
    let version = meta.version.as_deref()?;
    Some(match key {
        Key::Parameter(p) if !p.with_decryption => format!("\"{version}-encrypted\""),
        _ => format!("\"{version}\""),
    })
}

/// A key a batch call had no answer for: our bug, never the client's.
pub(super) fn no_result() -> Result<Arc<Entry>, UpstreamError> {
    Err(UpstreamError::Internal("a batch key got no result".into()))
}

pub(super) type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, UpstreamError>>>;

/// A key of a batch that needs the upstream: its place in the answer, the key to fetch, and its expired entry (with
/// whether it may still be served stale) if there is one.
pub(super) struct Wanted {
    pub(super) index: usize,
    pub(super) key: Key,
    pub(super) expired: Option<(Arc<Entry>, bool)>,
}

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// Whether a read may start an upstream call for `key`: always when one is already running for it (the read joins
    /// it), otherwise only while fewer than `max_pending_fetches` keys have one. A soft bound (reads racing past it
    /// may overshoot by a few): it keeps a burst of distinct misses from queueing without end behind the upstream
    /// connection pool, and tells those callers to come back instead.
    pub(super) fn admit(&self, key: &Key) -> Result<(), UpstreamError> {
        let cap = self.policy.max_pending_fetches;
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if cap == 0 || inflight.len() < cap || inflight.contains_key(key) {
            return Ok(());
        }
        let pending = inflight.len();
        drop(inflight);
        self.metrics.shed();
        Err(UpstreamError::Shed { pending })
    }

    /// A not-found or access-denied answer for `key` from moments ago, counted as a negative hit.
    pub(super) fn remembered_failure(&self, key: &Key, now: Instant) -> Option<UpstreamError> {
        if !self.caching(key) {
            return None;
        }
        let e = self.negative.get(key, now)?;
        self.metrics.negative_hit();
        tracing::debug!(key = %key, error = %e, "answered from the memory of a recent upstream refusal");
        Some(e)
    }

    /// The one in-flight upstream call for `key`, started if there is none.
    pub(super) fn flight(self: &Arc<Self>, key: Key) -> Flight {
        match self.batch_flights(vec![key]).pop() {
            Some(flight) => flight,
            None => futures_util::future::ready(no_result()).boxed().shared(),
        }
    }

    /// One flight per key, in order: a key already being fetched joins that call; the others share new upstream
    /// calls, one per group of keys the upstream can answer together (a batch when there are several).
    pub(super) fn batch_flights(self: &Arc<Self>, keys: Vec<Key>) -> Vec<Flight> {
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
    pub(super) async fn fetch_upstream(&self, keys: &[Key]) -> Vec<Result<Fetched, UpstreamError>> {
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
    /// answers to ([`alias`]). A key that already points at another secret's entry (another canonical ARN) is not
    /// taken over: both lose it (a WARN names the two ARNs), and the next read of that spelling asks the upstream.
    /// When the canonical key itself is in conflict, nothing is stored.
    pub(super) async fn store(
        &self,
        key: &Key,
        result: Result<Fetched, UpstreamError>,
    ) -> Result<Arc<Entry>, UpstreamError> {
        self.record_outcome(key, result.as_ref().err());
        let Fetched { body, meta } = result?;
        let keys = self.home.aliases(key, &meta);
        let etag = entity_tag(key, &meta);
        let entry = Arc::new(Entry::new(body, meta, etag, keys, self.now()));
        if !self.caching(key) {
            return Ok(entry);
        }
        for (i, k) in entry.keys.iter().enumerate() {
            let ours = Arc::clone(&entry);
            let outcome = self
                .store
                .entry(k.clone())
                .and_compute_with(|existing| {
                    let op = match existing {
                        Some(e) if e.value().arn() != ours.arn() => Op::Remove,
                        _ => Op::Put(ours),
                    };
                    std::future::ready(op)
                })
                .await;
            match outcome {
                CompResult::Removed(other) => {
                    self.metrics.alias_conflict();
                    tracing::warn!(
                        key = %k,
                        arn = entry.arn().unwrap_or("-"),
                        other_arn = other.value().arn().unwrap_or("-"),
                        "two secrets answered to one spelling; it is no longer cached for either"
                    );
                    if i == 0 {
                        return Ok(entry);
                    }
                }
                CompResult::Inserted(_) | CompResult::ReplacedWith(_) if i == 0 => {
                    // The eviction listener mirrors this when the primary key goes (replacements included).
                    self.entries.fetch_add(1, Ordering::Relaxed);
                    self.bytes.fetch_add(
                        (entry.body().len() + entry.canonical().len()) as u64,
                        Ordering::Relaxed,
                    );
                }
                _ => {}
            }
        }
        self.publish_size();
        Ok(entry)
    }

    /// `fresh`, fetched under another spelling of `key` (its entry's canonical key), when the upstream's answer is an
    /// answer to `key` (its ARN, name or partial ARN, and the version asked for); otherwise `key` is fetched as it is.
    /// An expired alias is refreshed through its canonical key, and that must never answer a version id with the
    /// version that is current now, nor a spelling with another secret.
    pub(super) async fn confirm(
        self: &Arc<Self>,
        key: &Key,
        fresh: Arc<Entry>,
    ) -> Result<Arc<Entry>, UpstreamError> {
        if alias::answers(key, &fresh.meta()) {
            return Ok(fresh);
        }
        tracing::debug!(key = %key, "the refreshed answer is not an answer to this spelling; fetching it as asked");
        self.flight(key.clone()).await
    }
}
