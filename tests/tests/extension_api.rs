//! Beyond every peer: one entry per secret however it is named, batch reads, field projection, conditional reads,
//! any region, any account, and a prefetch of everything users configure. The built binary against the real moto
//! (which implements BatchGetSecretValue, GetParameters, GetParametersByPath and STS AssumeRole, and keeps regions
//! and accounts apart), with upstream calls counted by the proxy outside the extension.

use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use secretcache_tests::extension::Standalone;
use secretcache_tests::http;
use secretcache_tests::moto::{sdk_config, Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

async fn get(ext: &Standalone, path_and_query: &str, extra: &[(&str, &str)]) -> http::Response {
    let token = ext.token();
    let mut headers = vec![(TOKEN_HEADER, token.as_str())];
    headers.extend_from_slice(extra);
    http::get(&format!("{}{path_and_query}", ext.url()), &headers)
        .await
        .expect("request to the extension")
}

async fn create(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) -> (String, String) {
    let created = seed::secret(sm, name, value).await;
    (created.arn, created.version_id)
}

/// Waits (at most 10 s) until the extension's log shows `line`; returns the log.
async fn wait_for_log(ext: &Standalone, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = ext.logs();
        if logs.contains(line) {
            return logs;
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{logs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_name_a_full_arn_and_the_current_version_id_share_one_upstream_call_and_a_partial_arn_joins_once_asked(
) {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let db = unique("app/db");
    let (arn, version) = create(&sm, &db, "{\"password\":\"alias-canary\"}").await;
    let partial = &arn[..arn.len() - 7];
    let ext = Standalone::spawn(&proxy, &[]).await;
    let first = ext.get_secret(&format!("secretId={db}")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-secretcache-cache"), Some("miss"));
    for query in [
        format!("secretId={arn}"),
        format!("secretId={db}&versionStage=AWSCURRENT"),
        format!("secretId={db}&versionId={version}"),
        format!("secretId={arn}&versionId={version}"),
    ] {
        let r = ext.get_secret(&query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(r.header("x-secretcache-cache"), Some("hit"), "{query}");
        assert_eq!(r.json()["ARN"], arn.as_str());
    }
    assert_eq!(
        proxy.count("GetSecretValue"),
        1,
        "one call for every spelling"
    );
    // A partial ARN is never derived from an answer (cut from one secret's ARN it may be another's full ARN): its
    // first read asks the upstream, whose answer makes it one more spelling of the same entry.
    for expected in ["miss", "hit"] {
        let r = ext.get_secret(&format!("secretId={partial}")).await;
        assert_eq!(r.header("x-secretcache-cache"), Some(expected));
        assert_eq!(r.json()["ARN"], arn.as_str());
    }
    assert_eq!(
        ext.get_secret(&format!("secretId={db}"))
            .await
            .header("x-secretcache-cache"),
        Some("hit")
    );
    // The ARN first this time, then the name: the same.
    let other = unique("app/other");
    let (arn2, _) = create(&sm, &other, "x").await;
    assert_eq!(
        ext.get_secret(&format!("secretId={arn2}")).await.status,
        200
    );
    let by_name = ext.get_secret(&format!("secretId={other}")).await;
    assert_eq!(by_name.header("x-secretcache-cache"), Some("hit"));
    assert_eq!(proxy.count("GetSecretValue"), 3);
    assert!(!ext.logs().contains("alias-canary"));
}

#[tokio::test]
async fn a_batch_of_ten_misses_is_one_upstream_call_with_errors_per_id() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let batch = unique("batch");
    let mut arns = Vec::new();
    for i in 0..10 {
        arns.push(
            create(&sm, &format!("{batch}/s{i}"), &format!("batch-canary-{i}"))
                .await
                .0,
        );
    }
    let ext = Standalone::spawn(&proxy, &[]).await;
    // Names and an ARN mixed, and one that does not exist.
    let mut query: String = (0..9).map(|i| format!("secretId={batch}/s{i}&")).collect();
    query.push_str(&format!("secretId={}&secretId={batch}/missing", arns[9]));
    let r = get(&ext, &format!("/secretsmanager/batch?{query}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let values = v["SecretValues"].as_array().expect("SecretValues");
    assert_eq!(values.len(), 10, "{v}");
    for (i, value) in values.iter().enumerate() {
        assert_eq!(value["SecretString"], format!("batch-canary-{i}"));
        assert_eq!(
            value["ResultMetadata"],
            serde_json::json!({}),
            "the /secretsmanager/get shape"
        );
    }
    assert_eq!(v["Errors"][0]["SecretId"], format!("{batch}/missing"));
    assert_eq!(v["Errors"][0]["ErrorCode"], "ResourceNotFoundException");
    assert_eq!(
        proxy.count("BatchGetSecretValue"),
        1,
        "ten misses, one call"
    );
    assert_eq!(proxy.count("GetSecretValue"), 0);
    // Everything found is cached now, under every spelling.
    let again = get(
        &ext,
        &format!("/secretsmanager/batch?secretId={batch}/s0&secretId={batch}/s9"),
        &[],
    )
    .await;
    assert_eq!(again.header("x-secretcache-cache"), Some("hit"));
    assert_eq!(
        ext.get_secret(&format!("secretId={batch}/s3"))
            .await
            .header("x-secretcache-cache"),
        Some("hit")
    );
    assert_eq!(
        proxy.count("BatchGetSecretValue") + proxy.count("GetSecretValue"),
        1
    );
    // Over the service's limit of 20: a clear 400.
    let too_many: String = (0..21).map(|i| format!("secretId=x{i}&")).collect();
    let r = get(&ext, &format!("/secretsmanager/batch?{too_many}"), &[]).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("20"), "{}", r.text());
    assert!(!ext.logs().contains("batch-canary"));
}

#[tokio::test]
async fn without_the_batch_permission_a_batch_falls_back_to_one_call_per_secret_once() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let sm = moto.sm_client().await;
    let fb = unique("fb");
    for i in 0..6 {
        create(&sm, &format!("{fb}/s{i}"), &format!("v{i}")).await;
    }
    proxy.deny("BatchGetSecretValue");
    let ext = Standalone::spawn(&proxy, &[]).await;
    let r = get(
        &ext,
        &format!("/secretsmanager/batch?secretId={fb}/s0&secretId={fb}/s1&secretId={fb}/s2"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["SecretValues"].as_array().map(Vec::len), Some(3));
    assert_eq!(proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(proxy.count("GetSecretValue"), 3);
    // Learnt once for the environment: the next batch goes straight to one call per secret.
    let r = get(
        &ext,
        &format!("/secretsmanager/batch?secretId={fb}/s3&secretId={fb}/s4&secretId={fb}/s5"),
        &[],
    )
    .await;
    assert_eq!(r.json()["SecretValues"].as_array().map(Vec::len), Some(3));
    assert_eq!(proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(proxy.count("GetSecretValue"), 6);
    let logs = wait_for_log(&ext, "may not call secretsmanager:BatchGetSecretValue").await;
    assert_eq!(
        logs.matches("may not call secretsmanager:BatchGetSecretValue")
            .count(),
        1,
        "one WARN: {logs}"
    );
}

#[tokio::test]
async fn ssm_batches_are_one_get_parameters_call_with_invalid_names_listed() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ssm = moto.ssm_client().await;
    let pb = unique("/pb");
    for i in 0..5 {
        seed::parameter(
            &ssm,
            &format!("{pb}/p{i}"),
            ParameterType::SecureString,
            &format!("param-canary-{i}"),
        )
        .await;
    }
    let ext = Standalone::spawn(&proxy, &[]).await;
    let names: String = (0..5).map(|i| format!("name={pb}/p{i}&")).collect();
    let r = get(
        &ext,
        &format!("/systemsmanager/parameters/batch?{names}name={pb}/none&withDecryption=true"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let params = v["Parameters"].as_array().expect("Parameters");
    assert_eq!(params.len(), 5, "{v}");
    assert_eq!(params[2]["Value"], "param-canary-2");
    assert_eq!(
        v["InvalidParameters"],
        serde_json::json!([format!("{pb}/none")])
    );
    assert_eq!(proxy.count("GetParameters"), 1);
    assert_eq!(proxy.count("GetParameter"), 0, "not one call per name");
    let one = get(
        &ext,
        &format!("/systemsmanager/parameters/get?name={pb}/p4&withDecryption=true"),
        &[],
    )
    .await;
    assert_eq!(one.header("x-secretcache-cache"), Some("hit"));
    assert!(!ext.logs().contains("param-canary"));
}

#[tokio::test]
async fn a_field_is_answered_as_text_and_a_missing_one_is_a_404_naming_only_the_field() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let (db, plain, cfg) = (unique("proj/db"), unique("proj/plain"), unique("/proj/cfg"));
    create(
        &sm,
        &db,
        "{\"username\":\"app\",\"password\":\"field-canary\",\"port\":5432}",
    )
    .await;
    create(&sm, &plain, "not-json-canary").await;
    seed::parameter(
        &moto.ssm_client().await,
        &cfg,
        ParameterType::SecureString,
        "{\"url\":\"postgres://db.internal/app\"}",
    )
    .await;
    let ext = Standalone::spawn(moto, &[]).await;
    let r = ext
        .get_secret(&format!("secretId={db}&field=password"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "field-canary");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(
        ext.get_secret(&format!("secretId={db}&field=port"))
            .await
            .text(),
        "5432"
    );
    let missing = ext.get_secret(&format!("secretId={db}&field=passwd")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["__type"], "FieldNotFoundException");
    assert!(missing.text().contains("passwd") && !missing.text().contains("field-canary"));
    let not_json = ext.get_secret(&format!("secretId={plain}&field=x")).await;
    assert_eq!(not_json.status, 400);
    assert!(
        !not_json.text().contains("not-json-canary"),
        "{}",
        not_json.text()
    );
    let p = get(
        &ext,
        &format!("/systemsmanager/parameters/get?name={cfg}&withDecryption=true&field=url"),
        &[],
    )
    .await;
    assert_eq!(p.text(), "postgres://db.internal/app");
    let b = get(
        &ext,
        &format!("/secretsmanager/batch?secretId={db}&secretId={plain}&field=username"),
        &[],
    )
    .await;
    let v = b.json();
    assert_eq!(v["SecretValues"][0]["Value"], "app");
    assert_eq!(v["SecretValues"][0]["Field"], "username");
    assert_eq!(v["Errors"][0]["SecretId"], plain.as_str());
    assert!(!b.text().contains("not-json-canary"));
    assert!(!ext.logs().contains("field-canary"));
}

#[tokio::test]
async fn conditional_reads_answer_304_until_the_version_changes() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let db = unique("etag/db");
    let (_, version) = create(&sm, &db, "one").await;
    let ext = Standalone::spawn(moto, &[]).await;
    let r = ext.get_secret(&format!("secretId={db}")).await;
    let etag = r.header("etag").expect("an ETag").to_owned();
    assert_eq!(etag, format!("\"{version}\""));
    let same = get(
        &ext,
        &format!("/secretsmanager/get?secretId={db}"),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    seed::new_value(&sm, &db, "two").await;
    let changed = get(
        &ext,
        &format!("/secretsmanager/get?secretId={db}&refreshNow=true"),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(changed.status, 200, "a new version is a full answer");
    assert_eq!(changed.json()["SecretString"], "two");
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    // Batches have one ETag for all their versions.
    let b = get(&ext, &format!("/secretsmanager/batch?secretId={db}"), &[]).await;
    let batch_tag = b.header("etag").expect("a batch ETag").to_owned();
    let b304 = get(
        &ext,
        &format!("/secretsmanager/batch?secretId={db}"),
        &[("If-None-Match", &batch_tag)],
    )
    .await;
    assert_eq!(b304.status, 304);
}

#[tokio::test]
async fn an_arn_of_another_region_is_fetched_from_that_region() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let config = sdk_config(&moto.endpoint())
        .await
        .into_builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let eu = aws_sdk_secretsmanager::Client::new(&config);
    let far = unique("far/db");
    let (arn, _) = create(&eu, &far, "from-eu-west-1").await;
    assert!(arn.contains(":eu-west-1:"), "{arn}");
    let ext = Standalone::spawn(&proxy, &[]).await;
    let r = ext.get_secret(&format!("secretId={arn}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["SecretString"], "from-eu-west-1");
    let calls = proxy.calls();
    let call = calls
        .iter()
        .find(|c| c.operation.ends_with("GetSecretValue"))
        .expect("a GetSecretValue");
    assert_eq!(call.region, "eu-west-1", "signed for the secret's region");
    // The name alone means the home region, where there is no such secret.
    assert_eq!(ext.get_secret(&format!("secretId={far}")).await.status, 404);
}

#[tokio::test]
async fn a_role_reads_a_secret_shared_from_another_account() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    const ROLE: &str = "arn:aws:iam::111111111111:role/secret-reader";
    // The other account's own admin puts the secret there (moto keeps accounts apart by the caller's credentials).
    let owner = moto.sm_client_as(ROLE).await;
    let (arn, _) = create(&owner, &unique("shared/db"), "cross-account-canary").await;
    assert!(arn.contains(":111111111111:"), "{arn}");

    // With the function's own credentials, the other account's secret is not there.
    let own = Standalone::spawn(&proxy, &[]).await;
    assert_eq!(own.get_secret(&format!("secretId={arn}")).await.status, 404);
    drop(own);

    proxy.reset_counts();
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("PARAMETERS_SECRETS_EXTENSION_ROLE_ARN", ROLE),
            ("PARAMETERS_SECRETS_EXTENSION_ROLE_EXTERNAL_ID", "ext-42"),
        ],
    )
    .await;
    let r = ext.get_secret(&format!("secretId={arn}")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ext.logs());
    assert_eq!(r.json()["SecretString"], "cross-account-canary");
    assert_eq!(proxy.count("AssumeRole"), 1, "moto saw the AssumeRole");
    let get = proxy
        .calls()
        .into_iter()
        .find(|c| c.operation.ends_with("GetSecretValue"))
        .expect("a GetSecretValue");
    assert_ne!(
        get.access_key, "testing",
        "signed with the role's credentials, not the function's"
    );
    // The role's credentials are cached by the SDK: more reads, no more AssumeRole.
    ext.get_secret(&format!("secretId={arn}&refreshNow=true"))
        .await;
    assert_eq!(proxy.count("AssumeRole"), 1);
    assert!(!ext.logs().contains("cross-account-canary"));
}

#[tokio::test]
async fn prefetch_takes_secrets_parameters_and_ssm_paths() {
    let moto = Moto::shared().await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let (db, one, tree) = (unique("pre/db"), unique("/pre/one"), unique("/tree"));
    create(&moto.sm_client().await, &db, "pre-secret").await;
    let ssm = moto.ssm_client().await;
    let (tree_a, tree_b_c) = (format!("{tree}/a"), format!("{tree}/b/c"));
    for (name, value) in [
        (one.as_str(), "p1"),
        (tree_a.as_str(), "ta"),
        (tree_b_c.as_str(), "tbc"),
        (&unique("/elsewhere/x"), "no"),
    ] {
        seed::parameter(&ssm, name, ParameterType::SecureString, value).await;
    }
    let ext = Standalone::spawn(
        &proxy,
        &[(
            "PARAMETERS_SECRETS_EXTENSION_PREFETCH",
            &format!("{db}, ssm:{one}, ssm-path:{tree}"),
        )],
    )
    .await;
    wait_for_log(&ext, "ready (standalone").await;
    assert_eq!(proxy.count("GetParametersByPath"), 1);
    let before = proxy.calls().len();
    let hit = |r: &http::Response| r.header("x-secretcache-cache").map(str::to_owned);
    assert_eq!(
        hit(&ext.get_secret(&format!("secretId={db}")).await).as_deref(),
        Some("hit")
    );
    for (name, value) in [(&one, "p1"), (&tree_a, "ta"), (&tree_b_c, "tbc")] {
        let r = get(
            &ext,
            &format!("/systemsmanager/parameters/get?name={name}&withDecryption=true"),
            &[],
        )
        .await;
        assert_eq!(r.json()["Parameter"]["Value"], value, "{name}");
        assert_eq!(hit(&r).as_deref(), Some("hit"), "{name}");
    }
    assert_eq!(proxy.calls().len(), before, "every read was prefetched");
}
