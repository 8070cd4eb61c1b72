//! Scenario 11: refresh-ahead keeps the upstream's latency out of every read. One cached secret (TTL 2 s,
//! refresh-ahead at half the TTL) is read every 50 ms while every upstream call takes 500 ms and the secret's value
//! changes every twenty reads. A read fails the row unless it is a 200 cache hit answered in under 450 ms: one that
//! waited on a refresh would take the upstream's 500 ms.
//!
//! The target is a wall-clock one, so it lives here and not in `make test`: there,
//! tests/tests/extension_beyond.rs checks that every read is a hit and only reports the worst time.

use std::time::{Duration, Instant};

use super::{leaks_in, Outcome, RssSampler, Scale};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Every upstream call takes this long.
const UPSTREAM_DELAY: Duration = Duration::from_millis(500);

/// A read slower than this waited on the upstream.
const BOUND: Duration = Duration::from_millis(450);

/// Runs the scenario for `scale.refresh_ahead_run`.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let name = unique("refresh-ahead");
    let canary = |n: u64| format!("canary-refresh-ahead-{n}");
    let mut written = vec![canary(0)];
    seed::secret(&sm, &name, &written[0]).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "2"),
            ("PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD", "50"),
            ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
        ],
    )
    .await;
    let query = format!("secretId={name}");
    let warm = ext.get_secret(&query).await.status == 200;
    let rss = RssSampler::start(ext.pid());
    proxy.set_fault(Fault::Delay(UPSTREAM_DELAY));
    let calls_before = proxy.count("GetSecretValue");
    let (mut lat, mut failed, mut values) = (Vec::new(), 0u64, std::collections::BTreeSet::new());
    // Error bodies, scanned for the values: a secret may appear only in a 200 body of the secret itself.
    let (mut errors, mut bodies) = (0u64, String::new());
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < scale.refresh_ahead_run {
        if n % 20 == 10 {
            written.push(canary(n));
            seed::new_value(&sm, &name, &canary(n)).await;
        }
        let t = Instant::now();
        let r = ext.get_secret(&query).await;
        let took = t.elapsed();
        lat.push(took);
        let hit = r.header("x-secretcache-cache") == Some("hit");
        if r.status != 200 {
            errors += 1;
            bodies.push_str(&r.text());
        } else if let Some(v) = r.json()["SecretString"].as_str() {
            values.insert(v.to_owned());
        }
        if r.status != 200 || !hit || took >= BOUND {
            failed += 1;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refreshes = proxy.count("GetSecretValue") - calls_before;
    proxy.set_fault(Fault::None);
    // The refreshes ran in the background across the TTLs, and picked up the new values.
    let refreshed = refreshes >= 2 && values.len() >= 2;
    let logs = ext.logs();
    let max_ms = lat.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Outcome {
        scenario: format!(
            "11. refresh-ahead: reads every 50 ms for {} s while every upstream call takes 500 ms",
            scale.refresh_ahead_run.as_secs()
        ),
        sent: lat.len() as u64,
        failed: failed + u64::from(!warm) + u64::from(!refreshed),
        p99_ms: percentile_ms(&lat, 99.0),
        max_rss_kib: rss.max(),
        rule: format!(
            "each read a 200 cache hit under {} ms; max {max_ms:.1} ms; {refreshes} background refreshes, {} values \
             seen",
            BOUND.as_millis(),
            values.len()
        ),
        scanned: logs.lines().count() as u64 + errors,
        leaks: leaks_in(&logs, &written) + leaks_in(&bodies, &written),
    }
}
