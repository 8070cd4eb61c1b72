//! Refreshing before readers need it: `refreshNow`, the INVOKE-time and timer-driven refresh of entries near expiry,
//! prefetch, and refresh-ahead in the background.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::clock::WallClock;
use crate::error::UpstreamError;
use crate::request::Key;

use super::flight::no_result;
use super::{primary, Cache, Lookup, RefreshReport, Source, Upstream};

impl<U: Upstream, W: WallClock> Cache<U, W> {
    /// `refreshNow`: a fresh upstream call for the secret, or the one another `refreshNow` of it made within the
    /// interval under any of its `spellings` (the canonical key first; just the key asked for when it is not cached).
    pub(super) async fn refresh_now(self: &Arc<Self>, spellings: &[Key], now: Instant) -> Lookup {
        let recent = spellings.iter().find_map(|k| self.refreshed.get(k, now));
        let flight = match (recent, spellings.first()) {
            (Some(recent), _) => {
                self.metrics.refresh_now_coalesced();
                recent
            }
            (None, Some(key)) => {
                self.admit(key)?;
                let flight = self.flight(key.clone());
                let forgotten = self.refreshed.put(key.clone(), now, flight.clone());
                self.metrics
                    .set_keys_remembered(self.remembered_keys(), forgotten);
                flight
            }
            (None, None) => return no_result().map(|e| (e, Source::Refreshed)),
        };
        Ok((flight.await?, Source::Refreshed))
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

    /// Fetches the secrets that carry one of the tag keys `keys` into the cache (init prefetch): one ListSecrets
    /// (a page per 100 secrets), then BatchGetSecretValue calls of 20. At most `limit` secrets; a failure is logged,
    /// never fatal.
    pub async fn prefetch_tagged(self: &Arc<Self>, keys: &[String], limit: usize) {
        if keys.is_empty() || limit == 0 {
            return;
        }
        let started = Instant::now();
        let result = self.upstream.tagged_secrets(keys, limit).await;
        self.metrics.upstream_call(
            "secret",
            result.as_ref().err().map(UpstreamError::code),
            started.elapsed(),
        );
        match result {
            Ok(names) => {
                tracing::info!(tags = ?keys, secrets = names.len(), limit, "found secrets to prefetch by tag");
                let keys = names.into_iter().map(Key::current_secret).collect();
                self.prefetch(keys).await;
            }
            Err(e) => {
                tracing::warn!(tags = ?keys, error = %e, "listing secrets by tag failed; they will be fetched on first use")
            }
        }
    }

    pub(super) fn refresh_in_background(self: &Arc<Self>, key: Key) {
        let flight = self.flight(key);
        // The flight is already a spawned task; this only logs its outcome.
        tokio::spawn(async move {
            if let Err(e) = flight.await {
                tracing::warn!(error = %e, "refresh-ahead failed; the cached value is kept until it expires");
            }
        });
    }
}
