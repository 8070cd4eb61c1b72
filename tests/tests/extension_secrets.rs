//! The extension against a real moto (one for the binary; each test names its secrets uniquely and counts upstream
//! calls on a proxy of its own): success bodies, errors, TTL, refreshNow, single-flight, lifecycle.

use std::time::Duration;

use lambda_env::{InvokeStatus, LambdaEnv};
use secretcache_tests::extension::{Client, Standalone};
use secretcache_tests::http;
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::proxy::FaultInjectingProxy;
use secretcache_tests::seed::{self, unique};

use secretcache_client::TOKEN_HEADER;

/// Checks the RFC 3339 UTC milliseconds form, e.g. 2022-11-16T08:22:40.499Z.
fn assert_rfc3339_millis(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.len(), 24, "{s}");
    assert!(s.ends_with('Z') && b[10] == b'T' && b[19] == b'.', "{s}");
}

#[tokio::test]
async fn string_secret_body_by_name_and_arn() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let db = unique("app/db");
    let created = seed::secret(&sm, &db, r#"{"username":"app","password":"pw-1"}"#).await;
    let arn = created.arn.clone();
    let ext = Standalone::spawn(moto, &[]).await;

    let r = ext
        .get_secret(&format!("secretId={}", db.replace('/', "%2F")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    // The fields, in the order the AWS extension writes them (Go marshals struct fields in declaration order).
    // Read from the text: serde_json's map order depends on a feature another crate in the build may turn on.
    let text = r.text();
    let order = [
        "ARN",
        "CreatedDate",
        "Name",
        "SecretBinary",
        "SecretString",
        "VersionId",
        "VersionStages",
        "ResultMetadata",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing: {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "field order: {text}"
    );
    let v = r.json();
    assert_eq!(v.as_object().expect("object").len(), order.len(), "{text}");
    assert_eq!(v["ARN"], arn.as_str());
    assert_eq!(v["Name"], db.as_str());
    assert_eq!(v["SecretString"], r#"{"username":"app","password":"pw-1"}"#);
    assert!(v["SecretBinary"].is_null());
    assert_eq!(v["VersionId"], created.version_id.as_str());
    assert_eq!(v["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    assert_eq!(v["ResultMetadata"], serde_json::json!({}));
    assert_rfc3339_millis(v["CreatedDate"].as_str().expect("date"));
    // The raw bytes keep the AWS extension's field order.
    assert!(r.text().starts_with("{\"ARN\":"), "{}", r.text());

    let by_arn = ext.get_secret(&format!("secretId={arn}")).await;
    assert_eq!(by_arn.status, 200);
    assert_eq!(by_arn.json()["SecretString"], v["SecretString"]);
    // The second read of the name is a hit.
    assert_eq!(
        ext.get_secret(&format!("secretId={db}"))
            .await
            .header("x-secretcache-cache"),
        Some("hit")
    );
}

#[tokio::test]
async fn binary_secret_is_base64_and_versions_are_selectable() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let (bin, multi) = (unique("bin"), unique("multi"));
    seed::binary_secret(&sm, &bin, vec![0u8, 1, 2, 254, 255]).await;
    let v1 = seed::secret(&sm, &multi, "v1").await.version_id;
    let v2 = seed::new_value(&sm, &multi, "v2").await;
    let ext = Standalone::spawn(moto, &[]).await;

    let b = ext.get_secret(&format!("secretId={bin}")).await.json();
    assert_eq!(b["SecretBinary"], "AAEC/v8=");
    assert!(b["SecretString"].is_null());

    let cur = ext.get_secret(&format!("secretId={multi}")).await.json();
    assert_eq!(cur["SecretString"], "v2");
    assert_eq!(cur["VersionId"], v2.as_str());
    let prev = ext
        .get_secret(&format!("secretId={multi}&versionStage=AWSPREVIOUS"))
        .await
        .json();
    assert_eq!(prev["SecretString"], "v1");
    assert_eq!(prev["VersionStages"], serde_json::json!(["AWSPREVIOUS"]));
    let by_id = ext
        .get_secret(&format!("secretId={multi}&versionId={v1}"))
        .await
        .json();
    assert_eq!(by_id["SecretString"], "v1");
    assert_eq!(by_id["VersionId"], v1.as_str());
    let explicit_current = ext
        .get_secret(&format!("secretId={multi}&versionStage=AWSCURRENT"))
        .await;
    assert_eq!(explicit_current.json()["SecretString"], "v2");
}

#[tokio::test]
async fn errors_have_meaningful_statuses_and_json_bodies() {
    let moto = Moto::shared().await;
    let s = unique("s");
    seed::secret(&moto.sm_client().await, &s, "top-secret-value").await;
    let ext = Standalone::spawn(moto, &[]).await;
    let url = |q: &str| format!("{}/secretsmanager/get?{q}", ext.url());
    let (of_s, missing) = (
        format!("secretId={s}"),
        format!("secretId={}", unique("missing")),
    );
    let tok = ext.token();
    let ok = [(TOKEN_HEADER, tok.as_str())];

    let cases: Vec<(http::Response, u16, &str)> = vec![
        (
            http::get(&url(&missing), &ok).await.expect("req"),
            404,
            "ResourceNotFoundException",
        ),
        (
            http::get(&url("versionStage=AWSCURRENT"), &ok)
                .await
                .expect("req"),
            400,
            "InvalidParameterException",
        ),
        (
            http::get(&url(&format!("{of_s}&refreshNow=yes")), &ok)
                .await
                .expect("req"),
            400,
            "InvalidParameterException",
        ),
        (
            http::get(&url("secretId=%zz"), &ok).await.expect("req"),
            400,
            "InvalidParameterException",
        ),
        (
            http::get(&url(&of_s), &[]).await.expect("req"),
            401,
            "MissingAuthenticationTokenException",
        ),
        (
            http::get(&url(&of_s), &[(TOKEN_HEADER, "wrong")])
                .await
                .expect("req"),
            403,
            "InvalidAuthenticationTokenException",
        ),
        (
            http::request("POST", &url(&of_s), &ok, None)
                .await
                .expect("req"),
            405,
            "MethodNotAllowedException",
        ),
        (
            http::get(
                &url(&of_s),
                &[
                    (TOKEN_HEADER, tok.as_str()),
                    ("X-Forwarded-For", "10.0.0.1"),
                ],
            )
            .await
            .expect("req"),
            400,
            "ForwardedRequestException",
        ),
        (
            http::get(&format!("{}/nope", ext.url()), &ok)
                .await
                .expect("req"),
            404,
            "UnknownOperationException",
        ),
    ];
    for (resp, status, kind) in cases {
        assert_eq!(resp.status, status, "{}", resp.text());
        let v = resp.json();
        assert_eq!(v["__type"], kind, "{v}");
        assert!(!v["message"].as_str().unwrap_or_default().is_empty(), "{v}");
        assert!(!resp.text().contains("top-secret-value"));
    }
    // /ping needs no token; the process is still healthy after all of the above.
    assert_eq!(
        http::get(&format!("{}/ping", ext.url()), &[])
            .await
            .expect("ping")
            .status,
        200
    );
    assert_eq!(ext.get_secret(&of_s).await.status, 200);
    assert!(
        !ext.logs().contains("top-secret-value"),
        "a secret value reached the log"
    );
}

#[tokio::test]
async fn ttl_expiry_and_refresh_now_pick_up_a_new_value() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let rot = unique("rot");
    let query = format!("secretId={rot}");
    seed::secret(&sm, &rot, "old").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let ext = Standalone::spawn(
        &proxy,
        &[
            ("SECRETS_MANAGER_TTL", "1"),
            ("PARAMETERS_SECRETS_EXTENSION_REFRESH_AHEAD", "0"),
        ],
    )
    .await;

    assert_eq!(ext.get_secret(&query).await.json()["SecretString"], "old");
    seed::new_value(&sm, &rot, "new").await;
    // Within the TTL the cached value is served without an upstream call.
    assert_eq!(ext.get_secret(&query).await.json()["SecretString"], "old");
    assert_eq!(proxy.count("GetSecretValue"), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let after = ext.get_secret(&query).await;
    assert_eq!(after.json()["SecretString"], "new");
    assert_eq!(after.header("x-secretcache-cache"), Some("miss"));
    assert_eq!(proxy.count("GetSecretValue"), 2);

    // refreshNow bypasses a fresh entry.
    seed::new_value(&sm, &rot, "newer").await;
    assert_eq!(ext.get_secret(&query).await.json()["SecretString"], "new");
    let refreshed = ext.get_secret(&format!("{query}&refreshNow=true")).await;
    assert_eq!(refreshed.json()["SecretString"], "newer");
    assert_eq!(refreshed.header("x-secretcache-cache"), Some("refresh"));
    assert_eq!(ext.get_secret(&query).await.json()["SecretString"], "newer");
}

#[tokio::test]
async fn hundred_concurrent_cold_requests_make_one_upstream_call() {
    let moto = Moto::shared().await;
    let hot = unique("hot");
    seed::secret(&moto.sm_client().await, &hot, "v").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    // A little upstream latency makes the requests overlap for certain.
    proxy.set_fault(secretcache_tests::proxy::Fault::Delay(
        Duration::from_millis(300),
    ));
    let ext = Standalone::spawn(&proxy, &[]).await;
    let reqs = (0..100).map(|_| {
        let (url, tok, hot) = (ext.url(), ext.token(), hot.clone());
        tokio::spawn(async move {
            http::get(
                &format!("{url}/secretsmanager/get?secretId={hot}"),
                &[(TOKEN_HEADER, &tok)],
            )
            .await
        })
    });
    for r in futures_join(reqs).await {
        let r = r.expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["SecretString"], "v");
    }
    assert_eq!(
        proxy.count("GetSecretValue"),
        1,
        "concurrent misses must share one upstream call"
    );

    // A burst of refreshNow is single-flighted too.
    let reqs = (0..20).map(|_| {
        let (url, tok, hot) = (ext.url(), ext.token(), hot.clone());
        tokio::spawn(async move {
            http::get(
                &format!("{url}/secretsmanager/get?secretId={hot}&refreshNow=true"),
                &[(TOKEN_HEADER, &tok)],
            )
            .await
        })
    });
    for r in futures_join(reqs).await {
        assert_eq!(r.expect("request").status, 200);
    }
    assert_eq!(proxy.count("GetSecretValue"), 2);
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.expect("task"));
    }
    out
}

/// In the local Lambda environment with this build's extension (freezing off: the test reads the extension between
/// events, as the function's code would): the port is open when it registers, the prefetch lands before it is
/// ready, and it ends by itself before SHUTDOWN's deadline.
#[tokio::test]
async fn port_is_open_before_register_and_shutdown_exits_before_its_deadline() {
    let moto = Moto::shared().await;
    let (pre, absent) = (unique("pre"), unique("absent"));
    seed::secret(&moto.sm_client().await, &pre, "p").await;
    let proxy = FaultInjectingProxy::start(moto).await;
    let (_dir, function) = secretcache_tests::probe::idle_function_zip();
    let mut options = secretcache_tests::with_extension_binary(&function, &proxy.endpoint()).var(
        "PARAMETERS_SECRETS_EXTENSION_PREFETCH",
        &format!("{pre}, {absent}"),
    );
    options.freeze = false;
    let port = secretcache_tests::extension_port(&options);
    let env = LambdaEnv::start(options)
        .await
        .expect("the environment starts");
    let logs = || env_logs(&env);
    let init = env.init_result().expect("init ran");
    assert!(init.is_ok(), "never ready: {init:?}; logs:\n{}", logs());

    let registrations = env.registrations();
    let [reg] = registrations.as_slice() else {
        panic!("one registration expected: {registrations:?}");
    };
    assert!(
        reg.listening.contains(&port),
        "the port must be open when register is called: {reg:?}"
    );
    assert_eq!(reg.name, "secretcache");
    // On demand, SHUTDOWN only: an invocation never wakes the extension (INVOKE_WAIT_MILLIS unset).
    assert_eq!(reg.events, ["SHUTDOWN"]);
    // The prefetch happened before the first next, both ids (one absent) in one batch call: the secret is cached.
    assert_eq!(
        (
            proxy.count("BatchGetSecretValue"),
            proxy.count("GetSecretValue")
        ),
        (1, 0),
        "prefetch of both ids (one absent) in one call before ready"
    );
    let ext = Client::new(port, env.session_token());
    let r = ext.get_secret(&format!("secretId={pre}")).await;
    assert_eq!(r.header("x-secretcache-cache"), Some("hit"));
    assert!(
        logs().contains("prefetch failed"),
        "the absent id is logged, not fatal"
    );

    let invoked = env.invoke("{}".into()).await.expect("the invoke runs");
    assert_eq!(invoked.report.status, InvokeStatus::Success, "{}", logs());

    let shutdown = env.shutdown().await;
    let ended = shutdown
        .processes
        .iter()
        .find(|p| p.name == "secretcache")
        .expect("the extension's end is reported");
    assert_eq!(ended.status, "exit status 0", "{shutdown}\n{}", logs());
    assert!(
        !ended.killed && ended.after.is_some_and(|a| a <= shutdown.limit),
        "exited after the deadline: {shutdown}"
    );
    assert!(
        env.reported_errors().is_empty(),
        "{:?}",
        env.reported_errors()
    );
}

fn env_logs(env: &LambdaEnv) -> String {
    env.logs()
        .iter()
        .map(|l| format!("{} | {}\n", l.source, l.text))
        .collect()
}

#[tokio::test]
async fn json_log_format_gives_one_json_object_a_line_without_secrets() {
    let moto = Moto::shared().await;
    let j = unique("j");
    seed::secret(&moto.sm_client().await, &j, "json-log-canary").await;
    let j = format!("secretId={j}");
    let ext = Standalone::spawn(moto, &[("AWS_LAMBDA_LOG_FORMAT", "json")]).await;
    assert_eq!(ext.get_secret(&j).await.status, 200);
    assert_eq!(ext.get_secret(&j).await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = ext.logs();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 3, "{logs}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(logs.contains("\"message\":\"cache hit\""), "{logs}");
    assert!(!logs.contains("json-log-canary"));
}

#[tokio::test]
async fn service_specific_endpoint_variables_are_honoured() {
    let moto = Moto::shared().await;
    let (ep, param) = (unique("ep"), unique("/ep"));
    seed::secret(&moto.sm_client().await, &ep, "v").await;
    seed::parameter(
        &moto.ssm_client().await,
        &param,
        aws_sdk_ssm::types::ParameterType::String,
        "p",
    )
    .await;
    // No AWS_ENDPOINT_URL at all: only the per-service variables point at moto.
    let ext = Standalone::spawn(
        moto,
        &[
            ("AWS_ENDPOINT_URL", ""),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.endpoint()),
            ("AWS_ENDPOINT_URL_SSM", &moto.endpoint()),
        ],
    )
    .await;
    assert_eq!(
        ext.get_secret(&format!("secretId={ep}")).await.json()["SecretString"],
        "v"
    );
    let p = http::get(
        &format!("{}/systemsmanager/parameters/get?name={param}", ext.url()),
        &[(TOKEN_HEADER, &ext.token())],
    )
    .await
    .expect("req");
    assert_eq!(p.json()["Parameter"]["Value"], "p");
}
