//! Item 7: what the extension costs the `/items` function on a warm invoke.
//!
//! Two local Lambda environments (`lambda-env`) run the real function zip from `make package`, on one throwaway
//! PostgreSQL database: one with the layer zip and `DB_SECRET_ARN` (credentials through the extension, prefetched
//! at init), the baseline without the layer and with `DATABASE_URL` (credentials in-process). Each gets the same
//! warm `GET /items?limit=5` through an API Gateway front door, one at a time, with freezing on as in Lambda. The
//! figures are the client-side latency, and the invoke's `Duration` as Lambda reports it, which also counts the
//! extension's return to `next` (its post-runtime time).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_env::{front_door, LambdaEnv, Options};
use secretcache_tests::moto::Endpoint;
use secretcache_tests::postgres::PgCluster;

use super::{ms, Fixture};
use crate::report::{Cell, Row};
use crate::Settings;
use secretcache_tests::stats::percentile;

/// Warm requests per environment and repeat; each repeat reports their median.
const REQUESTS: usize = 70;
/// Requests before measuring: the first creates the pool and runs the migrations.
const WARMUP: usize = 5;
/// The request measured.
const PATH: &str = "/items?limit=5";

/// The zips' architecture in `make package`'s naming.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

fn zip(stem: &str) -> PathBuf {
    secretcache_tests::workspace_root().join(format!("layer/dist/{stem}-{}.zip", arch()))
}

/// One environment with its front door.
struct Running {
    env: Arc<LambdaEnv>,
    front: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(options: Options) -> Result<Running, String> {
    let env = LambdaEnv::start(options)
        .await
        .map_err(|e| format!("local Lambda environment: {e}"))?;
    if let Some(Err(e)) = env.init_result() {
        return Err(format!("init failed: {e}"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the front door: {e}"))?;
    let front = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("front door address: {e}"))?
    );
    let task = tokio::spawn(front_door::serve(
        Arc::clone(&env),
        listener,
        std::future::pending(),
    ));
    Ok(Running { env, front, task })
}

/// Sends `n` warm GETs one at a time; returns the median client latency and the median reported `Duration` and
/// post-runtime time, in ms.
async fn measure(r: &Running, n: usize) -> Result<(f64, f64, f64), String> {
    let before = r.env.reports().len();
    let mut client = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = secretcache_tests::http::get(&format!("{}{PATH}", r.front), &[])
            .await
            .map_err(|e| format!("GET {PATH}: {e}"))?;
        client.push(t.elapsed().as_nanos() as u64);
        if resp.status != 200 {
            return Err(format!(
                "GET {PATH} answered {}: {}",
                resp.status,
                resp.text()
            ));
        }
        // The next invoke starts only once this one is over, as in one Lambda execution environment.
        r.env.settled().await;
    }
    let reports = r.env.reports();
    let mut duration: Vec<u64> = reports[before..]
        .iter()
        .map(|x| x.duration.as_nanos() as u64)
        .collect();
    let mut post: Vec<u64> = reports[before..]
        .iter()
        .map(|x| x.post_runtime_duration.as_nanos() as u64)
        .collect();
    client.sort_unstable();
    duration.sort_unstable();
    post.sort_unstable();
    let p50 = |v: &[u64]| percentile(v, 50.0).map_or(f64::NAN, |ns| ns as f64 / 1e6);
    Ok((p50(&client), p50(&duration), p50(&post)))
}

fn pending(reason: &str) -> Vec<Row> {
    let mut row = Row::new(
        7,
        "/items warm GET, credentials via extension vs DATABASE_URL",
        "ms",
        Cell::text("–"),
        Cell::text(reason),
        Cell::Absent,
    );
    row.ratio = Cell::text("–");
    vec![row]
}

/// Runs item 7. Anything missing (the zips, PostgreSQL) or failing makes a row that says so, not a failed run.
pub async fn run(fx: &Fixture, settings: &Settings) -> (Vec<Row>, serde_json::Value) {
    let (layer, function) = (zip("secretcache-layer"), zip("items-function"));
    if !layer.is_file() || !function.is_file() {
        return (
            pending("not built (`make package`)"),
            serde_json::Value::Null,
        );
    }
    match measured(fx, settings, layer, function).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench: item 7 failed: {e}");
            (pending("failed (see stderr)"), serde_json::Value::Null)
        }
    }
}

async fn measured(
    fx: &Fixture,
    settings: &Settings,
    layer: PathBuf,
    function: PathBuf,
) -> Result<(Vec<Row>, serde_json::Value), String> {
    let pg = tokio::task::spawn_blocking(|| PgCluster::start(false))
        .await
        .map_err(|e| format!("PostgreSQL did not start: {e}"))?;
    let db = pg.create_app_database("bench").await;
    let sm = fx.moto.sm_client().await;
    let arn = sm
        .create_secret()
        .name("bench/items/function-db")
        .secret_string(db.secret_json())
        .send()
        .await
        .map_err(|e| format!("create the database secret: {e}"))?
        .arn
        .ok_or("moto returned no ARN")?;

    let common = |mut o: Options| {
        o.function_name = "items".to_owned();
        o.timeout = Duration::from_secs(15);
        o.var("AWS_ACCESS_KEY_ID", "testing")
            .var("AWS_SECRET_ACCESS_KEY", "testing")
            .var("AWS_ENDPOINT_URL", &fx.moto.endpoint())
    };
    let with_extension = common(Options::new(&function, vec![layer.clone()]))
        .var("DB_SECRET_ARN", &arn)
        .var("PARAMETERS_SECRETS_EXTENSION_PREFETCH", &arn)
        .var(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            &secretcache_tests::free_port().to_string(),
        )
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info");
    let in_process = common(Options::new(&function, Vec::new())).var("DATABASE_URL", &db.url());
    // The layer beside a function that does not read through it: what the extension's presence alone costs an
    // invoke (its INVOKE event, its threads woken and frozen), apart from where the credentials come from.
    let beside = common(Options::new(&function, vec![layer]))
        .var("DATABASE_URL", &db.url())
        .var(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            &secretcache_tests::free_port().to_string(),
        )
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info");
    let ours = start(with_extension).await?;
    let base = start(in_process).await?;
    let present = start(beside).await?;

    // A few rows to list, then the warm-up of both (pool, migrations, first queries).
    for i in 0..5 {
        let body = bytes::Bytes::from(format!(r#"{{"name":"bench item {i}"}}"#));
        let r = secretcache_tests::http::request(
            "POST",
            &format!("{}/items", ours.front),
            &[("content-type", "application/json")],
            Some(body),
        )
        .await
        .map_err(|e| format!("POST /items: {e}"))?;
        ours.env.settled().await;
        if r.status != 201 && r.status != 200 {
            return Err(format!("POST /items answered {}: {}", r.status, r.text()));
        }
    }
    measure(&ours, WARMUP).await?;
    measure(&base, WARMUP).await?;
    measure(&present, WARMUP).await?;

    let (mut b_client, mut b_dur) = (Vec::new(), Vec::new());
    let (mut o_client, mut o_dur, mut o_post) = (Vec::new(), Vec::new(), Vec::new());
    let mut p_dur = Vec::new();
    for _ in 0..settings.repeats {
        let (c, d, _) = measure(&base, REQUESTS).await?;
        b_client.push(c);
        b_dur.push(d);
        let (c, d, p) = measure(&ours, REQUESTS).await?;
        o_client.push(c);
        o_dur.push(d);
        o_post.push(p);
        p_dur.push(measure(&present, REQUESTS).await?.1);
    }
    let init = |r: &Running| match r.env.init_result() {
        Some(Ok(i)) => Some(ms(i.duration)),
        _ => None,
    };
    let (ours_init, base_init) = (init(&ours), init(&base));
    ours.env.shutdown().await;
    base.env.shutdown().await;
    present.env.shutdown().await;
    drop(pg);

    let note = format!(
        "median of {REQUESTS} warm invokes per repeat, freezing on; baseline: no layer, DATABASE_URL"
    );
    let rows = vec![
        Row::new(
            7,
            &format!("/items warm GET {PATH}: client latency"),
            "ms",
            Cell::of(&b_client),
            Cell::of(&o_client),
            Cell::Absent,
        )
        .note(format!(
            "{note}; includes lambda-env's freeze and thaw (one killpg per process)"
        )),
        Row::new(
            7,
            "/items warm invoke: REPORT Duration",
            "ms",
            Cell::of(&b_dur),
            Cell::of(&o_dur),
            Cell::Absent,
        )
        .note("event delivered until runtime and every extension are back on next"),
        Row::new(
            7,
            "/items warm invoke: REPORT Duration, layer present, DATABASE_URL",
            "ms",
            Cell::of(&b_dur),
            Cell::of(&p_dur),
            Cell::Absent,
        )
        .note("the layer's extension beside a function that takes its credentials from DATABASE_URL: what the extension's presence alone costs an invoke"),
        Row::new(
            7,
            "/items warm invoke: post-runtime extensions duration",
            "ms",
            // Without the layer there is no extension, so nothing to divide by: the figure stands alone.
            Cell::text("0"),
            Cell::of(&o_post),
            Cell::Absent,
        )
        .note("from the response to the extension's next (Lambda's PostRuntimeExtensionsDuration): the extension's INVOKE work the function pays for; without the layer there is none"),
    ];
    let raw = serde_json::json!({
        "requests_per_repeat": REQUESTS,
        "baseline": {"client_p50_ms": b_client, "duration_p50_ms": b_dur, "init_ms": base_init},
        "layer_present_database_url": {"duration_p50_ms": p_dur},
        "secretcache": {"client_p50_ms": o_client, "duration_p50_ms": o_dur, "post_runtime_p50_ms": o_post, "init_ms": ours_init},
    });
    Ok((rows, raw))
}
