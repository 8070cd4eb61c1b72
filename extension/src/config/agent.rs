//! The AWS Secrets Manager Agent's configuration file (`secretcache --config <file.toml>`, or as the Workload
//! Credentials Provider 3 is started, `secretcache sm start --config <file.toml>`), mapped onto ours, so that a sidecar
//! moving from the Agent or the Provider keeps its file.
//!
//! Both of its forms are read: the flat keys of the Agent 1.x and 2.x, and the Provider's nested sections
//! (`[logging]`, `[capabilities.secrets_manager]` with its `.cache`, `.security` and `.prefetch`), which are the same
//! keys one level down; a key given in both forms takes the nested value. `[capabilities.acm]` (the Provider's
//! certificate capability) is not ours and is named once at INFO.
//!
//! The Agent's keys and what they become:
//! - `http_port`, `ttl_seconds`, `cache_size`, `max_conn`, `log_level`, `region`: defaults for
//!   `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, `SECRETS_MANAGER_TTL`, `PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE`,
//!   `PARAMETERS_SECRETS_EXTENSION_MAX_CLIENT_CONNECTIONS`, `PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL` and `AWS_REGION`:
//!   a variable that is set still wins, and the values are checked as the variables are;
//! - `ssrf_headers`, `ssrf_env_variables`, `path_prefix`: the token headers, the token variables and the prefix of
//!   path-based reads (`/v1/<secretId>`);
//! - `prefetch.secrets[].secret_id`: added to the init prefetch; `prefetch.filter_tags[].key`, `cache_buffer_ratio` and
//!   `max_jitter_seconds`: the tag prefetch (`PARAMETERS_SECRETS_EXTENSION_PREFETCH_TAGS`, `..._BUFFER_PERCENT`,
//!   `..._MAX_JITTER_SECONDS`);
//! - `credentials_file_path`: `PARAMETERS_SECRETS_EXTENSION_CREDENTIALS_FILE`;
//! - `max_roles`: `PARAMETERS_SECRETS_EXTENSION_MAX_ROLES` (roles named by reads' `roleArn`);
//! - the Agent's keys that have no meaning here (`log_to_file`, `enabled`, `ignore_transient_errors`,
//!   `validate_credentials`) are named once at INFO; any other key is a warning, never an error. Numbers may be
//!   written as the Agent's own examples write them, as strings.

use std::collections::HashMap;
use std::path::Path;

use super::{
    ConfigError, Notice, AWS_REGION, CACHE_SIZE, CREDENTIALS_FILE, HTTP_PORT, LOG_LEVEL,
    MAX_CLIENT_CONNECTIONS, MAX_ROLES, PREFETCH_BUFFER_PERCENT, PREFETCH_MAX_JITTER_SECONDS,
    SECRETS_MANAGER_TTL,
};

/// What an Agent configuration file says, in our terms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AgentFile {
    /// Values for our variables, used when the variable itself is not set.
    pub defaults: HashMap<&'static str, String>,
    /// `ssrf_headers`.
    pub token_headers: Option<Vec<String>>,
    /// `ssrf_env_variables`.
    pub token_variables: Option<Vec<String>>,
    /// `path_prefix`.
    pub path_prefix: Option<String>,
    /// `prefetch.secrets[].secret_id`.
    pub prefetch: Vec<String>,
    /// `prefetch.filter_tags[].key`.
    pub prefetch_tags: Vec<String>,
    /// What could not be used.
    pub errors: Vec<ConfigError>,
    /// Keys noted or ignored.
    pub notices: Vec<Notice>,
    /// Unknown keys.
    pub warnings: Vec<String>,
}

/// The Agent's keys that map onto one of our variables.
const MAPPED: [(&str, &str); 8] = [
    ("http_port", HTTP_PORT),
    ("ttl_seconds", SECRETS_MANAGER_TTL),
    ("cache_size", CACHE_SIZE),
    ("max_conn", MAX_CLIENT_CONNECTIONS),
    ("log_level", LOG_LEVEL),
    ("region", AWS_REGION),
    ("max_roles", MAX_ROLES),
    ("credentials_file_path", CREDENTIALS_FILE),
];

/// The Agent's keys that mean nothing here, and why.
const NOT_APPLICABLE: [(&str, &str); 5] = [
    ("log_to_file", "logs go to stdout/stderr, where a container runtime collects them"),
    ("enabled", "secretcache always serves Secrets Manager"),
    (
        "acm",
        "ACM certificates are the Workload Credentials Provider's other capability, not secretcache's",
    ),
    (
        "ignore_transient_errors",
        "a value past its TTL is always served while the upstream fails transiently (PARAMETERS_SECRETS_EXTENSION_MAX_STALE)",
    ),
    ("validate_credentials", "credentials are checked by the first upstream call, not at start"),
];

impl AgentFile {
    /// Reads `path`. A file that cannot be read or parsed is one error, and nothing of it is used.
    pub fn read(path: &Path) -> Self {
        let mut file = Self::default();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                file.errors.push(ConfigError {
                    name: "--config",
                    value: format!("{:?} ({e})", path.display().to_string()),
                    expected: "a readable TOML file with the AWS Secrets Manager Agent's keys",
                    used: "the environment and the defaults".to_owned(),
                });
                return file;
            }
        };
        match text.parse::<toml::Table>() {
            Ok(table) => file.apply(&table),
            Err(e) => file.errors.push(ConfigError {
                name: "--config",
                // The parser's message names the line and what it expected; it does not echo values.
                value: format!("{:?} ({})", path.display().to_string(), e.message()),
                expected: "a TOML file with the AWS Secrets Manager Agent's keys",
                used: "the environment and the defaults".to_owned(),
            }),
        }
        file
    }

    /// Reads the text of a configuration file, as [`AgentFile::read`] reads the file (for the fuzz target).
    pub fn from_text(text: &str) -> Self {
        let mut file = Self::default();
        match text.parse::<toml::Table>() {
            Ok(table) => file.apply(&table),
            Err(e) => file.errors.push(ConfigError {
                name: "--config",
                value: e.message().to_owned(),
                expected: "a TOML file with the AWS Secrets Manager Agent's keys",
                used: "the environment and the defaults".to_owned(),
            }),
        }
        file
    }

    fn apply(&mut self, table: &toml::Table) {
        let table = flatten(table);
        let mut ignored = Vec::new();
        for (key, value) in &table {
            if let Some((_, variable)) = MAPPED.iter().find(|(k, _)| k == key) {
                match scalar(value) {
                    Some(v) => {
                        self.defaults.insert(variable, v);
                    }
                    None => self.wrong_type(key, "a number or a string"),
                }
                continue;
            }
            match key.as_str() {
                "ssrf_headers" => self.token_headers = self.strings(key, value),
                "ssrf_env_variables" => self.token_variables = self.strings(key, value),
                "path_prefix" => match value.as_str() {
                    Some(p) if p.starts_with('/') && p.ends_with('/') && p.len() > 1 => {
                        self.path_prefix = Some(p.to_owned())
                    }
                    _ => self.wrong_type(key, "a path that starts and ends with / (e.g. \"/v1/\")"),
                },
                "prefetch" => self.prefetch(value),
                other => match NOT_APPLICABLE.iter().find(|(k, _)| *k == other) {
                    Some((k, why)) => ignored.push(format!("{k} ({why})")),
                    None => self.warnings.push(format!(
                        "the configuration file has a key {other:?} that neither secretcache nor the AWS Secrets \
                         Manager Agent reads; it is ignored"
                    )),
                },
            }
        }
        if !ignored.is_empty() {
            self.notices.push(Notice::BeyondAws(format!(
                "configuration file: the Agent's {} mean nothing here and are ignored",
                ignored.join(", ")
            )));
        }
    }

    fn strings(&mut self, key: &str, value: &toml::Value) -> Option<Vec<String>> {
        let list: Option<Vec<String>> = value
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect());
        match list {
            Some(l) if !l.is_empty() => Some(l),
            _ => {
                self.wrong_type(key, "a non-empty list of strings");
                None
            }
        }
    }

    fn prefetch(&mut self, value: &toml::Value) {
        for (key, item) in value.as_table().into_iter().flatten() {
            match key.as_str() {
                "secrets" => self.prefetch_list(key, item, "secret_id", |f, id| f.prefetch.push(id)),
                "filter_tags" => {
                    self.prefetch_list(key, item, "key", |f, tag| f.prefetch_tags.push(tag))
                }
                // The Provider's ratio of the cache, 0.1 to 1.0, is our percent.
                "cache_buffer_ratio" => match item
                    .as_float()
                    .or(item.as_integer().map(|i| i as f64))
                    .or(item.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
                {
                    Some(ratio) if ratio.is_finite() && ratio >= 0.0 => {
                        let percent = (ratio * 100.0).round().min(1000.0) as u64;
                        self.defaults.insert(PREFETCH_BUFFER_PERCENT, percent.to_string());
                    }
                    _ => self.wrong_type("prefetch.cache_buffer_ratio", "a number from 0.1 to 1.0"),
                },
                "max_jitter_seconds" => match scalar(item) {
                    Some(v) => {
                        self.defaults.insert(PREFETCH_MAX_JITTER_SECONDS, v);
                    }
                    None => self.wrong_type("prefetch.max_jitter_seconds", "seconds from 0 to 10"),
                },
                other => self.warnings.push(format!(
                    "the configuration file's prefetch section has a key {other:?} that secretcache does not read; \
                     it is ignored"
                )),
            }
        }
    }

    /// `secrets = [{ secret_id = ... }]` or `filter_tags = [{ key = ... }]`: each item's `field`. A `role_arn` is
    /// warned about: the prefetch runs with the extension's own credentials.
    fn prefetch_list(
        &mut self,
        list: &str,
        value: &toml::Value,
        field: &str,
        mut add: impl FnMut(&mut Self, String),
    ) {
        let Some(items) = value.as_array() else {
            self.wrong_type(&format!("prefetch.{list}"), "a list of tables");
            return;
        };
        for item in items {
            let Some(name) = item.get(field).and_then(toml::Value::as_str) else {
                self.wrong_type(
                    &format!("prefetch.{list}"),
                    "tables that each name a string",
                );
                continue;
            };
            add(self, name.to_owned());
            if item.get("role_arn").is_some() {
                self.warnings.push(format!(
                    "the configuration file's prefetch {list} entry {name:?} names a role_arn; secretcache \
                     prefetches with its own credentials (PARAMETERS_SECRETS_EXTENSION_ROLE_ARN), so it is \
                     prefetched without it"
                ));
            }
        }
    }

    fn wrong_type(&mut self, key: &str, expected: &'static str) {
        self.errors.push(ConfigError {
            name: "--config",
            value: format!("{key} (of the wrong type)"),
            expected,
            used: "the default for it".to_owned(),
        });
    }
}

/// The Workload Credentials Provider's nested sections, one level up: `[logging]`, and `[capabilities.secrets_manager]`
/// with its `cache` and `security` tables, merged into the flat keys (a nested value wins over a flat one);
/// `[capabilities.acm]` becomes the key `acm`. Anything else nested under `capabilities` is kept under its own name,
/// to be warned about as an unknown key.
fn flatten(table: &toml::Table) -> toml::Table {
    let mut flat = toml::Table::new();
    let mut nested = toml::Table::new();
    let merge = |into: &mut toml::Table, section: &toml::Value| {
        for (k, v) in section.as_table().into_iter().flatten() {
            into.insert(k.clone(), v.clone());
        }
    };
    for (key, value) in table {
        match (key.as_str(), value.as_table()) {
            ("logging", Some(_)) => merge(&mut nested, value),
            ("capabilities", Some(capabilities)) => {
                for (name, capability) in capabilities {
                    match (name.as_str(), capability.as_table()) {
                        ("secrets_manager", Some(sm)) => {
                            for (k, v) in sm {
                                match (k.as_str(), v.as_table()) {
                                    ("cache" | "security", Some(_)) => merge(&mut nested, v),
                                    _ => {
                                        nested.insert(k.clone(), v.clone());
                                    }
                                }
                            }
                        }
                        _ => {
                            nested.insert(name.clone(), capability.clone());
                        }
                    }
                }
            }
            _ => {
                flat.insert(key.clone(), value.clone());
            }
        }
    }
    flat.extend(nested);
    flat
}

/// A number or a string, as text (the Agent's own examples quote numbers).
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AgentFile {
        let mut f = AgentFile::default();
        f.apply(&text.parse::<toml::Table>().expect("toml"));
        f
    }

    #[test]
    fn the_agents_keys_map_onto_ours() {
        let f = parse(
            r#"
            log_level = "DEBUG"
            http_port = "2775"
            ttl_seconds = 60
            cache_size = "500"
            max_conn = 200
            region = "eu-west-1"
            ssrf_headers = ["X-My-Token"]
            ssrf_env_variables = ["MY_TOKEN", "AWS_TOKEN"]
            path_prefix = "/secrets/"
            log_to_file = false
            validate_credentials = true

            [prefetch]
            cache_buffer_ratio = 0.8
            secrets = [{ secret_id = "app/db" }, { secret_id = "app/api", role_arn = "arn:aws:iam::1:role/r" }]
            "#,
        );
        assert_eq!(f.defaults[HTTP_PORT], "2775");
        assert_eq!(f.defaults[SECRETS_MANAGER_TTL], "60");
        assert_eq!(f.defaults[CACHE_SIZE], "500");
        assert_eq!(f.defaults[MAX_CLIENT_CONNECTIONS], "200");
        assert_eq!(f.defaults[LOG_LEVEL], "DEBUG");
        assert_eq!(f.defaults[AWS_REGION], "eu-west-1");
        assert_eq!(f.token_headers, Some(vec!["X-My-Token".to_owned()]));
        assert_eq!(
            f.token_variables,
            Some(vec!["MY_TOKEN".to_owned(), "AWS_TOKEN".to_owned()])
        );
        assert_eq!(f.path_prefix.as_deref(), Some("/secrets/"));
        assert_eq!(f.prefetch, ["app/db", "app/api"]);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.notices.len(), 1, "{:?}", f.notices);
        assert_eq!(f.warnings.len(), 1, "the role_arn: {:?}", f.warnings);
    }

    #[test]
    fn unknown_keys_warn_and_wrong_types_are_errors_never_fatal() {
        let f = parse("http_prot = 1\nssrf_headers = \"X\"\npath_prefix = \"v1\"\n");
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].contains("http_prot"));
        assert_eq!(f.errors.len(), 2, "{:?}", f.errors);
        let missing = AgentFile::read(Path::new("/nonexistent/agent.toml"));
        assert_eq!(missing.errors.len(), 1);
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "http_port = = 3").expect("write");
        assert_eq!(AgentFile::read(&bad).errors.len(), 1);
    }

    /// The Provider's documented array-of-tables form of the tag prefetch; a role_arn is warned about, a bad ratio
    /// is an error.
    #[test]
    fn tag_prefetch_reads_the_providers_array_of_tables() {
        let f = parse(
            r#"
            [[capabilities.secrets_manager.prefetch.filter_tags]]
            key = "Environment"

            [[capabilities.secrets_manager.prefetch.filter_tags]]
            key = "Team"
            role_arn = "arn:aws:iam::987654321098:role/SecretAccessRole"
            "#,
        );
        assert_eq!(f.prefetch_tags, ["Environment", "Team"]);
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("Team") && f.warnings[0].contains("role_arn"));
        let bad =
            parse("[prefetch]\ncache_buffer_ratio = \"lots\"\nfilter_tags = \"Environment\"\n");
        assert_eq!(bad.errors.len(), 2, "{:?}", bad.errors);
        assert!(bad.prefetch_tags.is_empty());
    }

    /// The nested form of the Workload Credentials Provider 3, as its documentation lays it out.
    #[test]
    fn the_workload_credentials_providers_nested_sections_map_onto_ours_too() {
        let f = parse(
            r#"
            ttl_seconds = 30

            [logging]
            log_level = "debug"
            log_to_file = false

            [capabilities.secrets_manager]
            enabled = true
            http_port = 2775
            path_prefix = "/v2/"
            max_conn = 400
            max_roles = 5
            region = "eu-west-1"
            credentials_file_path = "/home/app/.aws/credentials"
            ignore_transient_errors = true
            validate_credentials = false

            [capabilities.secrets_manager.cache]
            ttl_seconds = 120
            cache_size = 750

            [capabilities.secrets_manager.security]
            ssrf_headers = ["X-Aws-Parameters-Secrets-Token"]
            ssrf_env_variables = ["AWS_TOKEN"]

            [capabilities.secrets_manager.prefetch]
            cache_buffer_ratio = 0.8
            max_jitter_seconds = 2
            secrets = [{ secret_id = "app/db" }]
            filter_tags = [{ key = "Environment" }, { key = "Team" }]

            [capabilities.acm]
            enabled = false
            "#,
        );
        assert_eq!(f.defaults[LOG_LEVEL], "debug");
        assert_eq!(f.defaults[HTTP_PORT], "2775");
        assert_eq!(
            f.defaults[SECRETS_MANAGER_TTL], "120",
            "the nested value wins"
        );
        assert_eq!(f.defaults[CACHE_SIZE], "750");
        assert_eq!(f.defaults[MAX_CLIENT_CONNECTIONS], "400");
        assert_eq!(f.defaults[MAX_ROLES], "5");
        assert_eq!(f.defaults[AWS_REGION], "eu-west-1");
        assert_eq!(f.path_prefix.as_deref(), Some("/v2/"));
        assert_eq!(
            f.token_headers,
            Some(vec!["X-Aws-Parameters-Secrets-Token".to_owned()])
        );
        assert_eq!(f.token_variables, Some(vec!["AWS_TOKEN".to_owned()]));
        assert_eq!(f.prefetch, ["app/db"]);
        assert_eq!(f.prefetch_tags, ["Environment", "Team"]);
        assert_eq!(f.defaults[PREFETCH_BUFFER_PERCENT], "80");
        assert_eq!(f.defaults[PREFETCH_MAX_JITTER_SECONDS], "2");
        assert_eq!(f.defaults[CREDENTIALS_FILE], "/home/app/.aws/credentials");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        let noted = format!("{:?}", f.notices);
        for key in [
            "log_to_file",
            "enabled",
            "acm",
            "ignore_transient_errors",
            "validate_credentials",
        ] {
            assert!(noted.contains(key), "{key} in {noted}");
        }
        let unknown = parse(
            "[capabilities.secrets_manager.cache]\nttl_secs = 1\n[capabilities.kms]\nx = 1\n",
        );
        assert_eq!(unknown.warnings.len(), 2, "{:?}", unknown.warnings);
    }
}
