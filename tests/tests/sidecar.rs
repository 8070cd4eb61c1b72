//! A real sidecar outside Lambda (ECS, EKS, EC2), and a drop-in for the AWS Secrets Manager Agent there: the token
//! from a shared file that may be rotated, the Agent's `X-Vault-Token` header, its `/v1/<secretId>` reads and its
//! TOML configuration file, credentials from a container credentials endpoint, and `secretcache ping` as the
//! container's health check. The built binary, standalone (no `AWS_LAMBDA_RUNTIME_API`), against the real moto.

use std::time::{Duration, Instant};

use secretcache_tests::credentials_endpoint::CredentialsEndpoint;
use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::http;
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

async fn read(ext: &Standalone, path_and_query: &str, header: &str, token: &str) -> http::Response {
    http::get(
        &format!("{}{path_and_query}", ext.url()),
        &[(header, token)],
    )
    .await
    .expect("request to the sidecar")
}

/// The binary's moto with one new secret holding `value`, named after `name` (made unique); the secret's name and
/// ARN.
async fn moto_with(name: &str, value: &str) -> (&'static Moto, String, String) {
    let moto = Moto::shared().await;
    let name = unique(name);
    let arn = seed::secret(&moto.sm_client().await, &name, value)
        .await
        .arn;
    (moto, name, arn)
}

/// Polls (at most 10 s) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sidecar_token_from_a_shared_file_works_and_a_rotated_one_replaces_it() {
    let (moto, db, _) = moto_with("side/db", "file-token-canary").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "first-token\n").expect("write the token");
    let port = secretcache_tests::free_port();
    let ext = Standalone::spawn_with_env(
        base_env(&moto.endpoint(), port, "unused"),
        &[
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_TOKEN", &format!("file://{}", file.display())),
        ],
        port,
        "first-token".into(),
    );
    ext.wait_ready(Duration::from_secs(20)).await;
    let q = &format!("/secretsmanager/get?secretId={db}");
    let ok = read(&ext, q, TOKEN_HEADER, "first-token").await;
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), ext.logs());
    assert_eq!(read(&ext, q, TOKEN_HEADER, "guess").await.status, 403);
    // Rotated in the shared volume: the new token works without a restart, and the old one stops working.
    std::fs::write(&file, "second-token\n").expect("rotate the token");
    assert_eq!(
        read(&ext, q, TOKEN_HEADER, "second-token").await.status,
        200
    );
    eventually(
        "the old token was still accepted 10 s after the rotation",
        async || read(&ext, q, TOKEN_HEADER, "first-token").await.status == 403,
    )
    .await;
    let logs = ext.logs();
    assert!(
        !logs.contains("first-token") && !logs.contains("second-token"),
        "a token was logged"
    );
    assert!(!logs.contains("file-token-canary"));
}

/// A FIFO at the token path (issue 25). Before, the sidecar opened it with a blocking read on an async worker, under a
/// lock, and hung for good: not even `/ping` answered. Now `/ping` answers, a read is refused with a 401 that says why
/// (and no value), and the reason is logged once however many requests are refused.
#[tokio::test]
async fn sidecar_a_fifo_at_the_token_path_is_refused_and_ping_keeps_answering() {
    let (moto, fifo_secret, _) = moto_with("side/fifo", "fifo-canary").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("token");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let port = secretcache_tests::free_port();
    let ext = Standalone::spawn_with_env(
        base_env(&moto.endpoint(), port, "unused"),
        &[
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_TOKEN", &format!("file://{}", fifo.display())),
        ],
        port,
        "unused".into(),
    );
    ext.wait_ready(Duration::from_secs(20)).await;
    for _ in 0..5 {
        let refused = read(
            &ext,
            &format!("/secretsmanager/get?secretId={fifo_secret}"),
            TOKEN_HEADER,
            "guess",
        )
        .await;
        assert_eq!(refused.status, 401, "{}\n{}", refused.text(), ext.logs());
        assert!(
            refused.text().contains("AWS_TOKEN") && refused.text().contains("not a regular file"),
            "{}",
            refused.text()
        );
        let ping = http::get(&format!("{}/ping", ext.url()), &[])
            .await
            .expect("ping");
        assert_eq!(ping.status, 200);
    }
    let logs = ext.logs();
    // Each refused request has its DEBUG line (base_env logs at debug); the warning is said once.
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("not a regular file"))
        .count();
    assert_eq!(warnings, 1, "the reason is logged once:\n{logs}");
    assert!(!logs.contains("fifo-canary"));
}

#[tokio::test]
async fn sidecar_serves_the_agents_x_vault_token_and_v1_path_reads() {
    let (moto, app, arn) = moto_with("side/app", "v1-canary").await;
    let sm = moto.sm_client().await;
    sm.put_secret_value()
        .secret_id(&app)
        .secret_string("pending-value")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put pending");
    let port = secretcache_tests::free_port();
    let ext = Standalone::spawn_with_env(
        base_env(&moto.endpoint(), port, "unused"),
        &[("AWS_SESSION_TOKEN", ""), ("AWS_TOKEN", "agent-token")],
        port,
        "agent-token".into(),
    );
    ext.wait_ready(Duration::from_secs(20)).await;
    let by_name = read(&ext, &format!("/v1/{app}"), "X-Vault-Token", "agent-token").await;
    assert_eq!(by_name.status, 200, "{}", by_name.text());
    assert_eq!(by_name.json()["SecretString"], "v1-canary");
    let by_arn = read(&ext, &format!("/v1/{arn}"), "X-Vault-Token", "agent-token").await;
    assert_eq!(by_arn.json()["SecretString"], "v1-canary");
    assert_eq!(
        by_arn.header("x-secretcache-cache"),
        Some("hit"),
        "the same cache entry"
    );
    let pending = read(
        &ext,
        &format!("/v1/{}?versionStage=AWSPENDING", app.replace('/', "%2F")),
        TOKEN_HEADER,
        "agent-token",
    )
    .await;
    assert_eq!(pending.json()["SecretString"], "pending-value");
    assert_eq!(
        read(&ext, &format!("/v1/{app}"), "X-Vault-Token", "wrong")
            .await
            .status,
        403
    );
    assert_eq!(
        read(&ext, "/v1/", "X-Vault-Token", "agent-token")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn sidecar_reads_the_agents_toml_file_and_the_environment_still_wins() {
    let (moto, toml_secret, _) = moto_with("side/toml", "toml-canary").await;
    let path = format!("/secrets/{toml_secret}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    let port = secretcache_tests::free_port();
    std::fs::write(
        &config,
        format!(
            "log_level = \"DEBUG\"\nlog_to_file = false\nhttp_port = \"{port}\"\nttl_seconds = \"60\"\n\
             ssrf_headers = [\"X-My-Token\"]\nssrf_env_variables = [\"MY_SIDECAR_TOKEN\"]\npath_prefix = \"/secrets/\"\n\
             validate_credentials = true\nhttp_prot = 1\n"
        ),
    )
    .expect("write the file");
    let mut env = base_env(&moto.endpoint(), port, "unused");
    // The file's port, not a variable's.
    env.retain(|(k, _)| k != "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" && k != "AWS_SESSION_TOKEN");
    env.push(("MY_SIDECAR_TOKEN".into(), "from-my-variable".into()));
    // A variable beats the file.
    env.push(("SECRETS_MANAGER_TTL".into(), "1".into()));
    let config_arg = config.display().to_string();
    let ext = Standalone::spawn_with_args(
        env,
        &[],
        &["--config", &config_arg],
        port,
        "from-my-variable".into(),
    );
    ext.wait_ready(Duration::from_secs(20)).await;
    let r = read(&ext, &path, "X-My-Token", "from-my-variable").await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.json()["SecretString"], "toml-canary");
    // Only the file's header is accepted now.
    assert_eq!(
        read(&ext, &path, TOKEN_HEADER, "from-my-variable")
            .await
            .status,
        401
    );
    // TTL 1 s from the variable, not 60 from the file: the value expires.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let again = read(&ext, &path, "X-My-Token", "from-my-variable").await;
    assert_eq!(again.header("x-secretcache-cache"), Some("miss"));
    let logs = ext.logs();
    assert!(
        logs.contains("http_prot") && logs.contains("WARN"),
        "the unknown key is warned: {logs}"
    );
    assert!(
        logs.contains("validate_credentials"),
        "the Agent-only key is named: {logs}"
    );
    assert!(
        logs.contains("DEBUG"),
        "the file's log level applies: {logs}"
    );
}

#[tokio::test]
async fn sidecar_uses_the_credentials_a_container_credentials_endpoint_gives() {
    let (moto, creds, _) = moto_with("side/creds", "creds-canary").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let endpoint = CredentialsEndpoint::start(
        "pod-identity-auth",
        (
            "ASIAFROMTHEENDPOINT".into(),
            "endpoint-secret-key".into(),
            "endpoint-session-token".into(),
        ),
    )
    .await;
    let port = secretcache_tests::free_port();
    let mut env = base_env(&proxy.endpoint(), port, "unused");
    // No static keys: the SDK's default chain must find the container endpoint, as in ECS and EKS.
    env.retain(|(k, _)| {
        !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY")
    });
    env.retain(|(k, _)| k != "AWS_SESSION_TOKEN");
    env.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
        endpoint.url.clone(),
    ));
    env.push((
        "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
        "pod-identity-auth".into(),
    ));
    env.push(("AWS_TOKEN".into(), "sidecar-token".into()));
    let ext = Standalone::spawn_with_env(env, &[], port, "sidecar-token".into());
    ext.wait_ready(Duration::from_secs(20)).await;
    let r = ext.get_secret(&format!("secretId={creds}")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.json()["SecretString"], "creds-canary");
    assert!(endpoint.served() >= 1, "the endpoint was asked");
    let call = proxy
        .calls()
        .into_iter()
        .find(|c| c.operation.ends_with("GetSecretValue"))
        .expect("a GetSecretValue");
    assert_eq!(
        call.access_key, "ASIAFROMTHEENDPOINT",
        "signed with what the endpoint gave"
    );
    // Our token is AWS_TOKEN, so the endpoint's authorization token is not one a client may send.
    let refused = http::get(
        &format!("{}/secretsmanager/get?secretId={creds}", ext.url()),
        &[(TOKEN_HEADER, "pod-identity-auth")],
    )
    .await
    .expect("request");
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn sidecar_ping_is_a_health_check_command() {
    let ext = Standalone::spawn(Moto::shared().await, &[]).await;
    let ping = |port: u16| {
        std::process::Command::new(secretcache_tests::bin_path("secretcache"))
            .arg("ping")
            .env_clear()
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string())
            .status()
            .expect("run secretcache ping")
    };
    assert!(ping(ext.port()).success(), "healthy while it serves");
    let unused = secretcache_tests::free_port();
    assert!(!ping(unused).success(), "unhealthy where nothing listens");
}
