//! Item 11 (issue 31): cache hits at Lambda Managed Instances' concurrency. Ours starts as Lambda starts it there
//! (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`, `AWS_LAMBDA_MAX_CONCURRENCY=64`), so it runs one worker
//! thread per CPU it may use, up to four; 256 keep-alive connections from the one-thread load generator read 64
//! different secrets (database credentials like the hit secret's), each connection going round them in turn.
//!
//! Nothing is pinned: a Managed Instances environment has several vCPUs that the function's handlers share with the
//! extension, so the servers and the load generator share both CPUs here, and each server sees both (the harness
//! runs this before it pins itself for the hit load). The baseline is the minimal server (two workers), unpinned
//! too; the peer, when given, gets the same load (the AWS Secrets Manager Agent has no Managed Instances mode).
//!
//! Standalone, ours does not register with an Extensions API, so the one difference from a single-key on-demand
//! process is the worker count (and the concurrency it logs); the refresh timer that replaces INVOKE there is not
//! running, which a hit load would not exercise anyway (every value stays fresh for the TTL, 300 s).

use std::path::PathBuf;

use super::{get_secret, mi_id, Fixture, MI_IDS, TOKEN_HEADER};
use crate::load::{Ask, LoadResult, LoadSpec};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, spawn_ours_with, PeerCmd};
use crate::Settings;

/// Picks one figure out of a load result (`None` when it was not measured).
type Figure<'a> = &'a dyn Fn(&LoadResult) -> Option<f64>;

/// Keep-alive connections: four readers for each of the 64 concurrent invocations Lambda may send.
const CONNECTIONS: usize = 256;
/// What Lambda Managed Instances set.
const ENV: [(&str, &str); 2] = [
    ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
    ("AWS_LAMBDA_MAX_CONCURRENCY", "64"),
];

/// Threads of `pid` named as tokio names its workers (`tokio-rt-worker`, or in older tokio `tokio-runtime-worker`,
/// which the kernel cuts to 15 bytes). Read before any request, when the blocking pool, which shares the name, has
/// no thread yet.
fn tokio_workers(pid: Option<u32>) -> Option<usize> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", pid?)).ok()?;
    Some(
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| matches!(c.trim_end(), "tokio-rt-worker" | "tokio-runtime-w"))
            })
            .count(),
    )
}

/// Reads each of `ids` once (filling the cache) and then again: each key's body length from the second read, and
/// how many second reads were not hits (a peer says nothing, so only ours is counted).
async fn fill(port: u16, token: &str, ids: &[String]) -> Result<(Vec<usize>, u64), String> {
    let mut not_hits = 0;
    for id in ids {
        let (status, ..) = get_secret(port, token, id).await?;
        if status != 200 {
            return Err(format!("{id}: {status} from port {port}"));
        }
    }
    let mut lens = Vec::with_capacity(ids.len());
    for id in ids {
        let (_, len, source) = get_secret(port, token, id).await?;
        if source.is_some_and(|s| s != "hit") {
            not_hits += 1;
        }
        lens.push(len);
    }
    Ok((lens, not_hits))
}

/// Runs item 11.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
    peer: Option<&PeerCmd>,
    peer_log: &PathBuf,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let ids: Vec<String> = (0..MI_IDS).map(mi_id).collect();
    let ours = spawn_ours_with(&fx.moto, &ENV, None).await?;
    let workers = tokio_workers(ours.pid());
    let (lens, not_hits) = fill(ours.port(), &ours.token(), &ids).await?;
    let body_len = lens.first().copied().unwrap_or(0);
    let baseline = spawn_baseline(body_len, None).await?;
    let peer_token = secretcache_tests::random_token();
    let peer = match peer {
        Some(cmd) => {
            let p = cmd
                .spawn(&fx.moto, &peer_token, &[], None, peer_log)
                .await?;
            let (lens, _) = fill(p.port(), &peer_token, &ids).await?;
            Some((p, lens))
        }
        None => None,
    };
    let spec = |addr, pid, token: &str, lens: &[usize]| LoadSpec {
        addr,
        requests: ids
            .iter()
            .zip(lens)
            .map(|(id, &len)| Ask::new(format!("/secretsmanager/get?secretId={id}"), len))
            .collect(),
        headers: vec![(TOKEN_HEADER.to_owned(), token.to_owned())],
        connections: CONNECTIONS,
        warmup: settings.warmup(),
        duration: settings.window(),
        server_pid: pid,
    };
    let ours_addr = std::net::SocketAddr::from(([127, 0, 0, 1], ours.port()));
    let (mut base, mut mine, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..settings.repeats {
        // The baseline ignores path and token, but gets the same bytes so the client does the same work.
        let same = vec![body_len; ids.len()];
        let b = crate::load::run(&spec(
            baseline.addr(),
            baseline.pid(),
            "baseline-ignores-it",
            &same,
        ))
        .await?;
        let o = crate::load::run(&spec(ours_addr, ours.pid(), &ours.token(), &lens)).await?;
        eprintln!(
            "  mi r{}: baseline {:.0} req/s p99 {:.0} µs; ours {:.0} req/s p99 {:.0} µs",
            repeat + 1,
            b.throughput,
            b.p99_us,
            o.throughput,
            o.p99_us
        );
        base.push(b);
        mine.push(o);
        if let Some((p, lens)) = &peer {
            theirs.push(crate::load::run(&spec(p.addr(), p.pid(), &peer_token, lens)).await?);
        }
    }
    let context = Context {
        workers,
        body_len,
        not_hits,
        with_peer: peer.is_some(),
    };
    let rows = rows(&base, &mine, &theirs, &context);
    let raw = serde_json::json!({
        "connections": CONNECTIONS,
        "secrets": MI_IDS,
        "body_bytes": body_len,
        "ours_worker_threads": workers,
        "second_reads_not_hits": not_hits,
        "baseline": base,
        "secretcache": mine,
        "peer": if peer.is_some() { serde_json::to_value(&theirs).unwrap_or_default() } else { serde_json::Value::Null },
    });
    Ok((rows, raw))
}

/// What the rows' note says beside the figures.
struct Context {
    /// Ours' worker threads, when they could be counted.
    workers: Option<usize>,
    /// Bytes of ours' answer for the first secret (the baseline answers as many).
    body_len: usize,
    /// Ours' second reads that were not hits.
    not_hits: u64,
    with_peer: bool,
}

fn rows(base: &[LoadResult], mine: &[LoadResult], theirs: &[LoadResult], c: &Context) -> Vec<Row> {
    let pick = |v: &[LoadResult], f: Figure| Cell::of(&v.iter().filter_map(f).collect::<Vec<_>>());
    let workers = c.workers.map_or_else(|| "?".to_owned(), |w| w.to_string());
    let mut note = format!(
        "{}={}, {}={}, standalone (no Extensions API: no registration, no refresh timer); nothing pinned: servers \
         and the one-thread load generator share both CPUs; ours ran {workers} worker threads (one per CPU, up to \
         4), the baseline 2; each connection reads the {MI_IDS} secrets in turn (ours answers {} bytes)",
        ENV[0].0, ENV[0].1, ENV[1].0, ENV[1].1, c.body_len
    );
    let (not_hits, with_peer) = (c.not_hits, c.with_peer);
    let errors: u64 = base
        .iter()
        .chain(mine)
        .chain(theirs)
        .map(|r| r.errors)
        .sum();
    if errors + not_hits > 0 {
        note.push_str(&format!(
            "; {errors} errors (non-200 or wrong length) across the runs, second reads not hits {not_hits}"
        ));
    }
    if with_peer {
        note.push_str("; peer: same load, it has no Managed Instances mode");
    }
    let metrics: [(&str, &str, Figure); 4] = [
        ("throughput", "req/s", &|r| Some(r.throughput)),
        ("latency p50", "µs", &|r| Some(r.p50_us)),
        ("latency p99", "µs", &|r| Some(r.p99_us)),
        ("server CPU per request", "µs", &|r| {
            r.server_cpu_us_per_req
        }),
    ];
    metrics
        .into_iter()
        .enumerate()
        .map(|(i, (name, unit, f))| {
            let row = Row::new(
                11,
                &format!(
                    "hit, Managed Instances, {CONNECTIONS} conns over {MI_IDS} secrets: {name}"
                ),
                unit,
                pick(base, f),
                pick(mine, f),
                pick(theirs, f),
            );
            if i == 0 {
                row.note(note.clone())
            } else {
                row
            }
        })
        .collect()
}
