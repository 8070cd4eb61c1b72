//! Item 4, the cold path, on a fresh process per repeat (unpinned, as a cold start is not a steady state):
//! - spawn-to-ready: from spawn until the port answers `/ping` *and* the process has registered with the stub
//!   Extensions API (its first `event/next`); the baseline is the minimal server's spawn until its port answers;
//! - the first request for an uncached secret; the baseline is a first `GetSecretValue` from a fresh SDK client
//!   through the same proxy to the same moto (the one upstream round trip a miss cannot avoid);
//! - a burst of concurrent requests for one uncached secret: the upstream calls, counted by the proxy (must be 1),
//!   and the time until all are answered; the baseline is the same burst of new connections to the minimal server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::extensions_api::ExtensionsApi;
use secretcache_tests::moto::Endpoint;
use secretcache_tests::proxy::FaultInjectingProxy;

use super::{get_secret, ms, Fixture, COLD_BURST_SECRET, COLD_FIRST_SECRET, TOKEN_HEADER};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, wait_ping, PeerCmd, LOG_LEVEL};
use crate::Settings;

/// How long a process may take to become ready before the run fails.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long to wait, after the port answers, for a peer that may never register.
const PEER_REGISTER_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Default, serde::Serialize)]
struct Samples {
    ready_ms: Vec<f64>,
    first_ms: Vec<f64>,
    burst_calls: Vec<f64>,
    burst_ms: Vec<f64>,
    burst_p50_ms: Vec<f64>,
    burst_over_1s: u64,
    burst_errors: u64,
    registered: Vec<bool>,
    registered_with_port_open: Vec<bool>,
}

impl Samples {
    fn record(&mut self, b: &Burst) {
        self.burst_ms.push(ms(b.all));
        self.burst_p50_ms.push(ms(b.p50));
        self.burst_over_1s += b.over_1s;
        self.burst_errors += b.failed;
    }
}

/// What a burst took.
struct Burst {
    /// Until every request was answered.
    all: Duration,
    /// Median request.
    p50: Duration,
    /// Requests that took a second or more: SYNs dropped past the listen backlog are retransmitted after 1 s.
    over_1s: u64,
    /// Answers that were not 200.
    failed: u64,
}

/// Sends `n` requests at once, each on its own connection.
async fn burst(port: u16, path_and_query: &str, token: &str, n: usize) -> Burst {
    let url = format!("http://127.0.0.1:{port}{path_and_query}");
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, token) = (url.clone(), token.to_owned());
            tokio::spawn(async move {
                let t = Instant::now();
                let ok = secretcache_tests::http::get(&url, &[(TOKEN_HEADER, &token)])
                    .await
                    .map(|r| r.status == 200)
                    .unwrap_or(false);
                (ok, t.elapsed())
            })
        })
        .collect();
    let mut failed = 0;
    let mut took = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok((ok, d)) => {
                failed += u64::from(!ok);
                took.push(d);
            }
            Err(_) => failed += 1,
        }
    }
    let all = start.elapsed();
    took.sort_unstable();
    Burst {
        all,
        p50: took.get(took.len() / 2).copied().unwrap_or_default(),
        over_1s: took
            .iter()
            .filter(|d| **d >= Duration::from_secs(1))
            .count() as u64,
        failed,
    }
}

/// One cold start of ours or the peer, then its first request and the burst.
async fn cold_start(
    proxy: &FaultInjectingProxy,
    settings: &Settings,
    peer: Option<(&PeerCmd, &PathBuf)>,
    into: &mut Samples,
) -> Result<(), String> {
    let port = secretcache_tests::free_port();
    let api = ExtensionsApi::start(port).await;
    let token = secretcache_tests::random_token();
    let start = Instant::now();
    // Held until the end of this function: dropping either kills the process.
    let (_ours, _peer, port, port_ready) = match peer {
        None => {
            let mut env = base_env(&proxy.endpoint(), port, &token);
            env.push(("AWS_LAMBDA_RUNTIME_API".into(), api.address()));
            let ext = Standalone::spawn_with_env(env, &[LOG_LEVEL], port, token.clone());
            let port_ready = wait_ping(port, start, READY_WITHIN).await?;
            (Some(ext), None, port, port_ready)
        }
        Some((cmd, log)) => {
            let address = api.address();
            let p = cmd
                .spawn(
                    proxy,
                    &token,
                    &[("AWS_LAMBDA_RUNTIME_API", &address)],
                    None,
                    log,
                )
                .await?;
            let (port, port_ready) = (p.port(), p.spawn_to_ready);
            (None, Some(p), port, port_ready)
        }
    };
    let grace = if peer.is_some() {
        PEER_REGISTER_GRACE
    } else {
        READY_WITHIN
    };
    let registered = api.wait_next_calls(1, grace).await;
    if !registered && peer.is_none() {
        return Err("ours did not register with the stub Extensions API".to_owned());
    }
    // The port answered first (both branches wait for it), so ready is when registration came too. A peer that never
    // registers (the AWS Secrets Manager Agent is not a Lambda extension) is ready when its port answered, not when
    // the grace for registering ran out.
    into.ready_ms.push(ms(if registered {
        start.elapsed()
    } else {
        port_ready
    }));
    into.registered.push(registered);
    into.registered_with_port_open
        .push(api.registration().is_some_and(|r| r.port_open));

    let t = Instant::now();
    let (status, _, source) = get_secret(port, &token, COLD_FIRST_SECRET).await?;
    into.first_ms.push(ms(t.elapsed()));
    if status != 200 || (peer.is_none() && source.as_deref() != Some("miss")) {
        return Err(format!(
            "first uncached request: status {status}, source {source:?} (want 200, miss)"
        ));
    }

    let before = proxy.count("GetSecretValue");
    let b = burst(
        port,
        &format!("/secretsmanager/get?secretId={COLD_BURST_SECRET}"),
        &token,
        settings.burst,
    )
    .await;
    into.burst_calls
        .push(proxy.count("GetSecretValue").saturating_sub(before) as f64);
    into.record(&b);
    Ok(())
}

/// Runs item 4; returns its rows and the raw samples.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
    peer: Option<&PeerCmd>,
    peer_log: &PathBuf,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let proxy = FaultInjectingProxy::start(&fx.moto).await;
    let mut base = Samples::default();
    let mut mine = Samples::default();
    let mut theirs = Samples::default();
    for _ in 0..settings.repeats {
        let b = spawn_baseline(64, None).await?;
        base.ready_ms.push(ms(b.spawn_to_ready));
        let sm = aws_sdk_secretsmanager::Client::new(
            &secretcache_tests::moto::sdk_config(&proxy.endpoint()).await,
        );
        let t = Instant::now();
        sm.get_secret_value()
            .secret_id(COLD_FIRST_SECRET)
            .send()
            .await
            .map_err(|e| format!("baseline GetSecretValue: {e}"))?;
        base.first_ms.push(ms(t.elapsed()));
        let burst = burst(b.port(), "/ping", "", settings.burst).await;
        base.record(&burst);
        base.burst_calls.push(1.0);
        drop(b);

        cold_start(&proxy, settings, None, &mut mine).await?;
        if let Some(cmd) = peer {
            cold_start(&proxy, settings, Some((cmd, peer_log)), &mut theirs).await?;
        }
    }

    let n = settings.burst;
    let errors = |s: &Samples| s.burst_errors;
    let burst_note = match (errors(&base), errors(&mine), errors(&theirs)) {
        (0, 0, 0) => String::new(),
        (b, o, p) => format!("non-200 answers: baseline {b}, ours {o}, peer {p}"),
    };
    let peer_registered = theirs.registered.iter().all(|r| *r);
    let mut ready_note = "baseline: the minimal server's port answers".to_owned();
    if !mine.registered_with_port_open.iter().all(|r| *r) {
        ready_note.push_str("; ours registered before its port was open in some runs");
    }
    if peer.is_some() && !peer_registered {
        ready_note.push_str(
            "; the peer did not register with the Extensions API: its figure is port-only",
        );
    }
    let rows = vec![
        Row::new(
            4,
            "cold: spawn to ready (port answers, registered)",
            "ms",
            Cell::of(&base.ready_ms),
            Cell::of(&mine.ready_ms),
            Cell::of(&theirs.ready_ms),
        )
        .note(ready_note),
        Row::new(
            4,
            "cold: first request, uncached secret",
            "ms",
            Cell::of(&base.first_ms),
            Cell::of(&mine.first_ms),
            Cell::of(&theirs.first_ms),
        )
        .note("baseline: first GetSecretValue of a fresh SDK client, same proxy and moto"),
        Row::new(
            4,
            &format!("cold: {n} concurrent requests, upstream calls"),
            "calls",
            Cell::of(&base.burst_calls),
            Cell::of(&mine.burst_calls),
            Cell::of(&theirs.burst_calls),
        )
        .note("counted by the proxy; must be 1 (baseline column = that ideal)"),
        Row::new(
            4,
            &format!("cold: {n} concurrent requests, median request"),
            "ms",
            Cell::of(&base.burst_p50_ms),
            Cell::of(&mine.burst_p50_ms),
            Cell::of(&theirs.burst_p50_ms),
        )
        .note(format!(
            "one new connection each; baseline: {n} requests to the minimal server{}",
            if burst_note.is_empty() { String::new() } else { format!("; {burst_note}") }
        )),
        Row::new(
            4,
            &format!("cold: {n} concurrent requests, all answered"),
            "ms",
            Cell::of(&base.burst_ms),
            Cell::of(&mine.burst_ms),
            Cell::of(&theirs.burst_ms),
        )
        .note(format!(
            "requests ≥ 1 s (SYN dropped past the listen backlog, retransmitted after 1 s): baseline {}, ours {}{}",
            base.burst_over_1s,
            mine.burst_over_1s,
            if peer.is_some() { format!(", peer {}", theirs.burst_over_1s) } else { String::new() }
        )),
    ];
    let raw = serde_json::json!({
        "baseline": base,
        "secretcache": mine,
        "peer": if peer.is_some() { serde_json::to_value(&theirs).unwrap_or_default() } else { serde_json::Value::Null },
    });
    Ok((rows, raw))
}
