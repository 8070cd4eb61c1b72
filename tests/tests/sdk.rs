//! The AWS SDKs' own protocol on the extension's port: unchanged SDK code reads through the cache with only the
//! endpoint variables set. boto3 (with `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`, read by boto3
//! itself) and aws-sdk-rust (an endpoint override), against the built extension and moto through the counting
//! proxy: their reads, their usual exceptions, a wrong key refused, and one upstream call for many SDK reads.

use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_ssm::types::ParameterType;
use secretcache_tests::extension::Standalone;
use secretcache_tests::moto::{sdk_config, Moto, REGION};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

/// An SDK configuration pointed at the extension, signing with `secret_key` and the extension's session token.
async fn through(ext: &Standalone, secret_key: &str) -> aws_config::SdkConfig {
    sdk_config(&ext.url())
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing",
            secret_key,
            Some(ext.token()),
            None,
            "tests",
        )))
        .build()
}

async fn seeded(moto: &Moto) -> (String, String) {
    let sm = moto.sm_client().await;
    let name = unique("sdk/db");
    seed::secret(&sm, &name, "{\"password\":\"one\"}").await;
    seed::new_value(&sm, &name, "{\"password\":\"two\"}").await;
    let parameter = unique("/sdk/url");
    seed::parameter(
        &moto.ssm_client().await,
        &parameter,
        ParameterType::SecureString,
        "postgres://db",
    )
    .await;
    (name, parameter)
}

/// boto3, unchanged, with the two endpoint variables: five reads are one upstream call, the previous version and the
/// parameter read through, and a missing secret or parameter raises the usual exception.
#[tokio::test]
async fn sdk_boto3_reads_through_the_cache_with_only_the_endpoint_variables() {
    let moto = Moto::shared().await;
    let (name, parameter) = seeded(moto).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(&proxy, &[]).await;
    let root = secretcache_tests::workspace_root();
    let out = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/clients/sdk_boto3.py"))
        .env_clear()
        .env("SECRET_NAME", &name)
        .env("PARAMETER_NAME", &parameter)
        // As Lambda sets them.
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", ext.token())
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", ext.url())
        .env("AWS_ENDPOINT_URL_SSM", ext.url())
        .output()
        .await
        .expect("run boto3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ext.logs()
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for read in seen["reads"].as_array().expect("reads") {
        assert_eq!(read, "{\"password\":\"two\"}", "{seen}");
    }
    assert_eq!(seen["created_is_a_date"], "datetime");
    assert_eq!(seen["previous"], "{\"password\":\"one\"}");
    assert_eq!(
        seen["missing"]["error"], "ResourceNotFoundException",
        "{seen}"
    );
    assert_eq!(seen["missing"]["class"], "ResourceNotFoundException");
    assert_eq!(seen["parameter"], "postgres://db");
    assert_eq!(
        seen["parameter_missing"]["error"], "ParameterNotFound",
        "{seen}"
    );
    assert_eq!(
        seen["describe"]["error"], "UnknownOperationException",
        "{seen}"
    );
    // Six reads of the current version were one call; AWSPREVIOUS and the missing secret one each.
    assert_eq!(proxy.count("GetSecretValue"), 3, "{:?}", proxy.calls());
    assert_eq!(proxy.count("GetParameter"), 2, "{:?}", proxy.calls());
    assert!(!ext.logs().contains("password"), "no value in the logs");
}

/// aws-sdk-rust with an endpoint override: the answer deserializes (dates included), a missing secret is the typed
/// `ResourceNotFoundException`, and another secret key is refused before the upstream.
#[tokio::test]
async fn sdk_rust_reads_through_the_cache_and_a_wrong_key_is_refused() {
    let moto = Moto::shared().await;
    let (name, parameter) = seeded(moto).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(&proxy, &[]).await;
    let config = through(&ext, "testing").await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    for _ in 0..3 {
        let out = sm
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e:?}\n{}", ext.logs()));
        assert_eq!(out.secret_string(), Some("{\"password\":\"two\"}"));
        assert_eq!(out.name(), Some(name.as_str()));
        assert!(out.created_date().is_some(), "the date deserializes");
    }
    assert_eq!(proxy.count("GetSecretValue"), 1);
    let missing = sm
        .get_secret_value()
        .secret_id(format!("{name}-missing"))
        .send()
        .await
        .expect_err("missing");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{missing:?}"
    );
    let ssm = aws_sdk_ssm::Client::new(&config);
    let p = ssm
        .get_parameter()
        .name(&parameter)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameter");
    let p = p.parameter().expect("parameter");
    assert_eq!(p.value(), Some("postgres://db"));
    assert!(p.last_modified_date().is_some());

    let calls = proxy.calls().len();
    let wrong = aws_sdk_secretsmanager::Client::new(&through(&ext, "not-the-key").await);
    let refused = wrong
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect_err("refused");
    let code = refused.as_service_error().and_then(|e| {
        use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
        e.code().map(str::to_owned)
    });
    assert_eq!(
        code.as_deref(),
        Some("InvalidSignatureException"),
        "{refused:?}"
    );
    assert_eq!(
        proxy.calls().len(),
        calls,
        "a refused call never reaches the upstream"
    );
}
