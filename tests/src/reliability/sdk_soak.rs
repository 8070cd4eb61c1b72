//! Scenario 12: the AWS SDKs' own protocol under a soak. Several aws-sdk-rust clients, each with its endpoint on the
//! extension and signing with the extension's credentials, read and write for the run with a TTL of 1 s: reads of a
//! shared secret and parameter, walks of a parameter path, and every few calls a write of the client's own secret
//! and parameter, each followed at once by a read that must see it (a write through the extension makes the cache
//! forget what it names, and the path's kept listing). Any SDK error, or a read that misses its own write, fails the
//! row; resident memory must stay flat (the last third's peak within 2 MiB of the first third's).

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;

use super::{leaks_in, Outcome, Scale};
use crate::extension::Standalone;
use crate::moto::Moto;
use crate::seed::{self, unique};
use crate::stats::percentile_ms;

/// Concurrent SDK clients.
const CLIENTS: usize = 8;
/// Each client writes once every this many rounds.
const WRITE_EVERY: u64 = 8;
/// How much the peak RSS of the run's last third may exceed its first third's, KiB.
const RSS_GROWTH_KIB: u64 = 2 * 1024;

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    failed: u64,
    first_errors: Vec<String>,
}

impl Seen {
    fn record<T, E: std::fmt::Debug>(
        &mut self,
        started: Instant,
        result: Result<T, E>,
    ) -> Option<T> {
        self.latencies.push(started.elapsed());
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(format!("{e:?}"));
                None
            }
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(why.chars().take(300).collect());
        }
    }
}

/// Scenario 12.
pub async fn run(scale: Scale) -> Outcome {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let ssm = moto.ssm_client().await;
    let prefix = unique("soak-sdk");
    let shared_value = format!("canary-sdk-shared-{}", "s".repeat(64));
    seed::secret(&sm, &format!("{prefix}/shared"), &shared_value).await;
    let path = format!("/{prefix}");
    seed::parameter(
        &ssm,
        &format!("{path}/shared"),
        ParameterType::SecureString,
        &shared_value,
    )
    .await;
    for c in 0..CLIENTS {
        seed::secret(
            &sm,
            &format!("{prefix}/own-{c}"),
            &format!("canary-sdk-{c}-0"),
        )
        .await;
        seed::parameter(
            &ssm,
            &format!("{path}/own-{c}/p"),
            ParameterType::String,
            "0",
        )
        .await;
    }
    let ext = Standalone::spawn(
        moto,
        &[
            ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
            ("SECRETS_MANAGER_TTL", "1"),
            ("SSM_PARAMETER_STORE_TTL", "1"),
        ],
    )
    .await;
    let config = ext.sdk_config("testing").await;

    // RSS in thirds of the run.
    let run_for = scale.sdk_soak;
    let pid = ext.pid();
    let sampler = tokio::spawn(async move {
        let mut thirds = [0u64; 3];
        let start = Instant::now();
        while start.elapsed() < run_for {
            let third = ((start.elapsed().as_secs_f64() / run_for.as_secs_f64()) * 3.0) as usize;
            if let Some(rss) = pid.and_then(crate::rss_kib) {
                thirds[third.min(2)] = thirds[third.min(2)].max(rss);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        thirds
    });

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (sm, ssm) = (
                aws_sdk_secretsmanager::Client::new(&config),
                aws_sdk_ssm::Client::new(&config),
            );
            let (prefix, path, shared_value) = (prefix.clone(), path.clone(), shared_value.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let own = format!("{prefix}/own-{c}");
                let own_parameter = format!("{path}/own-{c}/p");
                let start = Instant::now();
                let mut round = 0u64;
                while start.elapsed() < run_for {
                    round += 1;
                    let t = Instant::now();
                    let r = sm
                        .get_secret_value()
                        .secret_id(format!("{prefix}/shared"))
                        .send()
                        .await;
                    if let Some(out) = seen.record(t, r) {
                        if out.secret_string() != Some(shared_value.as_str()) {
                            seen.fail("the shared secret read another value".into());
                        }
                    }
                    let t = Instant::now();
                    let r = ssm
                        .get_parameter()
                        .name(format!("{path}/shared"))
                        .with_decryption(true)
                        .send()
                        .await;
                    seen.record(t, r);
                    if !round.is_multiple_of(WRITE_EVERY) {
                        continue;
                    }
                    // A write, then a read that must see it: the secret, and the parameter through a path walk.
                    let value = format!("canary-sdk-{c}-{round}");
                    let t = Instant::now();
                    let r = sm
                        .put_secret_value()
                        .secret_id(&own)
                        .secret_string(&value)
                        .send()
                        .await;
                    if seen.record(t, r).is_some() {
                        let t = Instant::now();
                        let r = sm.get_secret_value().secret_id(&own).send().await;
                        if let Some(out) = seen.record(t, r) {
                            if out.secret_string() != Some(value.as_str()) {
                                seen.fail(format!("client {c} did not read its own write {round}"));
                            }
                        }
                    }
                    let t = Instant::now();
                    let r = ssm
                        .put_parameter()
                        .name(&own_parameter)
                        .value(round.to_string())
                        .r#type(ParameterType::String)
                        .overwrite(true)
                        .send()
                        .await;
                    if seen.record(t, r).is_some() {
                        let t = Instant::now();
                        let r = ssm
                            .get_parameters_by_path()
                            .path(format!("{path}/own-{c}"))
                            .recursive(true)
                            .send()
                            .await;
                        if let Some(out) = seen.record(t, r) {
                            let listed = out
                                .parameters()
                                .iter()
                                .find(|p| p.name() == Some(own_parameter.as_str()));
                            if listed.and_then(|p| p.value()) != Some(round.to_string().as_str()) {
                                seen.fail(format!(
                                    "client {c}'s path walk missed its own write {round}"
                                ));
                            }
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let (mut latencies, mut failed, mut errors) = (Vec::new(), 0, Vec::new());
    for task in tasks {
        let seen = task.await.expect("client task");
        latencies.extend(seen.latencies);
        failed += seen.failed;
        errors.extend(seen.first_errors);
    }
    let thirds = sampler.await.expect("sampler");
    let flat = thirds[2] <= thirds[0] + RSS_GROWTH_KIB;
    if !flat {
        failed += 1;
    }
    let logs = ext.logs();
    let mut secrets = vec![shared_value];
    secrets.extend((0..CLIENTS).map(|c| format!("canary-sdk-{c}-")));
    Outcome {
        scenario: format!(
            "12. SDK protocol soak: {} signed calls from {CLIENTS} aws-sdk-rust clients for {} s, TTL 1 s",
            latencies.len(),
            run_for.as_secs()
        ),
        sent: latencies.len() as u64,
        failed,
        p99_ms: percentile_ms(&latencies, 99.0),
        max_rss_kib: thirds.iter().copied().max().unwrap_or(0),
        rule: format!(
            "any SDK error, or a read or path walk that misses the client's own write just made, fails; RSS peak by \
             thirds {:.1} / {:.1} / {:.1} MiB, flat if the last is within 2 MiB of the first{}",
            thirds[0] as f64 / 1024.0,
            thirds[1] as f64 / 1024.0,
            thirds[2] as f64 / 1024.0,
            if errors.is_empty() {
                String::new()
            } else {
                format!("; first errors: {}", errors.join(" | "))
            }
        ),
        scanned: logs.lines().count() as u64,
        leaks: leaks_in(&logs, &secrets),
    }
}
