//! API Gateway HTTP API (payload format 2.0) in both directions: an HTTP request becomes the event Lambda receives,
//! and the function's answer becomes the HTTP response, by the rules in the API Gateway documentation:
//!
//! - header names are lower-cased and repeated headers joined with commas; `Cookie` moves to `cookies`;
//! - `queryStringParameters` are decoded, repeated keys joined with commas; `rawQueryString` stays as sent;
//! - a body that is not UTF-8 is base64-encoded with `isBase64Encoded: true`;
//! - an answer with a `statusCode` is used as is; any other JSON answer is a 200 `application/json` with that JSON
//!   as its body; a function error is a 500 `{"message":"Internal Server Error"}`, a timeout a 503.
//!
//! Pure functions, so they are tested without a socket, and against `aws_lambda_events`' types (what `lambda_http`
//! reads). The event is built here rather than by serialising `aws_lambda_events::apigw::ApiGatewayV2httpRequest`:
//! that type also writes the fields of custom-authorizer payloads that API Gateway never sends in an HTTP API event
//! (`type`, `methodArn`, `identitySource`, `authorizationToken`, `resource`, `stageVariables`, and `httpMethod`,
//! always `"GET"`, even for a POST), and the front door feeds Python and Node functions too, whose libraries may read
//! any of them.

use base64::Engine;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

/// The parts of an HTTP request that go into the event.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, still percent-encoded.
    pub path: &'a str,
    /// The query string without `?` (empty when none).
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
    /// The client's address.
    pub source_ip: &'a str,
}

/// Identifiers API Gateway puts in `requestContext`.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The account of the API.
    pub account_id: &'a str,
    /// API Gateway's request id.
    pub request_id: &'a str,
    /// Now, in epoch milliseconds.
    pub now_ms: u64,
}

/// The API id of the local front door.
pub const API_ID: &str = "lambdaenv";

/// The payload-2.0 event for `req`, routed by the `$default` route of the `$default` stage.
pub fn http_api_v2_event(req: &HttpRequest<'_>, ctx: &Context<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in req.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        let key = name.as_str().to_owned();
        match headers.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(key, Value::String(value));
            }
        }
    }
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_owned();
    // API Gateway adds these for the function; the client's own X-Forwarded-For is kept in front of its address.
    let forwarded = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(existing) => format!("{existing}, {}", req.source_ip),
        None => req.source_ip.to_owned(),
    };
    headers.insert("x-forwarded-for".to_owned(), json!(forwarded));
    headers.insert("x-forwarded-proto".to_owned(), json!("http"));
    headers.insert(
        "x-forwarded-port".to_owned(),
        json!(host.rsplit_once(':').map_or("80", |(_, p)| p)),
    );
    headers.insert("x-amzn-trace-id".to_owned(), json!(crate::ids::trace_id()));

    let mut params = Map::new();
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match params.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": ctx.account_id,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(['.', ':']).next().unwrap_or_default(),
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": ctx.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": crate::ids::apigw_time(ctx.now_ms),
            "timeEpoch": ctx.now_ms,
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !params.is_empty() {
        event["queryStringParameters"] = Value::Object(params);
    }
    if !req.body.is_empty() {
        match std::str::from_utf8(req.body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(req.body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// An HTTP response for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status.
    pub status: u16,
    /// The headers, in order (`set-cookie` may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The HTTP response for the function's answer `payload`.
pub fn http_api_v2_response(payload: &[u8]) -> HttpResponse {
    let value: Option<Value> = serde_json::from_slice(payload).ok();
    let Some(Value::Object(doc)) = value.as_ref().filter(|v| v.get("statusCode").is_some()) else {
        // No statusCode: API Gateway takes the whole answer as a JSON body.
        return match value {
            Some(_) => HttpResponse {
                status: 200,
                headers: vec![("content-type".to_owned(), "application/json".to_owned())],
                body: payload.to_vec(),
            },
            None => internal_error(),
        };
    };
    let status = doc
        .get("statusCode")
        .and_then(|s| {
            s.as_u64()
                .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
        })
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s));
    let Some(status) = status else {
        return internal_error();
    };
    let mut headers = Vec::new();
    if let Some(Value::Object(h)) = doc.get("headers") {
        for (k, v) in h {
            headers.push((k.to_ascii_lowercase(), scalar(v)));
        }
    }
    if let Some(Value::Object(h)) = doc.get("multiValueHeaders") {
        for (k, values) in h {
            for v in values.as_array().into_iter().flatten() {
                headers.push((k.to_ascii_lowercase(), scalar(v)));
            }
        }
    }
    for cookie in doc
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        headers.push(("set-cookie".to_owned(), scalar(cookie)));
    }
    let text = doc.get("body").map(scalar).unwrap_or_default();
    let body = if doc.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
            Ok(bytes) => bytes,
            Err(_) => return internal_error(),
        }
    } else {
        text.into_bytes()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What API Gateway answers when the function failed.
pub fn internal_error() -> HttpResponse {
    message(500, "Internal Server Error")
}

/// What API Gateway answers when the function timed out.
pub fn service_unavailable() -> HttpResponse {
    message(503, "Service Unavailable")
}

fn message(status: u16, text: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: json!({"message": text}).to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const CTX: Context<'static> = Context {
        account_id: "123456789012",
        request_id: "req-1",
        now_ms: 1_710_324_932_123,
    };

    #[test]
    fn a_curl_get_becomes_the_recorded_event_shape() {
        let h = headers(&[
            ("host", "127.0.0.1:9000"),
            ("user-agent", "curl/8.5.0"),
            ("accept", "*/*"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("cookie", "a=1; b=2"),
        ]);
        let req = HttpRequest {
            method: "GET",
            path: "/items",
            query: "limit=5&tag=a%20b&tag=c",
            headers: &h,
            body: b"",
            source_ip: "127.0.0.1",
        };
        let e = http_api_v2_event(&req, &CTX);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/items");
        assert_eq!(e["rawQueryString"], "limit=5&tag=a%20b&tag=c");
        assert_eq!(
            e["queryStringParameters"],
            json!({"limit": "5", "tag": "a b,c"})
        );
        assert_eq!(e["headers"]["x-multi"], "a,b");
        assert_eq!(e["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(e["headers"]["x-forwarded-port"], "9000");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["requestContext"]["http"]["method"], "GET");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "curl/8.5.0");
        assert_eq!(e["requestContext"]["time"], "13/Mar/2024:10:15:32 +0000");
        assert_eq!(e["requestContext"]["timeEpoch"], 1_710_324_932_123_u64);
        assert!(e.get("body").is_none());
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let h = headers(&[("host", "localhost")]);
        let req = HttpRequest {
            method: "POST",
            path: "/x",
            query: "",
            headers: &h,
            body: &[0xff, 0x00],
            source_ip: "127.0.0.1",
        };
        let e = http_api_v2_event(&req, &CTX);
        assert_eq!(e["body"], "/wA=");
        assert_eq!(e["isBase64Encoded"], true);
        assert!(e.get("queryStringParameters").is_none());
    }

    #[test]
    fn the_event_reads_as_the_type_lambda_http_reads() {
        use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
        let h = headers(&[
            ("host", "127.0.0.1:9000"),
            ("cookie", "a=1"),
            ("x-multi", "a"),
        ]);
        let req = HttpRequest {
            method: "POST",
            path: "/items/7",
            query: "limit=5&tag=a%20b",
            headers: &h,
            body: br#"{"name":"x"}"#,
            source_ip: "127.0.0.1",
        };
        let e = http_api_v2_event(&req, &CTX);
        let typed: ApiGatewayV2httpRequest =
            serde_json::from_value(e.clone()).expect("a payload 2.0 event");
        assert_eq!(typed.version.as_deref(), Some("2.0"));
        assert_eq!(typed.request_context.http.method, http::Method::POST);
        assert_eq!(typed.raw_path.as_deref(), Some("/items/7"));
        assert_eq!(typed.raw_query_string.as_deref(), Some("limit=5&tag=a%20b"));
        assert_eq!(typed.query_string_parameters.first("tag"), Some("a b"));
        assert_eq!(typed.cookies, Some(vec!["a=1".to_owned()]));
        assert_eq!(typed.headers["x-multi"], "a");
        assert_eq!(typed.body.as_deref(), Some(r#"{"name":"x"}"#));
        assert!(!typed.is_base64_encoded);
        assert_eq!(typed.request_context.time_epoch, 1_710_324_932_123);
        // And nothing of the custom-authorizer payloads, which serialising the type would add.
        for absent in [
            "httpMethod",
            "type",
            "methodArn",
            "resource",
            "stageVariables",
        ] {
            assert!(e.get(absent).is_none(), "{absent}: {e}");
        }
    }

    #[test]
    fn a_response_written_by_the_typed_struct_is_read_right() {
        use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
        use aws_lambda_events::encodings::Body;
        let mut typed = ApiGatewayV2httpResponse::default();
        typed.status_code = 201;
        typed.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        typed.body = Some(Body::Text(r#"{"id":1}"#.to_owned()));
        typed.cookies = vec!["s=1".to_owned()];
        let payload = serde_json::to_vec(&typed).expect("JSON");
        let r = http_api_v2_response(&payload);
        assert_eq!(r.status, 201);
        assert!(r
            .headers
            .contains(&("content-type".to_owned(), "application/json".to_owned())));
        assert!(r
            .headers
            .contains(&("set-cookie".to_owned(), "s=1".to_owned())));
        assert_eq!(r.body, br#"{"id":1}"#);
    }

    #[test]
    fn responses_follow_payload_format_2() {
        let r = http_api_v2_response(
            br#"{"statusCode":503,"headers":{"Content-Type":"application/json"},"cookies":["s=1"],"body":"{\"a\":1}","isBase64Encoded":false}"#,
        );
        assert_eq!(r.status, 503);
        assert_eq!(
            r.headers,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("set-cookie".to_owned(), "s=1".to_owned())
            ]
        );
        assert_eq!(r.body, br#"{"a":1}"#);

        let r = http_api_v2_response(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#);
        assert_eq!(r.body, b"hi");

        let r = http_api_v2_response(br#"{"hello":"world"}"#);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, br#"{"hello":"world"}"#.as_slice())
        );

        assert_eq!(http_api_v2_response(b"not json").status, 500);
        assert_eq!(http_api_v2_response(br#"{"statusCode":"x"}"#).status, 500);
    }
}
