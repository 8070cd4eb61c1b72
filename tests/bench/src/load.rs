//! The load generator: N keep-alive HTTP/1.1 connections (hyper's client), each sending the next request as soon as
//! the previous answer is read (closed loop), for a warm-up and then a measured window.
//!
//! Every target gets byte-for-byte the same requests from the same code, so the generator's own cost is the same for
//! all of them and the differences are the servers'. While the window runs, the server's CPU time is sampled from
//! `/proc`, which gives its CPU cost per request: unlike throughput, that figure does not flatten out when the
//! generator (one CPU) is the bottleneck rather than the server.
//!
//! A load point reads one path, or several in turn ([`LoadSpec::requests`]): each connection cycles through the list
//! from its own starting point, so many connections over many keys read different keys at any moment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use secretcache_tests::stats::percentile;

/// One request of a load point, and the answer it must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// Path and query.
    pub path_and_query: String,
    /// The body length the answer must have; anything else (or a non-200) counts as an error.
    pub expect_body_len: usize,
}

impl Ask {
    /// `path_and_query`, answered with `expect_body_len` bytes.
    pub fn new(path_and_query: impl Into<String>, expect_body_len: usize) -> Ask {
        Ask {
            path_and_query: path_and_query.into(),
            expect_body_len,
        }
    }
}

/// One load point against one server.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server's address.
    pub addr: SocketAddr,
    /// The requests, sent in turn (round robin) on every connection, the `i`th connection starting at the `i`th (so
    /// at any moment the connections read different keys). Usually one: the same path every time.
    pub requests: Vec<Ask>,
    /// Extra headers of every request (the token).
    pub headers: Vec<(String, String)>,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Unmeasured time first (connections warm, caches and allocators settled).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// The server process, for its CPU time; `None` skips that figure.
    pub server_pid: Option<u32>,
}

/// What one load point measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// Requests completed in the window.
    pub requests: u64,
    /// Of those, answers that were not 200 with the expected body length, or failed.
    pub errors: u64,
    /// Requests per second in the window.
    pub throughput: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Server CPU time per request in the window, µs.
    pub server_cpu_us_per_req: Option<f64>,
}

struct ConnOutcome {
    latencies_ns: Vec<u64>,
    errors: u64,
}

/// Runs one load point. Fails if no connection can be opened, or if there is no request to send.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult, String> {
    if spec.requests.is_empty() {
        return Err(format!("load on {}: no request to send", spec.addr));
    }
    let asks: Arc<[Ask]> = spec.requests.clone().into();
    let host = spec.addr.to_string();
    let mut senders = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        senders.push(connect(spec.addr).await?);
    }
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, sender)| {
            let (asks, host, headers) = (Arc::clone(&asks), host.clone(), spec.headers.clone());
            let addr = spec.addr;
            tokio::spawn(async move {
                connection_loop(
                    sender,
                    addr,
                    (&asks, i % asks.len()),
                    &host,
                    &headers,
                    measure_from,
                    end,
                )
                .await
            })
        })
        .collect();

    // Sample the server's CPU time over the window, from this (otherwise idle) task.
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_start = spec.server_pid.and_then(crate::host::cpu_ns);
    let sampled_from = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    let cpu_end = spec.server_pid.and_then(crate::host::cpu_ns);
    let sampled = sampled_from.elapsed();

    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let outcome = t.await.map_err(|e| format!("load task failed: {e}"))?;
        latencies.extend(outcome.latencies_ns);
        errors += outcome.errors;
    }
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let throughput = requests as f64 / spec.duration.as_secs_f64();
    let us = |p: f64| percentile(&latencies, p).map_or(f64::NAN, |ns| ns as f64 / 1000.0);
    let server_cpu_us_per_req = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) if throughput > 0.0 => {
            let in_sampled_window = throughput * sampled.as_secs_f64();
            Some(b.saturating_sub(a) as f64 / 1000.0 / in_sampled_window)
        }
        _ => None,
    };
    Ok(LoadResult {
        requests,
        errors,
        throughput,
        p50_us: us(50.0),
        p99_us: us(99.0),
        p999_us: us(99.9),
        server_cpu_us_per_req,
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `asks` in turn from index `first` on one connection until `end`; times those sent from `measure_from` on.
/// With a single ask this is the same request every time: the turn costs an increment and a compare per request.
async fn connection_loop(
    mut sender: Sender,
    addr: SocketAddr,
    (asks, first): (&[Ask], usize),
    host: &str,
    headers: &[(String, String)],
    measure_from: Instant,
    end: Instant,
) -> ConnOutcome {
    let mut out = ConnOutcome {
        latencies_ns: Vec::with_capacity(1 << 16),
        errors: 0,
    };
    let mut next = first;
    loop {
        let t = Instant::now();
        if t >= end {
            return out;
        }
        let Some(ask) = asks.get(next) else {
            return out;
        };
        next += 1;
        if next == asks.len() {
            next = 0;
        }
        let mut req =
            http::Request::get(ask.path_and_query.as_str()).header(http::header::HOST, host);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let Ok(req) = req.body(Empty::<Bytes>::new()) else {
            out.errors += 1;
            return out;
        };
        let ok = match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await {
                    Ok(body) => status == 200 && body.to_bytes().len() == ask.expect_body_len,
                    Err(_) => false,
                }
            }
            Err(_) => {
                // The server closed the connection: open another, so one failure does not end the load point.
                match connect(addr).await {
                    Ok(s) => sender = s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                false
            }
        };
        if t >= measure_from {
            out.latencies_ns.push(t.elapsed().as_nanos() as u64);
            if !ok {
                out.errors += 1;
            }
        }
    }
}
