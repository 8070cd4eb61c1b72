//! The handlers, called without a socket with real API Gateway v2 / Function URL events, on SQLite files; and the
//! missing-configuration-in-Lambda case, which must be a clear 503 and must not create a SQLite file.

use secretcache_tests::items::{app, call, call_event, crud_and_paging, event};

/// A fresh folder under the system temp dir, removed on drop.
fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("items-fn-")
        .tempdir()
        .expect("temp dir")
}

#[tokio::test]
async fn crud_and_paging_on_sqlite_at_database_path() {
    let dir = temp_dir();
    // A folder that does not exist yet: a local run creates it, as the default ./data/collections.db needs.
    let file = dir.path().join("data").join("collections.db");
    let path = file.to_string_lossy().into_owned();
    let app = app(&[("DATABASE_PATH", &path)]);
    assert!(
        !file.exists(),
        "nothing touches the disk before the first request"
    );
    crud_and_paging(&app, "sqlite").await;
    assert!(file.exists());
}

#[tokio::test]
async fn crud_and_paging_on_a_sqlite_database_url() {
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.path().join("items.db").display());
    let app = app(&[("DATABASE_URL", &url)]);
    crud_and_paging(&app, "sqlite").await;
}

#[tokio::test]
async fn data_survives_a_new_execution_environment() {
    let dir = temp_dir();
    let path = dir.path().join("c.db").to_string_lossy().into_owned();
    let first = app(&[("DATABASE_PATH", &path)]);
    let r = call(&first, "POST", "/items", Some(r#"{"name":"kept"}"#)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    drop(first);
    // Migrations run again at the second cold start and must be a no-op.
    let second = app(&[("DATABASE_PATH", &path)]);
    let r = call(&second, "GET", "/items", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[0]["name"], "kept");
}

#[tokio::test]
async fn in_lambda_without_configuration_every_route_is_a_503_naming_db_secret_arn() {
    let dir = temp_dir();
    let file = dir.path().join("data").join("collections.db");
    let path = file.to_string_lossy().into_owned();
    // The seed note's broken Lambda environment: host, port and name, no credentials, no secret.
    let app = app(&[
        (
            "AWS_LAMBDA_FUNCTION_NAME",
            "CollectionsCompute-dev-APILambda",
        ),
        (
            "DATABASE_HOST",
            "collections.abc.us-east-1.rds.amazonaws.com",
        ),
        ("DATABASE_PORT", "5432"),
        ("DATABASE_NAME", "collections"),
        ("DATABASE_PATH", &path),
    ]);
    for (method, route) in [
        ("GET", "/items?limit=50&offset=0"),
        ("GET", "/items/1"),
        ("POST", "/items"),
        ("DELETE", "/items/1"),
        ("GET", "/health"),
    ] {
        let body = (method == "POST").then_some(r#"{"name":"x"}"#);
        let e = event(method, route, body);
        let authenticated = e.request_context.authorizer.is_some();
        let r = call_event(&app, &e).await;
        assert_eq!(r.status, 503, "{method} {route}: {}", r.text);
        assert_eq!(r.body["error"], "database_not_configured");
        if authenticated {
            // A caller API Gateway authenticated is told what to set.
            assert_eq!(r.body["missing"], "DB_SECRET_ARN", "{}", r.text);
            assert!(r.text.contains("set DB_SECRET_ARN"), "{}", r.text);
        } else {
            // An anonymous one gets the code only; the log has the rest.
            assert_eq!(r.body.get("missing"), None, "{}", r.text);
            assert!(!r.text.contains("DB_SECRET_ARN"), "{}", r.text);
        }
    }
    assert!(
        !file.exists(),
        "no SQLite file may be created inside Lambda"
    );
    assert!(
        !file.parent().map(|p| p.exists()).unwrap_or(false),
        "nor its folder"
    );
}

#[tokio::test]
async fn a_conflicting_items_table_is_a_503_naming_the_columns_and_health_says_so() {
    use sqlx::Connection;
    let dir = temp_dir();
    let file = dir.path().join("theirs.db");
    // Someone else's `items`: `CREATE TABLE IF NOT EXISTS` in our migration leaves it as it is.
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    sqlx::raw_sql("CREATE TABLE items (item_id TEXT PRIMARY KEY, title TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("their table");
    conn.close().await.expect("close");

    let app = app(&[("DATABASE_PATH", &file.to_string_lossy())]);
    for path in ["/health", "/items"] {
        // The GET fixture carries a JWT authorizer's claims: an authenticated caller is told what is wrong.
        let r = call(&app, "GET", path, None).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text);
        assert_eq!(r.body["error"], "database_schema_mismatch");
        let message = r.body["message"].as_str().unwrap_or_default();
        for needle in ["items.name is missing", "items.title is NOT NULL"] {
            assert!(message.contains(needle), "{path}: {message}");
        }
    }
    let r = call(&app, "DELETE", "/items/1", None).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        r.body["message"], "the database schema does not match this function",
        "an anonymous caller gets the code and a fixed sentence"
    );
}
