//! Property checks shared by the `cargo fuzz` targets (extension/fuzz) and the regression tests that replay every
//! saved input (extension/tests/fuzz_regressions.rs), so a crash found once stays fixed.

use std::collections::HashMap;

use crate::config::agent::AgentFile;
use crate::config::Config;
use crate::request::{ParameterRequest, SecretRequest, VersionSelector};

/// Parses `data` as a query string both ways; panics only if an invariant is broken.
pub fn check_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = SecretRequest::parse(query) {
        assert_id(&r.key.secret_id);
        assert_role(r.role.as_deref());
        match &r.key.selector {
            VersionSelector::Current => {}
            VersionSelector::Id(v) | VersionSelector::Stage(v) => {
                assert!(!v.is_empty(), "an empty selector was accepted");
            }
            VersionSelector::IdAndStage(id, stage) => {
                assert!(
                    !id.is_empty() && !stage.is_empty(),
                    "an empty selector was accepted"
                );
            }
        }
    }
    if let Ok(r) = ParameterRequest::parse(query) {
        assert_id(&r.key.name);
    }
}

/// What every accepted `roleArn` upholds: an IAM role's ARN, bounded, no control character.
fn assert_role(role: Option<&str>) {
    if let Some(arn) = role {
        assert!(
            crate::request::is_role_arn(arn),
            "a roleArn that is not a role's ARN was accepted"
        );
        assert!(arn.len() <= 2048 && !arn.chars().any(char::is_control));
    }
}

/// What every parsed secret id or parameter name upholds: not empty, no control character.
fn assert_id(id: &str) {
    assert!(!id.is_empty(), "an empty id was accepted");
    assert!(
        !id.chars().any(char::is_control),
        "a control character was accepted"
    );
}

/// Reads `data` as `NAME=value` lines into an environment and parses it; panics only if parsing panics or a value
/// is out of range.
pub fn check_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // Never fails, whatever the input: a bad value is the default and an error line.
    let c = Config::from_env(&env);
    assert!(c.port >= 1, "port 0 was accepted");
    assert!(
        c.secrets.ttl.as_secs() <= crate::config::MAX_TTL_SECS
            && c.ssm.ttl.as_secs() <= crate::config::MAX_TTL_SECS,
        "a TTL over a day was accepted"
    );
    assert!(
        c.max_connections >= 1,
        "an empty upstream pool was accepted"
    );
    assert_eq!(
        c.tokens.is_empty(),
        c.diagnostics
            .errors
            .iter()
            .any(|e| e.name == crate::config::AWS_SESSION_TOKEN),
        "a missing token must be reported, and only then"
    );
}

/// Parses `data` as an Agent or Workload Credentials Provider TOML file; panics only if parsing panics or what it
/// maps onto is not one of our variables.
pub fn check_agent_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = AgentFile::from_text(text);
    for variable in file.defaults.keys() {
        assert!(
            crate::config::KNOWN_VARIABLES.contains(variable)
                || *variable == crate::config::AWS_REGION,
            "{variable} is not a variable of ours"
        );
    }
    if let Some(prefix) = &file.path_prefix {
        assert!(
            prefix.starts_with('/') && prefix.ends_with('/') && prefix.len() > 1,
            "a path prefix {prefix:?} was accepted"
        );
    }
}

/// Parses `data` as an exec-wrapper reference: a parsed reference prints back to text that parses to the same
/// reference.
pub fn check_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Ok(reference)) = crate::reference::parse(text) {
        let printed = reference.to_string();
        match crate::reference::parse(&printed) {
            Some(Ok(again)) => assert_eq!(again, reference, "{text:?} printed as {printed:?}"),
            other => panic!("{text:?} printed as {printed:?}, which reads back as {other:?}"),
        }
    }
}

/// Parses `data` as a path route (`/secretsmanager/<id>`, `/systemsmanager/parameters/<name>`), the first line the
/// path's rest and the second its query; a parsed id is never empty and holds no control character.
pub fn check_path_route(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(r) = SecretRequest::parse_path(path, query) {
        assert_id(&r.key.secret_id);
        assert_role(r.role.as_deref());
    }
    if let Ok(r) = ParameterRequest::parse_path(path, query) {
        assert_id(&r.key.name);
    }
}

/// Verifies a request built from `data` (its lines: the `Authorization` header, `X-Amz-Date`, the request target,
/// `X-Amz-Security-Token`, then the body) against fixed keys: whatever the bytes, it never panics and never verifies,
/// since the input cannot know the secret key.
pub fn check_sigv4(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(5, '\n');
    let (auth, date, target, token, body) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or("/"),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("authorization", auth),
        ("x-amz-date", date),
        ("x-amz-security-token", token),
        ("host", "localhost:2773"),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    let Ok(uri) = target.parse::<http::Uri>() else {
        return;
    };
    let keys = crate::sigv4::Keys::new(
        "AKIDFUZZ".into(),
        "a secret the input cannot know".into(),
        Some("token".into()),
    );
    for method in [http::Method::GET, http::Method::POST] {
        let verdict = keys.verify(
            &method,
            &uri,
            &headers,
            body.as_bytes(),
            std::time::SystemTime::now(),
        );
        assert!(
            verdict.is_err(),
            "a request signed without the key verified"
        );
    }
}

/// Reads `data` as the body of each SDK operation: every body maps to exactly one answer or to a 4xx in the service's
/// error shape, and what maps to the cache names bounded, non-empty ids within the service's list limits.
pub fn check_sdk_body(data: &[u8]) {
    use crate::server::sdk::{read_of, Read};
    for target in [
        "secretsmanager.GetSecretValue",
        "secretsmanager.BatchGetSecretValue",
        "AmazonSSM.GetParameter",
        "AmazonSSM.GetParameters",
        "secretsmanager.PutSecretValue",
    ] {
        match read_of(target, data) {
            Ok(Read::One(key)) => assert_bounded(&key),
            Ok(Read::Secrets(keys)) => {
                assert!(
                    (1..=20).contains(&keys.len()),
                    "{target}: {} secrets",
                    keys.len()
                );
                keys.iter().for_each(assert_bounded);
            }
            Ok(Read::Parameters(keys)) => {
                assert!(
                    (1..=10).contains(&keys.len()),
                    "{target}: {} parameters",
                    keys.len()
                );
                keys.iter().for_each(assert_bounded);
            }
            Ok(Read::PassOn) => assert!(
                target == "secretsmanager.PutSecretValue"
                    || target.ends_with("BatchGetSecretValue"),
                "{target} was passed on"
            ),
            Err(e) => {
                let response = e.into_response();
                assert!(
                    response.status().is_client_error(),
                    "{target}: {}",
                    response.status()
                );
                assert!(
                    response.headers().contains_key("x-amzn-errortype"),
                    "{target}: no error type"
                );
            }
        }
    }
}

fn assert_bounded(key: &crate::request::Key) {
    let id = match key {
        crate::request::Key::Secret(k) => &k.secret_id,
        crate::request::Key::Parameter(k) => &k.name,
    };
    assert!(
        !id.is_empty() && id.len() <= 2048,
        "an id of {} bytes was accepted",
        id.len()
    );
}

/// Reads `data` as a token file's content: a token is the trimmed text, never empty, never longer than the file
/// limit; anything else is refused with its reason.
pub fn check_token_file(data: &[u8]) {
    use crate::token::{token_of, FileError, MAX_FILE_BYTES};
    match token_of(data.to_vec()) {
        Ok(token) => {
            let text = std::str::from_utf8(data).expect("a token came from text that is not UTF-8");
            assert_eq!(token, text.trim(), "the token is not the trimmed text");
            assert!(!token.is_empty(), "an empty token was accepted");
            assert!(
                data.len() as u64 <= MAX_FILE_BYTES,
                "a file over the limit was read"
            );
        }
        Err(FileError::TooLarge) => assert!(data.len() as u64 > MAX_FILE_BYTES),
        Err(FileError::NotText) => assert!(std::str::from_utf8(data).is_err()),
        Err(FileError::Empty) => assert!(String::from_utf8_lossy(data).trim().is_empty()),
        Err(e) => panic!("content alone cannot be refused as {e}"),
    }
}

/// Projects a field (the first line of `data`) out of a secret whose `SecretString` is the rest, and out of a parameter
/// whose `Value` is: what comes back is exactly that field's value (a string as its text, anything else as its JSON),
/// never bytes of another field.
pub fn check_projection(data: &[u8]) {
    use crate::respond::{project, Kind};
    use crate::secret::SecretBody;
    let text = String::from_utf8_lossy(data);
    let (field, inner) = text.split_once('\n').unwrap_or((&text, ""));
    let expected = serde_json::from_str::<serde_json::Value>(inner)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.get(field).cloned()));
    let bodies = [
        (
            Kind::Secret,
            serde_json::json!({ "Name": "n", "SecretString": inner }),
        ),
        (
            Kind::Parameter,
            serde_json::json!({ "Parameter": { "Name": "n", "Value": inner } }),
        ),
    ];
    for (kind, doc) in bodies {
        let body = SecretBody::new(serde_json::to_vec(&doc).expect("serialize"));
        let Ok(out) = project(&body, kind, field) else {
            continue;
        };
        let out = out.bytes();
        // Where the whole object parses, the answer is that field's value; a document serde_json's Value refuses
        // (a number past f64, say) is checked by the answer alone: it is one JSON value or the text of one.
        match (&expected, std::str::from_utf8(&out)) {
            (Some(serde_json::Value::String(s)), Ok(got)) => {
                assert_eq!(got, s, "another field's bytes")
            }
            (Some(value), Ok(got)) => assert_eq!(
                serde_json::from_str::<serde_json::Value>(got).ok().as_ref(),
                Some(value),
                "another field's bytes"
            ),
            (Some(_), Err(_)) => panic!("a projection that is not UTF-8"),
            (None, _) => {}
        }
    }
}

/// Rewrites the date member of `data` taken as a cached body (the SDK protocol's epoch-seconds form): the answer is
/// the input, or the input with that one member's text turned into a number; no other member, and so no secret text,
/// ever changes.
pub fn check_epoch_date(data: &[u8]) {
    use crate::server::sdk::with_epoch_date;
    let body = bytes::Bytes::copy_from_slice(data);
    for member in ["CreatedDate", "LastModifiedDate"] {
        let out = with_epoch_date(&body, member);
        if out == body {
            continue;
        }
        // Everything up to the first byte that differs is kept, and that byte is the opening quote of the member's
        // string value (an earlier member of the same name that is not a string is not the one rewritten).
        let start = out
            .iter()
            .zip(body.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let pattern = format!("\"{member}\":");
        assert!(
            body[..start].ends_with(pattern.as_bytes()),
            "a change that does not start at the member's value"
        );
        let rest_out = &out[start..];
        // The new value: epoch seconds with milliseconds, `-?[0-9]+\.[0-9]{3}` (a date before 1970 is negative).
        let sign = usize::from(rest_out.first() == Some(&b'-'));
        let digits = rest_out[sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        assert!(digits > 0, "the member's new value is not a number");
        let number_len = sign + digits + 4;
        assert!(
            rest_out.get(sign + digits) == Some(&b'.')
                && rest_out
                    .get(sign + digits + 1..number_len)
                    .is_some_and(|m| m.iter().all(u8::is_ascii_digit)),
            "the member's new value is not seconds with milliseconds"
        );
        let rest_in = &body[start..];
        assert_eq!(
            rest_in.first(),
            Some(&b'"'),
            "a member that was not a string was rewritten"
        );
        let close = rest_in[1..]
            .iter()
            .position(|&b| b == b'"')
            .expect("an unterminated date was rewritten");
        assert_eq!(
            &rest_out[number_len..],
            &rest_in[close + 2..],
            "bytes after the member changed"
        );
    }
}

/// Builds the key of a listing request from `data` taken as its body: the same request with its members in another
/// order (and its whitespace changed) has the same key, and another region, operation or value has another.
pub fn check_listing_key(data: &[u8]) {
    use crate::server::sdk::listings::key_of;
    let target = "AmazonSSM.GetParametersByPath";
    let Some(key) = key_of("us-east-1", target, data) else {
        return;
    };
    let value: serde_json::Value =
        serde_json::from_slice(data).expect("a key from a body that is not JSON");
    let object = value
        .as_object()
        .expect("a key from a body that is not an object");
    // The same members in another order and spacing, each value's own text kept (a number written again could be
    // another number: floats are not read back exactly).
    let raw: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(data).expect("the members as text");
    let mut text = String::from("{\n");
    for (i, (k, v)) in raw.iter().rev().enumerate() {
        if i > 0 {
            text.push_str(" ,\n");
        }
        text.push_str(&serde_json::to_string(k).expect("key"));
        text.push_str(" : ");
        text.push_str(v.get());
    }
    text.push_str("\n}");
    assert_eq!(
        key_of("us-east-1", target, text.as_bytes()),
        Some(key.clone()),
        "{text}"
    );
    assert_ne!(
        key_of("us-east-2", target, data),
        Some(key.clone()),
        "another region, the same key"
    );
    let mut other = object.clone();
    let absent = (0..)
        .map(|i| format!("Other{i}"))
        .find(|n| !object.contains_key(n))
        .expect("a member name not used");
    other.insert(absent, serde_json::json!(true));
    let other = serde_json::to_vec(&other).expect("serialize");
    assert_ne!(
        key_of("us-east-1", target, &other),
        Some(key),
        "another request, the same key"
    );
}
