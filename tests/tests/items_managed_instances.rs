//! The built `items-function` binary on Lambda Managed Instances, as lambda-env's Managed Instances mode runs it
//! (`AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances`, `AWS_LAMBDA_MAX_CONCURRENCY`, no freeze, invocations
//! delivered side by side), with this build's extension in the same environment (registered for SHUTDOWN only, as
//! Lambda requires there), moto holding the RDS secret, and the throwaway PostgreSQL.
//!
//! - one process serves [`CONCURRENCY`] requests at once on one pool sized by the concurrency: proved without timing,
//!   by holding a lock on the table and counting the function's sessions that wait for it;
//! - a single-user rotation under concurrent reads and writes fails no request, and one refresh serves them all.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lambda_env::LambdaEnv;
use secretcache_tests::items::{function_logs, invoke, status_and_body};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::postgres::{new_password, AppDatabase, PgCluster};
use secretcache_tests::seed::{self, unique};
use serde_json::Value;
use sqlx::Connection;

/// `AWS_LAMBDA_MAX_CONCURRENCY` of the environment: more than the default pool of 2, fewer than its cap of 10.
const CONCURRENCY: u32 = 8;

/// How long a test waits for something that should happen (a poll with a deadline, never a measured time).
const PATIENCE: Duration = Duration::from_secs(90);

/// The function in lambda-env's Managed Instances mode, with everything behind it.
struct Deployed {
    pg: &'static PgCluster,
    db: AppDatabase,
    sm: aws_sdk_secretsmanager::Client,
    arn: String,
    env: Arc<LambdaEnv>,
}

impl Deployed {
    async fn start(tag: &str, vars: &[(&str, &str)]) -> Deployed {
        let pg = PgCluster::shared().await;
        let db = pg.create_app_database(tag).await;
        let moto = Moto::shared().await;
        let sm = moto.sm_client().await;
        let arn = seed::secret(
            &sm,
            &unique(&format!("collections/{tag}/db")),
            &db.secret_json(),
        )
        .await
        .arn;
        let ca = pg.ca_cert().to_string_lossy().into_owned();
        // The extension and the function share the port and the session token the environment gives them both.
        let mut options = secretcache_tests::with_extension_binary(
            secretcache_tests::bin_path("items-function"),
            &moto.endpoint(),
        )
        .managed_instances(CONCURRENCY)
        .var("DB_SECRET_ARN", &arn)
        .var("PARAMETERS_SECRETS_EXTENSION_PREFETCH", &arn)
        .var("DATABASE_SSLMODE", "verify-full")
        .var("DATABASE_SSL_ROOT_CERT", &ca);
        for (k, v) in vars {
            options = options.var(k, v);
        }
        options.function_name = "items".to_owned();
        // A debug build's first request logs in over TLS and checks the table: more than Lambda's 3 s default.
        options.timeout = Duration::from_secs(30);
        let env = LambdaEnv::start(options)
            .await
            .expect("the environment starts");
        Deployed {
            pg,
            db,
            sm,
            arn,
            env,
        }
    }

    /// A new version of the secret with `password`, staged as `stage` (`AWSCURRENT` moves by `PutSecretValue`
    /// without stages: moto gets `UpdateSecretVersionStage` wrong).
    async fn put_password(&self, password: &str, stage: Option<&str>) {
        let mut next = self.db.clone();
        next.password = password.to_owned();
        self.sm
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(next.secret_json())
            .set_version_stages(stage.map(|s| vec![s.to_owned()]))
            .send()
            .await
            .expect("PutSecretValue");
    }

    /// Asserts that none of `passwords` is in the function's or the extension's logs, or in `responses`.
    fn assert_never_leaked(&self, passwords: &[&str], responses: &[Value]) {
        let every_line: String = self
            .env
            .logs()
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect();
        let bodies = Value::Array(responses.to_vec()).to_string();
        for p in passwords {
            assert!(
                !every_line.contains(p),
                "a password reached the function's or the extension's logs"
            );
            assert!(!bodies.contains(p), "a password reached a response");
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn managed_instances_one_process_serves_concurrent_requests_on_one_pool() {
    let d = Deployed::start("miconc", &[]).await;
    // The pool is built, and the table checked, by the first request.
    let health = invoke(&d.env, "GET", "/health", None).await;
    assert_eq!(
        status_and_body(&health).0,
        200,
        "{health}\nlogs:\n{}",
        function_logs(&d.env)
    );

    // Every read of the table waits while the test holds this lock, so the function's sessions that wait for it are
    // the requests it is running at once.
    let mut holder = sqlx::PgConnection::connect_with(&d.pg.superuser_options(&d.db.dbname))
        .await
        .expect("superuser connection");
    let mut lock = holder.begin().await.expect("BEGIN");
    sqlx::query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("LOCK TABLE");
    let requests: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let env = Arc::clone(&d.env);
            tokio::spawn(async move { invoke(&env, "GET", "/items?limit=5", None).await })
        })
        .collect();
    let username = d.db.username.clone();
    eventually(
        &format!("{CONCURRENCY} of the function's sessions waiting at once"),
        || async {
            (d.pg.sessions_waiting_for_a_lock(&username).await == i64::from(CONCURRENCY))
                .then_some(())
        },
    )
    .await;
    lock.rollback().await.expect("ROLLBACK");
    let _ = holder.close().await;

    let mut responses = Vec::new();
    for r in requests {
        let response = r.await.expect("request task");
        assert_eq!(
            status_and_body(&response).0,
            200,
            "{response}\nlogs:\n{}",
            function_logs(&d.env)
        );
        responses.push(response);
    }

    let logs = function_logs(&d.env);
    // One process, one pool: the environment runs a single function process beside the extension, which built its
    // pool once, sized by AWS_LAMBDA_MAX_CONCURRENCY, and never holds more sessions than that.
    let processes = d.env.processes().await;
    assert_eq!(
        processes
            .iter()
            .filter(|(name, _)| !name.contains("secretcache"))
            .count(),
        1,
        "{processes:?}"
    );
    assert!(
        processes
            .iter()
            .any(|(name, _)| name.contains("secretcache")),
        "the extension is still up: {processes:?}"
    );
    assert_eq!(logs.matches("database ready").count(), 1, "{logs}");
    let settings = logs
        .lines()
        .find(|l| l.contains("database settings read"))
        .unwrap_or_else(|| panic!("the cold start logs its settings:\n{logs}"));
    assert!(
        settings.contains(&format!("concurrency={CONCURRENCY}"))
            && settings.contains(&format!("max_connections={CONCURRENCY}")),
        "{settings}"
    );
    assert!(d.pg.sessions_of(&d.db.username).await <= i64::from(CONCURRENCY));
    d.assert_never_leaked(&[&d.db.password], &responses);
}

#[tokio::test]
async fn managed_instances_a_rotation_under_concurrent_load_fails_no_request() {
    // Each pooled connection lives 1 s, so new logins keep happening all through the rotation.
    let d = Deployed::start("mirot", &[("DATABASE_POOL_MAX_LIFETIME_SECS", "1")]).await;
    let health = invoke(&d.env, "GET", "/health", None).await;
    assert_eq!(
        status_and_body(&health).0,
        200,
        "{health}\nlogs:\n{}",
        function_logs(&d.env)
    );

    // CONCURRENCY workers, each sending its next request as soon as the last one is answered: half read, half write.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let (env, stop, done) = (Arc::clone(&d.env), Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let answer = if worker % 2 == 0 {
                        (200, invoke(&env, "GET", "/items?limit=5", None).await)
                    } else {
                        let body = format!(r#"{{"name":"worker {worker} item {n}"}}"#);
                        (201, invoke(&env, "POST", "/items", Some(&body)).await)
                    };
                    answers.push(answer);
                    done.fetch_add(1, Ordering::AcqRel);
                    n += 1;
                }
                answers
            })
        })
        .collect();
    let load_until = |more: usize| {
        let target = done.load(Ordering::Acquire) + more;
        let done = Arc::clone(&done);
        async move {
            eventually(&format!("{more} more answers"), || {
                let done = Arc::clone(&done);
                async move { (done.load(Ordering::Acquire) >= target).then_some(()) }
            })
            .await
        }
    };
    let some = 2 * CONCURRENCY as usize;
    load_until(some).await;

    // Single-user rotation: the new password is AWSPENDING when the database starts asking for it.
    let old_password = d.db.password.clone();
    let new_password = new_password();
    d.put_password(&new_password, Some("AWSPENDING")).await;
    d.pg.set_password(&d.db.username, &new_password).await;
    eventually("a login with the AWSPENDING value", || async {
        d.env
            .logs()
            .iter()
            .any(|l| l.text.contains("login works again") && l.text.contains("AWSPENDING"))
            .then_some(())
    })
    .await;
    load_until(some).await;
    d.put_password(&new_password, None).await;
    load_until(some).await;
    stop.store(true, Ordering::Release);

    let mut responses = Vec::new();
    for w in workers {
        for (expected, response) in w.await.expect("worker") {
            assert_eq!(
                status_and_body(&response).0,
                expected,
                "a request failed during the rotation: {response}\nlogs:\n{}",
                function_logs(&d.env)
            );
            responses.push(response);
        }
    }
    assert!(responses.len() >= 3 * some, "{} answers", responses.len());

    let logs = function_logs(&d.env);
    // Every request that met the new password waited for the same refresh instead of asking the extension itself.
    assert_eq!(
        logs.matches("the secret may have rotated, refreshing it")
            .count(),
        1,
        "{logs}"
    );
    assert_eq!(logs.matches("database ready").count(), 1, "{logs}");
    d.assert_never_leaked(&[&old_password, &new_password], &responses);
}
