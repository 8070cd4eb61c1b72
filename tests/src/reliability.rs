//! The reliability suite's scenarios, against the real binary, moto, and (through the fault-injecting proxy) the
//! faults moto cannot produce. Each scenario is one module whose `run` returns [`Outcome`] rows for the table
//! `make reliability` prints; the fast subset runs inside `make test` (tests/tests/reliability.rs) with the same code
//! at a smaller [`Scale`].
//!
//! The scenarios, by row: [`load`] (1), [`upstream_faults`] (2a, 2b), [`rotation_under_load`] (3),
//! [`hostile_input`] (4), [`connection_exhaustion`] (5), [`lifecycle_faults`] (8a-8c), [`invoke_outage`] (9),
//! [`managed_instances`] (10) and [`refresh_ahead`] (11, `make reliability` only: its rule is a wall-clock target).
//! This module holds what they share: the scale, the row and its table, the leak count and the RSS sampler.
//!
//! Every scenario puts a unique canary in its secret values and scans every log line and every error body it saw
//! for them: a secret may appear only in a 200 body of the secret itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde::Serialize;

pub mod connection_exhaustion;
pub mod hostile_input;
pub mod invoke_outage;
pub mod lifecycle_faults;
pub mod load;
pub mod managed_instances;
pub mod refresh_ahead;
pub mod rotation_under_load;
pub mod sdk_soak;
pub mod upstream_faults;

pub(crate) const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Requests in the load scenario.
    pub load_requests: usize,
    /// Length of the full-outage phase.
    pub outage: Duration,
    /// Length of each burst phase (throttle, 500, drop, delay).
    pub burst: Duration,
    /// Idle connections held open in the exhaustion scenario.
    pub idle_connections: usize,
    /// Length of the rotation-under-load run (the rotation happens in its middle third).
    pub rotation_run: Duration,
    /// `/items` requests per second during it.
    pub rotation_rate: u32,
    /// How long the upstream is black-holed while the Lambda environment keeps invoking (scenario 9).
    pub invoke_outage: Duration,
    /// How long the refresh-ahead scenario reads (11).
    pub refresh_ahead_run: Duration,
    /// How long the SDK protocol soak runs (12).
    pub sdk_soak: Duration,
}

impl Scale {
    /// The subset inside `make test`.
    pub fn fast() -> Self {
        Self {
            load_requests: 2_000,
            outage: Duration::from_secs(8),
            burst: Duration::from_secs(2),
            idle_connections: 1_000,
            rotation_run: Duration::from_secs(6),
            rotation_rate: 20,
            // Long enough for the keys' backoff (0.5 s doubling, capped at 5 s) to expire several times and reach its
            // cap, so that invokes meet refreshes due again mid-outage: where an extension that held an INVOKE on
            // the upstream would show. The minute is `make reliability`'s.
            invoke_outage: Duration::from_secs(10),
            refresh_ahead_run: Duration::from_secs(7),
            sdk_soak: Duration::from_secs(6),
        }
    }
    /// `make reliability`.
    pub fn full() -> Self {
        Self {
            load_requests: 10_000,
            outage: Duration::from_secs(60),
            burst: Duration::from_secs(4),
            idle_connections: 1_000,
            rotation_run: Duration::from_secs(30),
            rotation_rate: 50,
            invoke_outage: Duration::from_secs(60),
            refresh_ahead_run: Duration::from_secs(30),
            sdk_soak: Duration::from_secs(180),
        }
    }
}

/// One row of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// What was tried.
    pub scenario: String,
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed by the scenario's own rule (stated in `rule`).
    pub failed: u64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Highest resident memory of the extension seen, KiB.
    pub max_rss_kib: u64,
    /// What counts as a failure here, and anything else worth knowing.
    pub rule: String,
    /// Log lines and bodies scanned for secret values.
    pub scanned: u64,
    /// Secret values found where they must not be.
    pub leaks: u64,
}

impl Outcome {
    /// Whether the row passes: no failures and no leaks.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.leaks == 0
    }
}

/// The Markdown table of `rows`.
pub fn table(rows: &[Outcome]) -> String {
    let mut out = String::from(
        "| scenario | sent | failed | p99 ms | max RSS MiB | leaks / scanned | rule |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} / {} | {} |\n",
            r.scenario,
            r.sent,
            r.failed,
            r.p99_ms,
            r.max_rss_kib as f64 / 1024.0,
            r.leaks,
            r.scanned,
            r.rule
        ));
    }
    out
}

/// Counts occurrences of any of `secrets` in `text`.
pub fn leaks_in(text: &str, secrets: &[String]) -> u64 {
    secrets
        .iter()
        .map(|s| text.matches(s.as_str()).count() as u64)
        .sum()
}

/// Samples a process's RSS every 20 ms until dropped; `max()` gives the highest seen.
pub(crate) struct RssSampler {
    max: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub(crate) fn start(pid: Option<u32>) -> Self {
        let max = Arc::new(Mutex::new(pid.and_then(crate::rss_kib).unwrap_or(0)));
        let m = Arc::clone(&max);
        let task = tokio::spawn(async move {
            let Some(pid) = pid else { return };
            loop {
                if let (Some(rss), Ok(mut m)) = (crate::rss_kib(pid), m.lock()) {
                    *m = (*m).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { max, task }
    }
    pub(crate) fn max(&self) -> u64 {
        self.max.lock().map(|m| *m).unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A keep-alive connection for load generation.
pub(crate) async fn connect(port: u16) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}
