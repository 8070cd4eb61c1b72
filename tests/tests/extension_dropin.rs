//! A true drop-in: configurations and requests written for the AWS Parameters and Secrets Lambda Extension start and
//! work unchanged. The built binary against the real moto; every check is on what a client or an operator sees (the
//! status, the body, the log lines).

use std::time::{Duration, Instant};

use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::http;
use secretcache_tests::moto::{Endpoint, Moto};
use secretcache_tests::report;
use secretcache_tests::seed::{self, unique};

use secretcache_client::TOKEN_HEADER;

/// One environment block, as found in public CDK, Terraform, SAM, Serverless and CLI code for the AWS extension.
struct Block {
    /// Where such a block comes from.
    origin: &'static str,
    /// The function's variables. `{port}` is replaced by a free port.
    vars: &'static [(&'static str, &'static str)],
    /// Variables that must each get one ERROR line (and nothing else may).
    errors: &'static [&'static str],
    /// Text that must appear in the log.
    logs: &'static [&'static str],
    /// Whether the second read must be a cache hit (false when the block turns caching off).
    cached: bool,
}

const P: &str = "PARAMETERS_SECRETS_EXTENSION_";

fn blocks() -> Vec<Block> {
    vec![
        Block {
            origin: "CDK ParamsAndSecretsLayerVersion with every option at its default",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1000"),
                ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "{port}"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
                ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "3"),
                ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
                ("SECRETS_MANAGER_TTL", "300"),
                ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "0"),
                ("SSM_PARAMETER_STORE_TTL", "300"),
            ],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "CDK CfnFunction (L1) with a custom cache size, port, connections and TTLs",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "100"),
                ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "{port}"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
                ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "5"),
                ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
                ("SECRETS_MANAGER_TTL", "100"),
                ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "0"),
                ("SSM_PARAMETER_STORE_TTL", "100"),
            ],
            errors: &[],
            logs: &["cache hit"],
            cached: true,
        },
        Block {
            origin: "CDK passing `process.env.X || ''`: empty strings",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", ""),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", ""),
            ],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "aws lambda update-function-configuration --environment from a tutorial",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
            ],
            errors: &[],
            logs: &["cache hit"],
            cached: true,
        },
        Block {
            origin: "Serverless Framework: a 30-minute TTL, beyond the AWS extension's 300 s",
            vars: &[("SECRETS_MANAGER_TTL", "1800")],
            errors: &[],
            logs: &["SECRETS_MANAGER_TTL=1800: the AWS extension stops at 300 s"],
            cached: true,
        },
        Block {
            origin: "A container image's Dockerfile ENV lines",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "{port}"),
                ("SECRETS_MANAGER_TTL", "300"),
            ],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "CDK (Python) cache_size=10, secrets_manager_ttl=Duration.minutes(5)",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "10"),
                ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "{port}"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info"),
                ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "3"),
                ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
                ("SECRETS_MANAGER_TTL", "300"),
                ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "0"),
                ("SSM_PARAMETER_STORE_TTL", "300"),
            ],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "Terraform with upper-case values",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "TRUE"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "DEBUG"),
                ("SSM_PARAMETER_STORE_TTL", "60"),
            ],
            errors: &[],
            logs: &["cache hit"],
            cached: true,
        },
        Block {
            origin: "CDK secretsManagerTimeout / parameterStoreTimeout: Duration.seconds(10)",
            vars: &[
                ("SECRETS_MANAGER_TIMEOUT_MILLIS", "10000"),
                ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "10000"),
            ],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "MAX_CONNECTIONS=5000 (the AWS documentation: minimum 1, no maximum)",
            vars: &[("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "5000")],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin:
                "SECRETS_MANAGER_TIMEOUT_MILLIS=900000 (the AWS documentation: any whole number)",
            vars: &[("SECRETS_MANAGER_TIMEOUT_MILLIS", "900000")],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "Caching turned off (cacheEnabled: false, TTLs of 0)",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false"),
                ("SECRETS_MANAGER_TTL", "0"),
                ("SSM_PARAMETER_STORE_TTL", "0"),
            ],
            errors: &[],
            logs: &["fetched from upstream"],
            cached: false,
        },
        Block {
            origin: "The common PARAMETERS_AND_SECRETS_ misspelling of every variable",
            vars: &[
                ("PARAMETERS_AND_SECRETS_EXTENSION_CACHE_ENABLED", "true"),
                ("PARAMETERS_AND_SECRETS_EXTENSION_CACHE_SIZE", "1000"),
                ("PARAMETERS_AND_SECRETS_EXTENSION_LOG_LEVEL", "info"),
                ("PARAMETERS_AND_SECRETS_EXTENSION_MAX_CONNECTIONS", "3"),
            ],
            errors: &[],
            logs: &[
                "did you mean PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
                "did you mean PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
                "did you mean PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
                "did you mean PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
            ],
            cached: true,
        },
        Block {
            origin: "Go's strconv.ParseBool spellings: 1 and T",
            vars: &[("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "1")],
            errors: &[],
            logs: &["listening"],
            cached: true,
        },
        Block {
            origin: "Values nobody accepts: they get the default and one ERROR line each",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "lots"),
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "verbose"),
                ("SECRETS_MANAGER_TTL", "5m"),
            ],
            errors: &[
                "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
                "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
                "SECRETS_MANAGER_TTL",
            ],
            logs: &[
                "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE=\"lots\" is not valid",
                "using 1000 instead",
                "using info instead",
                "using 300 instead",
            ],
            cached: true,
        },
        Block {
            origin: "A TTL past a day is clamped to a day (the AWS extension clamps to 300 s)",
            vars: &[("SSM_PARAMETER_STORE_TTL", "100000")],
            errors: &[],
            logs: &[
                "SSM_PARAMETER_STORE_TTL=100000 is above the largest value we honour; using 86400",
            ],
            cached: true,
        },
        Block {
            origin: "Lambda's advanced logging controls only (AWS_LAMBDA_LOG_LEVEL=WARN)",
            vars: &[
                ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", ""),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
                ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "-5"),
            ],
            errors: &["PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"],
            logs: &["using 1000 instead"],
            cached: true,
        },
    ]
}

#[tokio::test]
async fn real_world_environment_blocks_start_serve_a_secret_and_log_what_they_should() {
    let moto = Moto::shared().await;
    let db = unique("app/db");
    seed::secret(
        &moto.sm_client().await,
        &db,
        "{\"password\":\"drop-in-canary\"}",
    )
    .await;
    let query = format!("secretId={db}");
    let blocks = blocks();
    assert!(blocks.len() >= 15, "at least a dozen real-world blocks");
    for block in blocks {
        let port = secretcache_tests::free_port();
        let token = secretcache_tests::random_token();
        let port_text = port.to_string();
        let vars: Vec<(&str, &str)> = block
            .vars
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *v == "{port}" {
                        port_text.as_str()
                    } else {
                        v
                    },
                )
            })
            .collect();
        // An empty override removes a base variable; the block's own empty values must reach the process as they
        // are, so they are set through the base environment instead.
        let mut env = base_env(&moto.endpoint(), port, &token);
        env.retain(|(k, _)| !vars.iter().any(|(o, _)| o == k));
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let ext = Standalone::spawn_with_env(env, &[], port, token);
        ext.wait_ready(Duration::from_secs(20)).await;
        let first = ext.get_secret(&query).await;
        assert_eq!(first.status, 200, "{}: {}", block.origin, first.text());
        assert_eq!(
            first.json()["SecretString"],
            "{\"password\":\"drop-in-canary\"}",
            "{}",
            block.origin
        );
        let second = ext.get_secret(&query).await;
        assert_eq!(second.status, 200, "{}", block.origin);
        let expected = if block.cached { "hit" } else { "miss" };
        assert_eq!(
            second.header("x-secretcache-cache"),
            Some(expected),
            "{}",
            block.origin
        );
        let logs = wait_for_logs(&ext, block.logs).await;
        let error_lines: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(
            error_lines.len(),
            block.errors.len(),
            "{}: {error_lines:#?}",
            block.origin
        );
        for var in block.errors {
            assert!(
                error_lines.iter().any(|l| l.contains(var)),
                "{}: no ERROR line names {var}:\n{logs}",
                block.origin
            );
        }
        if block.errors.is_empty() {
            assert!(!logs.contains("is not valid"), "{}: {logs}", block.origin);
        }
        assert!(
            !logs.contains("drop-in-canary"),
            "{}: secret logged",
            block.origin
        );
    }
}

/// Waits (at most 5 s) until every one of `wanted` is in the extension's log; returns the log.
async fn wait_for_logs(ext: &Standalone, wanted: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = ext.logs();
        if wanted.iter().all(|w| logs.contains(w)) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "the log never showed {wanted:?}:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_port_value_that_is_not_a_port_is_an_error_line_and_a_taken_port_says_what_to_change() {
    let moto = Moto::shared().await;
    // Taken: the one reason left to stop, with what to change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut ext =
        Standalone::spawn_with_env(base_env(&moto.endpoint(), port, "t"), &[], port, "t".into());
    let status = ext
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("it exits when the port is taken");
    assert!(!status.success());
    let logs = wait_for_logs(&ext, &["cannot listen on 127.0.0.1"]).await;
    assert!(
        logs.contains(&format!("{P}HTTP_PORT")) && logs.contains("free port"),
        "{logs}"
    );
    drop(taken);
    // Not a port: the default (2773) and one ERROR line naming the variable and the value used.
    let ext = Standalone::spawn_with_env(
        base_env(&moto.endpoint(), port, "t"),
        &[("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "http")],
        port,
        "t".into(),
    );
    let logs = wait_for_logs(&ext, &["\"http\" is not valid", "using 2773 instead"]).await;
    assert!(logs.contains(&format!("{P}HTTP_PORT")), "{logs}");
}

#[tokio::test]
async fn an_ipv6_client_is_served_on_the_same_port_and_cache() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        report::skipped(
            "this host has no IPv6 loopback, so ::1 was not checked; the IPv4-only start is covered by every other \
             test",
        );
        return;
    }
    let moto = Moto::shared().await;
    let v6 = unique("v6");
    seed::secret(&moto.sm_client().await, &v6, "over-ipv6").await;
    let ext = Standalone::spawn(moto, &[]).await;
    let token = ext.token();
    let v4 = ext.get_secret(&format!("secretId={v6}")).await;
    assert_eq!(v4.status, 200);
    let url = format!(
        "http://[::1]:{}/secretsmanager/get?secretId={v6}",
        ext.port()
    );
    let v6 = http::get(&url, &[(TOKEN_HEADER, &token)])
        .await
        .expect("a client that resolves localhost to ::1 connects");
    assert_eq!(v6.status, 200, "{}", v6.text());
    assert_eq!(v6.json()["SecretString"], "over-ipv6");
    assert_eq!(
        v6.header("x-secretcache-cache"),
        Some("hit"),
        "one cache for both"
    );
    // The same checks apply on ::1: no token, no service.
    let refused = http::get(&url, &[]).await.expect("request");
    assert_eq!(refused.status, 401);
    let ping = http::get(&format!("http://[::1]:{}/ping", ext.port()), &[])
        .await
        .expect("ping");
    assert_eq!(ping.status, 200);
}

#[tokio::test]
async fn selectors_duplicates_and_booleans_are_read_as_the_aws_extension_reads_them() {
    let moto = Moto::shared().await;
    let sm = moto.sm_client().await;
    let (sel, other, p) = (unique("sel"), unique("other"), unique("/sel/p"));
    let first = seed::secret(&sm, &sel, "one").await.version_id;
    seed::new_value(&sm, &sel, "two").await;
    seed::secret(&sm, &other, "other-value").await;
    let ssm = moto.ssm_client().await;
    for value in ["p-one", "p-two"] {
        seed::parameter_version(
            &ssm,
            &p,
            aws_sdk_ssm::types::ParameterType::SecureString,
            value,
        )
        .await;
    }
    ssm.label_parameter_version()
        .name(&p)
        .parameter_version(1)
        .labels("prod")
        .send()
        .await
        .expect("label");
    let ext = Standalone::spawn(moto, &[]).await;
    let secret = |q: String| {
        let ext = &ext;
        async move {
            let r = ext.get_secret(&q).await;
            (r.status, r.json())
        }
    };
    // versionId with versionStage goes upstream as given: Secrets Manager answers when they agree...
    let q = format!("secretId={sel}&versionId={first}&versionStage=AWSPREVIOUS");
    let r = ext.get_secret(&q).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["SecretString"], "one");
    // ...and refuses when they do not.
    let q = format!("secretId={sel}&versionId={first}&versionStage=AWSCURRENT");
    let r = ext.get_secret(&q).await;
    assert!(
        (400..500).contains(&r.status) && r.status != 401 && r.status != 403,
        "{} {}",
        r.status,
        r.text()
    );
    // A repeated parameter means its first value (Go's url.Values.Get).
    let (status, body) = secret(format!("secretId={sel}&secretId={other}")).await;
    assert_eq!((status, body["SecretString"].as_str()), (200, Some("two")));
    // refreshNow takes ParseBool's spellings.
    let r = ext
        .get_secret(&format!("secretId={sel}&refreshNow=T"))
        .await;
    assert_eq!(r.header("x-secretcache-cache"), Some("refresh"));
    let (status, _) = secret(format!("secretId={sel}&refreshNow=yes")).await;
    assert_eq!(status, 400);
    // SSM: with both version and label, the first one given wins; withDecryption=1 decrypts.
    let param = |q: String| {
        let (url, token) = (ext.url(), ext.token());
        async move {
            let r = http::get(
                &format!("{url}/systemsmanager/parameters/get?{q}"),
                &[(TOKEN_HEADER, &token)],
            )
            .await
            .expect("request");
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.json()["Parameter"]["Value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let p_encoded = p.replace('/', "%2F");
    assert_eq!(
        param(format!(
            "name={p_encoded}&version=2&label=prod&withDecryption=1"
        ))
        .await,
        "p-two"
    );
    assert_eq!(
        param(format!(
            "label=prod&name={p_encoded}&version=2&withDecryption=True"
        ))
        .await,
        "p-one"
    );
}

#[tokio::test]
async fn an_endpoint_override_that_is_not_a_url_is_an_error_line_and_a_502_naming_it() {
    let moto = Moto::shared().await;
    let ok = unique("/ep/ok");
    seed::parameter(
        &moto.ssm_client().await,
        &ok,
        aws_sdk_ssm::types::ParameterType::String,
        "still-works",
    )
    .await;
    // A common slip: the scheme left out. The SSM-specific variable is fine, so SSM keeps working.
    let ext = Standalone::spawn(
        moto,
        &[
            ("AWS_ENDPOINT_URL", "localhost:4566"),
            ("AWS_ENDPOINT_URL_SSM", &moto.endpoint()),
        ],
    )
    .await;
    let logs = wait_for_logs(&ext, &["AWS_ENDPOINT_URL=\"localhost:4566\" is not valid"]).await;
    assert!(logs.contains("ERROR"), "{logs}");
    let r = ext.get_secret("secretId=anything").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("AWS_ENDPOINT_URL"),
        "{}",
        r.text()
    );
    let p = http::get(
        &format!("{}/systemsmanager/parameters/get?name={ok}", ext.url()),
        &[(TOKEN_HEADER, &ext.token())],
    )
    .await
    .expect("request");
    assert_eq!(p.json()["Parameter"]["Value"], "still-works");
    let metrics = http::get(
        &format!("{}/metrics", ext.url()),
        &[(TOKEN_HEADER, &ext.token())],
    )
    .await
    .expect("metrics");
    assert!(
        metrics.text().contains("secretcache_config_errors 1"),
        "{}",
        metrics.text()
    );
}
