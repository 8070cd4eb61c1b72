//! Per-key backoff while the upstream fails: the policy (the client crate's `Backoff`), the bounded memory of failing
//! keys, and the questions the rest of the cache asks of it (is this key backing off, is the upstream failing).

use std::time::Duration;

use secretcache_client::backoff::{Backoff as RetryPolicy, Jitter};
use tokio::time::Instant;

use crate::clock::WallClock;
use crate::error::UpstreamError;
use crate::request::Key;

use super::memory;
use super::{Cache, Upstream};

/// Exponential backoff with jitter for a key whose upstream calls fail transiently.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    pub(super) failures: u32,
    pub(super) retry_at: Instant,
}

/// First retry after about this long; doubles per failure up to [`BACKOFF_MAX`].
pub(super) const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Probes run in the background, so a short cap costs no request any latency and recovery is quick.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The policy: exponential from [`BACKOFF_BASE`], capped at [`BACKOFF_MAX`], with "equal jitter" (half fixed, half
/// random) so that many environments failing together do not retry in lockstep.
const POLICY: RetryPolicy = RetryPolicy::new(BACKOFF_BASE, BACKOFF_MAX).with_jitter(Jitter::Equal);

impl Backoff {
    /// The wait after `failures` consecutive failures.
    pub(super) fn delay(failures: u32) -> Duration {
        POLICY.delay(failures)
    }
}

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// Whether the upstream looks like it is failing: some key's last call failed transiently (it is in backoff), or
    /// some call has been running for longer than `slow`.
    pub(super) fn upstream_failing(&self, slow: Duration) -> bool {
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
    pub(super) fn in_flight_for(&self, key: &Key) -> Option<Duration> {
        let inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.get(key).map(|(_, started)| started.elapsed())
    }

    /// `None` when the key is not in backoff; otherwise whether its retry is due at `now`.
    pub(super) fn backoff_state(&self, key: &Key, now: Instant) -> Option<bool> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.get(key).map(|b| now >= b.retry_at)
    }

    pub(super) fn record_outcome(&self, key: &Key, error: Option<&UpstreamError>) {
        let now = self.clock.now();
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let forgotten = match error {
            None => {
                backoff.remove(key);
                self.negative.forget(key);
                0
            }
            Some(e) if e.is_transient() => {
                let failures = backoff.get(key).map_or(1, |b| b.failures.saturating_add(1));
                let retry_at = now + Backoff::delay(failures);
                // Bounded: the keys are whatever ids callers send. The one whose retry has been due longest goes.
                memory::insert_bounded(
                    &mut backoff,
                    key.clone(),
                    Backoff { failures, retry_at },
                    |b| b.retry_at,
                )
            }
            // An answer about the secret itself ends any backoff: it is not an outage. Not-found and denied are
            // remembered for a moment, so a client retrying in a loop does not turn into an upstream loop.
            Some(e) => {
                backoff.remove(key);
                if e.is_refusal() {
                    self.negative.put(key.clone(), now, e.clone())
                } else {
                    0
                }
            }
        };
        drop(backoff);
        self.metrics
            .set_keys_remembered(self.remembered_keys(), forgotten);
    }

    /// Keys in the per-key memories now (backoff, refusals, `refreshNow` calls).
    pub(super) fn remembered_keys(&self) -> u64 {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner()).len();
        (backoff + self.negative.len() + self.refreshed.len()) as u64
    }

    pub(super) fn caching(&self, key: &Key) -> bool {
        self.policy.max_entries > 0 && !self.policy.ttl(key).is_zero()
    }
}
