//! Scenario 8: lifecycle faults, with the extension of this build running in the local Lambda environment
//! (`lambda-env`: the real Extensions API, its init limit, its SHUTDOWN deadline and its freeze):
//!
//! - 8a: the upstream hangs during init; the extension must still be ready (on `next`) within Lambda's 10 s init
//!   limit, with its port open before it registered;
//! - 8b: SHUTDOWN arrives with 20 requests in flight; each completes or fails cleanly, and the process exits, before
//!   the deadline;
//! - 8c: the environment is frozen (SIGSTOP, by lambda-env as by Lambda) across the TTL while the secret changes; the
//!   function's read in the next invoke gets the new value.
//!
//! 8a and 8b read the extension from outside between lifecycle events, so freezing is off for them; 8c reads inside
//! the invoke, through the probe function.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_env::{LambdaEnv, Options, Outcome as Invocation};

use super::{leaks_in, Outcome, RssSampler, TOKEN_HEADER};
use crate::moto::{Endpoint, Moto};
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Runs 8a, 8b and 8c.
pub async fn run() -> Vec<Outcome> {
    vec![
        init_with_upstream_down().await,
        shutdown_in_flight().await,
        freeze_across_expiry().await,
    ]
}

/// The extension binary with the function `function` against `proxy`, plus `vars`, logging at info.
fn options(
    function: &std::path::Path,
    proxy: &FaultInjectingProxy,
    vars: &[(&str, &str)],
) -> Options {
    let mut options = crate::with_extension_binary(function, &proxy.endpoint())
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info");
    for (k, v) in vars {
        options = options.var(k, v);
    }
    options
}

async fn extension_pid(env: &LambdaEnv) -> Option<u32> {
    env.processes()
        .await
        .into_iter()
        .find(|(name, _)| name == "secretcache")
        .map(|(_, pid)| pid)
}

fn log_text(env: &LambdaEnv) -> Vec<String> {
    env.logs().into_iter().map(|l| l.text).collect()
}

async fn init_with_upstream_down() -> Outcome {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    proxy.set_fault(Fault::Hang);
    let (_dir, function) = crate::probe::idle_function_zip();
    let mut options = options(
        &function,
        &proxy,
        &[("PARAMETERS_SECRETS_EXTENSION_PREFETCH", "db,other")],
    );
    options.freeze = false;
    let port = crate::extension_port(&options);
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    let init = env.init_result();
    let ready = init
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .map(|r| r.duration);
    let registered_with_port_open = env
        .registrations()
        .iter()
        .any(|r| r.name == "secretcache" && r.listening.contains(&port));
    let ok = ready.is_some_and(|took| took < Duration::from_secs(10)) && registered_with_port_open;
    let rss = extension_pid(&env)
        .await
        .and_then(crate::rss_kib)
        .unwrap_or(0);
    env.shutdown().await;
    Outcome {
        scenario: "8a. upstream down during init".into(),
        sent: 1,
        failed: u64::from(!ok),
        p99_ms: ready.map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        max_rss_kib: rss,
        rule: "ready (every process on next) within the 10 s init limit, the port open when it registered; p99 \
               column = init duration"
            .into(),
        scanned: env.logs().len() as u64,
        leaks: 0,
    }
}

async fn shutdown_in_flight() -> Outcome {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let secrets: Vec<String> = (0..20).map(|i| format!("canary-shutdown-{i}")).collect();
    let prefix = unique("shutdown");
    for (i, v) in secrets.iter().enumerate() {
        seed::secret(&sm, &format!("{prefix}/{i}"), v).await;
    }
    let proxy = FaultInjectingProxy::start(moto).await;
    let (_dir, function) = crate::probe::idle_function_zip();
    let mut options = options(&function, &proxy, &[]);
    options.freeze = false;
    let port = crate::extension_port(&options);
    let env: Arc<LambdaEnv> = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    assert!(
        matches!(env.init_result(), Some(Ok(_))),
        "{:?}\n{:?}",
        env.init_result(),
        log_text(&env)
    );
    let token = env.session_token().to_owned();
    let rss = RssSampler::start(extension_pid(&env).await);
    proxy.set_fault(Fault::Delay(Duration::from_millis(800)));
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let (token, prefix) = (token.clone(), prefix.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = crate::http::get(
                    &format!("http://127.0.0.1:{port}/secretsmanager/get?secretId={prefix}/{i}"),
                    &[(TOKEN_HEADER, &token)],
                )
                .await;
                (r.map(|r| r.status).ok(), t.elapsed(), Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The deadline as the test sees it: lambda-env computes its own a moment later, so this one is the stricter.
    let sent = Instant::now();
    let report = env.shutdown().await;
    let deadline = sent + report.limit;
    let (mut failed, mut lat) = (0u64, Vec::new());
    for r in requests {
        let (status, took, done_at) =
            r.await
                .unwrap_or((None, Duration::ZERO, deadline + Duration::from_secs(1)));
        lat.push(took);
        // Complete (200) or fail cleanly (an error status, or the connection closed), and before the deadline.
        let clean = matches!(status, Some(200) | Some(502..=504) | None);
        if !clean || done_at > deadline {
            failed += 1;
        }
    }
    let exited_in_time = report.processes.iter().any(|p| {
        p.name == "secretcache" && !p.killed && p.after.is_some_and(|a| a <= report.limit)
    });
    if !exited_in_time {
        failed += 1;
    }
    let logs = log_text(&env);
    Outcome {
        scenario: "8b. SHUTDOWN with 20 requests in flight".into(),
        sent: 20,
        failed,
        p99_ms: percentile_ms(&lat, 99.0),
        max_rss_kib: rss.max(),
        rule: "each completes or fails cleanly, and the process exits, before the 2 s deadline"
            .into(),
        scanned: logs.len() as u64,
        leaks: logs.iter().map(|l| leaks_in(l, &secrets)).sum(),
    }
}

async fn freeze_across_expiry() -> Outcome {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let fz = unique("fz");
    seed::secret(&sm, &fz, "canary-freeze-1").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let (_dir, function) = crate::probe::function_zip();
    let options = options(
        &function,
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "1"),
            ("PARAMETERS_SECRETS_EXTENSION_PREFETCH", &fz),
            ("DB_SECRET_ARN", &fz),
        ],
    );
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    assert!(
        matches!(env.init_result(), Some(Ok(_))),
        "{:?}\n{:?}",
        env.init_result(),
        log_text(&env)
    );
    // lambda-env froze every process when init ended; the secret changes and the TTL passes while they are stopped.
    let frozen = match extension_pid(&env)
        .await
        .and_then(lambda_env::process::process_state)
    {
        Some(state) => state == 'T',
        None => false,
    };
    seed::new_value(&sm, &fz, "canary-freeze-2").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let invoked = env.invoke("{}".into()).await;
    let served = match invoked.as_ref().map(|i| &i.outcome) {
        Ok(Invocation::Response(body)) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["SecretString"].as_str().map(str::to_owned)),
        _ => None,
    };
    let reads = crate::probe::reads(&env.logs());
    let ok = frozen && served.as_deref() == Some("canary-freeze-2") && reads.len() == 1;
    let rss = extension_pid(&env)
        .await
        .and_then(crate::rss_kib)
        .unwrap_or(0);
    env.shutdown().await;
    let logs = log_text(&env);
    Outcome {
        scenario: "8c. freeze (SIGSTOP) across expiry, thaw, INVOKE".into(),
        sent: 1,
        failed: u64::from(!ok),
        p99_ms: reads.first().map_or(0.0, |(_, _, ms)| *ms),
        max_rss_kib: rss,
        rule: "frozen after init; the function's read in the invoke after the thaw gets the value written while \
               frozen; p99 column = that read"
            .into(),
        scanned: logs.len() as u64,
        leaks: logs
            .iter()
            .map(|l| leaks_in(l, &["canary-freeze-1".into(), "canary-freeze-2".into()]))
            .sum(),
    }
}
