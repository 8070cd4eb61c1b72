//! Item 5: resident memory (`VmRSS`) of a fresh process, idle and then with N secrets of 4 KiB cached; and the part of
//! it that is heap (`RssAnon`): the rest is the binary's own pages, file-backed and shared with the page cache, so
//! `VmRSS` of a bigger binary starts higher without that being memory it allocates.
//!
//! The baseline is the minimal server's idle RSS, plus, for the filled rows, the raw bytes of the secret values: the
//! least any cache holding them could use. Every secret is read once to fill the cache, and once more to check that
//! it is now served from the cache (ours says so in `x-secretcache-cache`).

use std::path::PathBuf;
use std::time::Duration;

use super::{get_secret, read_each, Fixture};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, spawn_ours, PeerCmd};
use crate::Settings;
use secretcache_tests::{rss_anon_kib, rss_kib};

/// Time for allocator and cache maintenance to settle before RSS is read.
pub(super) const SETTLE: Duration = Duration::from_millis(300);

pub(super) fn rss_mib(pid: Option<u32>) -> Result<f64, String> {
    pid.and_then(rss_kib)
        .map(|k| k as f64 / 1024.0)
        .ok_or_else(|| "could not read VmRSS".to_owned())
}

pub(super) fn anon_mib(pid: Option<u32>) -> Result<f64, String> {
    pid.and_then(rss_anon_kib)
        .map(|k| k as f64 / 1024.0)
        .ok_or_else(|| "could not read RssAnon".to_owned())
}

/// RSS samples of one target: idle, then after each fill step.
#[derive(Debug, Default, serde::Serialize)]
struct Samples {
    idle_mib: Vec<f64>,
    /// Heap part (`RssAnon`) of `idle_mib`.
    idle_anon_mib: Vec<f64>,
    /// Heap part after the largest fill step.
    full_anon_mib: Vec<f64>,
    /// `[fill step][repeat]`.
    filled_mib: Vec<Vec<f64>>,
    failed_reads: u64,
    /// Second reads of ours not answered from the cache.
    not_hits: u64,
}

/// Runs item 5.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
    peer: Option<&PeerCmd>,
    peer_log: &PathBuf,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let steps = &settings.memory_secrets;
    let mut base = Samples {
        filled_mib: vec![Vec::new(); steps.len()],
        ..Samples::default()
    };
    let mut mine = Samples {
        filled_mib: vec![Vec::new(); steps.len()],
        ..Samples::default()
    };
    let mut theirs = Samples {
        filled_mib: vec![Vec::new(); steps.len()],
        ..Samples::default()
    };
    let payload_mib = |n: usize| (n * settings.memory_secret_bytes) as f64 / (1024.0 * 1024.0);
    for _ in 0..settings.repeats {
        let b = spawn_baseline(64, None).await?;
        tokio::time::sleep(SETTLE).await;
        let idle = rss_mib(b.pid())?;
        let idle_anon = anon_mib(b.pid())?;
        base.idle_mib.push(idle);
        base.idle_anon_mib.push(idle_anon);
        for (i, &n) in steps.iter().enumerate() {
            base.filled_mib[i].push(idle + payload_mib(n));
        }
        base.full_anon_mib
            .push(idle_anon + payload_mib(steps.iter().copied().max().unwrap_or(0)));
        drop(b);

        let ours = spawn_ours(&fx.moto, None).await?;
        let (port, token) = (ours.port(), ours.token());
        measure(fx, steps, ours.pid(), port, &token, &mut mine).await?;
        // The second read of each must be a hit, or the figure above is not "N cached secrets".
        for id in fx
            .memory_ids
            .iter()
            .take(steps.iter().copied().max().unwrap_or(0))
        {
            match get_secret(port, &token, id).await? {
                (200, _, Some(s)) if s == "hit" => {}
                _ => mine.not_hits += 1,
            }
        }
        drop(ours);

        if let Some(cmd) = peer {
            let token = secretcache_tests::random_token();
            let p = cmd.spawn(&fx.moto, &token, &[], None, peer_log).await?;
            measure(fx, steps, p.pid(), p.port(), &token, &mut theirs).await?;
        }
    }
    let mut rows = vec![Row::new(
        5,
        "memory: RSS idle",
        "MiB",
        Cell::of(&base.idle_mib),
        Cell::of(&mine.idle_mib),
        Cell::of(&theirs.idle_mib),
    )
    .note("baseline: the minimal server, idle")];
    for (i, &n) in steps.iter().enumerate() {
        let mut note = format!(
            "baseline: its idle RSS + the values' {:.2} MiB",
            payload_mib(n)
        );
        if mine.failed_reads + theirs.failed_reads + mine.not_hits > 0 {
            note.push_str(&format!(
                "; failed reads ours {} peer {}, second reads not hits {}",
                mine.failed_reads, theirs.failed_reads, mine.not_hits
            ));
        }
        rows.push(
            Row::new(
                5,
                &format!(
                    "memory: RSS with {n} cached secrets of {} KiB",
                    settings.memory_secret_bytes / 1024
                ),
                "MiB",
                Cell::of(&base.filled_mib[i]),
                Cell::of(&mine.filled_mib[i]),
                Cell::of(&theirs.filled_mib[i]),
            )
            .note(note),
        );
    }
    let most = steps.iter().copied().max().unwrap_or(0);
    rows.push(
        Row::new(
            5,
            "memory: heap (RssAnon) idle",
            "MiB",
            Cell::of(&base.idle_anon_mib),
            Cell::of(&mine.idle_anon_mib),
            Cell::of(&theirs.idle_anon_mib),
        )
        .note("the allocated part of RSS; the rest is the binary's file-backed pages"),
    );
    rows.push(
        Row::new(
            5,
            &format!("memory: heap (RssAnon) with {most} cached secrets"),
            "MiB",
            Cell::of(&base.full_anon_mib),
            Cell::of(&mine.full_anon_mib),
            Cell::of(&theirs.full_anon_mib),
        )
        .note(format!(
            "baseline: its idle heap + the values' {:.2} MiB",
            payload_mib(most)
        )),
    );
    let raw = serde_json::json!({
        "baseline": base,
        "secretcache": mine,
        "peer": if peer.is_some() { serde_json::to_value(&theirs).unwrap_or_default() } else { serde_json::Value::Null },
    });
    Ok((rows, raw))
}

/// Idle RSS, then RSS after reading the first `n` memory secrets for each `n` in `steps`.
async fn measure(
    fx: &Fixture,
    steps: &[usize],
    pid: Option<u32>,
    port: u16,
    token: &str,
    into: &mut Samples,
) -> Result<(), String> {
    tokio::time::sleep(SETTLE).await;
    into.idle_mib.push(rss_mib(pid)?);
    into.idle_anon_mib.push(anon_mib(pid)?);
    let mut done = 0;
    for (i, &n) in steps.iter().enumerate() {
        let n = n.min(fx.memory_ids.len());
        into.failed_reads += read_each(port, token, &fx.memory_ids[done..n])
            .await?
            .iter()
            .filter(|r| r.status != 200)
            .count() as u64;
        done = n;
        tokio::time::sleep(SETTLE).await;
        into.filled_mib[i].push(rss_mib(pid)?);
    }
    into.full_anon_mib.push(anon_mib(pid)?);
    Ok(())
}
