//! Scenario 9: the upstream goes dark while a real Lambda environment keeps invoking the function.
//!
//! What a reads-only test misses: Lambda times and bills every millisecond an extension spends before it is back on
//! `event/next`, and an invoke whose extensions are not back by the deadline times out and resets the environment,
//! emptying the cache. So this runs the **real layer zip** in the local Lambda environment (freezing on, the default
//! 3 s function timeout) with a probe function that reads a secret through the extension on every invoke, four
//! cached secrets with a 2 s TTL (so every INVOKE finds refreshes due), and the upstream black-holed by the
//! fault-injecting proxy for the outage. On demand the extension registers for INVOKE only when
//! `PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS` is set (SnapStart always does), so the scenario sets it: without
//! it no INVOKE reaches the extension and its post-runtime duration is 0 by construction. Each invoke's post-runtime
//! extension duration is read from lambda-env's REPORT, as Lambda reports it.

use std::time::{Duration, Instant};

use lambda_env::{InvokeStatus, LambdaEnv, Outcome as Invocation};

use super::{leaks_in, Outcome, Scale};
use crate::moto::{Endpoint, Moto};
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// An invoke whose extension is not back on `next` this long after the function answered fails the row. The goal is
/// the environment's own floor (a fraction of a millisecond); this bound is far below the 3 s upstream timeout that
/// every invoke waited for before, and far enough above the goal that a loaded machine cannot flake it.
const POST_RUNTIME_BOUND: Duration = Duration::from_secs(1);

/// Invokes at 100-200 ms intervals for `run`; returns each one's post-runtime duration and whether it failed.
async fn invoke_for(env: &LambdaEnv, run: Duration, expected: &str) -> (Vec<Duration>, u64) {
    let (mut post, mut failed) = (Vec::new(), 0);
    let until = Instant::now() + run;
    let mut i = 0u64;
    while Instant::now() < until {
        let invoked = match env.invoke("{}".into()).await {
            Ok(invoked) => invoked,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        let served = match &invoked.outcome {
            Invocation::Response(body) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["SecretString"].as_str().map(str::to_owned)),
            Invocation::Error { .. } => None,
        };
        if invoked.report.status != InvokeStatus::Success
            || served.as_deref() != Some(expected)
            || invoked.report.post_runtime_duration >= POST_RUNTIME_BOUND
        {
            failed += 1;
        }
        post.push(invoked.report.post_runtime_duration);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100 + (i * 37) % 101)).await;
    }
    (post, failed)
}

fn max_ms(samples: &[Duration]) -> f64 {
    samples
        .iter()
        .max()
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the scenario: healthy invokes, then `scale.invoke_outage` of black-holed upstream, then recovery.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let values: Vec<String> = (0..4).map(|i| format!("canary-outage-{i}")).collect();
    let prefix = unique("outage");
    let mut arns = Vec::new();
    for (i, v) in values.iter().enumerate() {
        arns.push(seed::secret(&sm, &format!("{prefix}/s{i}"), v).await.arn);
    }
    let (_dir, probe) = crate::probe::function_zip();
    let options = crate::items_with_layer(probe, crate::Arch::host(), &proxy.endpoint(), &arns[0])
        .var("PARAMETERS_SECRETS_EXTENSION_PREFETCH", &arns.join(","))
        .var("SECRETS_MANAGER_TTL", "2")
        .var("PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS", "100")
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info");
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");

    let (healthy, healthy_failed) = invoke_for(&env, Duration::from_secs(5), &values[0]).await;
    proxy.set_fault(Fault::Hang);
    let calls_before = proxy.count("GetSecretValue");
    let (outage, outage_failed) = invoke_for(&env, scale.invoke_outage, &values[0]).await;
    let calls_during = proxy.count("GetSecretValue") - calls_before;
    proxy.set_fault(Fault::None);
    // Recovery: within a few invokes after the upstream is back, values are fetched again (TTL 2 s, backoff ≤ 5 s).
    let healed_at = proxy.count("GetSecretValue");
    let (_, recovery_failed) = invoke_for(&env, Duration::from_secs(8), &values[0]).await;
    let recovered = proxy.count("GetSecretValue") > healed_at;

    let rss = match env
        .processes()
        .await
        .iter()
        .find(|(name, _)| name == "secretcache")
    {
        Some((_, pid)) => crate::rss_kib(*pid).unwrap_or(0),
        None => 0,
    };
    let shutdown = env.shutdown().await;
    let logs: Vec<String> = env.logs().into_iter().map(|l| l.text).collect();
    let leaks = logs.iter().map(|l| leaks_in(l, &values)).sum();
    let failed = outage_failed
        + healthy_failed
        + recovery_failed
        + u64::from(!recovered)
        + u64::from(!shutdown.all_exited_in_time())
        + u64::from(outage.is_empty());
    Outcome {
        scenario: format!(
            "9. INVOKEs every 100-200 ms through a {} s upstream outage (real zips, 4 keys, TTL 2 s)",
            scale.invoke_outage.as_secs()
        ),
        sent: outage.len() as u64,
        failed,
        p99_ms: percentile_ms(&outage, 99.0),
        max_rss_kib: rss,
        rule: format!(
            "every invoke succeeds with the last good value and its post-runtime duration (REPORT) is under {} ms; \
             p99 column = post-runtime during the outage, max {:.2} ms (goal < 100 ms); healthy upstream: p99 \
             {:.2} ms, max {:.2} ms; {} GetSecretValue calls reached the black hole; recovered after: {}",
            POST_RUNTIME_BOUND.as_millis(),
            max_ms(&outage),
            percentile_ms(&healthy, 99.0),
            max_ms(&healthy),
            calls_during,
            if recovered { "yes" } else { "NO" },
        ),
        scanned: logs.len() as u64,
        leaks,
    }
}
