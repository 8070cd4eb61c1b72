//! `make run`: the whole system on this machine, as it runs in Lambda, with no Docker and no AWS account.
//!
//! It starts moto holding the database secret (behind the counting proxy, so upstream calls are counted outside
//! the extension), a throwaway PostgreSQL (TLS only, scram-sha-256) whose credentials are that secret, and the local
//! Lambda environment running the **layer zip and the function zip** behind an API Gateway front door. It then
//! shows the point of the design: one upstream fetch during init, cache hits after, and `/items` answering 200.
//! Then a second function shows the exec wrapper: its `DB_PASSWORD` variable is a reference to the same secret's
//! `password` field, resolved before its runtime starts; it answers with the value's length, which is all the demo
//! prints. It serves until Ctrl-C, then sends SHUTDOWN as Lambda does when it retires an environment.
//!
//! ```text
//! local-lambda --layer layer/dist/secretcache-layer-x86_64.zip --function layer/dist/items-function-x86_64.zip [--port 9000]
//! ```

use std::sync::Arc;
use std::time::Duration;

use lambda_env::{front_door, LambdaEnv, Options};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::postgres::PgCluster;
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::{free_port, http};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    layer: String,
    function: String,
    port: u16,
}

fn parse() -> Result<Args, BoxError> {
    let (mut layer, mut function, mut port) = (None, None, 9000);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--layer" => layer = Some(value),
            "--function" => function = Some(value),
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port {value}: not a port"))?
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(Args {
        layer: layer.ok_or("--layer <zip> is required")?,
        function: function.ok_or("--function <zip> is required")?,
        port,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse()?;
    // Bound first: a busy port should fail before three servers start.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| {
            format!(
                "127.0.0.1:{} is not free ({e}); try PORT=9001 make run",
                args.port
            )
        })?;

    say("starting moto (Secrets Manager) and a throwaway PostgreSQL 15 (hostssl only, scram-sha-256)");
    let moto = Moto::start().await;
    let proxy = FaultInjectingProxy::start(&moto).await;
    let pg = tokio::task::spawn_blocking(|| PgCluster::start(false)).await?;
    // The operator's step before the first deploy: the /items table, migrated with the database owner's credentials
    // (function/README.md, "Migrations"); the function itself runs no DDL in Lambda.
    let db = pg.create_app_database("demo").await;
    say("the items table migrated by the database's owner (the operator's step; the function runs no DDL in Lambda)");
    let sm = moto.sm_client().await;
    let arn = sm
        .create_secret()
        .name("demo/items-db")
        .description("RDS-style credentials of the demo database")
        .secret_string(db.secret_json())
        .send()
        .await?
        .arn
        .ok_or("moto returned no ARN")?;
    say(&format!(
        "secret {arn} holds the database credentials (moto at {})",
        moto.endpoint()
    ));

    // The function's configuration, as deploy/template.yaml sets it.
    let ext_port = if free(2773) { 2773 } else { free_port() };
    let mut options = Options::new(&args.function, vec![args.layer.clone().into()]);
    options.function_name = "items".to_owned();
    options.memory_mb = 256;
    options.timeout = Duration::from_secs(15);
    options.echo_logs = true;
    let options = options
        .var("AWS_ACCESS_KEY_ID", "demo")
        .var("AWS_SECRET_ACCESS_KEY", "demo")
        .var("AWS_ENDPOINT_URL", &proxy.endpoint())
        .var("DB_SECRET_ARN", &arn)
        .var("PARAMETERS_SECRETS_EXTENSION_PREFETCH", &arn)
        .var(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            &ext_port.to_string(),
        )
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")
        .var("SECRETS_MANAGER_TTL", "300");
    say(&format!(
        "starting the Lambda environment: {} + {}",
        args.function, args.layer
    ));
    let env = LambdaEnv::start(options).await?;
    match env.init_result() {
        Some(Ok(init)) => say(&format!(
            "init done in {:.1} ms; GetSecretValue calls so far (counted outside the extension): {}",
            init.duration.as_secs_f64() * 1000.0,
            proxy.count("GetSecretValue")
        )),
        Some(Err(e)) => say(&format!("init failed: {e}")),
        None => {}
    }
    let front = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(front_door::serve(Arc::clone(&env), listener, stop_signal()));

    say("a few requests through the front door (API Gateway HTTP API events):");
    for (method, path, body) in [
        (
            "POST",
            "/items",
            Some(r#"{"name":"first item","description":"made by make run"}"#),
        ),
        ("POST", "/items", Some(r#"{"name":"second item"}"#)),
        ("GET", "/items?limit=5", None),
        ("GET", "/items/1", None),
        ("GET", "/health", None),
    ] {
        let url = format!("{front}{path}");
        let r = http::request(
            method,
            &url,
            &[("content-type", "application/json")],
            body.map(|b| bytes::Bytes::from(b.to_owned())),
        )
        .await?;
        env.settled().await;
        let paging = ["x-total-count", "link"]
            .iter()
            .filter_map(|h| r.header(h).map(|v| format!(" [{h}: {v}]")))
            .collect::<String>();
        say(&format!(
            "{method} {path} -> {} {}{paging}",
            r.status,
            r.text()
        ));
    }
    if let Some(last) = env.reports().last() {
        say(&format!("last invoke: {last}"));
    }
    say(&format!(
        "GetSecretValue calls after {} invokes: {} (the prefetch during init; every read since was a cache hit)",
        env.reports().len(),
        proxy.count("GetSecretValue")
    ));
    wrapper_demo(&args.layer, &proxy.endpoint(), &arn, db.password.len()).await?;
    println!();
    println!("Try (Ctrl-C to stop):");
    println!("  curl -s '{front}/items?limit=5'");
    println!("  curl -s -X POST {front}/items -H 'content-type: application/json' -d '{{\"name\":\"mine\"}}'");
    println!("  curl -s {front}/items/1");
    println!("  curl -s {front}/health");
    println!("  curl -s -X POST {front}/2015-03-31/functions/function/invocations -d '{{}}'   # a raw event");
    println!();

    server.await?;
    say("Ctrl-C: sending SHUTDOWN");
    let report = env.shutdown().await;
    say(&format!("{report}"));
    say(&format!(
        "{} invokes, {} GetSecretValue call(s) upstream",
        env.reports().len(),
        proxy.count("GetSecretValue")
    ));
    drop(env);
    drop(pg);
    Ok(())
}

/// A provided.al2023 function whose `bootstrap` is the exec wrapper's one line, with
/// `DB_PASSWORD=secretcache:<arn>#password`: it reports the variable's length, never its value.
async fn wrapper_demo(
    layer: &str,
    endpoint: &str,
    arn: &str,
    expected_len: usize,
) -> Result<(), BoxError> {
    let reference = format!("secretcache:{arn}#password");
    say(&format!(
        "the exec wrapper: a second function with DB_PASSWORD={reference} and the documented one-line bootstrap"
    ));
    let (_dir, zip) = secretcache_tests::wrapped::function_zip();
    let mut options = Options::new(&zip, vec![layer.into()]);
    options.function_name = "wrapped".to_owned();
    options.echo_logs = true;
    let options = options
        .var("AWS_ACCESS_KEY_ID", "demo")
        .var("AWS_SECRET_ACCESS_KEY", "demo")
        .var("AWS_ENDPOINT_URL", endpoint)
        .var(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            &free_port().to_string(),
        )
        .var("DB_PASSWORD", &reference)
        .var("REPORT_VARIABLES", "DB_PASSWORD");
    let env = LambdaEnv::start(options).await?;
    let invoked = env.invoke(bytes::Bytes::from_static(b"{}")).await?;
    let length = match &invoked.outcome {
        lambda_env::Outcome::Response(body) => serde_json::from_slice::<serde_json::Value>(body)?
            ["variables"]["DB_PASSWORD"]["length"]
            .as_u64(),
        lambda_env::Outcome::Error { body, .. } => {
            return Err(format!(
                "the wrapped function failed: {}",
                String::from_utf8_lossy(body)
            )
            .into())
        }
    };
    say(&format!(
        "DB_PASSWORD as the wrapped function's runtime sees it: {} bytes (the secret's password has {expected_len}; \
         the value itself is never printed)",
        length.map_or_else(|| "?".to_owned(), |n| n.to_string())
    ));
    let report = env.shutdown().await;
    say(&format!("the wrapped function's environment: {report}"));
    Ok(())
}

fn say(text: &str) {
    eprintln!("==> {text}");
}

fn free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
