//! Item 8, batch reads: ten uncached secrets in one `GET /secretsmanager/batch` (one BatchGetSecretValue) beside the
//! same ten read as ten concurrent single requests, each on a fresh process (an empty cache), through the same proxy
//! and moto. The upstream calls are counted by the proxy; the time is until every secret is answered.

use std::time::Instant;

use secretcache_tests::extension::Standalone;
use secretcache_tests::proxy::FaultInjectingProxy;

use super::{ms, Fixture, BATCH_IDS, TOKEN_HEADER};
use crate::report::{Cell, Row};
use crate::targets::LOG_LEVEL;
use crate::Settings;

fn calls(proxy: &FaultInjectingProxy) -> f64 {
    (proxy.count("BatchGetSecretValue") + proxy.count("GetSecretValue")) as f64
}

/// Runs item 8; returns its rows and the raw samples.
pub async fn run(
    fx: &Fixture,
    settings: &Settings,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let proxy = FaultInjectingProxy::start(&fx.moto).await;
    let ids: Vec<String> = (0..BATCH_IDS).map(super::batch_id).collect();
    let (mut single_ms, mut single_calls, mut batch_ms, mut batch_calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..settings.repeats {
        let ext = Standalone::spawn(&proxy, &[LOG_LEVEL]).await;
        proxy.reset_counts();
        let start = Instant::now();
        let reads: Vec<_> = ids
            .iter()
            .map(|id| {
                let (url, token) = (
                    format!("{}/secretsmanager/get?secretId={id}", ext.url()),
                    ext.token(),
                );
                tokio::spawn(async move {
                    secretcache_tests::http::get(&url, &[(TOKEN_HEADER, &token)])
                        .await
                        .map(|r| r.status)
                })
            })
            .collect();
        for r in reads {
            let status = r
                .await
                .map_err(|e| format!("single read task: {e}"))?
                .map_err(|e| format!("single read: {e}"))?;
            if status != 200 {
                return Err(format!("a single read answered {status}"));
            }
        }
        single_ms.push(ms(start.elapsed()));
        single_calls.push(calls(&proxy));
        drop(ext);

        let ext = Standalone::spawn(&proxy, &[LOG_LEVEL]).await;
        proxy.reset_counts();
        let query: String = ids.iter().map(|id| format!("secretId={id}&")).collect();
        let url = format!("{}/secretsmanager/batch?{query}", ext.url());
        let start = Instant::now();
        let r = secretcache_tests::http::get(&url, &[(TOKEN_HEADER, &ext.token())])
            .await
            .map_err(|e| format!("batch read: {e}"))?;
        batch_ms.push(ms(start.elapsed()));
        batch_calls.push(calls(&proxy));
        let answered = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["SecretValues"].as_array().map(Vec::len));
        if r.status != 200 || answered != Some(BATCH_IDS) {
            return Err(format!(
                "the batch answered {} with {answered:?} values",
                r.status
            ));
        }
    }
    let rows = vec![
        Row::new(
            8,
            &format!("batch: {BATCH_IDS} uncached secrets, upstream calls"),
            "calls",
            Cell::of(&single_calls),
            Cell::of(&batch_calls),
            Cell::Absent,
        )
        .note(format!(
            "counted by the proxy; baseline: the same {BATCH_IDS} secrets as concurrent single reads through ours"
        )),
        Row::new(
            8,
            &format!("batch: {BATCH_IDS} uncached secrets, all answered"),
            "ms",
            Cell::of(&single_ms),
            Cell::of(&batch_ms),
            Cell::Absent,
        )
        .note(
            "fresh process each (empty cache); the single reads share the 3-connection upstream pool (MAX_CONNECTIONS)",
        ),
    ];
    let raw = serde_json::json!({
        "single": {"ms": single_ms, "calls": single_calls},
        "batch": {"ms": batch_ms, "calls": batch_calls},
    });
    Ok((rows, raw))
}
