//! The built `items-function` binary as Lambda runs it: its `bootstrap` in the local Lambda environment
//! (`lambda-env`: the Runtime API, Lambda's variables, the task folder as its working directory, the freeze between
//! invokes) answering API Gateway events, with this build's extension, moto and PostgreSQL behind it.
//!
//! The in-process tests cover behaviour in depth; these prove the wiring of `main` (config read once, tracing set
//! up, one `App` across invocations) and replay the original bug exactly: in Lambda, with the seed note's broken
//! environment and the default `./data/collections.db`, the answer must be a 503 naming `DB_SECRET_ARN`, and no
//! SQLite file may appear in the working directory.

use std::time::Duration;

use lambda_env::{LambdaEnv, Options};
use secretcache_tests::items::{function_logs, invoke, status_and_body};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::postgres::PgCluster;
use secretcache_tests::seed::{self, unique};
use serde_json::Value;

/// The function binary of this build, named and sized as the seed's function, logging at DEBUG, with `vars`.
fn function(options: Options, vars: &[(&str, &str)]) -> Options {
    let mut options = options.var("AWS_LAMBDA_LOG_LEVEL", "DEBUG");
    options.function_name = "CollectionsCompute-dev-APILambda".to_owned();
    options.memory_mb = 256;
    // A debug build's first request migrates and logs in over TLS: more than Lambda's 3 s default on a busy machine.
    options.timeout = Duration::from_secs(30);
    for (k, v) in vars {
        options = options.var(k, v);
    }
    options
}

#[tokio::test]
async fn the_original_bug_in_lambda_is_a_503_naming_db_secret_arn_and_no_sqlite_file() {
    // The seed note's environment before the fix: host, port and name, and nothing to log in with; no layer.
    let options = function(
        Options::new(secretcache_tests::bin_path("items-function"), Vec::new()),
        &[
            (
                "DATABASE_HOST",
                "collections.abc.us-east-1.rds.amazonaws.com",
            ),
            ("DATABASE_PORT", "5432"),
            ("DATABASE_NAME", "collections"),
        ],
    );
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    let response = invoke(&env, "GET", "/items?limit=50&offset=0", None).await;
    let (status, body) = status_and_body(&response);
    assert_eq!(status, 503, "{response}\nlogs:\n{}", function_logs(&env));
    // The GET fixture carries a JWT authorizer's claims: an authenticated caller is told what to set.
    assert_eq!(body["missing"], "DB_SECRET_ARN");
    assert!(
        function_logs(&env).lines().any(|l| l.contains("ERROR")
            && l.contains("RuntimeError: DB_SECRET_ARN environment variable not set")),
        "the seed's failure line names the variable:\n{}",
        function_logs(&env)
    );
    // The function's working directory is the task folder, as in Lambda.
    assert!(
        !env.paths().task.join("data").exists(),
        "the default ./data/collections.db must not be created in Lambda"
    );
}

#[tokio::test]
async fn the_binary_serves_items_with_credentials_from_the_extension() {
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("bin").await;
    let moto = Moto::shared().await;
    let arn = seed::secret(
        &moto.sm_client().await,
        &unique("collections/bin/db"),
        &db.secret_json(),
    )
    .await
    .arn;
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    // The extension and the function share the port and the session token lambda-env gives them both.
    let options = function(
        secretcache_tests::with_extension_binary(
            secretcache_tests::bin_path("items-function"),
            &moto.endpoint(),
        ),
        &[
            ("DB_SECRET_ARN", &arn),
            ("DATABASE_SSLMODE", "verify-full"),
            ("DATABASE_SSL_ROOT_CERT", &ca),
        ],
    );
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");

    let mut responses = Vec::new();
    for (method, path, body, expected) in [
        ("GET", "/health", None, 200),
        ("POST", "/items", Some(r#"{"name":"from the binary"}"#), 201),
        ("GET", "/items?limit=50&offset=0", None, 200),
        ("GET", "/items?limit=0", None, 400),
        ("GET", "/items/424242", None, 404),
    ] {
        let response = invoke(&env, method, path, body).await;
        let (status, _) = status_and_body(&response);
        assert_eq!(
            status,
            expected,
            "{method} {path}: {response}\nlogs:\n{}",
            function_logs(&env)
        );
        responses.push(response);
    }
    let (_, page) = status_and_body(&responses[2]);
    assert_eq!(page[0]["name"], "from the binary", "a JSON array of items");
    assert_eq!(
        responses[2]["headers"]["x-total-count"], "1",
        "{}",
        responses[2]
    );

    let logs = function_logs(&env);
    assert!(
        logs.contains("DB_SECRET_ARN"),
        "the source is logged by name:\n{logs}"
    );
    // One pool across invocations: the migrations ran once.
    assert_eq!(logs.matches("database ready").count(), 1, "{logs}");
    let every_line: String = env.logs().iter().map(|l| format!("{}\n", l.text)).collect();
    for text in [logs, every_line, Value::Array(responses).to_string()] {
        assert!(!text.contains(&db.password), "the password leaked");
    }
}
