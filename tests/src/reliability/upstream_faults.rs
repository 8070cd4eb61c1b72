//! Scenario 2: bursts of throttling, 500s, dropped connections and 2 s delays from the fault-injecting proxy, then a
//! full outage. Two rows: a cached secret (stale answers allowed, never a failure) and uncached reads (a clear error
//! within the upstream timeout, never a hang).

use std::time::{Duration, Instant};

use super::{leaks_in, Outcome, RssSampler, Scale};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Scenario 2: bursts of throttling, 500s, dropped connections and 2 s delays, then a full outage.
/// Returns two rows: a cached (stale-allowed) secret, and uncached reads.
pub async fn run(scale: Scale) -> Vec<Outcome> {
    let moto = Moto::shared().await;
    let secret = "canary-faults-value".to_string();
    let hot = unique("hot");
    seed::secret(&moto.sm_client().await, &hot, &secret).await;
    // Uncached reads name secrets that do not exist (404 when healthy).
    let cold = unique("cold");
    let proxy = FaultInjectingProxy::start(moto).await;
    let timeout_ms = 1000;
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "1"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", &timeout_ms.to_string()),
            ("PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD", "0"),
            ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
        ],
    )
    .await;
    let hot_query = format!("secretId={hot}");
    assert_eq!(ext.get_secret(&hot_query).await.status, 200);
    let rss = RssSampler::start(ext.pid());
    let phases = [
        (Fault::Throttle, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::ServerError, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Drop, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Delay(Duration::from_secs(2)), scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Hang, scale.outage),
    ];
    let (mut hot_lat, mut hot_failed) = (Vec::new(), 0u64);
    let (mut cold_lat, mut cold_failed) = (Vec::new(), 0u64);
    let mut bodies = String::new();
    let mut n = 0u64;
    for (fault, length) in phases {
        proxy.set_fault(fault);
        let start = Instant::now();
        while start.elapsed() < length {
            let t = Instant::now();
            let r = ext.get_secret(&hot_query).await;
            hot_lat.push(t.elapsed());
            if r.status != 200 || r.json()["SecretString"] != secret.as_str() {
                hot_failed += 1;
            }
            if n.is_multiple_of(5) {
                let t = Instant::now();
                let r = ext.get_secret(&format!("secretId={cold}/{n}")).await;
                let took = t.elapsed();
                cold_lat.push(took);
                bodies.push_str(&r.text());
                // Uncached: a clear error that says what happened, never a hang past the timeout. A correctness bound
                // in the fast subset too: under 2 s, it tells the 1 s timeout honoured from a wait for the 2 s delay.
                let allowed: &[u16] = if fault == Fault::None {
                    &[404]
                } else {
                    &[429, 502, 504]
                };
                if !allowed.contains(&r.status) || took > Duration::from_millis(timeout_ms + 500) {
                    cold_failed += 1;
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    proxy.set_fault(Fault::None);
    let logs = ext.logs();
    let secrets = [secret];
    let max_rss = rss.max();
    vec![
        Outcome {
            scenario: "2a. faults: cached secret through bursts and outage".into(),
            sent: hot_lat.len() as u64,
            failed: hot_failed,
            p99_ms: percentile_ms(&hot_lat, 99.0),
            max_rss_kib: max_rss,
            rule: format!(
                "any non-200 fails (stale allowed); outage {} s",
                scale.outage.as_secs()
            ),
            scanned: logs.lines().count() as u64,
            leaks: leaks_in(&logs, &secrets),
        },
        Outcome {
            scenario: "2b. faults: uncached reads".into(),
            sent: cold_lat.len() as u64,
            failed: cold_failed,
            p99_ms: percentile_ms(&cold_lat, 99.0),
            max_rss_kib: max_rss,
            rule: format!(
                "must be 429/502/504 (404 when healthy) within timeout {timeout_ms} ms + 500"
            ),
            scanned: cold_lat.len() as u64,
            leaks: leaks_in(&bodies, &secrets),
        },
    ]
}
