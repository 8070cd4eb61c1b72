//! The `/items` function on a real PostgreSQL 15 (TLS only, scram-sha-256), driven in-process with real API Gateway
//! events: CRUD and paging, the TLS modes, the legacy variables, a wrong password, and the pool's size.
//!
//! One cluster serves the whole binary; each test gets its own role and database.

use secretcache_tests::items::{self, app, call, crud_and_paging};
use secretcache_tests::postgres::PgCluster;

#[tokio::test]
async fn crud_and_paging_over_verify_full_tls() {
    let _logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("crud").await;
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    let app = app(&[
        ("DATABASE_URL", &db.url()),
        ("DATABASE_SSLMODE", "verify-full"),
        ("DATABASE_SSL_ROOT_CERT", &ca),
    ]);
    crud_and_paging(&app, "postgresql").await;
}

#[tokio::test]
async fn the_default_sslmode_is_require_and_the_server_accepts_only_tls() {
    let _logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("tls").await;

    // No sslmode anywhere: the function's default (require) must be TLS, or hostssl-only would refuse it.
    let app_default = app(&[("DATABASE_URL", &db.url())]);
    let r = call(&app_default, "GET", "/health", None).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Plain TCP is refused by the server, and the function says the database is unavailable, nothing more.
    let app_plain = app(&[("DATABASE_URL", &db.url()), ("DATABASE_SSLMODE", "disable")]);
    let r = call(&app_plain, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "database_unavailable");
    assert!(
        !r.text.contains(&db.password) && !r.text.contains(&db.username),
        "{}",
        r.text
    );

    // verify-full without our CA: the test CA is in no public root store, so the certificate is refused.
    let app_untrusted = app(&[
        ("DATABASE_URL", &db.url()),
        ("DATABASE_SSLMODE", "verify-full"),
    ]);
    let r = call(&app_untrusted, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "database_unavailable");
}

#[tokio::test]
async fn legacy_variables_work_and_a_wrong_password_is_a_clean_503() {
    let logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("legacy").await;
    let port = db.port.to_string();
    let legacy = |password: &str| {
        app(&[
            ("DATABASE_HOST", "127.0.0.1"),
            ("DATABASE_PORT", &port),
            ("DATABASE_NAME", &db.dbname),
            ("DATABASE_USER", &db.username),
            ("DATABASE_PASSWORD", password),
        ])
    };
    let good = legacy(&db.password);
    let r = call(&good, "POST", "/items", Some(r#"{"name":"legacy"}"#)).await;
    assert_eq!(r.status, 201, "{}", r.text);

    let wrong_password = "not-the-password-7f3a";
    let bad = legacy(wrong_password);
    let r = call(&bad, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "database_credentials_rejected");
    for secret in [wrong_password, db.password.as_str()] {
        assert!(!r.text.contains(secret), "{}", r.text);
        assert!(!logs.text().contains(secret), "a password reached the logs");
    }
}

#[tokio::test]
async fn one_small_pool_serves_many_invocations() {
    let _logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("pool").await;
    let app = app(&[("DATABASE_URL", &db.url())]);
    for i in 0..30 {
        let body = format!(r#"{{"name":"n{i}"}}"#);
        let r = call(&app, "POST", "/items", Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Concurrent requests share the pool's two connections rather than opening one each.
    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                call(&app, "GET", &format!("/items?limit=5&offset={i}"), None)
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    let sessions = pg.sessions_of(&db.username).await;
    assert!(
        (1..=2).contains(&sessions),
        "the pool holds {sessions} connections; expected at most 2"
    );
}

/// A function zip's root as Lambda extracts it (`LAMBDA_TASK_ROOT`), holding the CA bundle where
/// `make package DATABASE_CA_BUNDLE=...` puts it.
struct TaskRoot(tempfile::TempDir);

impl TaskRoot {
    fn with_bundle(ca: &std::path::Path) -> TaskRoot {
        let dir = tempfile::Builder::new()
            .prefix("items-task-")
            .tempdir()
            .expect("a temporary folder");
        std::fs::create_dir_all(dir.path().join("certs")).expect("certs folder");
        std::fs::copy(ca, dir.path().join("certs/database-ca.pem")).expect("the bundle");
        TaskRoot(dir)
    }
    fn path(&self) -> String {
        self.0.path().to_string_lossy().into_owned()
    }
}

#[tokio::test]
async fn verify_full_from_the_packaged_bundle_refuses_attacker_invalid_and_accepts_the_real_server()
{
    let logs = items::capture();
    let pg = PgCluster::shared().await;
    let real = pg.create_app_database("verify").await;
    // The impostor knows the role and its password, and has the table: only its certificate gives it away.
    let impostor = PgCluster::start_impostor().await;
    let fake = impostor.create_database_like(&real).await;
    let task = TaskRoot::with_bundle(&pg.ca_cert());
    let task_root = task.path();
    let in_lambda = |url: &str, extra: &[(&str, &str)]| {
        let mut env = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", "items"),
            ("LAMBDA_TASK_ROOT", task_root.as_str()),
            ("DATABASE_URL", url),
        ];
        env.extend_from_slice(extra);
        app(&env)
    };

    // The bundle in the zip, and nothing else set: verify-full, and no warning.
    let real_app = in_lambda(&real.url(), &[]);
    real_app.log_startup();
    let r = call(&real_app, "GET", "/items?limit=50&offset=0", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        logs.lines_with(&["WARN", "not verified"]).is_empty(),
        "{logs:?}"
    );

    let fake_app = in_lambda(&fake.url(), &[]);
    let r = call(&fake_app, "GET", "/items?limit=50&offset=0", None).await;
    assert_eq!(
        r.status,
        503,
        "verify-full must refuse {}: {}",
        secretcache_tests::postgres::IMPOSTOR_CN,
        r.text
    );
    assert_eq!(r.body["error"], "database_unavailable");
    let refused = logs.lines_with(&["ERROR", "database_unavailable"]);
    assert!(!refused.is_empty(), "{logs:?}");

    // What the issue measured: require talks to the impostor and answers 200. The test above can fail.
    let trusting = in_lambda(&fake.url(), &[("DATABASE_SSLMODE", "require")]);
    trusting.log_startup();
    let r = call(&trusting, "GET", "/items?limit=50&offset=0", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        logs.lines_with(&["WARN", "not verified", "sslmode=require"])
            .len(),
        1,
        "one warning at this cold start: {logs:?}"
    );
}

#[tokio::test]
async fn without_a_bundle_require_stays_the_default_with_one_warning_that_says_how_to_fix_it() {
    let logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_app_database("nobundle").await;
    let app = app(&[
        ("AWS_LAMBDA_FUNCTION_NAME", "items"),
        ("DATABASE_URL", &db.url()),
    ]);
    app.log_startup();
    for _ in 0..3 {
        let r = call(&app, "GET", "/items", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let warnings = logs.lines_with(&["WARN", "not verified"]);
    assert_eq!(warnings.len(), 1, "{logs:?}");
    for needle in [
        "sslmode=require",
        "DATABASE_CA_BUNDLE",
        "DATABASE_SSL_ROOT_CERT",
        "global-bundle.pem",
    ] {
        assert!(warnings[0].contains(needle), "{needle} in {}", warnings[0]);
    }
}

#[tokio::test]
async fn least_privilege_role_gets_a_503_naming_the_table_until_an_operator_migrates_then_serves() {
    let logs = items::capture();
    let pg = PgCluster::shared().await;
    let ca = pg.ca_cert().to_string_lossy().into_owned();
    let owner = pg.create_bare_database("lp").await;
    let role = pg.create_login_role(&owner, "lp").await;
    let url = role.url();
    let lambda = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", "items"),
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_SSL_ROOT_CERT", ca.as_str()),
        ];
        env.extend_from_slice(extra);
        app(&env)
    };
    let app = lambda(&[]);

    // No table yet: a clear 503, /health included, and no DDL tried (the role could not have run it anyway).
    for path in ["/health", "/items?limit=50&offset=0"] {
        let r = call(&app, "GET", path, None).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text);
        assert_eq!(r.body["error"], "database_schema_mismatch", "{}", r.text);
        assert!(
            r.text.contains("the table items does not exist"),
            "{}",
            r.text
        );
    }
    assert!(
        logs.lines_with(&["migrations applied"]).is_empty(),
        "{logs:?}"
    );

    // DATABASE_MIGRATE=true with this role: PostgreSQL 15 refuses it CREATE, and the answer is a 503, not a 500.
    let eager = lambda(&[("DATABASE_MIGRATE", "true")]);
    let r = call(&eager, "GET", "/items", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"], "database_migration_failed", "{}", r.text);

    // The operator's step, with the owner's (administrator's) secret on standard input, as function/README.md says.
    let status = run_migrate(&owner, &ca, &["--grant", &role.username]).await;
    assert!(status.success(), "items-function migrate failed");

    // The same execution environment now works: the failed check was not cached.
    crud_and_paging(&app, "postgresql").await;

    // Take DELETE away: named, and still a 503.
    pg.admin_in(
        &owner.dbname,
        &format!("REVOKE DELETE ON items FROM {}", role.username),
    )
    .await;
    let fresh = lambda(&[]);
    let r = call(&fresh, "GET", "/health", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("lacks DELETE"), "{}", r.text);
    assert!(!r.text.contains(&role.password) && !r.text.contains(&owner.password));
    let all = logs.text();
    assert!(
        !all.contains(&role.password) && !all.contains(&owner.password),
        "a password reached the logs"
    );
}

/// `items-function migrate --secret-stdin ...` (the built binary), with `owner`'s RDS secret JSON on stdin.
async fn run_migrate(
    owner: &secretcache_tests::postgres::AppDatabase,
    ca: &str,
    args: &[&str],
) -> std::process::ExitStatus {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(secretcache_tests::bin_path("items-function"))
        .arg("migrate")
        .arg("--secret-stdin")
        .args(args)
        .env_clear()
        .env("DATABASE_SSL_ROOT_CERT", ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn items-function migrate");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(owner.secret_json().as_bytes())
        .await
        .expect("write the secret");
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("migrate finished within 60 s")
        .expect("migrate ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("items-function migrate:\n{text}");
    assert!(
        !text.contains(&owner.password),
        "the password reached the migration's output"
    );
    out.status
}

#[tokio::test]
async fn a_conflicting_preexisting_items_table_is_a_503_naming_it_and_health_reports_it() {
    let _logs = items::capture();
    let pg = PgCluster::shared().await;
    let db = pg.create_bare_database("conflict").await;
    pg.admin_in(
        &db.dbname,
        &format!(
            "CREATE TABLE items (item_id uuid PRIMARY KEY, title text NOT NULL, price numeric); \
             ALTER TABLE items OWNER TO {}",
            db.username
        ),
    )
    .await;
    // Even with DATABASE_MIGRATE, CREATE TABLE IF NOT EXISTS leaves their table as it is.
    let app = app(&[("DATABASE_URL", &db.url()), ("DATABASE_MIGRATE", "true")]);
    for path in ["/health", "/items?limit=50&offset=0"] {
        let r = call(&app, "GET", path, None).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text);
        assert_eq!(r.body["error"], "database_schema_mismatch");
        for needle in [
            "items.id is missing",
            "items.name is missing",
            "items.title is NOT NULL without a default",
        ] {
            assert!(r.text.contains(needle), "{needle}: {}", r.text);
        }
    }
}
