//! Scenario 1: many requests from 64 concurrent keep-alive clients to cached secrets, through one standalone
//! extension; any non-200 or wrong body fails the row, and resident memory is sampled throughout.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use super::{connect, leaks_in, Outcome, RssSampler, Scale, TOKEN_HEADER};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Scenario 1: many requests from 64 concurrent keep-alive clients to cached secrets.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let secrets: Vec<String> = (0..10)
        .map(|i| format!("canary-load-{i}-{}", "x".repeat(4000)))
        .collect();
    let prefix = unique("load");
    for (i, v) in secrets.iter().enumerate() {
        seed::secret(&sm, &format!("{prefix}/{i}"), v).await;
    }
    let ext = Standalone::spawn(moto, &[("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info")]).await;
    for i in 0..10 {
        assert_eq!(
            ext.get_secret(&format!("secretId={prefix}/{i}"))
                .await
                .status,
            200
        );
    }
    let rss = RssSampler::start(ext.pid());
    let clients = 64;
    let per_client = scale.load_requests.div_ceil(clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (port, token, secrets, prefix) =
                (ext.port(), ext.token(), secrets.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut sender = connect(port).await;
                let (mut lat, mut failed) = (Vec::with_capacity(per_client), 0u64);
                for n in 0..per_client {
                    let i = (c + n) % 10;
                    let req =
                        http::Request::get(format!("/secretsmanager/get?secretId={prefix}/{i}"))
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
        p99_ms: percentile_ms(&lat, 99.0),
        max_rss_kib: rss.max(),
        rule: "any non-200 or wrong body fails; RSS bound 64 MiB".into(),
        scanned: logs.lines().count() as u64,
        leaks: leaks_in(&logs, &secrets),
    }
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len().max(1)).any(|w| w == needle)
}
