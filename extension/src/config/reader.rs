//! The tolerant reading of variables: the [`Env`] seam, and a reader that turns each value into a usable one (Go
//! booleans, whole numbers clamped to their range, URLs) while noting what it found wrong.

use std::collections::HashMap;
use std::time::Duration;

pub(super) use secretcache_client::env::parse_whole;
pub use secretcache_client::env::{parse_bool, Env, ProcessEnv};

use super::diagnostics::{ConfigError, Diagnostics, Notice};
use super::names::{
    AWS_ENDPOINT_URL, AWS_LAMBDA_LOG_LEVEL, AWS_MAX_TTL_SECS, DEFAULT_UPSTREAM_TIMEOUT, LOG_LEVEL,
    MAX_TTL_SECS,
};
use super::{proxy, Endpoint, LogLevel, ProxyConfig};

/// The environment over the defaults an Agent configuration file gives: a variable that is set wins.
pub(super) struct WithFile<'a, E> {
    pub(super) env: &'a E,
    pub(super) file: &'a HashMap<&'static str, String>,
}

impl<E: Env> Env for WithFile<'_, E> {
    fn get(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .or_else(|| self.file.get(name).cloned())
    }
    fn names(&self) -> Vec<String> {
        self.env.names()
    }
}

/// What a number above its range means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Above {
    /// A limit of ours (or of AWS's, which clamps): honour the largest value we accept.
    Clamp,
    /// Not a value of this kind at all (a port above 65535): the default, with an error.
    Invalid,
}

/// Reads variables and keeps what it finds wrong. Every method returns a usable value.
pub(super) struct Reader<'e, E> {
    pub(super) env: &'e E,
    pub(super) diagnostics: Diagnostics,
}

impl<'e, E: Env> Reader<'e, E> {
    /// The value of `name`, trimmed; empty means unset.
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn error(
        &mut self,
        name: &'static str,
        value: &str,
        expected: &'static str,
        used: String,
    ) {
        self.diagnostics.errors.push(ConfigError {
            name,
            value: format!("{value:?}"),
            expected,
            used,
        });
    }

    /// A whole number. Values in `valid` are honoured; with [`Above::Clamp`], larger ones are clamped to `valid`'s
    /// end with a notice (as the AWS extension clamps its TTLs); anything else is the default with an error.
    pub(super) fn number(
        &mut self,
        name: &'static str,
        default: u64,
        valid: std::ops::RangeInclusive<u64>,
        above: Above,
        expected: &'static str,
    ) -> u64 {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match parse_whole(&raw) {
            Some(v) if valid.contains(&v) => v,
            Some(v) if v > *valid.end() && above == Above::Clamp => {
                self.diagnostics.notices.push(Notice::Clamped(format!(
                    "{name}={v} is above the largest value we honour; using {}",
                    valid.end()
                )));
                *valid.end()
            }
            _ => {
                self.error(name, &raw, expected, default.to_string());
                default
            }
        }
    }

    /// A boolean as Go's `strconv.ParseBool` reads it.
    pub(super) fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        parse_bool(&raw).unwrap_or_else(|| {
            self.error(
                name,
                &raw,
                "1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False",
                default.to_string(),
            );
            default
        })
    }

    /// A TTL in seconds: 0-300 as for AWS, up to a day ours (with a notice), above that clamped to a day.
    pub(super) fn ttl(&mut self, name: &'static str) -> Duration {
        let secs = self.number(
            name,
            AWS_MAX_TTL_SECS,
            0..=MAX_TTL_SECS,
            Above::Clamp,
            "whole seconds, 0 (no caching) to 86400",
        );
        if secs > AWS_MAX_TTL_SECS {
            self.diagnostics.notices.push(Notice::BeyondAws(format!(
                "{name}={secs}: the AWS extension stops at {AWS_MAX_TTL_SECS} s; secretcache honours up to \
                 {MAX_TTL_SECS} s"
            )));
        }
        Duration::from_secs(secs)
    }

    /// An upstream timeout: any whole number of milliseconds, as the AWS extension documents; 0 is our default.
    pub(super) fn timeout(&mut self, name: &'static str) -> Duration {
        let default = DEFAULT_UPSTREAM_TIMEOUT.as_millis() as u64;
        let ms = self.number(
            name,
            default,
            0..=u64::MAX,
            Above::Clamp,
            "a whole number of milliseconds (0 means secretcache's default of 3000)",
        );
        Duration::from_millis(if ms == 0 { default } else { ms })
    }

    pub(super) fn log_level(&mut self) -> LogLevel {
        // Ours wins; Lambda's advanced logging controls apply when ours is unset (FATAL maps to error).
        let (name, raw) = match self.raw(LOG_LEVEL) {
            Some(v) => (LOG_LEVEL, v),
            None => match self.raw(AWS_LAMBDA_LOG_LEVEL) {
                Some(v) => (AWS_LAMBDA_LOG_LEVEL, v),
                None => return LogLevel::Info,
            },
        };
        match raw.to_ascii_lowercase().as_str() {
            "debug" | "trace" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" | "fatal" => LogLevel::Error,
            "none" | "off" => LogLevel::None,
            _ => {
                self.error(
                    name,
                    &raw,
                    "one of debug, info, warn, error, none (any case)",
                    "info".to_owned(),
                );
                LogLevel::Info
            }
        }
    }

    /// One proxy variable (upper case first, as the AWS extension reads it); a value we cannot use is an error and no
    /// proxy. The value is never repeated: it may hold a password.
    pub(super) fn proxy_variable(
        &mut self,
        upper: &'static str,
        lower: &'static str,
    ) -> Option<String> {
        let (name, raw) = match self.raw(upper) {
            Some(v) => (upper, v),
            None => (lower, self.raw(lower)?),
        };
        if proxy::is_usable_proxy(&raw) {
            return Some(raw);
        }
        self.diagnostics.errors.push(ConfigError {
            name,
            value: "(not shown: it may hold credentials)".to_owned(),
            expected:
                "http://host:port, or host:port (an https:// or socks proxy is not supported)",
            used: "no proxy".to_owned(),
        });
        None
    }

    pub(super) fn proxy(&mut self) -> ProxyConfig {
        ProxyConfig {
            https: self.proxy_variable(proxy::HTTPS_PROXY, proxy::HTTPS_PROXY_LOWER),
            http: self.proxy_variable(proxy::HTTP_PROXY, proxy::HTTP_PROXY_LOWER),
            no_proxy: self
                .raw(proxy::NO_PROXY)
                .or_else(|| self.raw(proxy::NO_PROXY_LOWER)),
        }
    }

    /// The endpoint override for one service: its own variable wins over `AWS_ENDPOINT_URL`, as in the SDK. One that
    /// points at this extension itself (loopback, our port) is how a function sends its own SDK's calls here: the
    /// extension shares the function's environment, so it skips that one (noted once) rather than call itself.
    pub(super) fn endpoint(&mut self, specific: &'static str, own_port: u16) -> Endpoint {
        let mut name = None;
        for candidate in [specific, AWS_ENDPOINT_URL] {
            let Some(raw) = self.raw(candidate) else {
                continue;
            };
            if points_at_loopback_port(&raw, own_port) {
                let note = format!(
                    "{candidate}={raw} points at this extension (the function's SDK reads through it); the \
                     extension itself calls AWS"
                );
                if !self
                    .diagnostics
                    .notices
                    .iter()
                    .any(|n| matches!(n, Notice::BeyondAws(t) if *t == note))
                {
                    self.diagnostics.notices.push(Notice::BeyondAws(note));
                }
                continue;
            }
            name = Some(candidate);
            break;
        }
        let Some(name) = name else {
            return Endpoint::Default;
        };
        let raw = self.raw(name).unwrap_or_default();
        if is_http_url(&raw) {
            Endpoint::Url {
                variable: name,
                url: raw,
            }
        } else {
            // Reported once per variable, however many services it affects.
            if !self.diagnostics.errors.iter().any(|e| e.name == name) {
                self.error(
                    name,
                    &raw,
                    "an http:// or https:// URL",
                    "no override; every call of the services it governs answers 502 until it is fixed"
                        .to_owned(),
                );
            }
            Endpoint::Invalid(name)
        }
    }
}

/// Whether `url` is `http://` on a loopback host (`127.0.0.1`, `localhost`, `[::1]`) at `port`.
pub(super) fn points_at_loopback_port(url: &str, port: u16) -> bool {
    let Ok(uri) = url.trim().parse::<http::Uri>() else {
        return false;
    };
    let loopback = matches!(
        uri.host().map(str::to_ascii_lowercase).as_deref(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    loopback && uri.scheme_str() == Some("http") && uri.port_u16() == Some(port)
}

/// Whether `s` is an absolute http(s) URL with a host, as the SDK needs for an endpoint override.
pub(super) fn is_http_url(s: &str) -> bool {
    match s.parse::<http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}
