//! The `/items` function's credentials through the real chain: the built `secretcache` extension (standalone)
//! against moto holding the RDS secret, and the throwaway PostgreSQL behind it.
//!
//! - the secret is read over localhost with the session token, and the API works on it;
//! - a rotation under a loop of requests (`ALTER ROLE`, then `PutSecretValue`) gives zero 5xx;
//! - single-user rotation order (the password changed while the new secret is only `AWSPENDING`) is recovered from;
//! - the cold-start race (the extension listening only after the first request began) is ridden out;
//! - every misconfiguration is a clear 4xx/5xx naming what to fix;
//! - and no password ever appears in a body, in our logs, or in the extension's logs.
//!
//! `PutSecretValue` is used to move `AWSCURRENT`, never `UpdateSecretVersionStage`: moto gets stages wrong there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use items_function::App;
use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::items::{self, app, call, crud_and_paging, Logs, Reply};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::postgres::{new_password, AppDatabase, PgCluster};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::report;
use secretcache_tests::seed::{self, unique};

/// The binary's moto with the database's secret in it, and the extension in front of moto.
struct Chain {
    pg: &'static PgCluster,
    db: AppDatabase,
    sm: aws_sdk_secretsmanager::Client,
    arn: String,
    ext: Standalone,
}

impl Chain {
    async fn new(tag: &str) -> Chain {
        let pg = PgCluster::shared().await;
        let db = pg.create_app_database(tag).await;
        let moto = Moto::shared().await;
        let sm = moto.sm_client().await;
        let arn = create_secret(&sm, tag, &db.secret_json()).await;
        let ext = Standalone::spawn(moto, &[]).await;
        Chain {
            pg,
            db,
            sm,
            arn,
            ext,
        }
    }

    /// The function's environment in Lambda, reading the secret through this chain's extension.
    fn app(&self, extra: &[(&str, &str)]) -> App {
        let port = self.ext.port().to_string();
        let token = self.ext.token();
        let ca = self.pg.ca_cert().to_string_lossy().into_owned();
        let mut env = vec![
            (
                "AWS_LAMBDA_FUNCTION_NAME",
                "CollectionsCompute-dev-APILambda",
            ),
            ("DB_SECRET_ARN", self.arn.as_str()),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.as_str()),
            ("AWS_SESSION_TOKEN", token.as_str()),
            ("DATABASE_SSLMODE", "verify-full"),
            ("DATABASE_SSL_ROOT_CERT", ca.as_str()),
        ];
        env.extend_from_slice(extra);
        app(&env)
    }

    /// Puts `password` into the secret as a new version with `stage`.
    async fn put_password(&self, password: &str, stage: &str) {
        let mut next = self.db.clone();
        next.password = password.to_owned();
        self.sm
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(next.secret_json())
            .version_stages(stage)
            .send()
            .await
            .expect("PutSecretValue");
    }

    /// Asserts that none of `passwords` appears in this test's logs, the extension's logs, or `replies`.
    fn assert_never_leaked(&self, logs: &Logs, passwords: &[&str], replies: &[Reply]) {
        let ours = logs.text();
        let theirs = self.ext.logs();
        assert!(!ours.is_empty(), "the function's logs were captured");
        for p in passwords {
            assert!(!ours.contains(p), "a password reached the function's logs");
            assert!(
                !theirs.contains(p),
                "a password reached the extension's logs"
            );
            for r in replies {
                assert!(!r.text.contains(p), "a password reached a body: {}", r.text);
            }
        }
    }
}

/// A new secret named after `tag` (unique in the binary's moto) holding `json`; its ARN.
async fn create_secret(sm: &aws_sdk_secretsmanager::Client, tag: &str, json: &str) -> String {
    seed::secret(sm, &unique(&format!("collections/{tag}/db")), json)
        .await
        .arn
}

#[tokio::test]
async fn the_api_works_on_credentials_read_through_the_extension() {
    let logs = items::capture();
    let chain = Chain::new("creds").await;
    let app = chain.app(&[]);
    crud_and_paging(&app, "postgresql").await;
    // The seed note's success indicators, word for word, with our structured fields beside them.
    for line in [
        "Successfully retrieved database credentials from Secrets Manager",
        "Constructed database URL from Secrets Manager credentials",
    ] {
        assert!(
            !logs
                .lines_with(&[line, "source=\"DB_SECRET_ARN\""])
                .is_empty(),
            "{line:?} is logged"
        );
    }
    let r = call(&app, "GET", "/items", None).await;
    chain.assert_never_leaked(&logs, &[&chain.db.password], &[r]);
}

#[tokio::test]
async fn a_rotation_under_a_loop_of_requests_gives_no_5xx() {
    let logs = items::capture();
    let chain = Chain::new("rotate").await;
    // Connections live one second, so after the rotation the pool must open new ones with the new password while
    // the extension's cache (TTL 300 s) still holds the old secret: only refreshNow can save those requests.
    let app = Arc::new(chain.app(&[("DATABASE_POOL_MAX_LIFETIME_SECS", "1")]));
    let warm = call(&app, "GET", "/health", None).await;
    assert_eq!(warm.status, 200, "{}", warm.text);

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut replies = Vec::new();
            let mut i = 0u32;
            let started = Instant::now();
            // Bounded in count and time whatever happens.
            while !stop.load(Ordering::Relaxed)
                && i < 2_000
                && started.elapsed() < Duration::from_secs(30)
            {
                let r = if i.is_multiple_of(4) {
                    let body = format!(r#"{{"name":"during rotation {i}"}}"#);
                    call(&app, "POST", "/items", Some(&body)).await
                } else {
                    call(&app, "GET", "/items?limit=5&offset=0", None).await
                };
                replies.push(r);
                i += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            replies
        })
    };

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let old_password = chain.db.password.clone();
    let new_password = new_password();
    chain
        .pg
        .set_password(&chain.db.username, &new_password)
        .await;
    chain.put_password(&new_password, "AWSCURRENT").await;
    // Long enough for every connection to pass its one-second lifetime several times over.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stop.store(true, Ordering::Relaxed);
    let replies = worker.await.expect("request loop");

    let failures: Vec<String> = replies
        .iter()
        .filter(|r| !r.status.is_success())
        .map(|r| format!("{} {}", r.status, r.text))
        .collect();
    assert!(replies.len() >= 50, "only {} requests ran", replies.len());
    assert!(
        failures.is_empty(),
        "{} of {} failed: {failures:?}",
        failures.len(),
        replies.len()
    );
    let recoveries = logs.lines_with(&["login works again", "refreshNow"]);
    assert!(
        !recoveries.is_empty(),
        "the rotation path (a rejected login, then refreshNow) was exercised"
    );
    eprintln!(
        "{} requests; recoveries:\n{}",
        replies.len(),
        recoveries.join("\n")
    );
    assert!(
        chain.pg.sessions_of(&chain.db.username).await <= 2,
        "the pool stays small through the rotation"
    );
    chain.assert_never_leaked(&logs, &[&old_password, &new_password], &replies);
}

#[tokio::test]
async fn single_user_rotation_order_is_recovered_through_awspending() {
    let logs = items::capture();
    let chain = Chain::new("pending").await;
    // The rotation Lambda's createSecret and setSecret steps: the new password is AWSPENDING, and the database has
    // it already; AWSCURRENT still holds the old one.
    let next = new_password();
    chain.put_password(&next, "AWSPENDING").await;
    chain.pg.set_password(&chain.db.username, &next).await;

    // A cold start now: AWSCURRENT (cached or refreshed) is refused, AWSPENDING works.
    let app = chain.app(&[]);
    let r = call(&app, "POST", "/items", Some(r#"{"name":"mid-rotation"}"#)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r2 = call(&app, "GET", "/items", None).await;
    assert_eq!(r2.status, 200, "{}", r2.text);
    assert!(
        !logs
            .lines_with(&["login works again", "AWSPENDING"])
            .is_empty(),
        "AWSPENDING was the version that worked"
    );
    chain.assert_never_leaked(&logs, &[&chain.db.password, &next], &[r, r2]);
}

#[tokio::test]
async fn the_cold_start_race_with_the_extension_is_ridden_out() {
    let _logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("race").await;
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let arn = create_secret(&sm, "race", &db.secret_json()).await;

    let port = secretcache_tests::free_port();
    let token = secretcache_tests::random_token();
    let port_s = port.to_string();
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    let app = Arc::new(app(&[
        ("AWS_LAMBDA_FUNCTION_NAME", "items"),
        ("DB_SECRET_ARN", &arn),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port_s),
        ("AWS_SESSION_TOKEN", &token),
        ("DATABASE_SSL_ROOT_CERT", &ca),
        ("DB_SECRET_STARTUP_WAIT_MS", "5000"),
    ]));
    // The first request starts before anything listens on the extension's port.
    let first = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { call(&app, "GET", "/health", None).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ext = Standalone::spawn_with_env(
        base_env(&moto.endpoint(), port, &token),
        &[],
        port,
        token.clone(),
    );
    let r = first.await.expect("first request");
    assert_eq!(r.status, 200, "{}\nextension logs:\n{}", r.text, ext.logs());
}

#[tokio::test]
async fn misconfigurations_are_clear_and_never_500() {
    let logs = items::capture();
    let chain = Chain::new("misconf").await;

    // Inside Lambda with nothing configured: a 503 naming DB_SECRET_ARN, and no SQLite file anywhere.
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path().join("data");
    let sqlite = dir.join("collections.db");
    let sqlite_s = sqlite.to_string_lossy().into_owned();
    let none = app(&[
        ("AWS_LAMBDA_FUNCTION_NAME", "items"),
        ("DATABASE_PATH", &sqlite_s),
        ("AWS_SESSION_TOKEN", &chain.ext.token()),
    ]);
    let r = call(&none, "GET", "/items?limit=50&offset=0", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["missing"], "DB_SECRET_ARN");
    assert!(
        !sqlite.exists() && !dir.exists(),
        "no SQLite file inside Lambda"
    );
    assert!(
        logs.text()
            .lines()
            .any(|l| l.contains("DB_SECRET_ARN") && l.contains("ERROR")),
        "the log line names the variable too:\n{}",
        logs.text()
            .lines()
            .filter(|l| l.contains("DB_SECRET"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A secret that does not exist.
    let missing = chain.app(&[(
        "DB_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf",
    )]);
    let r = call(&missing, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "secret_not_found");

    // The wrong token: the extension refuses us.
    let forbidden = chain.app(&[("AWS_SESSION_TOKEN", "tok-not-this-one")]);
    let r = call(&forbidden, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "credentials_forbidden");

    // No extension on the port at all (its layer not attached): a 502 after a short wait.
    let free = secretcache_tests::free_port().to_string();
    let unreachable = chain.app(&[
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &free),
        ("DB_SECRET_STARTUP_WAIT_MS", "300"),
    ]);
    let started = Instant::now();
    let r = call(&unreachable, "GET", "/items", None).await;
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.body["error"], "credentials_unreachable");
    report::timing(
        "502 with no extension on the port, DB_SECRET_STARTUP_WAIT_MS=300",
        took,
    );
    // A correctness bound, ten times the configured wait: the request gives up once its 300 ms are spent (retrying
    // a refused connection every 20-250 ms) instead of waiting on a port where nothing listens.
    assert!(
        took < Duration::from_secs(3),
        "{took:?}: the request was held past its startup wait"
    );

    // A secret that is not the RDS JSON.
    let arn = create_secret(&chain.sm, "misconf-bad", r#"{"user_name":"x"}"#).await;
    let invalid = chain.app(&[("DB_SECRET_ARN", &arn)]);
    let r = call(&invalid, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "secret_invalid");

    // An RDS-managed master secret (user name and password only): the rest comes from DATABASE_*.
    let master = serde_json::json!({"username": chain.db.username, "password": chain.db.password})
        .to_string();
    let arn = create_secret(&chain.sm, "misconf-master", &master).await;
    let port = chain.db.port.to_string();
    let partial = chain.app(&[
        ("DB_SECRET_ARN", &arn),
        ("DATABASE_HOST", "127.0.0.1"),
        ("DATABASE_PORT", &port),
        ("DATABASE_NAME", &chain.db.dbname),
    ]);
    let r = call(&partial, "GET", "/items", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    chain.assert_never_leaked(&logs, &[&chain.db.password], &[r]);
}

#[tokio::test]
async fn the_seeds_failure_lines_are_logged_where_they_happen() {
    let logs = items::capture();
    let chain = Chain::new("seedfail").await;
    let missing = chain.app(&[(
        "DB_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf",
    )]);
    let r = call(&missing, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let failed = logs.lines_with(&[
        "ERROR",
        "Failed to retrieve DATABASE_URL from Secrets Manager: ",
    ]);
    assert_eq!(failed.len(), 1, "{logs:?}");
    assert!(
        failed[0].contains("404"),
        "the reason follows the colon: {}",
        failed[0]
    );

    let none = app(&[("AWS_LAMBDA_FUNCTION_NAME", "items")]);
    none.log_startup();
    let r = call(&none, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        logs.lines_with(&[
            "ERROR",
            "RuntimeError: DB_SECRET_ARN environment variable not set"
        ])
        .len(),
        2,
        "at the cold start and at the request: {logs:?}"
    );
}

#[tokio::test]
async fn parameter_store_db_url_is_the_deprecated_third_tier_read_with_decryption() {
    let logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("ssm").await;
    let moto = Moto::shared().await;
    let name = &unique("/collections/dev/database-url");
    seed::parameter(
        &moto.ssm_client().await,
        name,
        aws_sdk_ssm::types::ParameterType::SecureString,
        &db.url(),
    )
    .await;
    let ext = Standalone::spawn(moto, &[]).await;
    let port = ext.port().to_string();
    let token = ext.token();
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    let app = app(&[
        ("AWS_LAMBDA_FUNCTION_NAME", "items"),
        ("PARAMETER_STORE_DB_URL", name),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ("AWS_SESSION_TOKEN", &token),
        ("DATABASE_SSL_ROOT_CERT", &ca),
    ]);
    app.log_startup();
    crud_and_paging(&app, "postgresql").await;

    assert_eq!(
        logs.lines_with(&["WARN", "PARAMETER_STORE_DB_URL is deprecated"])
            .len(),
        1,
        "one deprecation warning per cold start: {logs:?}"
    );
    assert_eq!(
        logs.lines_with(&["Retrieved DATABASE_URL from Parameter Store"])
            .len(),
        1,
        "read once, then the pool keeps it: {logs:?}"
    );
    // Through the extension's SSM endpoint: the extension fetched the parameter upstream, by its key.
    assert!(
        ext.logs()
            .lines()
            .any(|l| l.contains("fetched from upstream")
                && l.contains(&format!("key=parameter:{name}"))),
        "{}",
        ext.logs()
    );
    assert!(
        !logs.text().contains(&db.password),
        "the password reached the logs"
    );
    assert!(
        !ext.logs().contains(&db.password),
        "the password reached the extension's logs"
    );
}

/// The URL of something already running, for a proxy in front of it.
struct At(String);

impl Endpoint for At {
    fn endpoint(&self) -> String {
        self.0.clone()
    }
}

#[tokio::test]
async fn after_every_version_is_rejected_requests_get_a_503_at_once_without_asking_the_extension() {
    let logs = items::capture();
    let chain = Chain::new("backoff").await;
    // Every call the function makes to the extension passes this proxy, which counts it.
    let counted = FaultInjectingProxy::start(&At(chain.ext.url())).await;
    let port = counted
        .endpoint()
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let app = chain.app(&[
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ("DATABASE_ROTATION_GRACE_MS", "300"),
        ("DATABASE_REJECTED_BACKOFF_MS", "60000"),
    ]);
    let r = call(&app, "GET", "/items", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The password changes to one that no version of the secret holds, and the pool's sessions end.
    chain
        .pg
        .set_password(&chain.db.username, &new_password())
        .await;
    chain
        .pg
        .admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
            chain.db.username
        ))
        .await;

    let before = counted.count("unknown");
    let started = Instant::now();
    let first = call(&app, "GET", "/items", None).await;
    let first_took = started.elapsed();
    assert_eq!(first.status, 503, "{}", first.text);
    assert_eq!(first.body["error"], "database_credentials_rejected");
    assert_eq!(first.headers["retry-after"], "60");
    let first_calls = counted.count("unknown") - before;
    assert!(
        first_calls >= 2,
        "refreshNow and AWSPENDING were asked: {first_calls}"
    );

    let before = counted.count("unknown");
    let started = Instant::now();
    let second = call(&app, "GET", "/items", None).await;
    let second_took = started.elapsed();
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(second.body["error"], "database_credentials_rejected");
    assert!(
        second.headers.contains_key("retry-after"),
        "{:?}",
        second.headers
    );
    assert_eq!(
        counted.count("unknown") - before,
        0,
        "within the backoff, no call to the extension"
    );
    eprintln!(
        "first rejected request: {first_calls} extension calls in {first_took:?}; second: 0 calls in {second_took:?}"
    );
    assert_eq!(
        logs.lines_with(&["rejects every version of the secret"])
            .len(),
        1,
        "{logs:?}"
    );
}
