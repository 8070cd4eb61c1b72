//! The reliability suite's scenarios, against the real binary, moto, and (through the fault-injecting proxy) the
//! faults moto cannot produce. Each returns [`Outcome`] rows for the table `make reliability` prints; the fast
//! subset runs inside `make test` (tests/tests/reliability.rs) with the same code at a smaller [`Scale`].
//!
//! Every scenario puts a unique canary in its secret values and scans every log line and every error body it saw
//! for them: a secret may appear only in a 200 body of the secret itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Serialize;

pub mod invoke_outage;

use crate::extension::{base_env, Standalone};
use crate::extensions_api::{epoch_millis, ExtensionsApi};
use crate::moto::{Endpoint, Moto};
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::raw;

const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Requests in the load scenario.
    pub load_requests: usize,
    /// Length of the full-outage phase.
    pub outage: Duration,
    /// Length of each burst phase (throttle, 500, drop, delay).
    pub burst: Duration,
    /// Idle connections held open in the exhaustion scenario.
    pub idle_connections: usize,
    /// Length of the rotation-under-load run (the rotation happens in its middle third).
    pub rotation_run: Duration,
    /// `/items` requests per second during it.
    pub rotation_rate: u32,
    /// How long the upstream is black-holed while the Lambda environment keeps invoking (scenario 9).
    pub invoke_outage: Duration,
}

impl Scale {
    /// The subset inside `make test`.
    pub fn fast() -> Self {
        Self {
            load_requests: 2_000,
            outage: Duration::from_secs(8),
            burst: Duration::from_secs(2),
            idle_connections: 1_000,
            rotation_run: Duration::from_secs(6),
            rotation_rate: 20,
            // The whole minute even in `make test`: a minute of INVOKEs is what shows an extension holding them.
            invoke_outage: Duration::from_secs(60),
        }
    }
    /// `make reliability`.
    pub fn full() -> Self {
        Self {
            load_requests: 10_000,
            outage: Duration::from_secs(60),
            burst: Duration::from_secs(4),
            idle_connections: 1_000,
            rotation_run: Duration::from_secs(30),
            rotation_rate: 50,
            invoke_outage: Duration::from_secs(60),
        }
    }
}

/// One row of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// What was tried.
    pub scenario: String,
    /// Requests sent.
    pub sent: u64,
    /// Requests that failed by the scenario's own rule (stated in `rule`).
    pub failed: u64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Highest resident memory of the extension seen, KiB.
    pub max_rss_kib: u64,
    /// What counts as a failure here, and anything else worth knowing.
    pub rule: String,
    /// Log lines and bodies scanned for secret values.
    pub scanned: u64,
    /// Secret values found where they must not be.
    pub leaks: u64,
}

impl Outcome {
    /// Whether the row passes: no failures and no leaks.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.leaks == 0
    }
}

/// The Markdown table of `rows`.
pub fn table(rows: &[Outcome]) -> String {
    let mut out = String::from(
        "| scenario | sent | failed | p99 ms | max RSS MiB | leaks / scanned | rule |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {} / {} | {} |\n",
            r.scenario,
            r.sent,
            r.failed,
            r.p99_ms,
            r.max_rss_kib as f64 / 1024.0,
            r.leaks,
            r.scanned,
            r.rule
        ));
    }
    out
}

/// The 99th percentile of `samples`, in milliseconds.
pub fn p99(samples: &mut [Duration]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let idx = ((samples.len() as f64) * 0.99).ceil() as usize;
    samples[idx.saturating_sub(1).min(samples.len() - 1)].as_secs_f64() * 1000.0
}

/// Counts occurrences of any of `secrets` in `text`.
pub fn leaks_in(text: &str, secrets: &[String]) -> u64 {
    secrets
        .iter()
        .map(|s| text.matches(s.as_str()).count() as u64)
        .sum()
}

/// Samples a process's RSS every 20 ms until dropped; `max()` gives the highest seen.
struct RssSampler {
    max: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: Option<u32>) -> Self {
        let max = Arc::new(Mutex::new(pid.and_then(crate::rss_kib).unwrap_or(0)));
        let m = Arc::clone(&max);
        let task = tokio::spawn(async move {
            let Some(pid) = pid else { return };
            loop {
                if let (Some(rss), Ok(mut m)) = (crate::rss_kib(pid), m.lock()) {
                    *m = (*m).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { max, task }
    }
    fn max(&self) -> u64 {
        self.max.lock().map(|m| *m).unwrap_or(0)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A keep-alive connection for load generation.
async fn connect(port: u16) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// Scenario 1: many requests from 64 concurrent keep-alive clients to cached secrets.
pub async fn load(scale: Scale) -> Outcome {
    let moto = Moto::start().await;
    let sm = moto.sm_client().await;
    let secrets: Vec<String> = (0..10)
        .map(|i| format!("canary-load-{i}-{}", "x".repeat(4000)))
        .collect();
    for (i, v) in secrets.iter().enumerate() {
        sm.create_secret()
            .name(format!("load{i}"))
            .secret_string(v)
            .send()
            .await
            .expect("create");
    }
    let ext = Standalone::spawn(&moto, &[("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info")]).await;
    for i in 0..10 {
        assert_eq!(
            ext.get_secret(&format!("secretId=load{i}")).await.status,
            200
        );
    }
    let rss = RssSampler::start(ext.pid());
    let clients = 64;
    let per_client = scale.load_requests.div_ceil(clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (port, token, secrets) = (ext.port(), ext.token(), secrets.clone());
            tokio::spawn(async move {
                let mut sender = connect(port).await;
                let (mut lat, mut failed) = (Vec::with_capacity(per_client), 0u64);
                for n in 0..per_client {
                    let i = (c + n) % 10;
                    let req = http::Request::get(format!("/secretsmanager/get?secretId=load{i}"))
                        .header("host", "127.0.0.1")
                        .header(TOKEN_HEADER, &token)
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let t = Instant::now();
                    let ok = match sender.send_request(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            let body = resp
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            status == 200 && memchr_find(&body, secrets[i].as_bytes())
                        }
                        Err(_) => {
                            sender = connect(port).await;
                            false
                        }
                    };
                    lat.push(t.elapsed());
                    if !ok {
                        failed += 1;
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.expect("client task");
        lat.extend(l);
        failed += f;
    }
    let logs = ext.logs();
    Outcome {
        scenario: format!("1. load: {} cached reads, 64 clients", lat.len()),
        sent: lat.len() as u64,
        failed,
        p99_ms: p99(&mut lat),
        max_rss_kib: rss.max(),
        rule: "any non-200 or wrong body fails; RSS bound 64 MiB".into(),
        scanned: logs.lines().count() as u64,
        leaks: leaks_in(&logs, &secrets),
    }
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len().max(1)).any(|w| w == needle)
}

/// Scenario 2: bursts of throttling, 500s, dropped connections and 2 s delays, then a full outage.
/// Returns two rows: a cached (stale-allowed) secret, and uncached reads.
pub async fn upstream_faults(scale: Scale) -> Vec<Outcome> {
    let moto = Moto::start().await;
    let sm = moto.sm_client().await;
    let secret = "canary-faults-value".to_string();
    sm.create_secret()
        .name("hot")
        .secret_string(&secret)
        .send()
        .await
        .expect("create");
    let proxy = FaultInjectingProxy::start(&moto).await;
    let timeout_ms = 1000;
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "1"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", &timeout_ms.to_string()),
            ("PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD", "0"),
            ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
        ],
    )
    .await;
    assert_eq!(ext.get_secret("secretId=hot").await.status, 200);
    let rss = RssSampler::start(ext.pid());
    let phases = [
        (Fault::Throttle, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::ServerError, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Drop, scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Delay(Duration::from_secs(2)), scale.burst),
        (Fault::None, Duration::from_secs(1)),
        (Fault::Hang, scale.outage),
    ];
    let (mut hot_lat, mut hot_failed) = (Vec::new(), 0u64);
    let (mut cold_lat, mut cold_failed) = (Vec::new(), 0u64);
    let mut bodies = String::new();
    let mut n = 0u64;
    for (fault, length) in phases {
        proxy.set_fault(fault);
        let start = Instant::now();
        while start.elapsed() < length {
            let t = Instant::now();
            let r = ext.get_secret("secretId=hot").await;
            hot_lat.push(t.elapsed());
            if r.status != 200 || r.json()["SecretString"] != secret.as_str() {
                hot_failed += 1;
            }
            if n % 5 == 0 {
                let t = Instant::now();
                let r = ext.get_secret(&format!("secretId=cold-{n}")).await;
                let took = t.elapsed();
                cold_lat.push(took);
                bodies.push_str(&r.text());
                // Uncached: a clear error that says what happened, never a hang past the timeout.
                let allowed: &[u16] = if fault == Fault::None {
                    &[404]
                } else {
                    &[429, 502, 504]
                };
                if !allowed.contains(&r.status) || took > Duration::from_millis(timeout_ms + 500) {
                    cold_failed += 1;
                }
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    proxy.set_fault(Fault::None);
    let logs = ext.logs();
    let secrets = [secret];
    let max_rss = rss.max();
    vec![
        Outcome {
            scenario: "2a. faults: cached secret through bursts and outage".into(),
            sent: hot_lat.len() as u64,
            failed: hot_failed,
            p99_ms: p99(&mut hot_lat),
            max_rss_kib: max_rss,
            rule: format!(
                "any non-200 fails (stale allowed); outage {} s",
                scale.outage.as_secs()
            ),
            scanned: logs.lines().count() as u64,
            leaks: leaks_in(&logs, &secrets),
        },
        Outcome {
            scenario: "2b. faults: uncached reads".into(),
            sent: cold_lat.len() as u64,
            failed: cold_failed,
            p99_ms: p99(&mut cold_lat),
            max_rss_kib: max_rss,
            rule: format!(
                "must be 429/502/504 (404 when healthy) within timeout {timeout_ms} ms + 500"
            ),
            scanned: cold_lat.len() as u64,
            leaks: leaks_in(&bodies, &secrets),
        },
    ]
}

/// One hostile request: what is sent and the exact status expected.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Number of responses expected (pipelining sends two).
    responses: usize,
    /// Whether the body must be JSON. Only false where hyper's HTTP layer answers before our code runs.
    json: bool,
}

/// Scenario 4: at least 40 malformed or hostile requests, each with its exact status and a JSON body, then the
/// process must still be healthy.
pub async fn hostile_input() -> Outcome {
    let moto = Moto::start().await;
    let secret = "canary-hostile-value".to_string();
    moto.sm_client()
        .await
        .create_secret()
        .name("h")
        .secret_string(&secret)
        .send()
        .await
        .expect("create");
    let ext = Standalone::spawn(&moto, &[]).await;
    let tok = ext.token();
    let get = |target: &str, headers: &str| -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n")
            .into_bytes()
    };
    let auth = format!("X-Aws-Parameters-Secrets-Token: {tok}\r\n");
    let ok_path = "/secretsmanager/get?secretId=h";
    let method = |m: &str| {
        format!("{m} {ok_path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()
    };
    let long_query = format!("/secretsmanager/get?secretId={}", "a".repeat(63 * 1024));
    let huge_query = format!("/secretsmanager/get?secretId={}", "a".repeat(64 * 1024));
    let long_id = format!("/secretsmanager/get?secretId={}", "b".repeat(3000));
    let case = |name, request, status| Case {
        name,
        request,
        status,
        responses: 1,
        json: true,
    };
    let mut cases = vec![
        case("no token", get(ok_path, ""), 401),
        case("wrong token", get(ok_path, "X-Aws-Parameters-Secrets-Token: nope\r\n"), 403),
        case("empty token", get(ok_path, "X-Aws-Parameters-Secrets-Token: \r\n"), 403),
        case("token prefix only", get(ok_path, &format!("X-Aws-Parameters-Secrets-Token: {}\r\n", &tok[..4])), 403),
        case("token value in upper case", get(ok_path, &format!("X-Aws-Parameters-Secrets-Token: {}\r\n", tok.to_uppercase())), 403),
        case("token header name in another case", get(ok_path, &format!("x-AWS-parameters-SECRETS-token: {tok}\r\n")), 200),
        case("duplicated token, both right", get(ok_path, &format!("{auth}{auth}")), 400),
        case("duplicated token, one wrong", get(ok_path, &format!("{auth}X-Aws-Parameters-Secrets-Token: nope\r\n")), 400),
        case("token under another header", get(ok_path, &format!("Authorization: Bearer {tok}\r\n")), 401),
        case("X-Forwarded-For", get(ok_path, &format!("{auth}X-Forwarded-For: 10.0.0.1\r\n")), 400),
        case("x-forwarded-for lower case", get(ok_path, &format!("{auth}x-forwarded-for: 127.0.0.1\r\n")), 400),
        case("X-Forwarded-For on /ping", get("/ping", "X-Forwarded-For: 1.2.3.4\r\n"), 400),
        case("Forwarded", get(ok_path, &format!("{auth}Forwarded: for=10.0.0.1\r\n")), 400),
        case("missing secretId", get("/secretsmanager/get", &auth), 400),
        case("empty secretId", get("/secretsmanager/get?secretId=", &auth), 400),
        case("secretId in wrong case", get("/secretsmanager/get?secretid=h", &auth), 400),
        case("bad percent-encoding", get("/secretsmanager/get?secretId=%zz", &auth), 400),
        case("truncated percent-encoding", get("/secretsmanager/get?secretId=h%4", &auth), 400),
        case("NUL byte", get("/secretsmanager/get?secretId=h%00x", &auth), 400),
        case("newline in value", get("/secretsmanager/get?secretId=h%0d%0aX-Injected:%201", &auth), 400),
        case("invalid UTF-8", get("/secretsmanager/get?secretId=%ff%fe", &auth), 400),
        case("duplicated secretId: the first is used, as Go's url.Values.Get", get("/secretsmanager/get?secretId=h&secretId=nope", &auth), 200),
        case("versionId and versionStage that do not agree", get("/secretsmanager/get?secretId=h&versionId=a&versionStage=AWSCURRENT", &auth), 404),
        case("refreshNow not a boolean", get("/secretsmanager/get?secretId=h&refreshNow=yes", &auth), 400),
        case("63 KiB query", get(&long_query, &auth), 414),
        case("3000-byte secretId", get(&long_id, &auth), 400),
        case("missing secret", get("/secretsmanager/get?secretId=does-not-exist", &auth), 404),
        case("SSM without name", get("/systemsmanager/parameters/get?withDecryption=true", &auth), 400),
        case("SSM bad version", get("/systemsmanager/parameters/get?name=/a&version=-1", &auth), 400),
        case("unknown path", get("/secretsmanager/list", &auth), 404),
        case("root path", get("/", &auth), 404),
        case("path in upper case", get("/SECRETSMANAGER/GET?secretId=h", &auth), 404),
        case("dot-dot path", get("/secretsmanager/../ping", &auth), 404),
        case("unknown path without token", get("/admin", ""), 401),
        case("metrics without token", get("/metrics", ""), 401),
        case("POST", method("POST"), 405),
        case("PUT", method("PUT"), 405),
        case("DELETE", method("DELETE"), 405),
        case("PATCH", method("PATCH"), 405),
        case("OPTIONS", method("OPTIONS"), 405),
        case("TRACE", method("TRACE"), 405),
        case(
            "POST to /ping",
            b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            405,
        ),
        case("HTTP/1.0", format!("GET {ok_path} HTTP/1.0\r\n{auth}\r\n").into_bytes(), 200),
        case(
            "body on a GET",
            format!("GET {ok_path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5\r\nConnection: close\r\n\r\nhello")
                .into_bytes(),
            200,
        ),
        case(
            "chunked body on a GET",
            format!(
                "GET {ok_path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
            .into_bytes(),
            200,
        ),
        case("absolute-form target", get(&format!("http://127.0.0.1:{}{ok_path}", ext.port()), &auth), 200),
    ];
    cases.push(Case {
        name: "pipelining: two requests in one write",
        request: format!(
            "GET {ok_path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET /secretsmanager/get?secretId=nope HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .into_bytes(),
        status: 200,
        responses: 2,
        json: true,
    });
    // Past 65534 bytes of URI, hyper itself answers 414 before any handler runs, with an empty body.
    cases.push(Case {
        name: "64 KiB query (rejected by the HTTP layer)",
        request: get(&huge_query, &auth),
        status: 414,
        responses: 1,
        json: false,
    });
    let rss = RssSampler::start(ext.pid());
    let (mut failed, mut lat, mut bodies) = (0u64, Vec::new(), String::new());
    let mut report = Vec::new();
    for c in &cases {
        let t = Instant::now();
        let responses = raw::exchange(ext.port(), &c.request, Duration::from_secs(3))
            .await
            .unwrap_or_default();
        lat.push(t.elapsed());
        let first_ok = responses.first().is_some_and(|r| r.status == c.status);
        let json_ok = !c.json
            || responses
                .iter()
                .all(|r| serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());
        let count_ok = responses.len() == c.responses;
        for r in &responses {
            if r.status != 200 {
                bodies.push_str(&r.text());
            }
        }
        if !(first_ok && json_ok && count_ok) {
            failed += 1;
            report.push(format!(
                "{}: expected {} x{}, got {:?}",
                c.name,
                c.status,
                c.responses,
                responses
                    .iter()
                    .map(|r| (r.status, r.text()))
                    .collect::<Vec<_>>()
            ));
        }
    }
    // Slowloris: headers dribbled a byte at a time are cut off, and others are served meanwhile.
    let slow = tokio::spawn(slowloris(ext.port()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served_meanwhile = ext.get_secret("secretId=h").await.status == 200;
    let cut_off = slow.await.unwrap_or(false);
    if !(served_meanwhile && cut_off) {
        failed += 1;
        report.push(format!(
            "slowloris: served meanwhile {served_meanwhile}, cut off {cut_off}"
        ));
    }
    // Still healthy afterwards.
    let healthy = crate::http::get(&format!("{}/ping", ext.url()), &[])
        .await
        .map(|r| r.status)
        .unwrap_or(0)
        == 200
        && ext.get_secret("secretId=h").await.status == 200;
    if !healthy {
        failed += 1;
        report.push("not healthy afterwards".into());
    }
    let logs = ext.logs();
    let secrets = [secret];
    Outcome {
        scenario: format!("4. hostile input: {} cases + slowloris", cases.len()),
        sent: cases.len() as u64 + 1,
        failed,
        p99_ms: p99(&mut lat),
        max_rss_kib: rss.max(),
        rule: if report.is_empty() {
            "exact status and a JSON body each; healthy after".into()
        } else {
            report.join("; ")
        },
        scanned: logs.lines().count() as u64 + cases.len() as u64,
        leaks: leaks_in(&logs, &secrets) + leaks_in(&bodies, &secrets),
    }
}

/// Sends a request line and then one header byte per second; true when the server closes the connection within
/// its header timeout (plus slack).
async fn slowloris(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let start = Instant::now();
    if s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(12) {
        if s.write_all(b"X").await.is_err() {
            return start.elapsed() < Duration::from_secs(8);
        }
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => return start.elapsed() < Duration::from_secs(8),
            Err(_) => {}
        }
    }
    false
}

/// Scenario 5: many idle connections held open; a new client is still served, and memory stays bounded.
pub async fn connection_exhaustion(scale: Scale) -> Outcome {
    let moto = Moto::start().await;
    moto.sm_client()
        .await
        .create_secret()
        .name("c")
        .secret_string("canary-conn")
        .send()
        .await
        .expect("create");
    let ext = Standalone::spawn(&moto, &[]).await;
    assert_eq!(ext.get_secret("secretId=c").await.status, 200);
    let rss = RssSampler::start(ext.pid());
    let mut idle = Vec::with_capacity(scale.idle_connections);
    for _ in 0..scale.idle_connections {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", ext.port())).await {
            idle.push(s);
        }
    }
    let held = idle.len();
    let mut lat = Vec::new();
    let mut failed = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3), ext.get_secret("secretId=c")).await;
        lat.push(t.elapsed());
        if !matches!(r, Ok(ref r) if r.status == 200) {
            failed += 1;
        }
    }
    let max_rss = rss.max();
    drop(idle);
    Outcome {
        scenario: format!("5. {held} idle connections held"),
        sent: lat.len() as u64,
        failed,
        p99_ms: p99(&mut lat),
        max_rss_kib: max_rss,
        rule: "each new request must get 200 within 3 s; RSS bound 64 MiB".into(),
        scanned: 0,
        leaks: 0,
    }
}

/// Scenario 8: lifecycle faults: upstream down during init, SHUTDOWN with requests in flight, freeze across expiry.
pub async fn lifecycle_faults() -> Vec<Outcome> {
    vec![
        init_with_upstream_down().await,
        shutdown_in_flight().await,
        freeze_across_expiry().await,
    ]
}

async fn lambda_extension(
    proxy: &FaultInjectingProxy,
    extra: &[(&str, &str)],
) -> (ExtensionsApi, Standalone) {
    let port = crate::free_port();
    let api = ExtensionsApi::start(port).await;
    let token = crate::random_token();
    let mut env = base_env(&proxy.endpoint(), port, &token);
    env.push(("AWS_LAMBDA_RUNTIME_API".into(), api.address()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let ext = Standalone::spawn_with_env(env, &[], port, token);
    (api, ext)
}

async fn init_with_upstream_down() -> Outcome {
    let moto = Moto::start().await;
    let proxy = FaultInjectingProxy::start(&moto).await;
    proxy.set_fault(Fault::Hang);
    let start = Instant::now();
    let (api, ext) = lambda_extension(
        &proxy,
        &[("PARAMETERS_SECRETS_EXTENSION_PREFETCH", "db,other")],
    )
    .await;
    let ready = api.wait_next_calls(1, Duration::from_secs(10)).await;
    let took = start.elapsed();
    let registered_with_port_open = api.registration().is_some_and(|r| r.port_open);
    let ok = ready && took < Duration::from_secs(10) && registered_with_port_open;
    let logs = ext.logs();
    Outcome {
        scenario: "8a. upstream down during init".into(),
        sent: 1,
        failed: u64::from(!ok),
        p99_ms: took.as_secs_f64() * 1000.0,
        max_rss_kib: ext.rss_kib().unwrap_or(0),
        rule: "ready (first next) within the 10 s init limit; p99 column = time to ready (the prefetch's budget \
               is 1 s by default)"
            .into(),
        scanned: logs.lines().count() as u64,
        leaks: 0,
    }
}

async fn shutdown_in_flight() -> Outcome {
    let moto = Moto::start().await;
    let sm = moto.sm_client().await;
    let secrets: Vec<String> = (0..20).map(|i| format!("canary-shutdown-{i}")).collect();
    for (i, v) in secrets.iter().enumerate() {
        sm.create_secret()
            .name(format!("s{i}"))
            .secret_string(v)
            .send()
            .await
            .expect("create");
    }
    let proxy = FaultInjectingProxy::start(&moto).await;
    let (api, mut ext) = lambda_extension(&proxy, &[]).await;
    assert!(
        api.wait_next_calls(1, Duration::from_secs(10)).await,
        "{}",
        ext.logs()
    );
    let rss = RssSampler::start(ext.pid());
    proxy.set_fault(Fault::Delay(Duration::from_millis(800)));
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (url, tok) = (ext.url(), ext.token());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = crate::http::get(
                    &format!("{url}/secretsmanager/get?secretId=s{i}"),
                    &[(TOKEN_HEADER, &tok)],
                )
                .await;
                (r.map(|r| r.status).ok(), t.elapsed(), epoch_millis())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let deadline = api.shutdown(Duration::from_secs(2));
    let exited = ext.wait_exit(Duration::from_secs(4)).await;
    let exited_at = epoch_millis();
    let (mut failed, mut lat) = (0u64, Vec::new());
    for r in requests {
        let (status, took, done_at) = r.await.unwrap_or((None, Duration::ZERO, u64::MAX));
        lat.push(took);
        // Complete (200) or fail cleanly (an error status, or the connection closed), and before the deadline.
        let clean = matches!(status, Some(200) | Some(502..=504) | None);
        if !clean || done_at > deadline {
            failed += 1;
        }
    }
    if exited.is_none() || exited_at > deadline {
        failed += 1;
    }
    let logs = ext.logs();
    Outcome {
        scenario: "8b. SHUTDOWN with 20 requests in flight".into(),
        sent: 20,
        failed,
        p99_ms: p99(&mut lat),
        max_rss_kib: rss.max(),
        rule: "each completes or fails cleanly, and the process exits, before the 2 s deadline"
            .into(),
        scanned: logs.lines().count() as u64,
        leaks: leaks_in(&logs, &secrets),
    }
}

async fn freeze_across_expiry() -> Outcome {
    let moto = Moto::start().await;
    let sm = moto.sm_client().await;
    sm.create_secret()
        .name("fz")
        .secret_string("canary-freeze-1")
        .send()
        .await
        .expect("create");
    let proxy = FaultInjectingProxy::start(&moto).await;
    let (api, ext) = lambda_extension(
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "1"),
            ("PARAMETERS_SECRETS_EXTENSION_PREFETCH", "fz"),
        ],
    )
    .await;
    assert!(
        api.wait_next_calls(1, Duration::from_secs(10)).await,
        "{}",
        ext.logs()
    );
    ext.signal("STOP");
    sm.put_secret_value()
        .secret_id("fz")
        .secret_string("canary-freeze-2")
        .send()
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ext.signal("CONT");
    api.invoke("thawed", Duration::from_secs(3));
    let back = api.wait_next_calls(2, Duration::from_secs(5)).await;
    let t = Instant::now();
    let r = ext.get_secret("secretId=fz").await;
    let took = t.elapsed();
    let ok = back && r.status == 200 && r.json()["SecretString"] == "canary-freeze-2";
    let rss = ext.rss_kib().unwrap_or(0);
    let logs = ext.logs();
    Outcome {
        scenario: "8c. freeze (SIGSTOP) across expiry, thaw, INVOKE".into(),
        sent: 1,
        failed: u64::from(!ok),
        p99_ms: took.as_secs_f64() * 1000.0,
        max_rss_kib: rss,
        rule: "the read after thaw gets the value written while frozen".into(),
        scanned: logs.lines().count() as u64,
        leaks: leaks_in(&logs, &["canary-freeze-1".into(), "canary-freeze-2".into()]),
    }
}

/// Scenario 3: `/items` through the local Lambda environment, both zips, at a steady request rate, while the
/// database password is rotated the single-user way: the new value is written as AWSPENDING, the role's password is
/// changed, then the new value is promoted with `PutSecretValue` (moto mishandles `UpdateSecretVersionStage`).
///
/// The function's pool recycles each connection after 1 s, so new logins keep happening all through the window in
/// which the database already wants the new password and AWSCURRENT still holds the old one: the function must find
/// the AWSPENDING value through the extension, without failing a request.
pub async fn rotation_under_load(scale: Scale) -> Outcome {
    use lambda_env::{front_door, LambdaEnv};

    use crate::postgres::{new_password, PgCluster};

    let moto = Moto::start().await;
    let sm = moto.sm_client().await;
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("relrotate").await;
    let old_password = db.password.clone();
    let arn = sm
        .create_secret()
        .name("relrotate/db")
        .secret_string(db.secret_json())
        .send()
        .await
        .expect("create the database secret")
        .arn
        .expect("an ARN");
    let mut options = crate::items_with_layer(
        crate::lambda_zip("items-function", crate::Arch::host()),
        crate::Arch::host(),
        &moto.endpoint(),
        &arn,
    )
    .var("SECRETS_MANAGER_TTL", "3")
    .var("DATABASE_POOL_MAX_LIFETIME_SECS", "1");
    options.timeout = Duration::from_secs(10);
    let env = LambdaEnv::start(options)
        .await
        .expect("the local Lambda environment starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front door");
    let front = format!(
        "http://{}/items?limit=5",
        listener.local_addr().expect("addr")
    );
    let front_task = tokio::spawn(front_door::serve(
        Arc::clone(&env),
        listener,
        std::future::pending(),
    ));
    let extension_pid = env
        .processes()
        .await
        .into_iter()
        .find(|(name, _)| name.contains("secretcache"))
        .map(|(_, pid)| pid);
    let rss = RssSampler::start(extension_pid);

    // The load: one request every `1 / rate` seconds for the whole run, each on its own task so that a slow one
    // delays none of the next (the environment still runs one invoke at a time, as Lambda does).
    let period = Duration::from_secs(1) / scale.rotation_rate;
    let total = scale.rotation_run.as_millis() / period.as_millis().max(1);
    let load = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        let mut requests = Vec::new();
        for _ in 0..total {
            ticker.tick().await;
            let url = front.clone();
            requests.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = crate::http::get(&url, &[]).await;
                (t.elapsed(), r)
            }));
        }
        let mut done = Vec::with_capacity(requests.len());
        for r in requests {
            done.push(r.await.expect("request task"));
        }
        done
    });

    // The rotation, a third of the way in; the pending window lasts a third of the run.
    tokio::time::sleep(scale.rotation_run / 3).await;
    let new_password = new_password();
    let mut rotated = db.clone();
    rotated.password = new_password.clone();
    sm.put_secret_value()
        .secret_id(&arn)
        .client_request_token(format!(
            "pending-{}-{}",
            crate::random_token(),
            crate::random_token()
        ))
        .secret_string(rotated.secret_json())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue AWSPENDING");
    pg.set_password(&db.username, &new_password).await;
    tokio::time::sleep(scale.rotation_run / 3).await;
    sm.put_secret_value()
        .secret_id(&arn)
        .client_request_token(format!(
            "current-{}-{}",
            crate::random_token(),
            crate::random_token()
        ))
        .secret_string(rotated.secret_json())
        .send()
        .await
        .expect("PutSecretValue AWSCURRENT");

    let done = load.await.expect("load task");
    let mut latencies = Vec::with_capacity(done.len());
    let (mut failed, mut scanned, mut leaks) = (0u64, 0u64, 0u64);
    let secrets = [old_password, new_password];
    for (elapsed, r) in &done {
        latencies.push(*elapsed);
        match r {
            Ok(resp) => {
                if resp.status != 200 {
                    failed += 1;
                }
                scanned += 1;
                leaks += leaks_in(&resp.text(), &secrets);
            }
            Err(_) => failed += 1,
        }
    }
    let logged_in_again = pg.sessions_of(&db.username).await;
    let max_rss = rss.max();
    drop(rss);
    // Shut down first: the logs then hold every line either process wrote.
    env.shutdown().await;
    front_task.abort();
    let logs = env.logs();
    let pending_logins = logs
        .iter()
        .filter(|l| l.text.contains("login works again") && l.text.contains("AWSPENDING"))
        .count();
    scanned += logs.len() as u64;
    leaks += logs
        .iter()
        .map(|l| leaks_in(&l.text, &secrets))
        .sum::<u64>();
    // The rotation must have been exercised, not dodged: logins with the pending value happened, and the role is
    // still connected afterwards (with the new password, the only one the database accepts).
    if pending_logins == 0 || logged_in_again == 0 {
        failed += 1;
    }
    Outcome {
        scenario: format!(
            "3. rotation under load: {} /items at {}/s through both zips",
            done.len(),
            scale.rotation_rate
        ),
        sent: done.len() as u64,
        failed,
        p99_ms: p99(&mut latencies),
        max_rss_kib: max_rss,
        rule: format!(
            "any non-200 /items fails; AWSPENDING written, ALTER ROLE, promoted {} s later by PutSecretValue; \
             pool connections live 1 s; {pending_logins} login(s) recovered through AWSPENDING",
            (scale.rotation_run / 3).as_secs_f64()
        ),
        scanned,
        leaks,
    }
}
