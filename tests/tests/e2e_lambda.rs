//! End-to-end: the **real zips** from `make package` (layer and function) in the local Lambda environment
//! (`lambda-env`), against the real moto behind the counting proxy and a throwaway TLS PostgreSQL.
//!
//! These are the claims the layer is built on, checked where they matter: in Lambda's lifecycle, with freezing on.
//! `make test` builds the zips of both architectures first; a test run without them fails with the command that
//! makes them.
//!
//! Every scenario runs on **both architectures' zips**: each is one function taking the [`Arch`], and
//! [`on_both_architectures!`] makes the tests `x86_64::<scenario>` and `arm64::<scenario>`
//! (`cargo test --test e2e_lambda arm64` runs the arm64 group alone). The zips of the other
//! architecture than this machine's run under qemu-user (lambda-env's `launch` module), several times slower, so
//! those runs get longer limits ([`Limits`]) but the same assertions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_env::process::process_state;
use lambda_env::{front_door, InvokeStatus, LambdaEnv, LogLine, Options, Outcome};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::postgres::{AppDatabase, PgCluster};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};
use secretcache_tests::{http, items_with_layer, Arch};

/// A zip from `make package ARCH=<arch>` (or `$LAMBDA_ZIP_DIR`).
fn zip(stem: &str, arch: Arch) -> PathBuf {
    secretcache_tests::lambda_zip(stem, arch)
}

/// Makes each named scenario (an `async fn(Arch)`) into two tests, `x86_64::<name>` and `arm64::<name>`, so the same
/// code runs on both zips and each group can be run alone by its architecture's name.
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
    cold_start_then_50_warm_invokes_make_one_upstream_call_and_log_no_secret,
    after_a_frozen_gap_longer_than_the_ttl_the_next_invoke_gets_the_new_value,
    the_real_function_survives_a_rotation_that_happens_while_it_is_frozen,
    shutdown_ends_both_processes_before_the_deadline,
    the_original_bug_without_the_layer_and_db_secret_arn_is_a_clear_503_not_a_sqlite_500,
);

/// How long a run may take. Lambda's own limits hold for native runs; an emulated run keeps the shutdown
/// deadline (the extension must still end within it), but gets more time for init, each invoke and a log line.
#[derive(Debug, Clone, Copy)]
struct Limits {
    init: Duration,
    invoke: Duration,
    log_line: Duration,
}

impl Limits {
    fn for_arch(arch: Arch) -> Limits {
        if arch.is_emulated() {
            Limits {
                init: Duration::from_secs(60),
                invoke: Duration::from_secs(60),
                log_line: Duration::from_secs(30),
            }
        } else {
            Limits {
                init: Duration::from_secs(10),
                invoke: Duration::from_secs(15),
                log_line: Duration::from_secs(5),
            }
        }
    }
}

/// Everything one scenario runs against.
struct Stack {
    proxy: FaultInjectingProxy,
    sm: aws_sdk_secretsmanager::Client,
    db: AppDatabase,
    arn: String,
    arch: Arch,
    env: Arc<LambdaEnv>,
    front: String,
    _front_task: tokio::task::JoinHandle<()>,
}

impl Stack {
    /// The binary's moto holding the database secret, the proxy, a database of its own, and the environment running
    /// `function` with the layer of `arch`, its front door on a free port.
    async fn start(tag: &str, arch: Arch, function: PathBuf, extra: &[(&str, &str)]) -> Stack {
        let moto = Moto::shared().await;
        let proxy = FaultInjectingProxy::start(moto).await;
        let sm = moto.sm_client().await;
        let db = PgCluster::shared().await.create_app_database(tag).await;
        let arn = seed::secret(&sm, &unique(&format!("{tag}/db")), &db.secret_json())
            .await
            .arn;
        let mut options = items_with_layer(function, arch, &proxy.endpoint(), &arn)
            .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug");
        let limits = Limits::for_arch(arch);
        options.timeout = limits.invoke;
        options.init_timeout = limits.init;
        if arch.is_emulated() {
            // Under qemu-user (and the unoptimized zips of make test) building the SDK clients alone can take a
            // quarter of the default 1 s prefetch budget; a prefetch that misses it lands after the freeze, where
            // these checks cannot see it. Lambda's arm64 is native.
            options = options.var(
                "PARAMETERS_SECRETS_EXTENSION_PREFETCH_TIMEOUT_MILLIS",
                "9000",
            );
        }
        for (k, v) in extra {
            options = options.var(k, v);
        }
        let env = LambdaEnv::start(options)
            .await
            .expect("the environment starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let front = format!("http://{}", listener.local_addr().expect("addr"));
        let front_task = tokio::spawn(front_door::serve(
            Arc::clone(&env),
            listener,
            std::future::pending(),
        ));
        Stack {
            proxy,
            sm,
            db,
            arn,
            arch,
            env,
            front,
            _front_task: front_task,
        }
    }

    /// A GET through the front door; returns once the whole invoke is over (post-runtime included).
    async fn get(&self, path: &str) -> http::Response {
        let r = http::get(&format!("{}{path}", self.front), &[])
            .await
            .expect("the front door answers");
        self.env.settled().await;
        r
    }

    fn logs(&self) -> String {
        self.env
            .logs()
            .iter()
            .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
            .collect()
    }

    /// Waits until a log line matches `pred`, within this architecture's limit.
    async fn wait_for_log(&self, what: &str, pred: impl Fn(&LogLine) -> bool) {
        wait_for_log(&self.env, Limits::for_arch(self.arch).log_line, what, pred).await;
    }

    /// Fails unless every process runs as `arch` needs: natively, or as a qemu-user process (its `/proc/<pid>/exe`
    /// is the emulator), so an arm64 run cannot pass by running the x86_64 binaries.
    async fn assert_runs_natively_or_emulated(&self) {
        let procs = self.env.processes().await;
        assert!(!procs.is_empty());
        for (name, pid) in procs {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .unwrap_or_else(|e| panic!("{name} ({pid}): {e}"));
            let under_qemu = exe
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu-"));
            assert_eq!(
                under_qemu,
                self.arch.is_emulated(),
                "{name} runs as {} for the {} zips",
                exe.display(),
                self.arch.as_str()
            );
        }
    }

    /// Fails if any log line holds `secret`.
    fn assert_not_logged(&self, secret: &str) {
        let leaks: Vec<_> = self
            .env
            .logs()
            .into_iter()
            .filter(|l| l.text.contains(secret))
            .collect();
        assert!(leaks.is_empty(), "the secret was logged: {leaks:#?}");
    }
}

/// Waits (at most `limit`) until a log line matches `pred`: output is read as it comes, so a line the process has
/// written may reach the log a moment later.
async fn wait_for_log(
    env: &LambdaEnv,
    limit: Duration,
    what: &str,
    pred: impl Fn(&LogLine) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if env.logs().iter().any(&pred) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dump: String = env
        .logs()
        .iter()
        .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
        .collect();
    panic!("{what}:\n{dump}");
}

async fn cold_start_then_50_warm_invokes_make_one_upstream_call_and_log_no_secret(arch: Arch) {
    let stack = Stack::start(
        &format!("e2ewarm{}", arch.as_str()),
        arch,
        zip("items-function", arch),
        &[],
    )
    .await;
    let init = stack
        .env
        .init_result()
        .expect("init ran")
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.logs()));
    assert_eq!(init.extensions, ["secretcache"]);
    assert!(init.duration < Limits::for_arch(arch).init, "{init:?}");
    stack.assert_runs_natively_or_emulated().await;

    // The extension fetched the secret during init: `start` returns when init is over, and nothing but the
    // extension's prefetch can have called upstream by then.
    let key = format!("key=secret:{}", stack.arn);
    stack
        .wait_for_log("no upstream fetch", |l| {
            l.source == "secretcache"
                && l.text.contains("fetched from upstream")
                && l.text.contains(&key)
        })
        .await;
    assert_eq!(stack.proxy.count("GetSecretValue"), 1);

    // Cold start: the first /items is a 200, and the function's credential read was a cache hit.
    let first = stack.get("/items?limit=5").await;
    assert_eq!(first.status, 200, "{}\n{}", first.text(), stack.logs());
    assert!(first.json().is_array(), "{}", first.text());
    assert!(
        first.header("x-total-count").is_some(),
        "{:?}",
        first.headers
    );
    stack
        .wait_for_log("the function's read was not served from the cache", |l| {
            l.source == "secretcache" && l.text.contains("cache hit") && l.text.contains(&key)
        })
        .await;
    let reports = stack.env.reports();
    assert!(
        reports[0].init_duration.is_some(),
        "the cold start's REPORT carries Init Duration"
    );

    // Frozen between invokes.
    for (name, pid) in stack.env.processes().await {
        assert_eq!(process_state(pid), Some('T'), "{name} is not frozen");
    }

    let started = Instant::now();
    for i in 0..50 {
        let r = stack.get(&format!("/items?limit=5&offset={i}")).await;
        assert_eq!(r.status, 200, "warm invoke {i}: {}", r.text());
        assert!(!r.text().contains(&stack.db.password));
    }
    let warm = started.elapsed();
    assert_eq!(
        stack.proxy.count("GetSecretValue"),
        1,
        "51 invokes must cost exactly one GetSecretValue, counted outside the extension"
    );
    let reports = stack.env.reports();
    assert_eq!(reports.len(), 51);
    assert!(reports.iter().all(|r| r.status == InvokeStatus::Success));
    assert!(reports[1..].iter().all(|r| r.init_duration.is_none()));
    let worst_post = reports
        .iter()
        .map(|r| r.post_runtime_duration)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{}: init {:?}; 50 warm invokes in {warm:?}; worst post-runtime {worst_post:?}; first: {}",
        arch.as_str(),
        init.duration,
        reports[0]
    );

    let shutdown = stack.env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}");
    stack.assert_not_logged(&stack.db.password);
}

async fn after_a_frozen_gap_longer_than_the_ttl_the_next_invoke_gets_the_new_value(arch: Arch) {
    let (_dir, probe) = secretcache_tests::probe::function_zip();
    let stack = Stack::start(
        &format!("e2efreeze{}", arch.as_str()),
        arch,
        probe,
        &[("SECRETS_MANAGER_TTL", "2")],
    )
    .await;
    let secret_string = |outcome: &Outcome| -> String {
        match outcome {
            Outcome::Response(body) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["SecretString"].as_str().map(str::to_owned))
                .unwrap_or_else(|| panic!("not GetSecretValue: {}", String::from_utf8_lossy(body))),
            Outcome::Error { body, .. } => {
                panic!(
                    "invoke failed: {}\n{}",
                    String::from_utf8_lossy(body),
                    stack.logs()
                )
            }
        }
    };
    let first = stack.env.invoke("{}".into()).await.expect("invoke");
    assert_eq!(
        secret_string(&first.outcome),
        stack.db.secret_json(),
        "{}",
        stack.logs()
    );
    assert_eq!(stack.proxy.count("GetSecretValue"), 1);

    let rotated = format!(
        "{{\"password\":\"{}\"}}",
        secretcache_tests::postgres::new_password()
    );
    stack
        .sm
        .put_secret_value()
        .secret_id(&stack.arn)
        .secret_string(&rotated)
        .send()
        .await
        .expect("PutSecretValue");
    // Frozen for longer than the TTL: nothing in the extension may run meanwhile.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    for (name, pid) in stack.env.processes().await {
        assert_eq!(process_state(pid), Some('T'), "{name} is not frozen");
    }
    assert_eq!(
        stack.proxy.count("GetSecretValue"),
        1,
        "nothing ran while frozen"
    );

    let second = stack.env.invoke("{}".into()).await.expect("invoke");
    assert_eq!(secret_string(&second.outcome), rotated, "{}", stack.logs());
    assert_eq!(
        stack.proxy.count("GetSecretValue"),
        2,
        "one fetch for the expired value, however the INVOKE refresh and the read race"
    );
    let third = stack.env.invoke("{}".into()).await.expect("invoke");
    assert_eq!(secret_string(&third.outcome), rotated);
    assert_eq!(stack.proxy.count("GetSecretValue"), 2);
    stack.assert_not_logged(&rotated);
}

async fn the_real_function_survives_a_rotation_that_happens_while_it_is_frozen(arch: Arch) {
    let stack = Stack::start(
        &format!("e2erotate{}", arch.as_str()),
        arch,
        zip("items-function", arch),
        &[("SECRETS_MANAGER_TTL", "2")],
    )
    .await;
    let first = stack.get("/items").await;
    assert_eq!(first.status, 200, "{}\n{}", first.text(), stack.logs());
    let old_password = stack.db.password.clone();

    // While the environment is frozen: the password changes in the database and then in the secret, and the
    // database drops the function's idle connections (as a restart or an idle timeout would).
    let pg = PgCluster::shared().await;
    let new_password = secretcache_tests::postgres::new_password();
    pg.set_password(&stack.db.username, &new_password).await;
    let mut rotated = stack.db.clone();
    rotated.password = new_password.clone();
    stack
        .sm
        .put_secret_value()
        .secret_id(&stack.arn)
        .secret_string(rotated.secret_json())
        .send()
        .await
        .expect("PutSecretValue");
    pg.admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
        stack.db.username
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(2_600)).await;

    for i in 0..5 {
        let r = stack.get("/items?limit=1").await;
        assert_eq!(
            r.status,
            200,
            "request {i} after the thaw: {}\n{}",
            r.text(),
            stack.logs()
        );
    }
    assert!(
        pg.sessions_of(&stack.db.username).await >= 1,
        "it logged in again, with the new password"
    );
    stack.assert_not_logged(&old_password);
    stack.assert_not_logged(&new_password);
}

async fn shutdown_ends_both_processes_before_the_deadline(arch: Arch) {
    let stack = Stack::start(
        &format!("e2eshutdown{}", arch.as_str()),
        arch,
        zip("items-function", arch),
        &[],
    )
    .await;
    assert_eq!(stack.get("/items").await.status, 200, "{}", stack.logs());
    stack.assert_runs_natively_or_emulated().await;
    let pids = stack.env.processes().await;
    assert_eq!(pids.len(), 2, "{pids:?}");
    let started = Instant::now();
    let report = stack.env.shutdown().await;
    let took = started.elapsed();
    assert_eq!(report.limit, Duration::from_secs(2));
    assert_eq!(report.processes.len(), 2, "{report}");
    // The correctness check is the deadline's: every process exited by itself before it (lambda-env measures each).
    // The wall time of the whole shutdown, lambda-env's own work included, is reported.
    assert!(report.all_exited_in_time(), "{report}\n{}", stack.logs());
    secretcache_tests::report::timing(&format!("{} SHUTDOWN, wall", arch.as_str()), took);
    for (name, pid) in pids {
        assert!(
            !matches!(process_state(pid), Some(s) if s != 'Z'),
            "{name} ({pid}) is still alive"
        );
    }
    assert!(
        stack
            .env
            .logs()
            .iter()
            .any(|l| l.source == "secretcache" && l.text.contains("shutdown reason=spindown")),
        "{}",
        stack.logs()
    );
    eprintln!("{report}");
    stack.assert_not_logged(&stack.db.password);
}

async fn the_original_bug_without_the_layer_and_db_secret_arn_is_a_clear_503_not_a_sqlite_500(
    arch: Arch,
) {
    // The seed note's configuration before the fix: no layer, no DB_SECRET_ARN, host/port/name only.
    let mut options = Options::new(zip("items-function", arch), vec![]);
    options.init_timeout = Limits::for_arch(arch).init;
    options.timeout = Limits::for_arch(arch).invoke;
    options.function_name = "items".to_owned();
    options = options
        .var(
            "DATABASE_HOST",
            "collections.abc.us-east-1.rds.amazonaws.com",
        )
        .var("DATABASE_PORT", "5432")
        .var("DATABASE_NAME", "collections");
    let env = LambdaEnv::start(options).await.expect("start");
    let init = env.init_result().expect("init ran").expect("init succeeds");
    assert!(init.extensions.is_empty());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let front = format!("http://{}", listener.local_addr().expect("addr"));
    let _task = tokio::spawn(front_door::serve(
        Arc::clone(&env),
        listener,
        std::future::pending(),
    ));

    let r = http::get(&format!("{front}/items?limit=5"), &[])
        .await
        .expect("answer");
    let logs: Vec<_> = env.logs();
    assert_eq!(r.status, 503, "{}\n{logs:#?}", r.text());
    assert_eq!(r.json()["error"], "database_not_configured", "{}", r.text());
    // The front door has no authorizer: an anonymous caller gets the code, and the log names the variable.
    assert!(!r.text().contains("DB_SECRET_ARN"), "{}", r.text());
    wait_for_log(
        &env,
        Limits::for_arch(arch).log_line,
        "no log line names the variable",
        |l| {
            l.source == "runtime"
                && l.text.contains("ERROR")
                && l.text
                    .contains("RuntimeError: DB_SECRET_ARN environment variable not set")
        },
    )
    .await;
    let task = &env.paths().task;
    assert!(
        !task.join("data").exists(),
        "no SQLite file may be created in Lambda"
    );
    let report = env.shutdown().await;
    assert_eq!(
        report.limit,
        Duration::ZERO,
        "no extension: no shutdown budget"
    );
}
