//! A drop-in for the AWS Workload Credentials Provider 3 (the renamed Secrets Manager Agent), as a sidecar: its
//! entrypoint (`sm start --config F`) and nested configuration file, the tag-based prefetch (`filter_tags`,
//! `cache_buffer_ratio`) and `credentials_file_path`. The built binary, standalone, against moto through the counting
//! proxy.

use std::time::{Duration, Instant};

use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::http::{self, Response};
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";
const TOKEN: &str = "wcp-token";

async fn read(ext: &Standalone, path_and_query: &str) -> Response {
    http::get(
        &format!("{}{path_and_query}", ext.url()),
        &[(TOKEN_HEADER, ext.token().as_str())],
    )
    .await
    .expect("request to the sidecar")
}

/// Starts the binary as the Provider's container starts it, `sm start --config <file>`, with `config` (the TOML, its
/// port filled in) and the token in `AWS_TOKEN`. `env_overrides` change the environment (an empty value removes a
/// variable).
async fn start(
    upstream: &impl Endpoint,
    config: impl FnOnce(u16) -> String,
    env_overrides: &[(&str, &str)],
) -> (Standalone, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    let port = secretcache_tests::free_port();
    std::fs::write(&file, config(port)).expect("write the configuration file");
    let mut env = base_env(&upstream.endpoint(), port, "unused");
    env.retain(|(k, _)| k != "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" && k != "AWS_SESSION_TOKEN");
    env.push(("AWS_TOKEN".into(), TOKEN.into()));
    let file_arg = file.display().to_string();
    let ext = Standalone::spawn_with_args(
        env,
        env_overrides,
        &["sm", "start", "--config", &file_arg],
        port,
        TOKEN.into(),
    );
    ext.wait_ready(Duration::from_secs(20)).await;
    (ext, dir)
}

/// Waits (at most 10 s) until the extension has logged `needle` `times` times.
async fn until_logged(ext: &Standalone, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ext.logs().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "{needle} x{times}: {}",
            ext.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `path` until the cache answers it as a hit (the prefetch landed), at most 10 s; the last answer.
async fn until_hit(ext: &Standalone, path: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = read(ext, path).await;
        if r.header("x-secretcache-cache") == Some("hit") || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A container moving from the Provider keeps its entrypoint and its nested configuration file, laid out as the
/// Provider's documentation lays it out.
#[tokio::test]
async fn workload_provider_entrypoint_and_nested_config_work_unchanged() {
    let moto = Moto::shared().await;
    let db = unique("wcp/db");
    seed::secret(&moto.sm_client().await, &db, "wcp-canary").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let (ext, _dir) = start(
        &proxy,
        |port| {
            format!(
                "[logging]\nlog_level = \"INFO\"\nlog_to_file = true\n\n\
                 [capabilities.secrets_manager]\nenabled = true\nhttp_port = {port}\nregion = \"us-east-1\"\n\
                 path_prefix = \"/v1/\"\nmax_conn = 800\nmax_roles = 1\n\n\
                 [capabilities.secrets_manager.cache]\nttl_seconds = 300\ncache_size = 1000\n\n\
                 [capabilities.secrets_manager.security]\n\
                 ssrf_headers = [\"X-Aws-Parameters-Secrets-Token\", \"X-Vault-Token\"]\n\
                 ssrf_env_variables = [\"AWS_TOKEN\", \"AWS_SESSION_TOKEN\", \"AWS_CONTAINER_AUTHORIZATION_TOKEN\"]\n\n\
                 [capabilities.secrets_manager.prefetch]\ncache_buffer_ratio = 0.6\nmax_jitter_seconds = 0\n\
                 secrets = [{{ secret_id = \"{db}\" }}]\n"
            )
        },
        &[],
    )
    .await;
    // Prefetched at start: the first read is a hit, and the upstream saw one call.
    let r = until_hit(&ext, &format!("/v1/{db}")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.json()["SecretString"], "wcp-canary");
    assert_eq!(
        r.header("x-secretcache-cache"),
        Some("hit"),
        "{}",
        ext.logs()
    );
    assert_eq!(
        proxy.count("GetSecretValue") + proxy.count("BatchGetSecretValue"),
        1
    );
    // max_roles = 1 from the nested section: a second role is past it.
    let first = read(
        &ext,
        &format!("/v1/{db}?roleArn=arn:aws:iam::111111111111:role/a"),
    )
    .await;
    assert_ne!(first.status, 400, "{}", first.text());
    let second = read(
        &ext,
        &format!("/v1/{db}?roleArn=arn:aws:iam::222222222222:role/b"),
    )
    .await;
    assert_eq!(second.status, 400, "{}", second.text());
    assert!(!ext.logs().contains("wcp-canary"));
}

/// `filter_tags`: at start, one ListSecrets and one BatchGetSecretValue put every secret carrying one of the tag
/// keys in the cache; a secret whose tag key only starts with one of them (the service's filter matches prefixes)
/// and an untagged one are not fetched.
#[tokio::test]
async fn workload_provider_tag_prefetch_lists_once_and_batches_once_at_start() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    // Tag keys of this test only: the binary's moto is shared.
    let env_tag = unique("Environment");
    let team_tag = unique("Team");
    let decoy_tag = format!("{env_tag}al");
    let mut tagged = Vec::new();
    let mut arns = Vec::new();
    for (i, tag) in [&env_tag, &env_tag, &team_tag].into_iter().enumerate() {
        let name = unique("wcp/tagged");
        let created = seed::tagged_secret(
            &sm,
            &name,
            &format!("tagged-{i}"),
            &[(tag.as_str(), "prod")],
        )
        .await;
        tagged.push(name);
        arns.push(created.arn);
    }
    let decoy = unique("wcp/decoy");
    seed::tagged_secret(&sm, &decoy, "decoy", &[(decoy_tag.as_str(), "prod")]).await;
    let untagged = unique("wcp/untagged");
    seed::secret(&sm, &untagged, "untagged").await;

    let proxy = FaultInjectingProxy::start(moto).await;
    let (ext, _dir) = start(
        &proxy,
        |port| {
            format!(
                "[capabilities.secrets_manager]\nhttp_port = {port}\n\n\
                 [capabilities.secrets_manager.prefetch]\ncache_buffer_ratio = 0.8\n\
                 filter_tags = [\n    {{ key = \"{env_tag}\" }},\n    {{ key = \"{team_tag}\" }},\n]\n"
            )
        },
        &[],
    )
    .await;
    until_logged(&ext, "prefetched key=", tagged.len()).await;
    for (i, name) in tagged.iter().enumerate() {
        let r = until_hit(&ext, &format!("/secretsmanager/get?secretId={name}")).await;
        assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
        assert_eq!(r.json()["SecretString"], format!("tagged-{i}"));
        assert_eq!(
            r.header("x-secretcache-cache"),
            Some("hit"),
            "{name}: {}",
            ext.logs()
        );
    }
    for arn in &arns {
        let r = read(&ext, &format!("/secretsmanager/get?secretId={arn}")).await;
        assert_eq!(
            r.header("x-secretcache-cache"),
            Some("hit"),
            "by ARN too: {arn}"
        );
    }
    assert_eq!(proxy.count("ListSecrets"), 1, "{:?}", proxy.calls());
    assert_eq!(proxy.count("BatchGetSecretValue"), 1, "{:?}", proxy.calls());
    assert_eq!(proxy.count("GetSecretValue"), 0, "{:?}", proxy.calls());
    for name in [&decoy, &untagged] {
        let r = read(&ext, &format!("/secretsmanager/get?secretId={name}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-secretcache-cache"),
            Some("miss"),
            "{name} was not prefetched"
        );
    }
    assert!(!ext.logs().contains("tagged-0"), "no value in the logs");
}

/// The Lambda spelling of the same prefetch (`PARAMETERS_SECRETS_EXTENSION_PREFETCH_TAGS`), and its bound: with a
/// cache of 5 and a buffer of 40%, two of three tagged secrets are prefetched and the third is fetched on demand.
#[tokio::test]
async fn workload_provider_tag_prefetch_fills_at_most_the_buffer_of_the_cache() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let tag = unique("Service");
    let mut names = Vec::new();
    for i in 0..3 {
        let name = unique("wcp/bounded");
        seed::tagged_secret(&sm, &name, &format!("bounded-{i}"), &[(tag.as_str(), "x")]).await;
        names.push(name);
    }
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("PARAMETERS_SECRETS_EXTENSION_PREFETCH_TAGS", tag.as_str()),
            ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "5"),
            ("PARAMETERS_SECRETS_EXTENSION_PREFETCH_BUFFER_PERCENT", "40"),
        ],
    )
    .await;
    until_logged(&ext, "prefetched key=", 2).await;
    let mut hits = 0;
    for name in &names {
        let r = read(&ext, &format!("/secretsmanager/get?secretId={name}")).await;
        assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
        hits += usize::from(r.header("x-secretcache-cache") == Some("hit"));
    }
    assert_eq!(hits, 2, "40% of 5 entries: {}", ext.logs());
    assert_eq!(proxy.count("ListSecrets"), 1);
    assert_eq!(proxy.count("GetSecretValue"), 1, "the third, on demand");
}

/// `credentials_file_path`: calls sign with the file's temporary credentials (not the environment's); a file with
/// long-lived keys only is refused with an answer that says why, and no key is echoed.
#[tokio::test]
async fn workload_provider_credentials_file_signs_calls_and_refuses_long_lived_keys() {
    let moto = Moto::shared().await;
    let db = unique("wcp/creds");
    seed::secret(&moto.sm_client().await, &db, "creds-canary").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let creds_dir = tempfile::tempdir().expect("tempdir");
    let temporary = creds_dir.path().join("temporary");
    std::fs::write(
        &temporary,
        "[default]\naws_access_key_id = ASIAFROMTHEFILE\naws_secret_access_key = file-secret\n\
         aws_session_token = file-session\n",
    )
    .expect("write");
    let long_lived = creds_dir.path().join("long-lived");
    std::fs::write(
        &long_lived,
        "[default]\naws_access_key_id = AKIALONGLIVED\naws_secret_access_key = never-shown-key\n",
    )
    .expect("write");
    // No keys in the environment: only the file can sign.
    let no_env_keys = [("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")];
    let config = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |port: u16| {
            format!("[capabilities.secrets_manager]\nhttp_port = {port}\ncredentials_file_path = \"{path}\"\n")
        }
    };

    let (ext, _dir) = start(&proxy, config(&temporary), &no_env_keys).await;
    let r = read(&ext, &format!("/secretsmanager/get?secretId={db}")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.json()["SecretString"], "creds-canary");
    let keys: Vec<String> = proxy.calls().into_iter().map(|c| c.access_key).collect();
    assert_eq!(keys, ["ASIAFROMTHEFILE"], "signed with the file's key");

    let (refused, _dir) = start(&proxy, config(&long_lived), &no_env_keys).await;
    let r = read(&refused, &format!("/secretsmanager/get?secretId={db}")).await;
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    assert!(
        refused.logs().contains("aws_session_token"),
        "the log says why: {}",
        refused.logs()
    );
    assert!(!r.text().contains("never-shown-key") && !refused.logs().contains("never-shown-key"));
    assert!(proxy
        .calls()
        .iter()
        .all(|c| c.access_key != "AKIALONGLIVED"));
}
