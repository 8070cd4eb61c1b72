//! End-to-end in other runtimes than ours: a **Python** and a **Node.js** function (`tests/runtimes/`), each run by
//! AWS's own runtime interface client for its language (`awslambdaric` from PyPI, `aws-lambda-ric` from npm) against
//! lambda-env's Runtime API, with the **real layer zip** attached, against the real moto behind the counting proxy.
//!
//! Each handler reads a secret and a SecureString parameter the way the AWS documentation shows for the AWS
//! Parameters and Secrets Lambda Extension (an HTTP GET to `localhost` with the session token header), once during
//! init and again in every invoke, and returns what it read. The claims, the same for both runtimes:
//! - init succeeds with `secretcache` registered, and the init reads cost one call upstream each;
//! - every value the handler got (at init and in each invoke) is the one moto holds, the parameter decrypted;
//! - the reads in invokes are cache hits: the upstream counts stay at one each;
//! - the processes are frozen between invokes, end within the SHUTDOWN deadline, and no log line holds a value.

use std::time::{Duration, Instant};

use lambda_env::process::process_state;
use lambda_env::{InvokeStatus, LambdaEnv, Outcome};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::runtimes::Runtime;
use secretcache_tests::{with_layer, Arch};

const INVOKES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_function_reads_a_secret_and_a_secure_parameter_through_the_layer_at_init_and_per_invoke(
) {
    reads_through_the_layer(Runtime::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_function_reads_a_secret_and_a_secure_parameter_through_the_layer_at_init_and_per_invoke(
) {
    reads_through_the_layer(Runtime::Node).await;
}

/// Starts `options` as the function `name` in `runtime`.
async fn start(
    mut options: lambda_env::Options,
    name: &str,
    runtime: Runtime,
) -> std::sync::Arc<LambdaEnv> {
    options.function_name = name.to_owned();
    options.handler = runtime.handler().to_owned();
    // Each invoke makes a few HTTP calls from an interpreter: far below this, and far above Lambda's 3 s default
    // when other builds share the machine.
    options.timeout = Duration::from_secs(15);
    LambdaEnv::start(options)
        .await
        .expect("the environment starts")
}

/// The environment's log lines, for a failure's message.
fn dump(env: &LambdaEnv) -> String {
    env.logs()
        .iter()
        .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
        .collect()
}

async fn reads_through_the_layer(runtime: Runtime) {
    let name = runtime.name();
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let (sm, ssm) = (moto.sm_client().await, moto.ssm_client().await);
    let token = secretcache_tests::random_token();
    let secret_value = format!("{{\"api_key\":\"{name}-secret-{token}\"}}");
    let parameter_value = format!("{name}-parameter-{token}");
    let secret_id = secretcache_tests::seed::unique(&format!("e2e/{name}/api"));
    let parameter_name = secretcache_tests::seed::unique(&format!("/e2e/{name}/password"));
    sm.create_secret()
        .name(&secret_id)
        .secret_string(&secret_value)
        .send()
        .await
        .expect("CreateSecret");
    ssm.put_parameter()
        .name(&parameter_name)
        .value(&parameter_value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("PutParameter");

    let function = runtime.function_zip();
    let (var, provided) = runtime.provided_by_the_managed_runtime();
    let options = with_layer(&function.zip, Arch::host(), &proxy.endpoint())
        .var(var, &provided)
        .var("SECRET_ID", &secret_id)
        .var("PARAMETER_NAME", &parameter_name)
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug");
    let env = start(options, &format!("{name}-reader"), runtime).await;
    let logs = || dump(&env);
    let init = env
        .init_result()
        .expect("init ran")
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", logs()));
    assert_eq!(init.extensions, ["secretcache"], "{}", logs());
    // `start` returns once init is over: the handler's module-level reads have happened, one upstream call each.
    assert_eq!(proxy.count("GetSecretValue"), 1, "{}", logs());
    assert_eq!(proxy.count("GetParameter"), 1, "{}", logs());

    // What moto holds, read from moto directly (not through the proxy, so the counts stay the function's).
    let held_secret = sm
        .get_secret_value()
        .secret_id(&secret_id)
        .send()
        .await
        .expect("GetSecretValue")
        .secret_string
        .expect("a SecretString");
    let held_parameter = ssm
        .get_parameter()
        .name(&parameter_name)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameter")
        .parameter
        .and_then(|p| p.value)
        .expect("a value");
    assert_eq!(
        (held_secret.as_str(), held_parameter.as_str()),
        (secret_value.as_str(), parameter_value.as_str())
    );

    let started = Instant::now();
    let mut request_ids = Vec::new();
    for i in 0..INVOKES {
        let invoked = env
            .invoke(format!("{{\"n\":{i}}}").into())
            .await
            .expect("invoke");
        let body = match &invoked.outcome {
            Outcome::Response(body) => serde_json::from_slice::<serde_json::Value>(body)
                .unwrap_or_else(|e| panic!("{name} invoke {i}: {e}: {body:?}")),
            Outcome::Error { body, .. } => panic!(
                "{name} invoke {i} failed: {}\n{}",
                String::from_utf8_lossy(body),
                logs()
            ),
        };
        assert_eq!(invoked.report.status, InvokeStatus::Success);
        for phase in ["init", "invoke"] {
            assert_eq!(
                body[phase]["secret"], held_secret,
                "{name} invoke {i}: the {phase} read of the secret"
            );
            assert_eq!(
                body[phase]["parameter"], held_parameter,
                "{name} invoke {i}: the {phase} read of the parameter, decrypted"
            );
        }
        // The handler's context is the invoke's: the runtime interface client read lambda-env's headers.
        assert_eq!(
            body["requestId"], invoked.report.request_id,
            "{name} invoke {i}"
        );
        request_ids.push(invoked.report.request_id.clone());
        for (process, pid) in env.processes().await {
            assert_eq!(
                process_state(pid),
                Some('T'),
                "{name}: {process} is not frozen after invoke {i}"
            );
        }
    }
    let took = started.elapsed();
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), INVOKES);
    assert_eq!(
        (proxy.count("GetSecretValue"), proxy.count("GetParameter")),
        (1, 1),
        "{INVOKES} invokes reading both values must all be cache hits, counted outside the extension\n{}",
        logs()
    );
    assert!(
        env.reports()[0].init_duration.is_some(),
        "the first REPORT carries the Init Duration"
    );

    let shutdown = env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}\n{}", logs());
    let lines = env.logs();
    assert!(
        lines
            .iter()
            .any(|l| l.source == "runtime"
                && l.text.contains("init read the secret and the parameter")),
        "the handler's own init line is captured\n{}",
        logs()
    );
    let leaks: Vec<_> = lines
        .iter()
        .filter(|l| {
            l.text.contains(&secret_value)
                || l.text.contains(&parameter_value)
                || l.text.contains(&token)
        })
        .collect();
    assert!(leaks.is_empty(), "{name}: a value was logged: {leaks:#?}");
    eprintln!(
        "{name}: init {:?}; {INVOKES} invokes in {took:?}; {}",
        init.duration, shutdown
    );
}

/// Issue 27's bar: the seed's own boto3 code (`get_secret_value` on `DB_SECRET_ARN`), unchanged, under AWS's Python
/// runtime interface client with the layer, reads through the cache because one variable is set:
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` at the extension. The extension shares that environment and does not call
/// itself; many invokes are one upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_python_function_reads_with_unchanged_boto3_code_and_one_variable() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let secret = secretcache_tests::seed::unique("e2e/sdk/db");
    let arn = secretcache_tests::seed::secret(
        &sm,
        &secret,
        "{\"username\":\"app\",\"password\":\"sdk-canary\",\"host\":\"db\",\"port\":5432}",
    )
    .await
    .arn;
    let runtime = Runtime::PythonSdk;
    let function = runtime.function_zip();
    let (var, provided) = runtime.provided_by_the_managed_runtime();
    let port = secretcache_tests::free_port().to_string();
    let options = with_layer(&function.zip, Arch::host(), &proxy.endpoint())
        .var(var, &provided)
        .var("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port)
        .var("DB_SECRET_ARN", &arn)
        // The one variable.
        .var(
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            &format!("http://127.0.0.1:{port}"),
        );
    let env = start(options, "seed-items", runtime).await;
    let logs = || dump(&env);
    env.init_result()
        .expect("init ran")
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    for i in 0..INVOKES {
        let invoked = env
            .invoke(format!("{{\"n\":{i}}}").into())
            .await
            .expect("invoke");
        let body = match &invoked.outcome {
            Outcome::Response(body) => {
                serde_json::from_slice::<serde_json::Value>(body).expect("JSON")
            }
            Outcome::Error { body, .. } => {
                panic!("invoke {i}: {}\n{}", String::from_utf8_lossy(body), logs())
            }
        };
        assert_eq!(body["password"], "sdk-canary", "invoke {i}");
        assert_eq!(body["username"], "app");
    }
    assert_eq!(
        proxy.count("GetSecretValue"),
        1,
        "{INVOKES} boto3 reads, one upstream call: {}",
        logs()
    );
    assert!(!logs().contains("sdk-canary"), "no value in the logs");
}
