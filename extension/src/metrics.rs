//! Counters the cache keeps, rendered as Prometheus text (`GET /metrics`) and as a CloudWatch EMF log line.
//!
//! Plain atomics: recording is on the hit path, so it must cost a relaxed increment and nothing more. Upstream calls
//! (rare) take a small mutex for the per-code error counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the upstream latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The extension's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    entries: AtomicU64,
    bytes: AtomicU64,
    config_errors: AtomicU64,
    negative_hits: AtomicU64,
    refresh_now_coalesced: AtomicU64,
    refresh_skipped_backoff: AtomicU64,
    pauses_detected: AtomicU64,
    alias_conflicts: AtomicU64,
    region_clients: AtomicU64,
    region_clients_evicted: AtomicU64,
    keys_remembered: AtomicU64,
    keys_forgotten: AtomicU64,
    shed: AtomicU64,
    upstream: Mutex<Upstream>,
}

#[derive(Debug, Default)]
struct Upstream {
    /// Calls by kind (`secret`, `parameter`).
    calls: BTreeMap<&'static str, u64>,
    /// Errors by AWS error code (or Timeout/Unreachable).
    errors: BTreeMap<String, u64>,
    /// Cumulative counts per bucket, then +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    latency_sum: f64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Fresh cache hits.
    pub hits: u64,
    /// Lookups that needed the upstream.
    pub misses: u64,
    /// Stale values served because the upstream failed.
    pub stale: u64,
    /// Upstream calls made, all kinds.
    pub upstream_calls: u64,
    /// Upstream errors, all codes.
    pub upstream_errors: u64,
    /// Entries cached now.
    pub entries: u64,
    /// Bytes cached now.
    pub bytes: u64,
    /// Configuration values that could not be used (each replaced by its default).
    pub config_errors: u64,
    /// Reads answered from the memory of a recent not-found or access-denied.
    pub negative_hits: u64,
    /// `refreshNow` reads answered by another `refreshNow`'s call within the interval.
    pub refresh_now_coalesced: u64,
    /// Refreshes an INVOKE skipped because their key was in backoff.
    pub refresh_skipped_backoff: u64,
    /// Pauses the monotonic clock did not see (wall clock jumps).
    pub pauses_detected: u64,
    /// Spellings that two secrets' answers both claimed, and that were dropped for both.
    pub alias_conflicts: u64,
    /// Clients of other regions than the home one, held now (bounded).
    pub region_clients: u64,
    /// Clients of other regions dropped to keep within the bound.
    pub region_clients_evicted: u64,
    /// Keys held now in the memories of failing keys (backoff) and recent refusals (bounded).
    pub keys_remembered: u64,
    /// Keys those memories dropped to keep within their bound.
    pub keys_forgotten: u64,
    /// Reads refused with 429 because too many were waiting on the upstream (load shedding).
    pub shed: u64,
}

impl Metrics {
    /// A fresh cache hit.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    /// A lookup that had to go upstream.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    /// A stale value served.
    pub fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }
    /// The cache's current size.
    pub fn set_cache_size(&self, entries: u64, bytes: u64) {
        self.entries.store(entries, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }
    /// A read answered from the memory of a recent refusal.
    pub fn negative_hit(&self) {
        self.negative_hits.fetch_add(1, Ordering::Relaxed);
    }
    /// A `refreshNow` answered by a recent call.
    pub fn refresh_now_coalesced(&self) {
        self.refresh_now_coalesced.fetch_add(1, Ordering::Relaxed);
    }
    /// A due refresh skipped on INVOKE because its key is in backoff.
    pub fn refresh_skipped_backoff(&self) {
        self.refresh_skipped_backoff.fetch_add(1, Ordering::Relaxed);
    }
    /// A pause the monotonic clock did not see.
    pub fn pause_detected(&self) {
        self.pauses_detected.fetch_add(1, Ordering::Relaxed);
    }
    /// A read refused because too many were waiting on the upstream.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }
    /// A spelling two secrets' answers both claimed.
    pub fn alias_conflict(&self) {
        self.alias_conflicts.fetch_add(1, Ordering::Relaxed);
    }
    /// Other regions' clients held now, and how many were dropped to keep within the bound.
    pub fn set_region_clients(&self, held: u64, evicted: u64) {
        self.region_clients.store(held, Ordering::Relaxed);
        self.region_clients_evicted
            .fetch_add(evicted, Ordering::Relaxed);
    }
    /// Keys in the per-key memories (backoff, refusals) now, and how many were just dropped to keep within the bound.
    pub fn set_keys_remembered(&self, held: u64, forgotten: u64) {
        self.keys_remembered.store(held, Ordering::Relaxed);
        self.keys_forgotten.fetch_add(forgotten, Ordering::Relaxed);
    }
    /// How many configuration values could not be used, set once at start.
    pub fn set_config_errors(&self, n: u64) {
        self.config_errors.store(n, Ordering::Relaxed);
    }
    /// One upstream call of `kind`, failed with `error` if any, that took `elapsed`.
    pub fn upstream_call(&self, kind: &'static str, error: Option<&str>, elapsed: Duration) {
        let mut u = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        *u.calls.entry(kind).or_default() += 1;
        if let Some(code) = error {
            *u.errors.entry(code.to_owned()).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        u.latency_sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                u.buckets[i] += 1;
            }
        }
        u.buckets[BUCKETS.len()] += 1;
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let u = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            upstream_calls: u.calls.values().sum(),
            upstream_errors: u.errors.values().sum(),
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            config_errors: self.config_errors.load(Ordering::Relaxed),
            negative_hits: self.negative_hits.load(Ordering::Relaxed),
            refresh_now_coalesced: self.refresh_now_coalesced.load(Ordering::Relaxed),
            refresh_skipped_backoff: self.refresh_skipped_backoff.load(Ordering::Relaxed),
            pauses_detected: self.pauses_detected.load(Ordering::Relaxed),
            alias_conflicts: self.alias_conflicts.load(Ordering::Relaxed),
            region_clients: self.region_clients.load(Ordering::Relaxed),
            region_clients_evicted: self.region_clients_evicted.load(Ordering::Relaxed),
            keys_remembered: self.keys_remembered.load(Ordering::Relaxed),
            keys_forgotten: self.keys_forgotten.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
        }
    }

    /// Prometheus text exposition format, version 0.0.4.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let u = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "secretcache_cache_hits_total",
            "Lookups answered fresh from the cache.",
            s.hits,
        );
        counter(
            "secretcache_cache_misses_total",
            "Lookups that needed the upstream.",
            s.misses,
        );
        counter(
            "secretcache_stale_served_total",
            "Stale values served while the upstream failed.",
            s.stale,
        );
        counter(
            "secretcache_negative_hits_total",
            "Reads answered from the memory of a recent not-found or access-denied.",
            s.negative_hits,
        );
        counter(
            "secretcache_refresh_now_coalesced_total",
            "refreshNow reads answered by another refreshNow's upstream call within the interval.",
            s.refresh_now_coalesced,
        );
        counter(
            "secretcache_invoke_refreshes_skipped_backoff_total",
            "Refreshes an INVOKE skipped because the key's upstream was in backoff.",
            s.refresh_skipped_backoff,
        );
        counter(
            "secretcache_clock_pauses_total",
            "Pauses the monotonic clock did not see (the wall clock jumped ahead).",
            s.pauses_detected,
        );
        counter(
            "secretcache_shed_total",
            "Reads answered 429 because too many were waiting on the upstream (hits are never shed).",
            s.shed,
        );
        counter(
            "secretcache_alias_conflicts_total",
            "Spellings two secrets' answers both claimed; dropped for both, never served across.",
            s.alias_conflicts,
        );
        counter(
            "secretcache_region_clients_evicted_total",
            "Other regions' clients dropped to keep within their bound.",
            s.region_clients_evicted,
        );
        counter(
            "secretcache_keys_forgotten_total",
            "Keys the backoff and refusal memories dropped to keep within their bound.",
            s.keys_forgotten,
        );
        let _ = writeln!(
            out,
            "# HELP secretcache_upstream_calls_total Upstream calls made."
        );
        let _ = writeln!(out, "# TYPE secretcache_upstream_calls_total counter");
        for kind in ["secret", "parameter"] {
            let v = u.calls.get(kind).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "secretcache_upstream_calls_total{{kind=\"{kind}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP secretcache_upstream_errors_total Upstream errors by code."
        );
        let _ = writeln!(out, "# TYPE secretcache_upstream_errors_total counter");
        for (code, v) in &u.errors {
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let _ = writeln!(
                out,
                "secretcache_upstream_errors_total{{code=\"{code}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP secretcache_upstream_latency_seconds Upstream call latency."
        );
        let _ = writeln!(out, "# TYPE secretcache_upstream_latency_seconds histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "secretcache_upstream_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                u.buckets[i]
            );
        }
        let total = u.buckets[BUCKETS.len()];
        let _ = writeln!(
            out,
            "secretcache_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "secretcache_upstream_latency_seconds_sum {}",
            u.latency_sum
        );
        let _ = writeln!(out, "secretcache_upstream_latency_seconds_count {total}");
        for (name, help, v) in [
            (
                "secretcache_cache_entries",
                "Entries cached now.",
                s.entries,
            ),
            (
                "secretcache_cache_bytes",
                "Bytes of cached bodies now.",
                s.bytes,
            ),
            (
                "secretcache_region_clients",
                "Clients of other regions than the home one, held now.",
                s.region_clients,
            ),
            (
                "secretcache_keys_remembered",
                "Keys held now in the backoff and refusal memories.",
                s.keys_remembered,
            ),
            (
                "secretcache_config_errors",
                "Configuration values that could not be used and were replaced by their defaults.",
                s.config_errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }

    /// One CloudWatch Embedded Metric Format line, so CloudWatch gets metrics from the log with no agent.
    pub fn emf(&self, timestamp_millis: u64, function_name: &str) -> String {
        let s = self.snapshot();
        let names = [
            ("CacheHits", s.hits),
            ("CacheMisses", s.misses),
            ("StaleServed", s.stale),
            ("UpstreamCalls", s.upstream_calls),
            ("UpstreamErrors", s.upstream_errors),
            ("CacheEntries", s.entries),
            ("CacheBytes", s.bytes),
            ("ConfigErrors", s.config_errors),
            ("NegativeHits", s.negative_hits),
            ("RefreshNowCoalesced", s.refresh_now_coalesced),
            ("InvokeRefreshesSkippedBackoff", s.refresh_skipped_backoff),
            ("ClockPauses", s.pauses_detected),
        ];
        let mut doc = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_millis,
                "CloudWatchMetrics": [{
                    "Namespace": "secretcache",
                    "Dimensions": [["FunctionName"]],
                    "Metrics": names.iter().map(|(n, _)| serde_json::json!({
                        "Name": n,
                        "Unit": if n.ends_with("Bytes") { "Bytes" } else { "Count" },
                    })).collect::<Vec<_>>(),
                }],
            },
            "FunctionName": function_name,
        });
        for (n, v) in names {
            doc[n] = v.into();
        }
        doc.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_emf_carry_the_counters() {
        let m = Metrics::default();
        m.hit();
        m.hit();
        m.miss();
        m.upstream_call("secret", None, Duration::from_millis(20));
        m.upstream_call(
            "secret",
            Some("ResourceNotFoundException"),
            Duration::from_millis(3),
        );
        let text = m.prometheus();
        assert!(text.contains("secretcache_cache_hits_total 2"), "{text}");
        assert!(text.contains("secretcache_upstream_calls_total{kind=\"secret\"} 2"));
        assert!(text
            .contains("secretcache_upstream_errors_total{code=\"ResourceNotFoundException\"} 1"));
        assert!(text.contains("secretcache_upstream_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("secretcache_upstream_latency_seconds_bucket{le=\"+Inf\"} 2"));
        m.set_config_errors(2);
        assert!(m.prometheus().contains("secretcache_config_errors 2"));
        let emf: serde_json::Value = serde_json::from_str(&m.emf(1, "f")).expect("json");
        assert_eq!(emf["ConfigErrors"], 2);
        assert_eq!(emf["CacheHits"], 2);
        assert_eq!(emf["UpstreamErrors"], 1);
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "secretcache"
        );
    }
}
