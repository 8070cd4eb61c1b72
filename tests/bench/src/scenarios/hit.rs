//! Items 1–3: cache-hit throughput and latency at each connection count, for the baseline, ours and the peer.
//!
//! The three servers run at the same time, pinned to the server CPU, and are loaded in turn: for each repeat, each
//! connection count, baseline then ours then the peer, back to back. Interleaving like this (rather than all of one
//! target, then all of the next) spreads a shared machine's noise over every target alike, and gives the paired
//! repeats the ratios are computed from.

use std::path::PathBuf;

use secretcache_tests::extension::Standalone;

use super::{get_secret, Fixture, HIT_SECRET, TOKEN_HEADER};
use crate::host::Pinning;
use crate::load::{Ask, LoadResult, LoadSpec};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, spawn_ours, PeerCmd, Process};
use crate::Settings;

/// Raw results of one target: `[connection count index][repeat]`.
type Series = Vec<Vec<LoadResult>>;

/// Picks one figure out of a load result (`None` when it was not measured).
type Figure<'a> = &'a dyn Fn(&LoadResult) -> Option<f64>;

/// What the hit scenario found, with the body size it used.
#[derive(Debug)]
pub struct HitOutcome {
    /// The rows for the table.
    pub rows: Vec<Row>,
    /// Bytes of the hit body (ours), which the baseline answers too.
    pub body_len: usize,
    /// Raw per-run results, for the JSON.
    pub raw: serde_json::Value,
}

enum Target<'a> {
    Baseline(&'a Process),
    Ours(&'a Standalone),
    Peer(&'a Process, &'a str),
}

impl Target<'_> {
    fn spec(&self, settings: &Settings, connections: usize, body_len: usize) -> LoadSpec {
        let (addr, pid, token, path) = match self {
            Target::Baseline(p) => (p.addr(), p.pid(), None, "/secretsmanager/get"),
            Target::Ours(s) => (
                std::net::SocketAddr::from(([127, 0, 0, 1], s.port())),
                s.pid(),
                Some(s.token()),
                "/secretsmanager/get",
            ),
            Target::Peer(p, t) => (
                p.addr(),
                p.pid(),
                Some((*t).to_owned()),
                "/secretsmanager/get",
            ),
        };
        LoadSpec {
            addr,
            // The baseline ignores the path and headers, but gets the same bytes so the client does the same work.
            requests: vec![Ask::new(format!("{path}?secretId={HIT_SECRET}"), body_len)],
            headers: vec![(
                TOKEN_HEADER.to_owned(),
                token.unwrap_or_else(|| "baseline-ignores-it".to_owned()),
            )],
            connections,
            warmup: settings.warmup(),
            duration: settings.window(),
            server_pid: pid,
        }
    }
}

/// Runs items 1–3.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
    pinning: Option<Pinning>,
    peer: Option<&PeerCmd>,
    peer_log: &PathBuf,
) -> Result<HitOutcome, String> {
    let ours = spawn_ours(&fx.moto, pinning).await?;
    let (status, body_len, _) = get_secret(ours.port(), &ours.token(), HIT_SECRET).await?;
    if status != 200 {
        return Err(format!(
            "ours answered {status} for the hit secret; logs:\n{}",
            ours.logs()
        ));
    }
    let baseline = spawn_baseline(body_len, pinning).await?;
    let peer_token = secretcache_tests::random_token();
    let peer = match peer {
        Some(cmd) => {
            let p = cmd
                .spawn(&fx.moto, &peer_token, &[], pinning, peer_log)
                .await?;
            let (status, len, _) = get_secret(p.port(), &peer_token, HIT_SECRET).await?;
            if status != 200 {
                return Err(format!("the peer answered {status} for the hit secret"));
            }
            Some((p, len))
        }
        None => None,
    };

    let n = settings.connections.len();
    let mut base: Series = vec![Vec::new(); n];
    let mut mine: Series = vec![Vec::new(); n];
    let mut theirs: Series = vec![Vec::new(); n];
    for repeat in 0..settings.repeats {
        for (ci, &conns) in settings.connections.iter().enumerate() {
            let b = crate::load::run(&Target::Baseline(&baseline).spec(settings, conns, body_len))
                .await?;
            let o = crate::load::run(&Target::Ours(&ours).spec(settings, conns, body_len)).await?;
            eprintln!(
                "  hit r{} c{conns}: baseline {:.0} req/s p99 {:.0} µs; ours {:.0} req/s p99 {:.0} µs",
                repeat + 1,
                b.throughput,
                b.p99_us,
                o.throughput,
                o.p99_us
            );
            base[ci].push(b);
            mine[ci].push(o);
            if let Some((p, len)) = &peer {
                let r = crate::load::run(&Target::Peer(p, &peer_token).spec(settings, conns, *len))
                    .await?;
                theirs[ci].push(r);
            }
        }
    }

    let mut rows = Vec::new();
    for (ci, &conns) in settings.connections.iter().enumerate() {
        let pick = |s: &Series, f: Figure| -> Cell {
            Cell::of(&s[ci].iter().filter_map(f).collect::<Vec<_>>())
        };
        let errors: u64 = mine[ci]
            .iter()
            .chain(&base[ci])
            .chain(&theirs[ci])
            .map(|r| r.errors)
            .sum();
        let metrics: [(&str, &str, Figure); 5] = [
            ("throughput", "req/s", &|r| Some(r.throughput)),
            ("latency p50", "µs", &|r| Some(r.p50_us)),
            ("latency p99", "µs", &|r| Some(r.p99_us)),
            ("latency p99.9", "µs", &|r| Some(r.p999_us)),
            ("server CPU per request", "µs", &|r| {
                r.server_cpu_us_per_req
            }),
        ];
        for (name, unit, f) in metrics {
            let mut row = Row::new(
                1,
                &format!(
                    "hit, {conns} conn{}: {name}",
                    if conns == 1 { "" } else { "s" }
                ),
                unit,
                pick(&base, f),
                pick(&mine, f),
                pick(&theirs, f),
            );
            if name == "throughput" && errors > 0 {
                row = row.note(format!(
                    "{errors} errors (non-200 or wrong length) across the runs"
                ));
            }
            rows.push(row);
        }
    }
    let raw = serde_json::json!({
        "connections": settings.connections,
        "body_bytes": body_len,
        "baseline": base,
        "secretcache": mine,
        "peer": if peer.is_some() { serde_json::to_value(&theirs).unwrap_or_default() } else { serde_json::Value::Null },
    });
    Ok(HitOutcome {
        rows,
        body_len,
        raw,
    })
}
