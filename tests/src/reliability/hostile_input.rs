//! Scenario 4: at least 40 malformed or hostile requests sent as raw bytes (what a well-behaved client refuses to
//! send), each with its exact status and a JSON body, plus a slowloris; the process must still be healthy after.

use std::time::{Duration, Instant};

use super::{leaks_in, Outcome, RssSampler};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::raw;
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

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
pub async fn run() -> Outcome {
    let moto = Moto::shared().await;
    let secret = "canary-hostile-value".to_string();
    let h = unique("h");
    seed::secret(&moto.sm_client().await, &h, &secret).await;
    let ext = Standalone::spawn(moto, &[]).await;
    let tok = ext.token();
    let get = |target: &str, headers: &str| -> Vec<u8> {
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n")
            .into_bytes()
    };
    let auth = format!("X-Aws-Parameters-Secrets-Token: {tok}\r\n");
    let ok_path = &format!("/secretsmanager/get?secretId={h}");
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
        case("truncated percent-encoding", get(&format!("/secretsmanager/get?secretId={h}%4"), &auth), 400),
        case("NUL byte", get(&format!("/secretsmanager/get?secretId={h}%00x"), &auth), 400),
        case("newline in value", get(&format!("/secretsmanager/get?secretId={h}%0d%0aX-Injected:%201"), &auth), 400),
        case("invalid UTF-8", get("/secretsmanager/get?secretId=%ff%fe", &auth), 400),
        case("duplicated secretId: the first is used, as Go's url.Values.Get", get(&format!("/secretsmanager/get?secretId={h}&secretId=nope"), &auth), 200),
        case("versionId and versionStage that do not agree", get(&format!("/secretsmanager/get?secretId={h}&versionId=a&versionStage=AWSCURRENT"), &auth), 404),
        case("refreshNow not a boolean", get(&format!("/secretsmanager/get?secretId={h}&refreshNow=yes"), &auth), 400),
        case("63 KiB query", get(&long_query, &auth), 414),
        case("3000-byte secretId", get(&long_id, &auth), 400),
        case("missing secret", get("/secretsmanager/get?secretId=does-not-exist", &auth), 404),
        case("SSM without name", get("/systemsmanager/parameters/get?withDecryption=true", &auth), 400),
        case("SSM bad version", get("/systemsmanager/parameters/get?name=/a&version=-1", &auth), 400),
        case("unknown path", get("/secretsmanager/list", &auth), 404),
        case("root path", get("/", &auth), 404),
        case("path in upper case", get(&format!("/SECRETSMANAGER/GET?secretId={h}"), &auth), 404),
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
    let served_meanwhile = ext.get_secret(&format!("secretId={h}")).await.status == 200;
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
        && ext.get_secret(&format!("secretId={h}")).await.status == 200;
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
        p99_ms: percentile_ms(&lat, 99.0),
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
