//! Scenario 5: many idle connections held open; a new client is still served, and memory stays bounded.

use std::time::{Duration, Instant};

use super::{Outcome, RssSampler, Scale};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Scenario 5: many idle connections held open; a new client is still served, and memory stays bounded.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let c = unique("c");
    seed::secret(&moto.sm_client().await, &c, "canary-conn").await;
    let query = format!("secretId={c}");
    let ext = Standalone::spawn(moto, &[]).await;
    assert_eq!(ext.get_secret(&query).await.status, 200);
    let rss = RssSampler::start(ext.pid());
    let mut idle = Vec::with_capacity(scale.idle_connections);
    for _ in 0..scale.idle_connections {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", ext.port())).await {
            idle.push(s);
        }
    }
    let held = idle.len();
    let mut lat = Vec::new();
    let mut failed = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3), ext.get_secret(&query)).await;
        lat.push(t.elapsed());
        if !matches!(r, Ok(ref r) if r.status == 200) {
            failed += 1;
        }
    }
    let max_rss = rss.max();
    drop(idle);
    Outcome {
        scenario: format!("5. {held} idle connections held"),
        sent: lat.len() as u64,
        failed,
        p99_ms: percentile_ms(&lat, 99.0),
        max_rss_kib: max_rss,
        rule: "each new request must get 200 within 3 s; RSS bound 64 MiB".into(),
        scanned: 0,
        leaks: 0,
    }
}
