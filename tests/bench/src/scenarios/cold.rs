//! Item 4, the cold path, on a fresh process per repeat ([`Settings::cold_repeats`] of them; unpinned, as a cold start
//! is not a steady state):
//! - spawn-to-ready: ours runs in the local Lambda environment (lambda-env's Extensions API, the binary that ships
//!   linked into `/opt/extensions`, freezing off), from its process's start to its first `event/next`, with its port open
//!   when it registered (else until `/ping` answers, if later); the baseline is the minimal server's spawn until its
//!   port answers. A peer runs outside lambda-env (it need not be a Lambda extension): its figure is spawn until its
//!   port answers;
//! - the first request for an uncached secret; the baseline is a first `GetSecretValue` from a fresh SDK client
//!   through the same proxy to the same moto (the one upstream round trip a miss cannot avoid);
//! - a burst of concurrent requests for one uncached secret: the upstream calls, counted by the proxy (must be 1),
//!   and the time until all are answered; the baseline is the same burst of new connections to the minimal server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lambda_env::LambdaEnv;
use secretcache_tests::moto::Endpoint;
use secretcache_tests::proxy::FaultInjectingProxy;

use super::{get_secret, ms, Fixture, COLD_BURST_SECRET, COLD_FIRST_SECRET, TOKEN_HEADER};
use crate::report::{Cell, Row};
use crate::targets::{spawn_baseline, wait_ping, PeerCmd, LOG_LEVEL};
use crate::Settings;

/// How long a process may take to become ready before the run fails.
const READY_WITHIN: Duration = Duration::from_secs(10);

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
    // Held until the end of this function: dropping either ends the process.
    let (_ours, _peer, port, token) = match peer {
        None => {
            let (_dir, function) = secretcache_tests::probe::idle_function_zip();
            let mut options = secretcache_tests::with_extension_binary(function, &proxy.endpoint())
                .var(LOG_LEVEL.0, LOG_LEVEL.1);
            options.freeze = false;
            let port = secretcache_tests::extension_port(&options);
            let env = LambdaEnv::start(options)
                .await
                .map_err(|e| format!("the local Lambda environment did not start: {e}"))?;
            let ready = match env.init_result() {
                Some(Ok(_)) => env.extension_ready_after("secretcache"),
                _ => None,
            };
            let Some(ready) = ready else {
                return Err(format!(
                    "ours did not become ready: {:?}",
                    env.init_result()
                ));
            };
            let port_open = env
                .registrations()
                .iter()
                .any(|r| r.name == "secretcache" && r.listening.contains(&port));
            // Ready means serving: if the port was not open yet when it registered, until `/ping` answers.
            let ready = if port_open {
                ready
            } else {
                ready.max(wait_ping(port, Instant::now(), READY_WITHIN).await?)
            };
            into.ready_ms.push(ms(ready));
            into.registered.push(true);
            into.registered_with_port_open.push(port_open);
            let token = env.session_token().to_owned();
            (Some(env), None, port, token)
        }
        Some((cmd, log)) => {
            let token = secretcache_tests::random_token();
            let p = cmd.spawn(proxy, &token, &[], None, log).await?;
            into.ready_ms.push(ms(p.spawn_to_ready));
            into.registered.push(false);
            into.registered_with_port_open.push(false);
            let port = p.port();
            (None, Some(p), port, token)
        }
    };

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
    for _ in 0..settings.cold_repeats() {
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
