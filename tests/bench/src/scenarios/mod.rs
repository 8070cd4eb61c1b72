//! The measurements of issue 6 (items 1–9) and issue 31 (items 10 and 11), each a function returning table rows.
//!
//! Parts:
//! - [`Fixture`]: moto with the secrets every scenario reads, created once per run;
//! - [`hit`]: items 1–3, cache-hit throughput and latency against the baseline and the peer;
//! - [`cold`]: item 4, spawn-to-ready, the first uncached request, and single-flight under a cold burst;
//! - [`memory`]: item 5, RSS idle and with cached secrets;
//! - [`size`]: item 6, the stripped binary and the layer zip;
//! - [`function`]: item 7, the `/items` function's overhead through the local Lambda environment;
//! - [`batch`]: item 8, ten uncached secrets in one batch request beside ten single reads;
//! - [`sdk`]: item 9, the AWS SDKs' own protocol through the cache;
//! - [`scale`]: item 10, memory and hit latency with 10,000 secrets cached;
//! - [`mi`]: item 11, hits under Lambda Managed Instances' concurrency (256 connections over 64 secrets).

pub mod batch;
pub mod cold;
pub mod function;
pub mod hit;
pub mod memory;
pub mod mi;
pub mod scale;
pub mod sdk;
pub mod size;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secretcache_tests::moto::Moto;

/// The secret read by the hit load: database credentials, as the `/items` function keeps them.
pub const HIT_SECRET: &str = "bench/items/db";
/// Read once per fresh process for the first-request latency.
pub const COLD_FIRST_SECRET: &str = "bench/cold/first";
/// Read by the concurrent cold burst.
pub const COLD_BURST_SECRET: &str = "bench/cold/burst";
/// How many secrets the batch row reads.
pub const BATCH_IDS: usize = 10;
/// How many secrets the Managed Instances row spreads its reads over.
pub const MI_IDS: usize = 64;

/// The id of the `i`th secret the batch row reads.
pub fn batch_id(i: usize) -> String {
    format!("bench/batch/{i:02}")
}

/// The id of the `i`th secret the Managed Instances row reads: database credentials like [`HIT_SECRET`]'s.
pub fn mi_id(i: usize) -> String {
    format!("bench/mi/{i:02}")
}

/// A database-credentials secret, as the `/items` function keeps them; `seed` picks the password.
fn db_credentials(seed: u64) -> String {
    format!(
        r#"{{"engine":"postgres","host":"items-db.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com","port":5432,"dbname":"items","username":"items_app","password":"{}"}}"#,
        filler(32, seed)
    )
}

/// The header carrying the token.
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// moto, holding every secret the run reads.
#[derive(Debug)]
pub struct Fixture {
    /// The emulator (stopped on drop).
    pub moto: Moto,
    /// Ids of the secrets cached for the memory figures and the scale rows, [`Settings::bulk_secrets`] of them.
    ///
    /// [`Settings::bulk_secrets`]: crate::Settings::bulk_secrets
    pub memory_ids: Vec<String>,
    /// How long creating them took (reported, so a slow start is explained).
    pub setup: Duration,
}

/// Printable characters from a fixed-seed generator: incompressible enough, and the same in every run.
pub fn filler(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(ALPHABET[((x >> 33) % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

impl Fixture {
    /// Starts moto and creates the secrets: one for hits, two for the cold path, the batch row's and the Managed
    /// Instances row's, and `count` of `bytes` each (the most the memory and scale rows read).
    pub async fn prepare(count: usize, bytes: usize) -> Result<Fixture, String> {
        let start = Instant::now();
        let moto = Moto::start().await;
        let sm = moto.sm_client().await;
        let mut named = vec![
            (HIT_SECRET.to_owned(), db_credentials(1)),
            (COLD_FIRST_SECRET.to_owned(), filler(64, 2)),
            (COLD_BURST_SECRET.to_owned(), filler(64, 3)),
        ];
        named.extend((0..BATCH_IDS).map(|i| (batch_id(i), filler(64, 10 + i as u64))));
        named.extend((0..MI_IDS).map(|i| (mi_id(i), db_credentials(30 + i as u64))));
        let memory_ids: Vec<String> = (0..count).map(|i| format!("bench/mem/{i:04}")).collect();
        named.extend(
            memory_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), filler(bytes, 100 + i as u64))),
        );
        let named = Arc::new(named);
        let next = Arc::new(AtomicUsize::new(0));
        // moto answers a few requests at a time; eight in flight keeps it busy without queueing much.
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (sm, named, next) = (sm.clone(), Arc::clone(&named), Arc::clone(&next));
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, value)) = named.get(i) else {
                            return Ok::<(), String>(());
                        };
                        sm.create_secret()
                            .name(name)
                            .secret_string(value)
                            .send()
                            .await
                            .map_err(|e| format!("create secret {name} in moto: {e}"))?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await
                .map_err(|e| format!("secret creation task: {e}"))??;
        }
        Ok(Fixture {
            moto,
            memory_ids,
            setup: start.elapsed(),
        })
    }
}

/// `GET /secretsmanager/get?secretId=<id>` on `port` with `token`; the status and body length.
pub async fn get_secret(
    port: u16,
    token: &str,
    id: &str,
) -> Result<(u16, usize, Option<String>), String> {
    let url = format!("http://127.0.0.1:{port}/secretsmanager/get?secretId={id}");
    let r = secretcache_tests::http::get(&url, &[(TOKEN_HEADER, token)])
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let source = r.header("x-secretcache-cache").map(str::to_owned);
    Ok((r.status, r.body.len(), source))
}

/// Milliseconds of a duration, as the table shows them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Concurrent reads while filling and checking the cache (ours fetches at most three at a time from upstream).
const READERS: usize = 8;

/// One read of one secret: its status (0 when the request failed), body length and whether it was a hit.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Read {
    pub(super) status: u16,
    pub(super) len: usize,
    pub(super) hit: bool,
}

/// Reads every one of `ids` once through the server, [`READERS`] at a time; the reads in the order of `ids`.
pub(super) async fn read_each(port: u16, token: &str, ids: &[String]) -> Result<Vec<Read>, String> {
    let ids = Arc::new(ids.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..READERS)
        .map(|_| {
            let (ids, next, token) = (Arc::clone(&ids), Arc::clone(&next), token.to_owned());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else {
                        return done;
                    };
                    let read = match get_secret(port, &token, id).await {
                        Ok((status, len, source)) => Read {
                            status,
                            len,
                            hit: source.as_deref() == Some("hit"),
                        },
                        Err(_) => Read::default(),
                    };
                    done.push((i, read));
                }
            })
        })
        .collect();
    let mut reads = vec![Read::default(); ids.len()];
    for w in workers {
        for (i, read) in w.await.map_err(|e| format!("reader task: {e}"))? {
            reads[i] = read;
        }
    }
    Ok(reads)
}
