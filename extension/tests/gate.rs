//! The request gate, in process: every check a request passes before the cache sees it (token, forwarding headers,
//! method, path, URI length, query), and what each answers, table-driven through `server::handle` with no socket.
//!
//! The upstream is a stub that answers from a fixed table: it stands in for Secrets Manager only so these checks run
//! in milliseconds; the same answers against the real moto are in `tests/tests/extension_*.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use secretcache::embed::Key;
use secretcache::embed::Metrics;
use secretcache::embed::SecretBody;
use secretcache::embed::SystemWallClock;
use secretcache::embed::Tokens;
use secretcache::embed::UpstreamError;
use secretcache::embed::{handle, App};
use secretcache::embed::{Cache, Fetched, Meta, Policy, Upstream};
use secretcache::embed::{Config, AWS_SESSION_TOKEN};

const TOKEN: &str = "gate-test-token";

/// Answers `db` (a JSON secret at version `v-1`) and `/p` (a parameter); anything else is not found.
#[derive(Debug)]
struct StubUpstream;

impl Upstream for StubUpstream {
    async fn fetch(&self, key: &Key) -> Result<Fetched, UpstreamError> {
        let (body, version) = match key {
            Key::Secret(k) if k.secret_id == "db" => (
                r#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf","Name":"db","SecretString":"{\"password\":\"pw\"}","VersionId":"v-1","ResultMetadata":{}}"#,
                "v-1",
            ),
            Key::Parameter(k) if k.name == "/p" => (
                r#"{"Parameter":{"Name":"/p","Value":"pv","Version":3},"ResultMetadata":{}}"#,
                "3",
            ),
            _ => {
                return Err(UpstreamError::NotFound {
                    code: "ResourceNotFoundException".into(),
                    message: "not here".into(),
                })
            }
        };
        Ok(Fetched {
            body: SecretBody::new(body.as_bytes().to_vec()),
            meta: Meta {
                arn: None,
                name: None,
                version: Some(version.into()),
            },
        })
    }
}

fn app() -> App<StubUpstream> {
    let env: HashMap<String, String> = [(AWS_SESSION_TOKEN.to_owned(), TOKEN.to_owned())].into();
    let config = Config::from_env(&env);
    let cache = Cache::new(
        StubUpstream,
        SystemWallClock,
        Policy::from(&config),
        Arc::new(Metrics::default()),
    );
    App::new(
        cache,
        Tokens::new(config.tokens.clone()),
        &config.token_headers,
        config.path_prefix.clone(),
        Arc::new(Metrics::default()),
    )
}

struct Case {
    name: &'static str,
    method: Method,
    target: String,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// The AWS-style `__type` of an error body.
    error: Option<&'static str>,
}

fn get(name: &'static str, target: &str, headers: &[(&'static str, &str)], status: u16) -> Case {
    Case {
        name,
        method: Method::GET,
        target: target.to_owned(),
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        status,
        error: None,
    }
}

fn err(mut c: Case, kind: &'static str) -> Case {
    c.error = Some(kind);
    c
}

async fn run(app: &App<StubUpstream>, c: &Case) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut req = Request::builder().method(c.method.clone()).uri(&c.target);
    for (k, v) in &c.headers {
        req = req.header(*k, v);
    }
    let resp = handle(app, req.body(()).expect("request")).await;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn every_check_answers_as_the_contract_says() {
    let app = app();
    let t = ("x-aws-parameters-secrets-token", TOKEN);
    let long = format!("/secretsmanager/get?secretId={}", "a".repeat(9 * 1024));
    let cases = vec![
        get("ping needs no token", "/ping", &[], 200),
        err(
            get("no token", "/secretsmanager/get?secretId=db", &[], 401),
            "MissingAuthenticationTokenException",
        ),
        err(
            get(
                "wrong token",
                "/secretsmanager/get?secretId=db",
                &[("x-aws-parameters-secrets-token", "nope")],
                403,
            ),
            "InvalidAuthenticationTokenException",
        ),
        err(
            get(
                "a token's prefix",
                "/secretsmanager/get?secretId=db",
                &[("x-aws-parameters-secrets-token", "gate-test")],
                403,
            ),
            "InvalidAuthenticationTokenException",
        ),
        get(
            "the right token",
            "/secretsmanager/get?secretId=db",
            &[t],
            200,
        ),
        get(
            "the header name in any case",
            "/secretsmanager/get?secretId=db",
            &[("X-AWS-Parameters-SECRETS-Token", TOKEN)],
            200,
        ),
        get(
            "X-Vault-Token, as the Agent",
            "/secretsmanager/get?secretId=db",
            &[("x-vault-token", TOKEN)],
            200,
        ),
        err(
            get(
                "the token twice",
                "/secretsmanager/get?secretId=db",
                &[t, t],
                400,
            ),
            "InvalidRequestException",
        ),
        err(
            get(
                "X-Forwarded-For",
                "/secretsmanager/get?secretId=db",
                &[t, ("x-forwarded-for", "10.0.0.1")],
                400,
            ),
            "ForwardedRequestException",
        ),
        err(
            get(
                "Forwarded",
                "/secretsmanager/get?secretId=db",
                &[t, ("forwarded", "for=10.0.0.1")],
                400,
            ),
            "ForwardedRequestException",
        ),
        err(
            get(
                "X-Forwarded-For on /ping",
                "/ping",
                &[("x-forwarded-for", "1.2.3.4")],
                400,
            ),
            "ForwardedRequestException",
        ),
        err(
            Case {
                method: Method::POST,
                ..get("POST", "/secretsmanager/get?secretId=db", &[t], 405)
            },
            "MethodNotAllowedException",
        ),
        err(
            Case {
                method: Method::DELETE,
                ..get("DELETE", "/secretsmanager/get?secretId=db", &[t], 405)
            },
            "MethodNotAllowedException",
        ),
        Case {
            method: Method::HEAD,
            ..get("HEAD", "/secretsmanager/get?secretId=db", &[t], 200)
        },
        err(
            get("unknown path", "/secretsmanager-v2/list", &[t], 404),
            "UnknownOperationException",
        ),
        err(
            get("unknown path without a token", "/admin", &[], 401),
            "MissingAuthenticationTokenException",
        ),
        err(
            get("metrics without a token", "/metrics", &[], 401),
            "MissingAuthenticationTokenException",
        ),
        get("metrics with the token", "/metrics", &[t], 200),
        err(
            get("an overlong URI", &long, &[t], 414),
            "InvalidRequestException",
        ),
        err(
            get("no secretId", "/secretsmanager/get", &[t], 400),
            "InvalidParameterException",
        ),
        err(
            get(
                "bad percent-encoding",
                "/secretsmanager/get?secretId=%zz",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        err(
            get("a NUL", "/secretsmanager/get?secretId=a%00", &[t], 400),
            "InvalidParameterException",
        ),
        err(
            get(
                "an ARN whose region is not in AWS's form",
                "/secretsmanager/get?secretId=arn:aws:secretsmanager:Made-Up:1:secret:x-AbCdEf",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        err(
            get(
                "a batch naming a region not in AWS's form",
                "/secretsmanager/batch?secretId=db&secretId=arn:aws:secretsmanager:nowhere:1:secret:x",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        err(
            get(
                "refreshNow=yes",
                "/secretsmanager/get?secretId=db&refreshNow=yes",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        get(
            "refreshNow=T, as ParseBool",
            "/secretsmanager/get?secretId=db&refreshNow=T",
            &[t],
            200,
        ),
        get(
            "a repeated parameter, the first wins",
            "/secretsmanager/get?secretId=db&secretId=gone",
            &[t],
            200,
        ),
        err(
            get(
                "not found upstream",
                "/secretsmanager/get?secretId=gone",
                &[t],
                404,
            ),
            "ResourceNotFoundException",
        ),
        get(
            "a field",
            "/secretsmanager/get?secretId=db&field=password",
            &[t],
            200,
        ),
        err(
            get(
                "a missing field",
                "/secretsmanager/get?secretId=db&field=user",
                &[t],
                404,
            ),
            "FieldNotFoundException",
        ),
        get(
            "a parameter",
            "/systemsmanager/parameters/get?name=/p",
            &[t],
            200,
        ),
        get(
            "a parameter, trailing slash",
            "/systemsmanager/parameters/get/?name=/p",
            &[t],
            200,
        ),
        err(
            get(
                "a parameter without a name",
                "/systemsmanager/parameters/get",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        get(
            "a batch",
            "/secretsmanager/batch?secretId=db&secretId=gone",
            &[t],
            200,
        ),
        err(
            get("an empty batch", "/secretsmanager/batch", &[t], 400),
            "InvalidParameterException",
        ),
        get(
            "a parameter batch",
            "/systemsmanager/parameters/batch?name=/p",
            &[t],
            200,
        ),
        get(
            "the Agent's path read",
            "/v1/db",
            &[("x-vault-token", TOKEN)],
            200,
        ),
        err(
            get("the Agent's path read without an id", "/v1/", &[t], 400),
            "InvalidParameterException",
        ),
        get(
            "the current version's ETag",
            "/secretsmanager/get?secretId=db",
            &[t, ("if-none-match", "\"v-1\"")],
            304,
        ),
        get(
            "a stale ETag",
            "/secretsmanager/get?secretId=db",
            &[t, ("if-none-match", "\"v-0\"")],
            200,
        ),
        err(
            get(
                "a roleArn that is not a role's ARN",
                "/secretsmanager/get?secretId=db&roleArn=arn:aws:iam::1:user/x",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        err(
            get(
                "a roleArn where the upstream cannot act as a role",
                "/secretsmanager/db?roleArn=arn:aws:iam::111111111111:role/r",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
        get(
            "Cloud Extensions' path route",
            "/secretsmanager/db",
            &[t],
            200,
        ),
        get(
            "the query route with a trailing slash",
            "/secretsmanager/get/?secretId=db",
            &[t],
            200,
        ),
        get(
            "a batch with a trailing slash",
            "/secretsmanager/batch/?secretId=db",
            &[t],
            200,
        ),
        err(
            get("a path route without a token", "/secretsmanager/db", &[], 401),
            "MissingAuthenticationTokenException",
        ),
        err(
            get(
                "a path route with X-Forwarded-For",
                "/secretsmanager/db",
                &[t, ("x-forwarded-for", "10.0.0.1")],
                400,
            ),
            "ForwardedRequestException",
        ),
        err(
            get("a path route to a secret that is not there", "/secretsmanager/gone", &[t], 404),
            "ResourceNotFoundException",
        ),
        get(
            "a parameter's path route, its slash encoded",
            "/systemsmanager/parameters/%2Fp",
            &[t],
            200,
        ),
        get(
            "a parameter's path route, its slash doubled",
            "/systemsmanager/parameters//p?withDecryption=true",
            &[t],
            200,
        ),
        err(
            get(
                "a parameter's path route, a bad encoding",
                "/systemsmanager/parameters/%zz",
                &[t],
                400,
            ),
            "InvalidParameterException",
        ),
    ];
    assert!(cases.len() >= 35);
    let mut failures = Vec::new();
    for c in &cases {
        let (status, headers, body) = run(&app, c).await;
        if status.as_u16() != c.status {
            failures.push(format!(
                "{}: {} (want {}): {}",
                c.name,
                status,
                c.status,
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        if let Some(kind) = c.error {
            let v: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(_) => {
                    failures.push(format!("{}: not a JSON error body", c.name));
                    continue;
                }
            };
            if v["__type"] != kind || v["message"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{}: body {v} (want __type {kind})", c.name));
            }
            if headers
                .get("content-type")
                .is_none_or(|ct| ct != "application/json")
            {
                failures.push(format!("{}: error without application/json", c.name));
            }
            if headers.get("x-amzn-errortype").is_none_or(|t| t != kind) {
                failures.push(format!("{}: X-Amzn-Errortype is not {kind}", c.name));
            }
        }
        // A secret's value never leaves through an error body.
        if status.as_u16() >= 400 && String::from_utf8_lossy(&body).contains("\"pw\"") {
            failures.push(format!("{}: an error body holds the value", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn successes_carry_the_cache_headers_and_the_etag() {
    let app = app();
    let t = ("x-aws-parameters-secrets-token", TOKEN);
    let c = get("first", "/secretsmanager/get?secretId=db", &[t], 200);
    let (_, h, _) = run(&app, &c).await;
    assert_eq!(
        h.get("x-secretcache-cache").map(|v| v.as_bytes()),
        Some(&b"miss"[..])
    );
    assert_eq!(h.get("etag").map(|v| v.as_bytes()), Some(&b"\"v-1\""[..]));
    let (_, h, body) = run(&app, &c).await;
    assert_eq!(
        h.get("x-secretcache-cache").map(|v| v.as_bytes()),
        Some(&b"hit"[..])
    );
    assert!(body.starts_with(b"{\"ARN\""));
    let field = get(
        "field",
        "/secretsmanager/get?secretId=db&field=password",
        &[t],
        200,
    );
    let (_, h, body) = run(&app, &field).await;
    assert_eq!(&body[..], b"pw");
    assert!(h
        .get("content-type")
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/plain")));
    // A field is another representation of the version: its own ETag, and the whole body's never answers it 304.
    let field_tag = h
        .get("etag")
        .expect("a field's ETag")
        .to_str()
        .expect("text")
        .to_owned();
    assert_ne!(field_tag, "\"v-1\"");
    for (tag, status) in [("\"v-1\"", 200), (field_tag.as_str(), 304)] {
        let c = get(
            "field with a tag",
            "/secretsmanager/get?secretId=db&field=password",
            &[t, ("if-none-match", tag)],
            status,
        );
        assert_eq!(run(&app, &c).await.0.as_u16(), status, "{tag}");
    }
    let other_field = get(
        "f",
        "/secretsmanager/get?secretId=db&field=username",
        &[t, ("if-none-match", &field_tag)],
        0,
    );
    assert_ne!(run(&app, &other_field).await.0.as_u16(), 304);
}

/// A parameter read without decryption may be the ciphertext of the version read with it: never one tag for both.
#[tokio::test]
async fn a_parameters_etag_differs_between_decrypted_and_not() {
    let app = app();
    let t = ("x-aws-parameters-secrets-token", TOKEN);
    let tag = |h: &http::HeaderMap| {
        h.get("etag")
            .expect("an ETag")
            .to_str()
            .expect("text")
            .to_owned()
    };
    let plain = get(
        "d",
        "/systemsmanager/parameters/get?name=/p&withDecryption=true",
        &[t],
        200,
    );
    let decrypted = tag(&run(&app, &plain).await.1);
    let raw = get("e", "/systemsmanager/parameters/get?name=/p", &[t], 200);
    let encrypted = tag(&run(&app, &raw).await.1);
    assert_ne!(decrypted, encrypted);
    let cross = get(
        "cross",
        "/systemsmanager/parameters/get?name=/p",
        &[t, ("if-none-match", &decrypted)],
        200,
    );
    assert_eq!(run(&app, &cross).await.0.as_u16(), 200);
}
