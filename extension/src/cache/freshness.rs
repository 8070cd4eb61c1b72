//! Whether an entry may be served: its TTL against a clock that counts the pauses a frozen or restored micro-VM hides,
//! and what an expired entry does (wait briefly, answer stale, or fetch).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::WallClock;
use crate::request::Key;

use super::{Cache, Entry, Lookup, Source, Upstream};

/// How long a read of an expired (but stale-allowed) entry waits for the upstream before it is answered with the
/// last good value. Healthy Secrets Manager calls take tens of milliseconds.
pub(super) const STALE_GRACE: Duration = Duration::from_millis(250);

/// Whether an entry may be served as it is.
pub(super) enum Freshness {
    Fresh,
    Expired { stale_allowed: bool },
}

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// Whether `entry` (found under `key`) is fresh; a fresh one within the refresh-ahead window starts a background
    /// refresh of its secret.
    pub(super) fn freshness(
        self: &Arc<Self>,
        key: &Key,
        entry: &Arc<Entry>,
        now: Instant,
    ) -> Freshness {
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
    pub(super) async fn expired(
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
        if let Err(e) = self.admit(&fkey) {
            // Too many reads wait on the upstream already: the last good value if it may be served, else 429.
            return if stale_allowed { stale(self) } else { Err(e) };
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
            Ok(fresh) => Ok((self.confirm(key, fresh).await?, Source::Miss)),
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

    /// The clock's time; a pause it detects is logged, and under SnapStart drops every cached value first.
    pub(crate) fn now(&self) -> Instant {
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
}
