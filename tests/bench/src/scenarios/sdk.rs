//! Item 9, the AWS SDKs' own protocol: aws-sdk-rust's `GetSecretValue` through the cache (its endpoint pointed at the
//! extension, as `AWS_ENDPOINT_URL_SECRETS_MANAGER` points an application's) against the same call to the service
//! directly (moto, a stand-in whose time is not AWS's: the ratio shows what the cache saves a caller whose service is
//! that far), and beside the HTTP route's hit on the same extension: latency per call and the extension's CPU per
//! request. One client, calls back to back, for the window of each repeat; the SDK's own work (signing, parsing) is in
//! every SDK figure alike.

use std::time::{Duration, Instant};

use secretcache_tests::extension::Standalone;
use secretcache_tests::moto::{sdk_config, Endpoint};
use secretcache_tests::stats::percentile;

use super::{Fixture, HIT_SECRET, TOKEN_HEADER};
use crate::report::{Cell, Row};
use crate::targets::LOG_LEVEL;
use crate::Settings;

/// What one run of calls measured.
#[derive(Debug, Default, serde::Serialize)]
struct Run {
    calls: u64,
    p50_us: f64,
    p99_us: f64,
    /// The extension's CPU per call, µs (none for the service directly).
    server_cpu_us: Option<f64>,
}

/// Calls `call` back to back for `window` (after `warmup`), timing each; `pid`'s CPU over the window per call.
async fn measure<F, Fut>(
    warmup: Duration,
    window: Duration,
    pid: Option<u32>,
    mut call: F,
) -> Result<Run, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    while start.elapsed() < warmup {
        call().await?;
    }
    let cpu_start = pid.and_then(crate::host::cpu_ns);
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < window {
        let t = Instant::now();
        call().await?;
        latencies.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let cpu_end = pid.and_then(crate::host::cpu_ns);
    let calls = latencies.len() as u64;
    latencies.sort_by(f64::total_cmp);
    Ok(Run {
        calls,
        p50_us: percentile(&latencies, 50.0).unwrap_or(0.0),
        p99_us: percentile(&latencies, 99.0).unwrap_or(0.0),
        server_cpu_us: match (cpu_start, cpu_end) {
            (Some(a), Some(b)) if calls > 0 => {
                Some(b.saturating_sub(a) as f64 / 1000.0 / calls as f64)
            }
            _ => None,
        },
    })
}

async fn sdk_read(client: &aws_sdk_secretsmanager::Client) -> Result<(), String> {
    let out = client
        .get_secret_value()
        .secret_id(HIT_SECRET)
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetSecretValue: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    out.secret_string()
        .map(drop)
        .ok_or_else(|| "GetSecretValue answered no SecretString".to_owned())
}

/// Runs item 9; returns its rows and the raw samples.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let ext = Standalone::spawn(&fx.moto, &[LOG_LEVEL]).await;
    let pid = ext.pid();
    let through = aws_sdk_secretsmanager::Client::new(&ext.sdk_config("testing").await);
    let direct = aws_sdk_secretsmanager::Client::new(&sdk_config(&fx.moto.endpoint()).await);
    // The HTTP route through the load generator's keep-alive connection, as the SDK keeps its own.
    let (status, body_len, _) = super::get_secret(ext.port(), &ext.token(), HIT_SECRET).await?;
    if status != 200 {
        return Err(format!("the HTTP route answered {status}"));
    }
    let route_spec = crate::load::LoadSpec {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], ext.port())),
        requests: vec![crate::load::Ask::new(
            format!("/secretsmanager/get?secretId={HIT_SECRET}"),
            body_len,
        )],
        headers: vec![(TOKEN_HEADER.to_owned(), ext.token())],
        connections: 1,
        warmup: settings.warmup(),
        duration: settings.window(),
        server_pid: pid,
    };
    let (warmup, window) = (settings.warmup(), settings.window());
    let (mut cached, mut service, mut route) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..settings.repeats {
        let c = measure(warmup, window, pid, || sdk_read(&through)).await?;
        let s = measure(warmup, window, None, || sdk_read(&direct)).await?;
        let h = crate::load::run(&route_spec).await?;
        let h = Run {
            calls: h.requests,
            p50_us: h.p50_us,
            p99_us: h.p99_us,
            server_cpu_us: h.server_cpu_us_per_req,
        };
        eprintln!(
            "  sdk r{}: through the cache p50 {:.0} µs ({} calls); the service directly p50 {:.0} µs; HTTP route p50 \
             {:.0} µs",
            repeat + 1,
            c.p50_us,
            c.calls,
            s.p50_us,
            h.p50_us
        );
        cached.push(c);
        service.push(s);
        route.push(h);
    }
    let cell = |runs: &[Run], f: &dyn Fn(&Run) -> Option<f64>| {
        Cell::of(&runs.iter().filter_map(f).collect::<Vec<_>>())
    };
    let p50 = |r: &Run| Some(r.p50_us);
    let p99 = |r: &Run| Some(r.p99_us);
    let cpu = |r: &Run| r.server_cpu_us;
    let direct_note = "aws-sdk-rust, one client, calls back to back; baseline: the same call to the service directly \
                       (moto on loopback, not AWS's time)";
    let route_note = "baseline: the HTTP route's hit (GET /secretsmanager/get, the load generator's keep-alive \
                      connection) on the same extension; ours: the SDK's GetSecretValue through it (signature \
                      verified, AWS JSON 1.1); the SDK's own signing and parsing are in its latency";
    let rows = vec![
        Row::new(
            9,
            "SDK GetSecretValue: latency p50",
            "µs",
            cell(&service, &p50),
            cell(&cached, &p50),
            Cell::Absent,
        )
        .note(direct_note),
        Row::new(
            9,
            "SDK GetSecretValue: latency p99",
            "µs",
            cell(&service, &p99),
            cell(&cached, &p99),
            Cell::Absent,
        ),
        Row::new(
            9,
            "SDK protocol vs HTTP route: latency p50",
            "µs",
            cell(&route, &p50),
            cell(&cached, &p50),
            Cell::Absent,
        )
        .note(route_note),
        Row::new(
            9,
            "SDK protocol vs HTTP route: server CPU per request",
            "µs",
            cell(&route, &cpu),
            cell(&cached, &cpu),
            Cell::Absent,
        ),
    ];
    let raw = serde_json::json!({ "through_cache": cached, "service_directly": service, "http_route": route });
    Ok((rows, raw))
}
