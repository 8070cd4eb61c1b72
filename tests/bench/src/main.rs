//! `secretcache-bench` (run by `make bench` after a release build): measures items 1–9 of issue 6 and items 10–11 of
//! issue 31 in one run,
//! prints a Markdown table on stdout, and writes the raw numbers to `target/bench/`. Progress goes to stderr.
//!
//! Order of the phases: everything that starts fresh processes (cold path, memory, scale, the `/items` environments)
//! runs first, unpinned, as a cold start would, and so does the Managed Instances load (its servers must see every
//! CPU); then this process pins itself to the client CPU and the hit load runs against servers pinned to the other
//! one.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use secretcache_bench::host::Machine;
use secretcache_bench::report::Report;
use secretcache_bench::scenarios::{self, Fixture};
use secretcache_bench::targets::PeerCmd;
use secretcache_bench::Settings;

fn main() -> ExitCode {
    let settings = match Settings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("secretcache-bench: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: the load generator must stay on the one CPU it is pinned to, and a single-threaded runtime uses it
    // with no cross-thread wake-ups.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("secretcache-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(report) => {
            print!("{}", report.markdown());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("secretcache-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<Report, String> {
    let wall = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let machine = Machine::detect();
    let peer = PeerCmd::from_env();
    let out_dir = secretcache_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    // This run's peer output only: every peer start in this run appends to it.
    let peer_log = out_dir.join("peer.log");
    let _ = std::fs::remove_file(&peer_log);
    eprintln!("bench: {}", machine.describe());

    // The memory and scale rows' secrets are created only when they run, once for both.
    let max_secrets = settings.bulk_secrets();
    let fx = Fixture::prepare(max_secrets, settings.memory_secret_bytes).await?;
    eprintln!(
        "bench: moto ready with {} secrets in {:.1} s",
        max_secrets + 3 + scenarios::BATCH_IDS + scenarios::MI_IDS,
        fx.setup.as_secs_f64()
    );

    let skipped = || (Vec::new(), serde_json::Value::Null);
    let t = Instant::now();
    let (cold_rows, cold_raw) = if settings.runs("cold") {
        scenarios::cold::run(&fx, &settings, peer.as_ref(), &peer_log).await?
    } else {
        skipped()
    };
    eprintln!(
        "bench: cold path done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (mem_rows, mem_raw) = if settings.runs("memory") {
        scenarios::memory::run(&fx, &settings, peer.as_ref(), &peer_log).await?
    } else {
        skipped()
    };
    eprintln!("bench: memory done in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (scale_rows, scale_raw) = if settings.runs("scale") {
        scenarios::scale::run(&fx, &settings, peer.as_ref()).await?
    } else {
        skipped()
    };
    eprintln!("bench: scale done in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let (function_rows, function_raw) = if settings.runs("function") {
        scenarios::function::run(&fx, &settings).await
    } else {
        skipped()
    };
    eprintln!(
        "bench: /items overhead done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (batch_rows, batch_raw) = if settings.runs("batch") {
        scenarios::batch::run(&fx, &settings).await?
    } else {
        skipped()
    };
    eprintln!(
        "bench: batch reads done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (sdk_rows, sdk_raw) = if settings.runs("sdk") {
        scenarios::sdk::run(&fx, &settings).await?
    } else {
        skipped()
    };
    eprintln!(
        "bench: SDK protocol done in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let (mi_rows, mi_raw) = if settings.runs("mi") {
        scenarios::mi::run(&fx, &settings, peer.as_ref(), &peer_log).await?
    } else {
        skipped()
    };
    eprintln!(
        "bench: Managed Instances load done in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    if let Some(p) = machine.pinning {
        secretcache_bench::host::pin(std::process::id(), p.client_cpu)?;
    }
    let t = Instant::now();
    let (hit_rows, hit_raw, body_len) = if settings.runs("hit") {
        let hit =
            scenarios::hit::run(&fx, &settings, machine.pinning, peer.as_ref(), &peer_log).await?;
        (hit.rows, hit.raw, hit.body_len)
    } else {
        (Vec::new(), serde_json::Value::Null, 0)
    };
    eprintln!("bench: hit load done in {:.1} s", t.elapsed().as_secs_f64());

    let mut rows = hit_rows;
    rows.extend(cold_rows);
    rows.extend(mem_rows);
    if settings.runs("size") {
        rows.extend(scenarios::size::run(&out_dir)?);
    }
    rows.extend(function_rows);
    rows.extend(batch_rows);
    rows.extend(sdk_rows);
    rows.extend(scale_rows);
    rows.extend(mi_rows);

    let window = format!(
        "{} s measured after {} s warm-up per load point, {} repeats",
        settings.seconds, settings.warmup_seconds, settings.repeats
    );
    let header = vec![
        format!("Machine: {}.", machine.describe()),
        format!(
            "Load: {window}. Closed loop, keep-alive, hyper client on one thread. Cold path: {} fresh processes \
             each; memory: {}.",
            settings.cold_repeats(),
            settings.repeats
        ),
        format!(
            "Hit body: {} bytes (a database-credentials secret in the AWS extension's GetSecretValue shape). \
             Baseline: a minimal hyper HTTP/1.1 server (tokio, 2 workers) answering a fixed body of that size, run \
             alongside (ours, pinned to one CPU, runs one worker).",
            body_len
        ),
        "Each cell: median (min–max) of the repeats. × baseline: ours ÷ baseline per paired repeat, median \
         (min–max): below 1 is less time, CPU, memory or size; for throughput, above 1 is faster."
            .to_owned(),
        match &peer {
            Some(p) => format!("Peer (`BENCH_PEER_CMD`): `{}`.", p.0),
            None => "No peer column: set `BENCH_PEER_CMD` to add one.".to_owned(),
        },
    ];
    let report = Report {
        started_unix,
        machine,
        settings,
        peer_cmd: peer.map(|p| p.0),
        header,
        rows,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    let json = serde_json::json!({
        "report": report,
        "raw": { "hit": hit_raw, "cold": cold_raw, "memory": mem_raw, "function": function_raw, "batch": batch_raw, "sdk": sdk_raw, "scale": scale_raw, "mi": mi_raw },
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| format!("JSON: {e}"))?;
    for name in [
        format!("bench-{started_unix}.json"),
        "latest.json".to_owned(),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, &text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    std::fs::write(out_dir.join("latest.md"), report.markdown())
        .map_err(|e| format!("write latest.md: {e}"))?;
    eprintln!(
        "bench: done in {:.0} s; raw numbers in {}",
        report.wall_seconds,
        out_dir.join("latest.json").display()
    );
    Ok(report)
}
