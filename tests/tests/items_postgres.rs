//! The `/items` function on a real PostgreSQL 15 (TLS only, scram-sha-256), driven in-process with real API Gateway
//! events: CRUD and paging, the TLS modes, the legacy variables, a wrong password, and the pool's size.
//!
//! One cluster serves the whole binary; each test gets its own role and database.

#[path = "../../function/tests/common/mod.rs"]
mod common;

use common::{app, call, capture_logs, captured_logs, crud_and_paging};
use secretcache_tests::postgres::PgCluster;

#[tokio::test]
async fn crud_and_paging_over_verify_full_tls() {
    capture_logs();
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
    capture_logs();
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
    capture_logs();
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
        assert!(
            !captured_logs().contains(secret),
            "a password reached the logs"
        );
    }
}

#[tokio::test]
async fn one_small_pool_serves_many_invocations() {
    capture_logs();
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
