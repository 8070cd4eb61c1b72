//! Item 10 (issue 31): the cache at scale. A fresh process of ours, sized to hold them, reads `BENCH_SCALE_SECRETS`
//! (10,000) secrets of 4 KiB once each, which fills its cache, then once more each: every second read must be a hit
//! (ours says so in `x-secretcache-cache`). Then its resident memory and heap, as item 5 reads them, and the hit
//! latency of one keep-alive connection whose reads go round every cached key in turn (no two reads in a row share a
//! key, so nothing stays warm in the CPU's caches that a single-key load would keep there).
//!
//! Baselines: for memory, the minimal server's idle figure plus the values' raw bytes (as in item 5); for latency, the
//! minimal server answering a body as long as ours, under the same requests (it ignores the path). This runs in the
//! unpinned phase before the hit load, like the SDK rows: servers and load generator share both CPUs. No peer: the
//! AWS Secrets Manager Agent caches at most 1,000 secrets, so it would evict, and its figures would not be those of
//! 10,000 cached secrets.

use std::time::Instant;

use super::memory::{anon_mib, rss_mib, SETTLE};
use super::{read_each, Fixture, TOKEN_HEADER};
use crate::load::{Ask, LoadResult, LoadSpec};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, spawn_ours_with, PeerCmd};
use crate::Settings;

/// Keep-alive connections of the latency load: a lone reader, as row 1's first load point (there pinned).
const CONNECTIONS: usize = 1;
/// Fresh processes filled per run: one fill reads every secret from moto, whose lookups scan all its secrets (about
/// 4 ms a read at 10,000: 40 s a fill), so one is what a run can afford; memory after it varies little between
/// processes (item 5's repeats are within 1%).
const FILLS: usize = 1;
/// Cache budget per secret (`PARAMETERS_SECRETS_EXTENSION_CACHE_BYTES` = this × the count). Ours weighs an entry at
/// least budget ÷ entry count (how it bounds both with one capacity), here 10 KiB, more than the ~4.4 KB answer of a
/// 4 KiB secret, so the count is the limit.
const BYTES_PER_SECRET: usize = 10 << 10;

/// `secretcache_cache_entries` from ours' `/metrics`, when it answers.
async fn cached_entries(port: u16, token: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let r = secretcache_tests::http::get(&url, &[(TOKEN_HEADER, token)])
        .await
        .ok()?;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix("secretcache_cache_entries "))
        .and_then(|v| v.trim().parse().ok())
}

/// What the repeats measured, for the rows and the JSON.
#[derive(Debug, Default, serde::Serialize)]
struct Samples {
    baseline_rss_mib: Vec<f64>,
    baseline_anon_mib: Vec<f64>,
    rss_mib: Vec<f64>,
    anon_mib: Vec<f64>,
    /// Entries ours reported in `/metrics` after the second reads.
    entries: Vec<f64>,
    /// Seconds ours took to read every secret the first time (each a miss, fetched from moto).
    fill_seconds: Vec<f64>,
    baseline_load: Vec<LoadResult>,
    load: Vec<LoadResult>,
    failed_reads: u64,
    not_hits: u64,
}

/// Runs item 10.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
    peer: Option<&PeerCmd>,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let n = settings.scale_secrets;
    if fx.memory_ids.len() < n {
        return Err(format!(
            "the fixture holds {} bulk secrets, the scale rows need {n}",
            fx.memory_ids.len()
        ));
    }
    let ids = &fx.memory_ids[..n];
    let payload_mib = (n * settings.memory_secret_bytes) as f64 / (1024.0 * 1024.0);
    // CACHE_SIZE counts secrets (as the AWS extension's does: a secret's other spellings weigh nothing), so exactly `n`
    // of them fit; the byte budget is set so that it is not the limit.
    let (size, bytes) = (n.to_string(), (n * BYTES_PER_SECRET).to_string());
    let env = [
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", size.as_str()),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_BYTES", bytes.as_str()),
    ];
    let mut s = Samples::default();
    let mut lens = (usize::MAX, 0);
    for repeat in 0..FILLS {
        let ours = spawn_ours_with(&fx.moto, &env, None).await?;
        let (port, token) = (ours.port(), ours.token());
        let t = Instant::now();
        let first = read_each(port, &token, ids).await?;
        s.fill_seconds.push(t.elapsed().as_secs_f64());
        s.failed_reads += first.iter().filter(|r| r.status != 200).count() as u64;
        tokio::time::sleep(SETTLE).await;
        s.rss_mib.push(rss_mib(ours.pid())?);
        s.anon_mib.push(anon_mib(ours.pid())?);
        // The second read of each must be a hit, or the figures above are not "N cached secrets".
        let second = read_each(port, &token, ids).await?;
        s.not_hits += second.iter().filter(|r| !r.hit).count() as u64;
        if let Some(e) = cached_entries(port, &token).await {
            s.entries.push(e);
        }
        // Each key's own length (names and dates differ by a byte or two): a wrong one counts as an error.
        let asks: Vec<Ask> = ids
            .iter()
            .zip(&second)
            .map(|(id, r)| Ask::new(format!("/secretsmanager/get?secretId={id}"), r.len))
            .collect();
        lens = second
            .iter()
            .fold(lens, |(lo, hi), r| (lo.min(r.len), hi.max(r.len)));
        let body_len = second.first().map_or(0, |r| r.len);

        let b = spawn_baseline(body_len, None).await?;
        tokio::time::sleep(SETTLE).await;
        let (idle, idle_anon) = (rss_mib(b.pid())?, anon_mib(b.pid())?);
        s.baseline_rss_mib.push(idle + payload_mib);
        s.baseline_anon_mib.push(idle_anon + payload_mib);
        let spec = |addr, pid, token: &str, asks: Vec<Ask>| LoadSpec {
            addr,
            requests: asks,
            headers: vec![(TOKEN_HEADER.to_owned(), token.to_owned())],
            connections: CONNECTIONS,
            warmup: settings.warmup(),
            duration: settings.window(),
            server_pid: pid,
        };
        // The baseline ignores path and token, but gets the same bytes so the client does the same work.
        let same_len = asks
            .iter()
            .map(|a| Ask::new(a.path_and_query.clone(), body_len))
            .collect();
        let base =
            crate::load::run(&spec(b.addr(), b.pid(), "baseline-ignores-it", same_len)).await?;
        drop(b);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mine = crate::load::run(&spec(addr, ours.pid(), &token, asks)).await?;
        eprintln!(
            "  scale r{}: {n} secrets read in {:.1} s; RSS {:.1} MiB; hits over {n} keys p50 {:.0} µs (baseline {:.0})",
            repeat + 1,
            s.fill_seconds.last().copied().unwrap_or(0.0),
            s.rss_mib.last().copied().unwrap_or(0.0),
            mine.p50_us,
            base.p50_us
        );
        s.baseline_load.push(base);
        s.load.push(mine);
    }
    let raw = serde_json::json!({
        "secrets": n,
        "cache_size": size,
        "cache_bytes": bytes,
        "body_bytes": { "min": lens.0, "max": lens.1 },
        "samples": s,
    });
    Ok((rows(settings, n, payload_mib, peer.is_some(), &s), raw))
}

fn rows(settings: &Settings, n: usize, payload_mib: f64, peer: bool, s: &Samples) -> Vec<Row> {
    let mut memory_note = format!(
        "baseline: the minimal server's idle RSS + the values' {payload_mib:.1} MiB; ours sized to hold them: \
         CACHE_SIZE {n}, CACHE_BYTES {} KiB per secret; one fresh process, each secret read once, then again (a \
         hit)",
        BYTES_PER_SECRET >> 10
    );
    if s.failed_reads + s.not_hits > 0 {
        memory_note.push_str(&format!(
            "; failed reads {}, second reads not hits {}",
            s.failed_reads, s.not_hits
        ));
    }
    if s.entries.iter().any(|&e| e < n as f64) {
        let entries: Vec<String> = s.entries.iter().map(|e| format!("{e:.0}")).collect();
        memory_note.push_str(&format!(
            "; entries cached (its /metrics): {}",
            entries.join(", ")
        ));
    }
    if peer {
        memory_note.push_str(
            "; no peer: the AWS Secrets Manager Agent caches at most 1,000 secrets (it would evict)",
        );
    }
    let errors: u64 = s
        .load
        .iter()
        .chain(&s.baseline_load)
        .map(|r| r.errors)
        .sum();
    let mut hit_note = format!(
        "{CONNECTIONS} keep-alive connection, reads round all {n} keys in turn, unpinned; baseline: the minimal server \
         answering a body as long (it ignores the path)"
    );
    if errors > 0 {
        hit_note.push_str(&format!(
            "; {errors} errors (non-200 or wrong length) across the runs"
        ));
    }
    let pick = |v: &[LoadResult], f: fn(&LoadResult) -> f64| {
        Cell::of(&v.iter().map(f).collect::<Vec<_>>())
    };
    let kib = settings.memory_secret_bytes / 1024;
    vec![
        Row::new(
            10,
            &format!("scale: RSS with {n} cached secrets of {kib} KiB"),
            "MiB",
            Cell::of(&s.baseline_rss_mib),
            Cell::of(&s.rss_mib),
            Cell::Absent,
        )
        .note(memory_note),
        Row::new(
            10,
            &format!("scale: heap (RssAnon) with {n} cached secrets"),
            "MiB",
            Cell::of(&s.baseline_anon_mib),
            Cell::of(&s.anon_mib),
            Cell::Absent,
        )
        .note(format!(
            "baseline: the minimal server's idle heap + the values' {payload_mib:.1} MiB"
        )),
        Row::new(
            10,
            &format!("scale: hit over {n} keys, {CONNECTIONS} conn: latency p50"),
            "µs",
            pick(&s.baseline_load, |r| r.p50_us),
            pick(&s.load, |r| r.p50_us),
            Cell::Absent,
        )
        .note(hit_note),
        Row::new(
            10,
            &format!("scale: hit over {n} keys, {CONNECTIONS} conn: latency p99"),
            "µs",
            pick(&s.baseline_load, |r| r.p99_us),
            pick(&s.load, |r| r.p99_us),
            Cell::Absent,
        ),
    ]
}
