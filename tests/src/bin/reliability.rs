//! `make reliability`: every scenario at full scale, one after another, then a table of requests sent, failed,
//! p99 latency and max RSS. Raw rows go to target/reliability/results.json. Exits non-zero if any row fails.
//! `RELIABILITY_ONLY=<module>[,<module>]` (`load`, `sdk_soak`, ...) runs only those scenarios.

use secretcache_tests::reliability::{self, Scale};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let scale = Scale::full();
    // RELIABILITY_ONLY=sdk_soak,load runs only the scenarios named (by their module names); all by default.
    let only = std::env::var("RELIABILITY_ONLY").ok();
    let runs = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n.trim() == name))
    };
    let mut rows = Vec::new();
    if runs("load") {
        eprintln!("1/10 load ({} requests)", scale.load_requests);
        rows.push(reliability::load::run(scale).await);
    }
    if runs("upstream_faults") {
        eprintln!("2/10 upstream faults (outage {} s)", scale.outage.as_secs());
        rows.extend(reliability::upstream_faults::run(scale).await);
    }
    if runs("rotation_under_load") {
        eprintln!(
            "3/10 rotation under load ({} s of /items through the zips)",
            scale.rotation_run.as_secs()
        );
        rows.push(reliability::rotation_under_load::run(scale).await);
    }
    if runs("hostile_input") {
        eprintln!("4/10 hostile input");
        rows.push(reliability::hostile_input::run().await);
    }
    if runs("connection_exhaustion") {
        eprintln!("5/10 connection exhaustion");
        rows.push(reliability::connection_exhaustion::run(scale).await);
    }
    if runs("lifecycle_faults") {
        eprintln!("6/10 lifecycle faults");
        rows.extend(reliability::lifecycle_faults::run().await);
    }
    if runs("invoke_outage") {
        eprintln!(
            "7/10 INVOKEs through a {} s outage in the local Lambda environment",
            scale.invoke_outage.as_secs()
        );
        rows.push(reliability::invoke_outage::run(scale).await);
    }
    if runs("managed_instances") {
        eprintln!(
            "8/10 Managed Instances: concurrent readers through a {} s outage",
            scale.outage.as_secs()
        );
        rows.push(reliability::managed_instances::run(scale).await);
    }
    if runs("refresh_ahead") {
        eprintln!(
            "9/10 refresh-ahead: {} s of reads while every upstream call takes 500 ms",
            scale.refresh_ahead_run.as_secs()
        );
        rows.push(reliability::refresh_ahead::run(scale).await);
    }
    if runs("sdk_soak") {
        eprintln!(
            "10/10 the SDK protocol: {} s of signed reads and writes from several clients, TTL 1 s",
            scale.sdk_soak.as_secs()
        );
        rows.push(reliability::sdk_soak::run(scale).await);
    }
    let (scanned, leaks) = rows
        .iter()
        .fold((0, 0), |(s, l), r| (s + r.scanned, l + r.leaks));
    println!("{}", reliability::table(&rows));
    println!("Secrecy: {scanned} log lines and bodies scanned for the secret values used; {leaks} found.");
    let dir = secretcache_tests::workspace_root().join("target/reliability");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(json) = serde_json::to_string_pretty(&rows) {
        let _ = std::fs::write(dir.join("results.json"), json);
    }
    if rows.iter().all(|r| r.passed()) && leaks == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("FAILED: see the rows with failures above");
        std::process::ExitCode::FAILURE
    }
}
