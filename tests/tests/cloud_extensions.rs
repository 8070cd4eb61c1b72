//! AWS Systems Manager Cloud Extensions' local interface, served by the extension against moto through the counting
//! proxy: the path routes, `X-Amzn-Errortype` on errors, the trailing-slash query route, and load shedding (429 with
//! `Retry-After` past the cap on reads waiting on the upstream, hits still answered).

use std::time::{Duration, Instant};

use secretcache_client::TOKEN_HEADER;
use secretcache_tests::extension::Standalone;
use secretcache_tests::http::{self, Response};
use secretcache_tests::moto::Moto;
use secretcache_tests::proxy::{Fault, FaultInjectingProxy};
use secretcache_tests::seed::{self, unique};

async fn get(ext: &Standalone, path: &str, headers: &[(&str, &str)]) -> Response {
    let token = ext.token();
    let mut all = vec![(TOKEN_HEADER, token.as_str())];
    all.extend_from_slice(headers);
    http::get(&format!("{}{path}", ext.url()), &all)
        .await
        .expect("request")
}

#[tokio::test]
async fn cloud_extensions_path_and_query_routes_share_one_cache_entry() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let db = unique("prod/db");
    let db_encoded = db.replace('/', "%2F");
    seed::secret(&sm, &db, "{\"password\":\"one\"}").await;
    let ext = Standalone::spawn(&proxy, &[]).await;
    for (path, cache) in [
        (format!("/secretsmanager/{db}"), "miss"),
        (format!("/secretsmanager/{db_encoded}"), "hit"),
        (format!("/secretsmanager/get?secretId={db}"), "hit"),
        (format!("/secretsmanager/get/?secretId={db_encoded}"), "hit"),
    ] {
        let r = get(&ext, &path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["Name"], db.as_str(), "{path}");
        assert_eq!(r.header("x-secretcache-cache"), Some(cache), "{path}");
    }
    assert_eq!(proxy.count("GetSecretValue"), 1);

    // versionStage and refreshNow on the path route, after a rotation-like update.
    seed::new_value(&sm, &db, "{\"password\":\"two\"}").await;
    let fresh = get(&ext, &format!("/secretsmanager/{db}?refreshNow=true"), &[]).await;
    assert_eq!(fresh.json()["SecretString"], "{\"password\":\"two\"}");
    let previous = get(
        &ext,
        &format!("/secretsmanager/{db}?versionStage=AWSPREVIOUS"),
        &[],
    )
    .await;
    assert_eq!(previous.json()["SecretString"], "{\"password\":\"one\"}");

    // A parameter by path, its leading slash implied.
    let url = unique("/app/url");
    seed::parameter(
        &moto.ssm_client().await,
        &url,
        aws_sdk_ssm::types::ParameterType::String,
        "https://example.invalid",
    )
    .await;
    for path in [
        format!("/systemsmanager/parameters{url}"),
        format!("/systemsmanager/parameters/{}", url.replace('/', "%2F")),
    ] {
        let r = get(&ext, &path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["Parameter"]["Value"], "https://example.invalid");
    }

    // Errors: the type in X-Amzn-Errortype and in the body.
    let missing = get(&ext, "/secretsmanager/no/such/secret", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert_eq!(missing.json()["__type"], "ResourceNotFoundException");
    let forwarded = get(
        &ext,
        &format!("/secretsmanager/{db}"),
        &[("X-Forwarded-For", "203.0.113.9")],
    )
    .await;
    assert_eq!(forwarded.status, 400);
    assert_eq!(
        forwarded.header("x-amzn-errortype"),
        Some("ForwardedRequestException")
    );
    let unsigned = http::get(&format!("{}/secretsmanager/{db}", ext.url()), &[])
        .await
        .expect("request");
    assert_eq!(unsigned.status, 401);
    assert_eq!(
        unsigned.header("x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
}

#[tokio::test]
async fn cloud_extensions_a_burst_of_misses_is_shed_with_429_while_hits_are_served() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let burst = unique("burst");
    for i in 0..6 {
        seed::secret(&sm, &format!("{burst}/{i}"), "v").await;
    }
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("PARAMETERS_SECRETS_EXTENSION_MAX_PENDING_FETCHES", "3"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", "1500"),
        ],
    )
    .await;
    assert_eq!(
        get(&ext, &format!("/secretsmanager/{burst}/0"), &[])
            .await
            .status,
        200
    );
    // The upstream stops answering: three distinct misses wait on it, the cap.
    proxy.set_fault(Fault::Hang);
    let waiting: Vec<_> = (1..4)
        .map(|i| {
            let (url, token, burst) = (ext.url(), ext.token(), burst.clone());
            tokio::spawn(async move {
                http::get(
                    &format!("{url}/secretsmanager/{burst}/{i}"),
                    &[(TOKEN_HEADER, &token)],
                )
                .await
                .expect("request")
                .status
            })
        })
        .collect();
    // Once the three reach the upstream (the proxy counts them), a fourth distinct miss is over the cap.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.count("GetSecretValue") < 4 {
        assert!(
            Instant::now() < deadline,
            "the three misses never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = get(&ext, &format!("/secretsmanager/{burst}/5"), &[]).await;
    assert_eq!(shed.status, 429, "{}", shed.text());
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(shed.header("x-amzn-errortype"), Some("ThrottlingException"));
    assert_eq!(shed.json()["__type"], "ThrottlingException");
    // A hit is never shed.
    let hit = get(&ext, &format!("/secretsmanager/{burst}/0"), &[]).await;
    assert_eq!(
        (hit.status, hit.header("x-secretcache-cache")),
        (200, Some("hit"))
    );
    let metrics = get(&ext, "/metrics", &[]).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("secretcache_shed_total ") && l != "secretcache_shed_total 0"),
        "{metrics}"
    );
    // The hung calls time out (their reads get 504), the upstream answers again, and the shed read succeeds when
    // retried.
    for w in waiting {
        assert_eq!(w.await.expect("task"), 504);
    }
    proxy.set_fault(Fault::None);
    assert_eq!(
        get(&ext, &format!("/secretsmanager/{burst}/5"), &[])
            .await
            .status,
        200
    );
}

/// The secret `name` in the account of `role`, written by that account's own role.
async fn secret_in_account(moto: &Moto, role: &str, name: &str, value: &str) {
    seed::secret(&moto.sm_client_as(role).await, name, value).await;
}

#[tokio::test]
async fn cloud_extensions_role_arn_reads_each_role_through_its_own_cache() {
    const ONE: &str = "arn:aws:iam::111111111111:role/reader";
    const TWO: &str = "arn:aws:iam::222222222222:role/reader";
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    // One name in each of the two accounts.
    let db = unique("shared/db");
    secret_in_account(moto, ONE, &db, "value in account one").await;
    secret_in_account(moto, TWO, &db, "value in account two").await;
    let ext = Standalone::spawn(&proxy, &[("PARAMETERS_SECRETS_EXTENSION_MAX_ROLES", "2")]).await;
    // The function's own account has no such secret.
    assert_eq!(
        get(&ext, &format!("/secretsmanager/{db}"), &[])
            .await
            .status,
        404
    );
    for _ in 0..2 {
        for (role, value) in [(ONE, "value in account one"), (TWO, "value in account two")] {
            for path in [
                format!("/secretsmanager/{db}?roleArn={role}"),
                format!("/secretsmanager/get?secretId={db}&roleArn={role}"),
            ] {
                let r = get(&ext, &path, &[]).await;
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                assert_eq!(r.json()["SecretString"], value, "{path}");
            }
        }
    }
    assert_eq!(
        proxy.count("AssumeRole"),
        2,
        "each role assumed once, its credentials cached"
    );
    assert_eq!(
        proxy.count("GetSecretValue"),
        3,
        "one read per role's cache, and the own account's 404"
    );
    // Still 404 for the function's own account: nothing of a role's cache leaks into the default one.
    assert_eq!(
        get(&ext, &format!("/secretsmanager/{db}"), &[])
            .await
            .status,
        404
    );
    // A third role is past the limit; a malformed one is refused before anything is assumed.
    let third = get(
        &ext,
        &format!("/secretsmanager/{db}?roleArn=arn:aws:iam::333333333333:role/reader"),
        &[],
    )
    .await;
    assert_eq!(third.status, 400, "{}", third.text());
    assert!(third
        .text()
        .contains("PARAMETERS_SECRETS_EXTENSION_MAX_ROLES"));
    let malformed = get(&ext, &format!("/secretsmanager/{db}?roleArn=reader"), &[]).await;
    assert_eq!(malformed.status, 400);
    assert_eq!(proxy.count("AssumeRole"), 2);
    assert!(!ext.logs().contains("value in account"));
}

#[tokio::test]
async fn cloud_extensions_a_role_that_may_not_be_assumed_is_a_403() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    proxy.deny("AssumeRole");
    let ext = Standalone::spawn(&proxy, &[]).await;
    let r = get(
        &ext,
        "/secretsmanager/shared/db?roleArn=arn:aws:iam::111111111111:role/forbidden",
        &[],
    )
    .await;
    assert_eq!(r.status, 403, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.header("x-amzn-errortype"), Some("AccessDenied"));
    assert!(r.text().contains("not authorized"), "{}", r.text());
}

/// Runs `tests/clients/cloud_extensions_client.py` (a client written as AWS's Cloud Extensions Lambda example is
/// written) against the extension on `port`, with the credentials `access_key` / `secret_key` / `session_token`;
/// what it saw.
fn run_cloud_extensions_client(
    port: u16,
    secret: &str,
    access_key: &str,
    secret_key: &str,
    session_token: &str,
) -> serde_json::Value {
    let root = secretcache_tests::workspace_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/clients/cloud_extensions_client.py"))
        .env_clear()
        .env("CLOUD_EXTENSIONS_PORT", port.to_string())
        .env("SECRET_NAME", secret)
        .env("AWS_REGION", secretcache_tests::moto::REGION)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_SESSION_TOKEN", session_token)
        .output()
        .expect("run the Python client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// A client written for Cloud Extensions works against us by changing only the port: it signs with SigV4 instead
/// of sending the token (the function's credentials are the extension's), reads by query and by path, with
/// `refreshNow` and `versionStage`, and gets the service's error answers for an unsigned request, a forwarded one and
/// a secret that does not exist. Signed with another secret key, every read is refused.
#[tokio::test]
async fn cloud_extensions_python_client_signs_reads_and_gets_the_same_errors() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let name = unique("prod/ce-db");
    seed::secret(&sm, &name, "{\"password\":\"one\"}").await;
    seed::new_value(&sm, &name, "{\"password\":\"two\"}").await;
    let ext = Standalone::spawn(
        &proxy,
        &[(
            "PARAMETERS_SECRETS_EXTENSION_REFRESH_NOW_INTERVAL_MILLIS",
            "0",
        )],
    )
    .await;
    let token = ext.token();
    let seen = tokio::task::spawn_blocking({
        let (port, name, token) = (ext.port(), name.clone(), token.clone());
        move || run_cloud_extensions_client(port, &name, "testing", "testing", &token)
    })
    .await
    .expect("client");
    for read in ["query", "path", "path_encoded", "refreshed"] {
        assert_eq!(seen[read]["status"], 200, "{read}: {seen}\n{}", ext.logs());
        assert_eq!(seen[read]["body"]["Name"], name.as_str(), "{read}");
        assert_eq!(
            seen[read]["body"]["SecretString"], "{\"password\":\"two\"}",
            "{read}"
        );
    }
    assert_eq!(seen["previous"]["status"], 200, "{seen}");
    assert_eq!(
        seen["previous"]["body"]["SecretString"],
        "{\"password\":\"one\"}"
    );
    assert_eq!(seen["unsigned"]["status"], 401, "{seen}");
    assert_eq!(
        seen["unsigned"]["type"],
        "MissingAuthenticationTokenException"
    );
    assert_eq!(seen["forwarded"]["status"], 400, "{seen}");
    assert_eq!(seen["forwarded"]["type"], "ForwardedRequestException");
    assert_eq!(seen["missing"]["status"], 404, "{seen}");
    assert_eq!(seen["missing"]["type"], "ResourceNotFoundException");
    // One call for the first read, one for refreshNow, one for AWSPREVIOUS, one for the missing secret; the path
    // routes were hits.
    assert_eq!(proxy.count("GetSecretValue"), 4, "{:?}", proxy.calls());

    let wrong = tokio::task::spawn_blocking({
        let (port, name, token) = (ext.port(), name.clone(), token.clone());
        move || run_cloud_extensions_client(port, &name, "testing", "not-our-secret-key", &token)
    })
    .await
    .expect("client");
    for read in ["query", "path", "refreshed", "previous", "missing"] {
        assert_eq!(wrong[read]["status"], 403, "{read}: {wrong}");
        assert_eq!(wrong[read]["type"], "InvalidSignatureException", "{read}");
    }
    let other_key = tokio::task::spawn_blocking({
        let (port, name) = (ext.port(), name.clone());
        move || run_cloud_extensions_client(port, &name, "AKIAOTHERKEY", "testing", &token)
    })
    .await
    .expect("client");
    assert_eq!(other_key["query"]["status"], 403, "{other_key}");
    assert_eq!(other_key["query"]["type"], "UnrecognizedClientException");
    assert_eq!(
        proxy.count("GetSecretValue"),
        4,
        "refused reads never reach the upstream"
    );
    assert!(!ext.logs().contains("not-our-secret-key"));
}
