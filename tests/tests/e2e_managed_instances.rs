//! End-to-end on **Lambda Managed Instances**: the real layer zip from `make package` in lambda-env's Managed
//! Instances mode (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`, a registration for INVOKE refused with a
//! 400, no freezing, no INVOKE events, concurrent invocations), against the real moto behind the counting proxy.
//!
//! The claims of issue 26, each checked on **both architectures' zips** (arm64 under qemu-user, with longer limits
//! for init and log lines but the same assertions):
//! - the layer starts there (it registers for SHUTDOWN only) and serves concurrent invocations with one upstream
//!   call per secret;
//! - with no INVOKE ever, a value updated upstream is served within two TTLs (refresh on a timer);
//! - an upstream outage keeps serving the last good value, with no failed read;
//! - SHUTDOWN ends the extension within its deadline.
//!
//! Reads either come from invocations of a concurrent custom runtime ([`probe::concurrent_function_zip`]) or straight
//! from the test to the extension's port, as a function's handlers would make them; timing is never asserted, only
//! outcomes within a deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_env::{InvokeStatus, LambdaEnv, Outcome};
use secretcache_tests::extension::Client;
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::{Fault, FaultInjectingProxy};
use secretcache_tests::{extension_port, probe, with_layer, Arch};

/// Makes each scenario (an `async fn(Arch)`) into `x86_64::<name>` and `arm64::<name>`.
macro_rules! on_both_architectures {
    ($($scenario:ident),* $(,)?) => {
        mod x86_64 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(secretcache_tests::Arch::X86_64).await
                }
            )*
        }
        mod arm64 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(secretcache_tests::Arch::Arm64).await
                }
            )*
        }
    };
}

on_both_architectures!(
    managed_instances_the_layer_starts_and_concurrent_invocations_cost_one_upstream_call,
    managed_instances_an_upstream_update_is_served_within_two_ttls_without_any_invoke,
    managed_instances_an_upstream_outage_keeps_serving_the_last_good_value,
    managed_instances_shutdown_ends_the_extension_within_its_deadline,
);

/// `AWS_LAMBDA_MAX_CONCURRENCY` of these environments, and the runtime's concurrent workers.
const CONCURRENCY: u32 = 8;

/// Init and log-line limits: Lambda's for native runs, longer under qemu-user.
fn init_limit(arch: Arch) -> Duration {
    if arch.is_emulated() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

/// One Managed Instances environment with the layer of `arch`, a secret in moto behind the proxy.
struct Stack {
    proxy: FaultInjectingProxy,
    sm: aws_sdk_secretsmanager::Client,
    arn: String,
    arch: Arch,
    env: Arc<LambdaEnv>,
    client: Client,
    _function: tempfile::TempDir,
}

impl Stack {
    async fn start(tag: &str, arch: Arch, extra: &[(&str, &str)]) -> Stack {
        let moto = Moto::shared().await;
        let proxy = FaultInjectingProxy::start(moto).await;
        let sm = moto.sm_client().await;
        let arn = sm
            .create_secret()
            .name(secretcache_tests::seed::unique(&format!("{tag}/db")))
            .secret_string("first-value")
            .send()
            .await
            .expect("create the secret")
            .arn
            .expect("an ARN");
        let (function_dir, function): (tempfile::TempDir, PathBuf) =
            probe::concurrent_function_zip();
        let mut options = with_layer(function, arch, &proxy.endpoint())
            .var("DB_SECRET_ARN", &arn)
            .var("PROBE_WORKERS", &CONCURRENCY.to_string())
            .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")
            .managed_instances(CONCURRENCY);
        options.init_timeout = init_limit(arch);
        options.timeout = Duration::from_secs(if arch.is_emulated() { 60 } else { 15 });
        for (k, v) in extra {
            options = options.var(k, v);
        }
        let port = extension_port(&options);
        let env = LambdaEnv::start(options)
            .await
            .expect("the environment starts");
        let client = Client::new(port, env.session_token());
        Stack {
            proxy,
            sm,
            arn,
            arch,
            env,
            client,
            _function: function_dir,
        }
    }

    fn logs(&self) -> String {
        self.env
            .logs()
            .iter()
            .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
            .collect()
    }

    /// Init succeeded, the extension registered for SHUTDOWN only, and it said it refreshes on a timer.
    async fn assert_started_in_managed_instances_mode(&self) {
        self.env
            .init_result()
            .expect("init ran")
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()));
        let registrations = self.env.registrations();
        assert_eq!(registrations.len(), 1, "{}", self.logs());
        assert_eq!(registrations[0].name, "secretcache");
        assert_eq!(registrations[0].events, ["SHUTDOWN"], "{}", self.logs());
        self.wait_for_log("the extension does not refresh on a timer", |t| {
            t.contains("refreshing the values in use on a timer")
        })
        .await;
    }

    /// Waits (within this architecture's limit) until an extension log line satisfies `pred`.
    async fn wait_for_log(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + init_limit(self.arch);
        while Instant::now() < deadline {
            if self
                .env
                .logs()
                .iter()
                .any(|l| l.source == "secretcache" && pred(&l.text))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}:\n{}", self.logs());
    }

    /// One read straight from the extension: its status, `SecretString` and how it was served.
    async fn read(&self) -> (u16, String, String) {
        let r = self
            .client
            .get_secret(&format!("secretId={}", self.arn))
            .await;
        let value = if r.status == 200 {
            r.json()["SecretString"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        } else {
            r.text()
        };
        let source = r.header("x-secretcache-cache").unwrap_or("-").to_owned();
        (r.status, value, source)
    }

    async fn put(&self, value: &str) {
        self.sm
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(value)
            .send()
            .await
            .expect("PutSecretValue");
    }

    fn assert_not_logged(&self, secret: &str) {
        let leaks: Vec<_> = self
            .env
            .logs()
            .into_iter()
            .filter(|l| l.text.contains(secret))
            .collect();
        assert!(leaks.is_empty(), "a secret was logged: {leaks:#?}");
    }
}

fn secret_string(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Response(body) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["SecretString"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("not GetSecretValue: {}", String::from_utf8_lossy(body))),
        other => panic!("the invocation failed: {other:?}"),
    }
}

async fn managed_instances_the_layer_starts_and_concurrent_invocations_cost_one_upstream_call(
    arch: Arch,
) {
    let stack = Stack::start(&format!("mistart{}", arch.as_str()), arch, &[]).await;
    stack.assert_started_in_managed_instances_mode().await;
    assert_eq!(stack.proxy.count("GetSecretValue"), 0, "nothing prefetched");

    // Four rounds of as many invocations as the environment takes at once, all started together: the first round's
    // reads miss together and share one upstream call, the others are hits.
    let invocations: Vec<_> = (0..4 * CONCURRENCY)
        .map(|_| {
            let env = Arc::clone(&stack.env);
            tokio::spawn(async move { env.invoke(bytes::Bytes::from_static(b"{}")).await })
        })
        .collect();
    for handle in invocations {
        let invoked = handle.await.expect("joined").expect("the invocation runs");
        assert_eq!(
            invoked.report.status,
            InvokeStatus::Success,
            "{}\n{}",
            invoked.report,
            stack.logs()
        );
        assert_eq!(secret_string(&invoked.outcome), "first-value");
    }
    let reads = probe::reads(&stack.env.logs());
    assert_eq!(reads.len(), 4 * CONCURRENCY as usize, "{}", stack.logs());
    assert!(
        reads.iter().all(|(status, _, _)| *status == 200),
        "{reads:?}"
    );
    assert_eq!(
        stack.proxy.count("GetSecretValue"),
        1,
        "{} concurrent reads of one secret must cost one GetSecretValue, counted outside the extension",
        reads.len()
    );
    // Several workers served them: the invocations really were spread over concurrent `next` calls.
    let workers: std::collections::HashSet<_> = stack
        .env
        .logs()
        .iter()
        .filter_map(|l| l.text.strip_prefix("probe read: "))
        .filter_map(|t| t.split_whitespace().find(|f| f.starts_with("worker=")))
        .map(str::to_owned)
        .collect();
    assert!(workers.len() > 1, "{workers:?}");
    // Never frozen, even between invocations.
    stack.env.settled().await;
    for (name, pid) in stack.env.processes().await {
        assert_ne!(
            lambda_env::process::process_state(pid),
            Some('T'),
            "{name} is stopped"
        );
    }
    stack.assert_not_logged("first-value");
}

async fn managed_instances_an_upstream_update_is_served_within_two_ttls_without_any_invoke(
    arch: Arch,
) {
    const TTL: Duration = Duration::from_secs(3);
    let stack = Stack::start(
        &format!("miupdate{}", arch.as_str()),
        arch,
        &[("SECRETS_MANAGER_TTL", "3")],
    )
    .await;
    stack.assert_started_in_managed_instances_mode().await;
    // Fetched, then read as a hit: the value is in use.
    assert_eq!(stack.read().await.1, "first-value");
    assert_eq!(stack.read().await.1, "first-value");
    stack.put("second-value").await;
    let updated = Instant::now();
    // Reads keep coming (a function in use), but no invocation and so no INVOKE: only the timer can refresh.
    let mut served_new = None;
    while updated.elapsed() < 2 * TTL {
        let (status, value, source) = stack.read().await;
        assert_eq!(status, 200, "{value}\n{}", stack.logs());
        if value == "second-value" {
            served_new = Some(source);
            break;
        }
        assert_eq!(value, "first-value");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let source = served_new.unwrap_or_else(|| {
        panic!(
            "the update was not served within two TTLs\n{}",
            stack.logs()
        )
    });
    assert!(
        stack.env.reports().is_empty(),
        "no invocation ran, so no INVOKE could have been sent"
    );
    stack
        .wait_for_log("no refresh was started by the timer", |t| {
            t.contains("timer refresh")
        })
        .await;
    eprintln!("{}: the update was first served as {source}", arch.as_str());
    stack.assert_not_logged("second-value");
}

async fn managed_instances_an_upstream_outage_keeps_serving_the_last_good_value(arch: Arch) {
    const TTL: Duration = Duration::from_secs(2);
    let stack = Stack::start(
        &format!("mioutage{}", arch.as_str()),
        arch,
        &[
            ("SECRETS_MANAGER_TTL", "2"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", "1000"),
        ],
    )
    .await;
    stack.assert_started_in_managed_instances_mode().await;
    assert_eq!(stack.read().await.1, "first-value");
    assert_eq!(stack.read().await.1, "first-value");

    // The upstream stops answering, for more than two TTLs: every read still gets the last good value.
    stack.proxy.set_fault(Fault::Hang);
    let outage = Instant::now();
    let mut sources = Vec::new();
    while outage.elapsed() < 3 * TTL {
        let (status, value, source) = stack.read().await;
        assert_eq!(
            status,
            200,
            "a failed read during the outage: {value}\n{}",
            stack.logs()
        );
        assert_eq!(value, "first-value");
        sources.push(source);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        sources.iter().any(|s| s == "stale"),
        "past its TTL the value is served stale: {sources:?}"
    );

    // The upstream comes back with a new value: it is served again, still without any INVOKE.
    stack.proxy.set_fault(Fault::None);
    stack.put("after-the-outage").await;
    let back = Instant::now();
    let limit = 2 * TTL + init_limit(arch);
    loop {
        let (status, value, _) = stack.read().await;
        assert_eq!(status, 200, "{value}");
        if value == "after-the-outage" {
            break;
        }
        assert!(
            back.elapsed() < limit,
            "not refreshed after the outage\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack.env.reports().is_empty(), "no invocation, no INVOKE");
}

async fn managed_instances_shutdown_ends_the_extension_within_its_deadline(arch: Arch) {
    let stack = Stack::start(&format!("mishutdown{}", arch.as_str()), arch, &[]).await;
    stack.assert_started_in_managed_instances_mode().await;
    assert_eq!(stack.read().await.0, 200);
    let shutdown = stack.env.shutdown().await;
    let extension = shutdown
        .processes
        .iter()
        .find(|p| p.name == "secretcache")
        .unwrap_or_else(|| panic!("{shutdown}"));
    assert!(
        !extension.killed && extension.after.is_some_and(|a| a <= shutdown.limit),
        "{shutdown}\n{}",
        stack.logs()
    );
    assert_eq!(extension.status, "exit status 0", "{shutdown}");
    assert!(
        shutdown.all_exited_in_time(),
        "{shutdown}\n{}",
        stack.logs()
    );
}
