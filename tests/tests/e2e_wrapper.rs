//! End-to-end: **secrets as environment variables** through the exec wrapper (`secretcache exec`, issue 18), with the
//! **real layer zip** in the local Lambda environment, against the real moto behind the counting proxy.
//!
//! - A **Python** function under AWS's runtime interface client (`awslambdaric`), started through
//!   `AWS_LAMBDA_EXEC_WRAPPER=/opt/secretcache-wrapper` as a managed runtime starts it, sees every referenced value in
//!   its environment (a JSON field by name and by ARN, a whole secret, a decrypted SSM parameter and its field), and
//!   an unreferenced variable untouched; the runtime is the very process Lambda started (the wrapper `exec`s); the
//!   secrets cost one BatchGetSecretValue and the parameters one GetParameters, during init.
//! - A **provided.al2023** function whose `bootstrap` is the documented one-line wrapper call sees them too.
//! - A **bad reference** (a secret that does not exist yet) fails init with one line naming the variable and the
//!   reason (in JSON with `AWS_LAMBDA_LOG_FORMAT=json`), an `init/error` of type `Secretcache.UnresolvedReference`,
//!   and no runtime; the next invoke retries init, as Lambda does, and once the secret exists it succeeds.
//! - No value appears in any log line.
//!
//! Functions report each variable's length and SHA-256, never the value. These run on this machine's architecture
//! only: the wrapper script execs the layer's binary itself, which lambda-env cannot route through qemu-user (it
//! chooses the emulator for the programs it starts, and there is no binfmt_misc entry here).

use std::time::Duration;

use lambda_env::{LambdaEnv, LogLine, Options, Outcome};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::runtimes::Runtime;
use secretcache_tests::wrapped::describe;
use secretcache_tests::{with_layer, Arch};

const INVOKES: usize = 3;

/// The secrets of one test, created in the binary's moto under a unique prefix; the values are random so a leak cannot
/// hide behind a common string.
struct Secrets {
    token: String,
    db_name: String,
    db_arn: String,
    password: String,
    username: String,
    api_key: String,
    api_name: String,
    parameter: String,
    parameter_name: String,
    config_name: String,
    config_url: String,
}

impl Secrets {
    async fn create(moto: &Moto, prefix: &str) -> Secrets {
        let prefix = secretcache_tests::seed::unique(prefix);
        let token = secretcache_tests::random_token();
        let (sm, ssm) = (moto.sm_client().await, moto.ssm_client().await);
        let password = format!("pw-{token}");
        let username = format!("user-{token}");
        let db_name = format!("{prefix}/db");
        let db_arn = sm
            .create_secret()
            .name(&db_name)
            .secret_string(
                serde_json::json!({"username": username, "password": password, "port": 5432})
                    .to_string(),
            )
            .send()
            .await
            .expect("CreateSecret")
            .arn
            .expect("an ARN");
        let api_name = format!("{prefix}/api-key");
        let api_key = format!("key-{token}");
        sm.create_secret()
            .name(&api_name)
            .secret_string(&api_key)
            .send()
            .await
            .expect("CreateSecret");
        let parameter_name = format!("/{prefix}/token");
        let parameter = format!("param-{token}");
        let config_name = format!("/{prefix}/config");
        let config_url = format!("https://config-{token}.example");
        for (name, value) in [
            (&parameter_name, parameter.clone()),
            (
                &config_name,
                serde_json::json!({"url": config_url}).to_string(),
            ),
        ] {
            ssm.put_parameter()
                .name(name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .send()
                .await
                .expect("PutParameter");
        }
        Secrets {
            token,
            db_name,
            db_arn,
            password,
            username,
            api_key,
            api_name,
            parameter,
            parameter_name,
            config_name,
            config_url,
        }
    }

    /// The function's variables: the references, and one plain value that must stay as it is.
    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "DB_PASSWORD",
                format!("secretcache:{}#password", self.db_name),
            ),
            ("DB_USER", format!("secretcache:{}#username", self.db_arn)),
            ("API_KEY", format!("secretcache:{}", self.api_name)),
            (
                "PARAMETER",
                format!("secretcache:ssm:{}", self.parameter_name),
            ),
            (
                "CONFIG_URL",
                format!("secretcache:ssm:{}#url", self.config_name),
            ),
            ("PLAIN", "left as it is".to_owned()),
        ]
    }

    /// What each variable must hold once the wrapper has run.
    fn expected(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DB_PASSWORD", self.password.clone()),
            ("DB_USER", self.username.clone()),
            ("API_KEY", self.api_key.clone()),
            ("PARAMETER", self.parameter.clone()),
            ("CONFIG_URL", self.config_url.clone()),
            ("PLAIN", "left as it is".to_owned()),
        ]
    }

    fn values(&self) -> [&str; 6] {
        [
            &self.password,
            &self.username,
            &self.api_key,
            &self.parameter,
            &self.config_url,
            &self.token,
        ]
    }
}

fn configured(mut options: Options, secrets: &Secrets) -> Options {
    let expected = secrets.expected();
    let names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    for (name, value) in secrets.variables() {
        options = options.var(name, &value);
    }
    options = options.var("REPORT_VARIABLES", &names.join(","));
    // Each invoke only reads its environment: far below this, and far above Lambda's 3 s default when other builds
    // share the machine.
    options.timeout = Duration::from_secs(15);
    options
}

fn dump(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
        .collect()
}

fn assert_no_value_logged(lines: &[LogLine], secrets: &Secrets) {
    let leaks: Vec<&LogLine> = lines
        .iter()
        .filter(|l| secrets.values().iter().any(|v| l.text.contains(v)))
        .collect();
    assert!(leaks.is_empty(), "a value was logged: {leaks:#?}");
}

/// The runtime's pid, as lambda-env started it.
async fn runtime_pid(env: &LambdaEnv) -> u32 {
    env.processes()
        .await
        .into_iter()
        .find(|(name, _)| name == "runtime")
        .map(|(_, pid)| pid)
        .expect("a runtime process")
}

fn body(outcome: &Outcome, lines: &[LogLine]) -> serde_json::Value {
    match outcome {
        Outcome::Response(body) => serde_json::from_slice(body).expect("a JSON response"),
        Outcome::Error { body, .. } => panic!(
            "the invoke failed: {}\n{}",
            String::from_utf8_lossy(body),
            dump(lines)
        ),
    }
}

fn assert_sees(described: &serde_json::Value, secrets: &Secrets, what: &str) {
    for (name, value) in secrets.expected() {
        assert_eq!(
            described[name],
            describe(&value),
            "{what}: {name} is not the value its reference names"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_python_function_sees_the_referenced_values_through_aws_lambda_exec_wrapper() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let secrets = Secrets::create(moto, "wrapper-python").await;
    let function = Runtime::Python.function_zip();
    let (var, provided) = Runtime::Python.provided_by_the_managed_runtime();
    let mut options = with_layer(&function.zip, Arch::host(), &proxy.endpoint())
        .var(var, &provided)
        .var("AWS_LAMBDA_EXEC_WRAPPER", "/opt/secretcache-wrapper");
    options.function_name = "wrapped-python".to_owned();
    options.handler = "env_report.handler".to_owned();
    let env = LambdaEnv::start(configured(options, &secrets))
        .await
        .expect("the environment starts");
    let init = env
        .init_result()
        .expect("init ran")
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&env.logs())));
    assert_eq!(init.extensions, ["secretcache"]);
    // Every secret in one BatchGetSecretValue, every parameter in one GetParameters, both during init.
    let calls = |p: &FaultInjectingProxy| {
        [
            "BatchGetSecretValue",
            "GetSecretValue",
            "GetParameters",
            "GetParameter",
        ]
        .map(|op| (op, p.count(op)))
    };
    let at_init = calls(&proxy);
    assert_eq!(
        at_init,
        [
            ("BatchGetSecretValue", 1),
            ("GetSecretValue", 0),
            ("GetParameters", 1),
            ("GetParameter", 0)
        ],
        "{}",
        dump(&env.logs())
    );
    let pid = runtime_pid(&env).await;
    for i in 0..INVOKES {
        let invoked = env
            .invoke(format!("{{\"n\":{i}}}").into())
            .await
            .expect("invoke");
        let body = body(&invoked.outcome, &env.logs());
        assert_sees(&body["init"], &secrets, "at import");
        assert_sees(&body["invoke"], &secrets, "in the handler");
        assert_eq!(
            body["pid"], pid,
            "the runtime must be the process Lambda started: the wrapper execs it"
        );
    }
    assert_eq!(calls(&proxy), at_init, "nothing more upstream after init");

    let shutdown = env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}");
    let lines = env.logs();
    let resolved = lines
        .iter()
        .find(|l| l.source == "runtime" && l.text.contains("resolved the environment's references"))
        .unwrap_or_else(|| panic!("the wrapper's line\n{}", dump(&lines)));
    for name in [
        "DB_PASSWORD",
        "DB_USER",
        "API_KEY",
        "PARAMETER",
        "CONFIG_URL",
    ] {
        assert!(resolved.text.contains(name), "{}", resolved.text);
    }
    assert!(!resolved.text.contains("PLAIN"), "{}", resolved.text);
    assert!(lines
        .iter()
        .any(|l| l.source == "runtime" && l.text.contains("env_report loaded")));
    assert_no_value_logged(&lines, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_provided_function_with_the_documented_bootstrap_line_sees_the_referenced_values() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let secrets = Secrets::create(moto, "wrapper-provided").await;
    let (_dir, zip) = secretcache_tests::wrapped::function_zip();
    let mut options = with_layer(&zip, Arch::host(), &proxy.endpoint());
    options.function_name = "wrapped-provided".to_owned();
    let env = LambdaEnv::start(configured(options, &secrets))
        .await
        .expect("the environment starts");
    env.init_result()
        .expect("init ran")
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&env.logs())));
    let pid = runtime_pid(&env).await;
    for i in 0..INVOKES {
        let invoked = env
            .invoke(format!("{{\"n\":{i}}}").into())
            .await
            .expect("invoke");
        let body = body(&invoked.outcome, &env.logs());
        assert_sees(&body["variables"], &secrets, "runtime.sh");
        assert_eq!(body["pid"], pid, "runtime.sh is the process Lambda started");
    }
    assert_eq!(
        (
            proxy.count("BatchGetSecretValue"),
            proxy.count("GetParameters")
        ),
        (1, 1)
    );
    let shutdown = env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}");
    assert_no_value_logged(&env.logs(), &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_a_bad_reference_fails_init_naming_the_variable_and_the_next_invoke_retries_init() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let secrets = Secrets::create(moto, "wrapper-failing").await;
    // Its name is logged (names are not secret), so it must not hold the token the values are made of.
    let late = format!("wrapper-failing/late-{}", secretcache_tests::random_token());
    let late_value = format!("late-{}", secrets.token);
    let (_dir, zip) = secretcache_tests::wrapped::function_zip();
    let mut options = with_layer(&zip, Arch::host(), &proxy.endpoint())
        .var("AWS_LAMBDA_LOG_FORMAT", "json")
        .var("LATE", &format!("secretcache:{late}"));
    options.function_name = "wrapped-failing".to_owned();
    let mut options = configured(options, &secrets);
    let names = options
        .env
        .iter()
        .find(|(k, _)| k == "REPORT_VARIABLES")
        .map(|(_, v)| format!("{v},LATE"))
        .expect("set");
    options = options.var("REPORT_VARIABLES", &names);
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");

    // Init fails: LATE's secret does not exist yet. The wrapper says so, and tells the Runtime API why.
    let failure = env
        .init_result()
        .expect("init ran")
        .expect_err("init must fail while LATE's secret is missing");
    assert_eq!(
        failure.error_type,
        "Secretcache.UnresolvedReference",
        "{}",
        dump(&env.logs())
    );
    let lines = env.logs();
    let errors: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.source == "runtime")
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l.text).ok())
        .filter(|j| j["level"] == "ERROR")
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one line per failure, in JSON\n{}",
        dump(&lines)
    );
    assert_eq!(errors[0]["variable"], "LATE");
    assert_eq!(errors[0]["reference"], format!("secretcache:{late}"));
    assert!(
        errors[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not found (ResourceNotFoundException)")),
        "{}",
        errors[0]
    );
    assert!(
        !lines.iter().any(|l| l.text.contains("runtime.sh started")),
        "the runtime must not start\n{}",
        dump(&lines)
    );
    let init_starts = |lines: &[LogLine]| {
        lines
            .iter()
            .filter(|l| l.source == "lambda" && l.text.starts_with("INIT_START"))
            .count()
    };
    assert_eq!(init_starts(&lines), 1);

    // The next invoke tries a fresh init, as Lambda does: it fails the same way while the secret is missing...
    let retried = env.invoke("{}".into()).await;
    assert!(retried.is_err(), "{}", dump(&env.logs()));
    assert_eq!(init_starts(&env.logs()), 2);
    // ...and once it exists, init succeeds and the function sees it.
    moto.sm_client()
        .await
        .create_secret()
        .name(&late)
        .secret_string(&late_value)
        .send()
        .await
        .expect("CreateSecret");
    let invoked = env.invoke("{}".into()).await.expect("init succeeds now");
    assert_eq!(init_starts(&env.logs()), 3);
    let body = body(&invoked.outcome, &env.logs());
    assert_eq!(body["variables"]["LATE"], describe(&late_value));
    assert_sees(&body["variables"], &secrets, "after the retried init");

    let shutdown = env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}");
    let lines = env.logs();
    assert_no_value_logged(&lines, &secrets);
    assert!(!lines.iter().any(|l| l.text.contains(&late_value)));
}
