//! The `/items` function in-process, for its tests (`tests/items_*.rs`): real API Gateway HTTP API v2 and Function URL
//! events from `tests/fixtures/`, adjusted per request; the handler called with them without a socket; one
//! CRUD-and-paging scenario that runs unchanged on SQLite and PostgreSQL; per-test log capture; and, for the built
//! binary in the local Lambda environment, [`invoke`] with the same events and what its answer and logs say.

use std::collections::HashMap;

use http::StatusCode;
use items_function::config::Config;
use items_function::App;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::LambdaRequest;
use serde_json::{json, Value};

/// An HTTP API (payload 2.0) or Function URL event: Function URLs send the same shape.
pub type Event = ApiGatewayV2httpRequest;

const GET_ITEMS: &str = include_str!("../fixtures/apigw_v2_get_items.json");
const POST_ITEMS: &str = include_str!("../fixtures/apigw_v2_post_items.json");
const NAMED_STAGE: &str = include_str!("../fixtures/apigw_v2_named_stage.json");
const FUNCTION_URL_DELETE: &str = include_str!("../fixtures/function_url_delete_item.json");

/// A fixture event by file name, typed as `lambda_http` reads it.
pub fn fixture(name: &str) -> Event {
    serde_json::from_str(fixture_json(name)).expect("the fixture is an HTTP API event")
}

/// A fixture event by file name, as recorded.
pub fn fixture_json(name: &str) -> &'static str {
    match name {
        "apigw_v2_get_items" => GET_ITEMS,
        "apigw_v2_post_items" => POST_ITEMS,
        "apigw_v2_named_stage" => NAMED_STAGE,
        "function_url_delete_item" => FUNCTION_URL_DELETE,
        other => panic!("no fixture {other}"),
    }
}

/// `e` sent to `path_and_query`: the raw path and query, the route's path, and no parsed query parameters (as the
/// fixtures' own requests had none; the handler reads the raw query).
pub fn retarget(e: &mut Event, path_and_query: &str) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    e.raw_path = Some(path.to_owned());
    e.raw_query_string = Some(query.to_owned());
    e.query_string_parameters = QueryMap::default();
    e.request_context.http.path = Some(path.to_owned());
}

/// An event for `method` on `path_and_query`, built from the closest real fixture (POST from the HTTP API POST
/// event, DELETE from the Function URL event, everything else from the HTTP API GET event).
pub fn event(method: &str, path_and_query: &str, body: Option<&str>) -> Event {
    let mut e = fixture(fixture_for(method));
    retarget(&mut e, path_and_query);
    e.request_context.http.method = method.parse().expect("an HTTP method");
    e.body = body.map(str::to_owned);
    e
}

fn fixture_for(method: &str) -> &'static str {
    match method {
        "POST" => "apigw_v2_post_items",
        "DELETE" => "function_url_delete_item",
        _ => "apigw_v2_get_items",
    }
}

/// [`event`] as the JSON a runtime receives: the recorded fixture's document with the fields [`event`] sets
/// replaced, so nothing the real event lacks is added (serialising [`Event`] itself would add fields only custom
/// authorizers send, among them a top-level `httpMethod` of `GET` on every request).
pub fn event_json(method: &str, path_and_query: &str, body: Option<&str>) -> Value {
    let e = event(method, path_and_query, body);
    let mut doc: Value = serde_json::from_str(fixture_json(fixture_for(method))).expect("JSON");
    doc["rawPath"] = json!(e.raw_path);
    doc["rawQueryString"] = json!(e.raw_query_string);
    doc["queryStringParameters"] = Value::Null;
    doc["requestContext"]["http"]["method"] = json!(e.request_context.http.method.as_str());
    doc["requestContext"]["http"]["path"] = json!(e.request_context.http.path);
    doc["body"] = json!(e.body);
    doc
}

/// The event as the `lambda_http` request the runtime would hand the handler.
pub fn request(event: &Event) -> lambda_http::Request {
    LambdaRequest::ApiGatewayV2(event.clone()).into()
}

/// A response, with its body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

/// Calls the handler with `event`.
pub async fn call_event(app: &App, event: &Event) -> Reply {
    let response = items_function::handle(app, request(event)).await;
    let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        },
        text,
    }
}

/// Calls the handler with `method path` and an optional body.
pub async fn call(app: &App, method: &str, path: &str, body: Option<&str>) -> Reply {
    call_event(app, &event(method, path, body)).await
}

/// An app from `pairs`, as if they were the whole environment.
pub fn app(pairs: &[(&str, &str)]) -> App {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    App::new(&Config::from_env(&env).expect("valid config")).expect("app")
}

fn ids(page: &Value) -> Vec<i64> {
    page.as_array()
        .expect("the body is a JSON array of items")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// The whole API against an empty database: create, page, get, delete, and every 400/404/405.
pub async fn crud_and_paging(app: &App, database: &str) {
    let r = call(app, "GET", "/health", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"status": "ok", "database": database}));

    // The seed note's exact request, on an empty table: "200 OK with items list (or empty array if no items)".
    let r = call(app, "GET", "/items?limit=50&offset=0", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!([]));
    assert_eq!(r.text, "[]");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-total-count"], "0");
    assert!(r.headers.get("link").is_none(), "no next page");

    // The POST fixture's own body.
    let r = call_event(app, &fixture("apigw_v2_post_items")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "Teapot");
    assert_eq!(r.body["description"], "short and stout");
    let teapot = r.body["id"].as_i64().expect("id");
    assert_eq!(r.headers["location"], format!("/items/{teapot}"));

    let mut created = vec![teapot];
    for n in 2..=5 {
        let body = json!({"name": format!("  item {n} ☕ "), "description": null}).to_string();
        let r = call(app, "POST", "/items", Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(
            r.body["name"],
            format!("item {n} ☕"),
            "names are trimmed, Unicode kept"
        );
        assert_eq!(r.body["description"], Value::Null);
        created.push(r.body["id"].as_i64().expect("id"));
    }
    assert!(
        created.windows(2).all(|w| w[0] < w[1]),
        "ids ascend: {created:?}"
    );

    // Default page.
    let r = call(app, "GET", "/items", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.body), created);
    assert_eq!(r.headers["x-total-count"], "5");
    assert!(r.headers.get("link").is_none(), "{:?}", r.headers);

    // Paging by two: follow the Link header's rel="next" to the end, as a client would.
    let mut seen = Vec::new();
    let mut next = Some("/items?limit=2&offset=0".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let r = call(app, "GET", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.headers["x-total-count"], "5");
        assert!(ids(&r.body).len() <= 2);
        seen.extend(ids(&r.body));
        next = r
            .headers
            .get("link")
            .map(|l| next_link(l.to_str().expect("ASCII")));
        pages += 1;
        assert!(pages <= 3, "paging must end");
    }
    assert_eq!(seen, created);
    assert_eq!(pages, 3);

    // Past the end: an empty array, not an error.
    let r = call(app, "GET", "/items?limit=10&offset=100", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!([]));
    assert_eq!(r.headers["x-total-count"], "5");
    assert!(r.headers.get("link").is_none());

    // Get one.
    let r = call(app, "GET", &format!("/items/{teapot}"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": teapot, "name": "Teapot", "description": "short and stout"})
    );

    // Delete through the Function URL fixture.
    let mut e = fixture("function_url_delete_item");
    e.raw_path = Some(format!("/items/{teapot}"));
    e.request_context.http.path = Some(format!("/items/{teapot}"));
    let r = call_event(app, &e).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let r = call_event(app, &e).await;
    assert_eq!(r.status, 404, "deleting twice: {}", r.text);
    assert_eq!(r.body["error"], "not_found");
    let r = call(app, "GET", &format!("/items/{teapot}"), None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["message"], "the item does not exist");
    let r = call(app, "GET", "/items", None).await;
    assert_eq!(r.headers["x-total-count"], "4");

    // A named stage: the stage prefix is not part of the route, but it is part of the next page's link.
    let r = call_event(app, &fixture("apigw_v2_named_stage")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut e = fixture("apigw_v2_named_stage");
    let stage = e.request_context.stage.clone().expect("a stage");
    e.raw_path = Some(format!("/{stage}/items"));
    e.request_context.http.path = Some(format!("/{stage}/items"));
    e.query_string_parameters =
        QueryMap::from(HashMap::from([("limit".to_owned(), vec!["1".to_owned()])]));
    e.raw_query_string = Some("limit=1".to_owned());
    let r = call_event(app, &e).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers["link"],
        format!("</{stage}/items?limit=1&offset=1>; rel=\"next\"")
    );

    client_errors(app).await;
}

/// The target of a `Link: <...>; rel="next"` header.
pub fn next_link(link: &str) -> String {
    let (target, rel) = link.split_once(';').expect("<target>; rel");
    assert_eq!(rel.trim(), "rel=\"next\"", "{link}");
    target
        .trim()
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .expect("<target>")
        .to_owned()
}

/// Every 4xx, each with a JSON body that says what to fix, and never the path it was sent to.
pub async fn client_errors(app: &App) {
    for (method, path, body, status, needle) in [
        ("GET", "/items?limit=0", None, 400, "limit"),
        ("GET", "/items?limit=101", None, 400, "limit"),
        ("GET", "/items?limit=ten", None, 400, "limit"),
        ("GET", "/items?limit=", None, 400, "limit"),
        ("GET", "/items?offset=-1", None, 400, "offset"),
        ("GET", "/items?offset=x", None, 400, "offset"),
        ("GET", "/items/abc", None, 400, "id"),
        ("GET", "/items/0", None, 400, "id"),
        ("GET", "/items/999999999", None, 404, "does not exist"),
        ("DELETE", "/items/999999999", None, 404, "does not exist"),
        ("POST", "/items", None, 400, "required"),
        ("POST", "/items", Some("{not json"), 400, "invalid JSON"),
        ("POST", "/items", Some(r#"{"name":""}"#), 400, "name"),
        (
            "POST",
            "/items",
            Some(r#"{"description":"x"}"#),
            400,
            "name",
        ),
        (
            "POST",
            "/items",
            Some(r#"{"name":"x","price":3}"#),
            400,
            "price",
        ),
        ("PUT", "/items", None, 405, "allowed"),
        ("PATCH", "/items/1", None, 405, "allowed"),
        ("GET", "/nope", None, 404, "no such route"),
        ("GET", "/items/1/2", None, 404, "no such route"),
        ("GET", "/wp-admin/<script>", None, 404, "no such route"),
        (
            "POST",
            "/items",
            Some(r#"{"name":"x","description":"a NUL \u0000 inside"}"#),
            400,
            "control characters",
        ),
        (
            "POST",
            "/items",
            Some(r#"{"name":"x\u0000"}"#),
            400,
            "control characters",
        ),
    ] {
        let r = call(app, method, path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{method} {path}: {message:?} should mention {needle:?}"
        );
        let path_only = path.split('?').next().unwrap_or(path);
        if path_only != "/items" {
            assert!(
                !r.text.contains(path_only),
                "the body echoes the path: {}",
                r.text
            );
        }
    }
    let long = json!({"name": "x".repeat(201)}).to_string();
    let r = call(app, "POST", "/items", Some(&long)).await;
    assert_eq!(r.status, 400, "{}", r.text);

    let mut e = event("POST", "/items", Some(r#"{"name":"x"}"#));
    e.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    let r = call_event(app, &e).await;
    assert_eq!(r.status, 415, "{}", r.text);
}

/// Sends one API Gateway event to the function in `env`, `method path` with `body` as [`event_json`] builds it, and
/// returns the function's response (the API Gateway v2 response JSON), or `{"runtimeError": <error document>}`.
pub async fn invoke(
    env: &lambda_env::LambdaEnv,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Value {
    let event = event_json(method, path, body);
    let invoked = env
        .invoke(event.to_string().into())
        .await
        .expect("the invoke runs");
    match invoked.outcome {
        lambda_env::Outcome::Response(body) => serde_json::from_slice(&body).unwrap_or(Value::Null),
        lambda_env::Outcome::Error { body, .. } => {
            json!({"runtimeError": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)})
        }
    }
}

/// The status and the JSON body (`Null` when empty) of a response [`invoke`] returned; status 0 when it is not one.
pub fn status_and_body(response: &Value) -> (u64, Value) {
    let status = response["statusCode"].as_u64().unwrap_or(0);
    let body = response["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).expect("JSON body"))
        .unwrap_or(Value::Null);
    (status, body)
}

/// Every line the function (`runtime`) in `env` printed.
pub fn function_logs(env: &lambda_env::LambdaEnv) -> String {
    env.logs()
        .iter()
        .filter(|l| l.source == "runtime")
        .map(|l| format!("{}\n", l.text))
        .collect()
}

#[derive(Debug)]
struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut l) = self.0.lock() {
            l.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The logs of one test: everything it logs through `tracing` at DEBUG and above, on its own thread, while the
/// guard lives. Tests run in parallel in one process; a scoped subscriber keeps each test's lines its own, so an
/// assertion can neither see another test's lines nor miss its own. (`#[tokio::test]` runs every task of the test on
/// the test's thread; SQLite's worker thread is not captured, and logs nothing of ours.)
pub struct Logs {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Starts capturing this test's logs; call it first thing in a test, before anything logs.
pub fn capture() -> Logs {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || LogWriter(std::sync::Arc::clone(&sink)))
        .finish();
    Logs {
        buffer,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

impl Logs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.buffer
            .lock()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    }

    /// The captured lines that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}
