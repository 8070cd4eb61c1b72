//! Scenario 10: Lambda Managed Instances. The **real layer zip** (this machine's architecture) in lambda-env's
//! Managed Instances mode: never frozen, no INVOKE for the extension (it registers for SHUTDOWN only and refreshes on
//! a timer), and a concurrent custom runtime whose workers each read a secret through the extension per invocation.
//! Readers invoke concurrently, as many at once as `AWS_LAMBDA_MAX_CONCURRENCY`, through a healthy phase, an upstream
//! black-holed by the fault-injecting proxy for `scale.outage` (more than two TTLs), and a recovery. A read fails the
//! row unless its invocation succeeds with the secret's last good value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_env::{InvokeStatus, LambdaEnv, Outcome as Invocation};

use super::{leaks_in, Outcome, Scale};
use crate::moto::{Endpoint, Moto};
use crate::proxy::{Fault, FaultInjectingProxy};
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// `AWS_LAMBDA_MAX_CONCURRENCY`, the runtime's workers, and the concurrent readers.
const CONCURRENCY: u32 = 8;

/// `CONCURRENCY` readers invoking back to back for `run`; each invocation's duration, and how many failed.
async fn read_concurrently(
    env: &Arc<LambdaEnv>,
    run: Duration,
    expected: &str,
) -> (Vec<Duration>, u64) {
    let until = Instant::now() + run;
    let readers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let env = Arc::clone(env);
            let expected = expected.to_owned();
            tokio::spawn(async move {
                let (mut took, mut failed) = (Vec::new(), 0u64);
                while Instant::now() < until {
                    let Ok(invoked) = env.invoke("{}".into()).await else {
                        failed += 1;
                        continue;
                    };
                    let served = match &invoked.outcome {
                        Invocation::Response(body) => {
                            serde_json::from_slice::<serde_json::Value>(body)
                                .ok()
                                .and_then(|v| v["SecretString"].as_str().map(str::to_owned))
                        }
                        Invocation::Error { .. } => None,
                    };
                    if invoked.report.status != InvokeStatus::Success
                        || served.as_deref() != Some(expected.as_str())
                    {
                        failed += 1;
                    }
                    took.push(invoked.report.duration);
                }
                (took, failed)
            })
        })
        .collect();
    let (mut took, mut failed) = (Vec::new(), 0);
    for reader in readers {
        match reader.await {
            Ok((t, f)) => {
                took.extend(t);
                failed += f;
            }
            Err(_) => failed += 1,
        }
    }
    (took, failed)
}

/// Runs the scenario: healthy concurrent reads, `scale.outage` of black-holed upstream, then recovery.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let value = "canary-managed-instances".to_owned();
    let arn = seed::secret(
        &moto.sm_client().await,
        &unique("managed-instances/db"),
        &value,
    )
    .await
    .arn;
    let (_dir, probe) = crate::probe::concurrent_function_zip();
    let options = crate::with_layer(probe, crate::Arch::host(), &proxy.endpoint())
        .var("DB_SECRET_ARN", &arn)
        .var("PROBE_WORKERS", &CONCURRENCY.to_string())
        .var("SECRETS_MANAGER_TTL", "2")
        .var("SECRETS_MANAGER_TIMEOUT_MILLIS", "1000")
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info")
        .managed_instances(CONCURRENCY);
    let mut options = options;
    options.init_timeout = Duration::from_secs(10);
    // Each invocation forks a few curls; on a loaded machine that alone can take a while, and the row is about the
    // reads, not the shell.
    options.timeout = Duration::from_secs(15);
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    let registered_shutdown_only = env.registrations().iter().all(|r| r.events == ["SHUTDOWN"]);

    let (healthy, healthy_failed) = read_concurrently(&env, Duration::from_secs(3), &value).await;
    let calls_healthy = proxy.count("GetSecretValue");
    proxy.set_fault(Fault::Hang);
    let (outage, outage_failed) = read_concurrently(&env, scale.outage, &value).await;
    let calls_during = proxy.count("GetSecretValue") - calls_healthy;
    proxy.set_fault(Fault::None);
    // Recovery: the timer probes again once the key's backoff (at most 5 s) has passed.
    let (_, recovery_failed) = read_concurrently(&env, Duration::from_secs(8), &value).await;
    let recovered = proxy.count("GetSecretValue") > calls_healthy + calls_during;

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
    let leaks = logs
        .iter()
        .map(|l| leaks_in(l, std::slice::from_ref(&value)))
        .sum();
    let failed = healthy_failed
        + outage_failed
        + recovery_failed
        + u64::from(!registered_shutdown_only)
        + u64::from(!recovered)
        + u64::from(!shutdown.all_exited_in_time())
        + u64::from(outage.is_empty());
    Outcome {
        scenario: format!(
            "10. Managed Instances: {CONCURRENCY} concurrent readers through a {} s upstream outage (real zip, no \
             INVOKE, TTL 2 s)",
            scale.outage.as_secs()
        ),
        sent: (healthy.len() + outage.len()) as u64,
        failed,
        p99_ms: percentile_ms(&outage, 99.0),
        max_rss_kib: rss,
        rule: format!(
            "every invocation succeeds with the last good value; p99 column = invocation duration during the \
             outage; healthy p99 {:.2} ms; {calls_healthy} GetSecretValue while healthy ({} reads), \
             {calls_during} reached the black hole; registered for SHUTDOWN only: {}; recovered after: {}",
            percentile_ms(&healthy, 99.0),
            healthy.len(),
            if registered_shutdown_only { "yes" } else { "NO" },
            if recovered { "yes" } else { "NO" },
        ),
        scanned: logs.len() as u64,
        leaks,
    }
}
