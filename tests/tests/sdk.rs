//! The AWS SDKs' own protocol on the extension's port: unchanged SDK code reads through the cache with only the
//! endpoint variables set. boto3 (with `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`, read by boto3
//! itself) and aws-sdk-rust (an endpoint override), against the built extension and moto through the counting
//! proxy: their reads, their usual exceptions, a wrong key refused, and one upstream call for many SDK reads.

use aws_sdk_ssm::types::ParameterType;
use secretcache_tests::extension::Standalone;
use secretcache_tests::moto::{Endpoint, Moto, REGION};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

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

/// A path with three parameters under it, one a level down: two pages of two.
async fn seeded_path(moto: &Moto) -> String {
    let ssm = moto.ssm_client().await;
    let path = unique("/sdk-path");
    for (leaf, value) in [("a", "1"), ("b", "2"), ("c/d", "3")] {
        seed::parameter(
            &ssm,
            &format!("{path}/{leaf}"),
            ParameterType::String,
            value,
        )
        .await;
    }
    path
}

/// Runs an SDK client script (`command`, its program and arguments set) with `extra` and the environment Lambda would give a
/// function whose SDK reads through `ext` (credentials, region, the two endpoint variables and nothing else of this
/// process's), reading `name` and `parameter`; what it printed.
async fn run_sdk_client(
    mut command: tokio::process::Command,
    extra: &[(&str, String)],
    ext: &Standalone,
    name: &str,
    parameter: &str,
) -> serde_json::Value {
    command.env_clear();
    for (k, v) in extra {
        command.env(k, v);
    }
    let out = command
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SECRET_NAME", name)
        .env("PARAMETER_NAME", parameter)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", ext.token())
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", ext.url())
        .env("AWS_ENDPOINT_URL_SSM", ext.url())
        .output()
        .await
        .expect("run the SDK client");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ext.logs()
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
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
    let path = seeded_path(moto).await;
    let mut command = tokio::process::Command::new(root.join(".venv/bin/python"));
    command.arg(root.join("tests/clients/sdk_boto3.py"));
    let extra = [("PARAMETER_PATH", path.clone())];
    let seen = run_sdk_client(command, &extra, &ext, &name, &parameter).await;
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
        seen["describe"]["ok"],
        name.as_str(),
        "DescribeSecret is passed on: {seen}"
    );
    assert_eq!(
        seen["batch"]["values"],
        serde_json::json!(["{\"password\":\"two\"}"]),
        "{seen}"
    );
    assert_eq!(
        seen["batch"]["errors"],
        serde_json::json!([[format!("{name}-missing"), "ResourceNotFoundException"]])
    );
    assert_eq!(
        seen["parameters"]["values"],
        serde_json::json!(["postgres://db"]),
        "{seen}"
    );
    assert_eq!(
        seen["parameters"]["invalid"],
        serde_json::json!([format!("{parameter}-missing")])
    );
    // The paginator's two walks of the path: the same three parameters, the second walk from the kept pages; after a
    // write, a walk that sees it.
    let listed = |names: &[&str]| {
        serde_json::json!(names
            .iter()
            .map(|n| format!("{path}/{n}"))
            .collect::<Vec<_>>())
    };
    assert_eq!(seen["by_path"], listed(&["a=1", "b=2", "c/d=3"]), "{seen}");
    assert_eq!(seen["by_path_again"], seen["by_path"]);
    assert_eq!(
        seen["by_path_after_put"],
        listed(&["a=1", "b=2", "c/d=3", "x=4", "y=5"]),
        "{seen}"
    );
    assert_eq!(
        proxy.count("GetParametersByPath"),
        5,
        "two pages for the first walk, none for the second, three after the writes: {:?}",
        proxy.calls()
    );
    assert_eq!(seen["filtered"], serde_json::json!([name]), "{seen}");
    assert_eq!(seen["filtered_again"], seen["filtered"]);
    // The writes went through, and the next reads saw them.
    assert_eq!(seen["after_put"], "{\"password\":\"three\"}", "{seen}");
    assert_eq!(seen["after_put_parameter"], "postgres://db2", "{seen}");
    assert_eq!(proxy.count("PutSecretValue"), 1);
    assert_eq!(
        proxy.count("PutParameter"),
        3,
        "one write of the parameter, two under the path"
    );
    assert_eq!(proxy.count("DescribeSecret"), 1);
    // Six reads of the current version were one call; AWSPREVIOUS and the missing secret one each; the batch was
    // answered from those entries (the missing one from the memory of its refusal); one more after the write. The
    // parameter, its missing name undecrypted, then decrypted (another key), then after its write: four.
    assert_eq!(proxy.count("GetSecretValue"), 4, "{:?}", proxy.calls());
    // The batch by ids from the cache's entries; the one by filters once, then from its kept answer.
    assert_eq!(proxy.count("BatchGetSecretValue"), 1, "{:?}", proxy.calls());
    assert_eq!(proxy.count("GetParameter"), 4, "{:?}", proxy.calls());
    // Passed on with the extension's own key, which is the caller's.
    assert!(proxy.calls().iter().all(|c| c.access_key == "testing"));
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
    let config = ext.sdk_config("testing").await;
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

    // The batch operations: from the same cache entries (no new upstream call for what was read).
    let before = proxy.calls().len();
    let batch = sm
        .batch_get_secret_value()
        .secret_id_list(&name)
        .send()
        .await
        .expect("BatchGetSecretValue");
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(
        batch.secret_values()[0].secret_string(),
        Some("{\"password\":\"two\"}")
    );
    assert!(batch.secret_values()[0].created_date().is_some());
    let params = ssm
        .get_parameters()
        .names(&parameter)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameters");
    assert_eq!(params.parameters()[0].value(), Some("postgres://db"));
    assert!(params.invalid_parameters().is_empty());
    assert_eq!(proxy.calls().len(), before, "both answered from the cache");

    let calls = proxy.calls().len();
    let wrong = aws_sdk_secretsmanager::Client::new(&ext.sdk_config("not-the-key").await);
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
    let refused_write = wrong
        .put_secret_value()
        .secret_id(&name)
        .secret_string("{\"password\":\"mine\"}")
        .send()
        .await
        .expect_err("a write signed with another key is not passed on");
    let code = refused_write.as_service_error().and_then(|e| {
        use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
        e.code().map(str::to_owned)
    });
    assert_eq!(
        code.as_deref(),
        Some("InvalidSignatureException"),
        "{refused_write:?}"
    );
    assert_eq!(proxy.count("PutSecretValue"), 0, "never passed on");
}

/// The AWS SDK for JavaScript v3 (Node 20), unchanged, with the two endpoint variables it reads itself: reads, its
/// dates, and its usual exception classes.
#[tokio::test]
async fn sdk_javascript_v3_reads_through_the_cache_with_only_the_endpoint_variables() {
    let root = secretcache_tests::workspace_root();
    let sdk_dir = root.join(".node-sdk");
    assert!(
        sdk_dir
            .join("node_modules/@aws-sdk/client-secrets-manager")
            .is_dir(),
        "the AWS SDK for JavaScript is missing at {}: run `make node-sdk` (make test does)",
        sdk_dir.display()
    );
    let moto = Moto::shared().await;
    let (name, parameter) = seeded(moto).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(&proxy, &[]).await;
    let mut command = tokio::process::Command::new("node");
    command.arg(root.join("tests/clients/sdk_js.cjs"));
    let extra = [("NODE_SDK_DIR", sdk_dir.display().to_string())];
    let seen = run_sdk_client(command, &extra, &ext, &name, &parameter).await;
    for read in seen["reads"].as_array().expect("reads") {
        assert_eq!(read, "{\"password\":\"two\"}", "{seen}");
    }
    assert_eq!(seen["createdIsADate"], true, "{seen}");
    assert_eq!(seen["missing"], "ResourceNotFoundException", "{seen}");
    assert_eq!(seen["parameter"], "postgres://db");
    assert_eq!(seen["parameterMissing"], "ParameterNotFound", "{seen}");
    assert_eq!(proxy.count("GetSecretValue"), 2, "{:?}", proxy.calls());
}

/// Runs the AWS CLI v1 with `--endpoint-url` pointed at `ext`, signing with `secret_key`: its exit status, what it
/// printed (JSON) and its error text.
async fn aws_cli(
    ext: &Standalone,
    secret_key: &str,
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", secret_key.to_owned()),
        ("AWS_SESSION_TOKEN", ext.token()),
    ];
    aws_cli_with(ext, &credentials, args).await
}

/// [`aws_cli`] with the credentials' variables `credentials` (keys, or a container credentials endpoint).
async fn aws_cli_with(
    ext: &Standalone,
    credentials: &[(&str, String)],
    args: &[&str],
) -> (bool, serde_json::Value, String) {
    let root = secretcache_tests::workspace_root();
    let out = tokio::process::Command::new(root.join(".venv/bin/aws"))
        .args(args)
        .args(["--endpoint-url", &ext.url(), "--output", "json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_DEFAULT_REGION", REGION)
        .envs(credentials.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run the AWS CLI (make venv installs it)");
    let printed = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        printed,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The AWS CLI v1 with `--endpoint-url`: every read, their errors by the service's code, the path walked in pages
/// (twice, one upstream walk), a wrong key refused, and a write read back.
#[tokio::test]
async fn sdk_aws_cli_reads_through_the_cache_with_endpoint_url() {
    let moto = Moto::shared().await;
    let (name, parameter) = seeded(moto).await;
    let path = seeded_path(moto).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(&proxy, &[]).await;
    let ok = |(ok, printed, err): (bool, serde_json::Value, String)| {
        assert!(ok, "{err}\n{}", ext.logs());
        printed
    };
    for _ in 0..3 {
        let got = ok(aws_cli(
            &ext,
            "testing",
            &["secretsmanager", "get-secret-value", "--secret-id", &name],
        )
        .await);
        assert_eq!(got["SecretString"], "{\"password\":\"two\"}");
        assert_eq!(got["Name"], name.as_str());
    }
    assert_eq!(
        proxy.count("GetSecretValue"),
        1,
        "three CLI reads, one upstream call"
    );
    let previous = ok(aws_cli(
        &ext,
        "testing",
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            &name,
            "--version-stage",
            "AWSPREVIOUS",
        ],
    )
    .await);
    assert_eq!(previous["SecretString"], "{\"password\":\"one\"}");
    let (found, _, err) = aws_cli(
        &ext,
        "testing",
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            &format!("{name}-missing"),
        ],
    )
    .await;
    assert!(
        !found && err.contains("(ResourceNotFoundException)"),
        "{err}"
    );
    let batch = ok(aws_cli(
        &ext,
        "testing",
        &[
            "secretsmanager",
            "batch-get-secret-value",
            "--secret-id-list",
            &name,
        ],
    )
    .await);
    assert_eq!(
        batch["SecretValues"][0]["SecretString"],
        "{\"password\":\"two\"}"
    );

    let p = ok(aws_cli(
        &ext,
        "testing",
        &[
            "ssm",
            "get-parameter",
            "--name",
            &parameter,
            "--with-decryption",
        ],
    )
    .await);
    assert_eq!(p["Parameter"]["Value"], "postgres://db");
    let (found, _, err) = aws_cli(
        &ext,
        "testing",
        &[
            "ssm",
            "get-parameter",
            "--name",
            &format!("{parameter}-missing"),
        ],
    )
    .await;
    assert!(!found && err.contains("(ParameterNotFound)"), "{err}");
    let ps = ok(aws_cli(
        &ext,
        "testing",
        &[
            "ssm",
            "get-parameters",
            "--names",
            &parameter,
            &format!("{parameter}-missing"),
            "--with-decryption",
        ],
    )
    .await);
    assert_eq!(ps["Parameters"][0]["Value"], "postgres://db");
    assert_eq!(
        ps["InvalidParameters"],
        serde_json::json!([format!("{parameter}-missing")])
    );

    // The CLI walks every page itself (--page-size 2: two calls for three parameters).
    let walk_args = [
        "ssm",
        "get-parameters-by-path",
        "--path",
        path.as_str(),
        "--recursive",
        "--page-size",
        "2",
    ];
    let walk = || aws_cli(&ext, "testing", &walk_args);
    let first = ok(walk().await);
    let mut names: Vec<&str> = first["Parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["Name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            format!("{path}/a"),
            format!("{path}/b"),
            format!("{path}/c/d")
        ]
    );
    assert_eq!(ok(walk().await)["Parameters"], first["Parameters"]);
    assert_eq!(proxy.count("GetParametersByPath"), 2, "{:?}", proxy.calls());

    let calls = proxy.calls().len();
    let (accepted, _, err) = aws_cli(
        &ext,
        "not-the-key",
        &["secretsmanager", "get-secret-value", "--secret-id", &name],
    )
    .await;
    assert!(
        !accepted && err.contains("(InvalidSignatureException)"),
        "{err}"
    );
    assert_eq!(proxy.calls().len(), calls, "refused before the upstream");

    ok(aws_cli(
        &ext,
        "testing",
        &[
            "ssm",
            "put-parameter",
            "--name",
            &format!("{path}/a"),
            "--value",
            "11",
            "--type",
            "String",
            "--overwrite",
        ],
    )
    .await);
    let after = ok(walk().await);
    assert!(
        after["Parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["Name"] == format!("{path}/a").as_str() && p["Value"] == "11"),
        "the walk after the write sees it: {after}"
    );
    assert_eq!(proxy.count("PutParameter"), 1);
    assert!(!ext.logs().contains("password"), "no value in the logs");
}

/// A sidecar holds no keys in its environment: its credentials, and its callers', come from the task's container
/// credentials endpoint. A caller's signature verifies with what the endpoint gave, before and after the endpoint
/// rotates them (the previous credentials stay accepted), a write is passed on signed with them, and a key the endpoint
/// never gave is refused with an error that says so.
#[tokio::test]
async fn sdk_sidecar_verifies_with_the_task_role_credentials_current_and_previous() {
    use secretcache_tests::credentials_endpoint::{handed, CredentialsEndpoint};
    let moto = Moto::shared().await;
    let (name, _) = seeded(moto).await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let endpoint = CredentialsEndpoint::start("task-auth", handed("ASIATASKONE")).await;
    let port = secretcache_tests::free_port();
    let mut env = secretcache_tests::extension::base_env(&proxy.endpoint(), port, "unused");
    env.retain(|(k, _)| {
        !k.starts_with("AWS_ACCESS_KEY_ID")
            && !k.starts_with("AWS_SECRET")
            && k != "AWS_SESSION_TOKEN"
    });
    let task = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "task-auth".to_owned()),
    ];
    env.extend(task.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env.push(("AWS_TOKEN".into(), "sidecar-token".into()));
    let ext = Standalone::spawn_with_env(env, &[], port, "sidecar-token".into());
    ext.wait_ready(std::time::Duration::from_secs(20)).await;

    // The application container's CLI takes its credentials from the same endpoint.
    let args = [
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        name.as_str(),
    ];
    let read = || aws_cli_with(&ext, &task, &args);
    let (ok, got, err) = read().await;
    assert!(ok, "{err}\n{}", ext.logs());
    assert_eq!(got["SecretString"], "{\"password\":\"two\"}");
    let (ok, _, err) = aws_cli_with(
        &ext,
        &task,
        &[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            &name,
            "--secret-string",
            "{\"password\":\"three\"}",
        ],
    )
    .await;
    assert!(ok, "{err}\n{}", ext.logs());
    let put = proxy
        .calls()
        .into_iter()
        .find(|c| c.operation.ends_with("PutSecretValue"))
        .expect("the write was passed on");
    assert_eq!(
        put.access_key, "ASIATASKONE",
        "signed with the task's credentials"
    );

    // The endpoint rotates: a caller that fetched after it is accepted, and so is one that fetched before.
    endpoint.rotate(handed("ASIATASKTWO"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (ok, got, err) = read().await;
    assert!(ok, "the rotated credentials verify: {err}\n{}", ext.logs());
    assert_eq!(
        got["SecretString"], "{\"password\":\"three\"}",
        "the write was read back"
    );
    let signing_with = |id: &str| {
        let (id, secret, token) = handed(id);
        [
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SESSION_TOKEN", token),
        ]
    };
    let previous = signing_with("ASIATASKONE");
    let args = [
        "secretsmanager",
        "get-secret-value",
        "--secret-id",
        name.as_str(),
    ];
    let (ok, _, err) = aws_cli_with(&ext, &previous, &args).await;
    assert!(
        ok,
        "the previous credentials still verify: {err}\n{}",
        ext.logs()
    );
    let stranger = signing_with("ASIASTRANGER");
    let (ok, _, err) = aws_cli_with(&ext, &stranger, &args).await;
    assert!(
        !ok && err.contains("(UnrecognizedClientException)"),
        "{err}"
    );
    assert!(
        err.contains("not one this extension holds"),
        "the error says why: {err}"
    );
    assert!(
        endpoint.served() >= 3,
        "asked at start, after the rotation and for the stranger"
    );
}

/// The request forms around the protocol: `Expect: 100-continue` is answered and the read served; a compressed body
/// and Smithy RPC v2 CBOR (no current SDK sends either to these services) get a plain 415 that says so, never a
/// misleading serialization error.
#[tokio::test]
async fn sdk_expect_continue_is_served_and_compression_or_cbor_are_refused_plainly() {
    let moto = Moto::shared().await;
    let (name, _) = seeded(moto).await;
    let ext = Standalone::spawn(moto, &[]).await;
    let body = format!("{{\"SecretId\":\"{name}\"}}");
    let request = |extra: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: secretsmanager.GetSecretValue\r\n\
             X-Aws-Parameters-Secrets-Token: {}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            ext.token(),
            body.len()
        )
    };
    let port = ext.port();
    let exchange = |req: String| async move {
        secretcache_tests::raw::exchange(port, req.as_bytes(), std::time::Duration::from_secs(2))
            .await
            .expect("exchange")
    };
    let answers = exchange(request(
        "Content-Type: application/x-amz-json-1.1\r\nExpect: 100-continue\r\n",
    ))
    .await;
    let last = answers.last().expect("an answer");
    assert_eq!(last.status, 200, "{answers:?}");
    let value: serde_json::Value = serde_json::from_slice(&last.body).expect("JSON");
    assert_eq!(value["SecretString"], "{\"password\":\"two\"}");

    for (extra, says) in [
        (
            "Content-Type: application/x-amz-json-1.1\r\nContent-Encoding: gzip\r\n",
            "Content-Encoding",
        ),
        (
            "Content-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n",
            "RPC v2 CBOR",
        ),
    ] {
        let answers = exchange(request(extra)).await;
        let last = answers.last().expect("an answer");
        assert_eq!(last.status, 415, "{extra}: {answers:?}");
        assert!(last.text().contains(says), "{}", last.text());
        assert!(
            last.headers
                .iter()
                .any(|(k, v)| k == "x-amzn-errortype"
                    && v.starts_with("UnsupportedMediaTypeException")),
            "{:?}",
            last.headers
        );
    }
}
