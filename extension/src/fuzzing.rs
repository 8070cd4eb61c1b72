//! Property checks shared by the `cargo fuzz` targets (extension/fuzz) and the regression tests that replay every
//! saved input (extension/tests/fuzz_regressions.rs), so a crash found once stays fixed.

use std::collections::HashMap;

use crate::config::Config;
use crate::request::{ParameterRequest, SecretRequest, VersionSelector};

/// Parses `data` as a query string both ways; panics only if an invariant is broken.
pub fn check_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = SecretRequest::parse(query) {
        assert!(
            !r.key.secret_id.is_empty(),
            "an empty secretId was accepted"
        );
        assert!(
            !r.key.secret_id.chars().any(char::is_control),
            "a control character was accepted"
        );
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
        assert!(!r.key.name.is_empty(), "an empty name was accepted");
        assert!(
            !r.key.name.chars().any(char::is_control),
            "a control character was accepted"
        );
    }
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
