//! The proxy settings, as the AWS Parameters and Secrets Lambda Extension and curl read them: `HTTPS_PROXY` (or
//! `https_proxy`) for https endpoints, tunnelled with HTTP CONNECT; `HTTP_PROXY` (or `http_proxy`) for http endpoints
//! (a local emulator), sent to the proxy in absolute form; `NO_PROXY` (or `no_proxy`) for the hosts that bypass both
//! (comma-separated names, which match their subdomains too, IP addresses, CIDR blocks, or `*`).
//!
//! A proxy is `http://host:port` (or `host:port`), optionally with `user:password@` for Basic authentication on the
//! CONNECT. The proxy itself is spoken to in plain HTTP; an `https://` proxy, or anything that is not a URL, is a
//! configuration error and is not used. `Debug` never shows the credentials.

use std::fmt;

use hyper_util::client::proxy::matcher::Matcher;

/// `HTTPS_PROXY`: the proxy for https endpoints (all of AWS's).
pub const HTTPS_PROXY: &str = "HTTPS_PROXY";
/// `https_proxy`, read when `HTTPS_PROXY` is unset.
pub const HTTPS_PROXY_LOWER: &str = "https_proxy";
/// `HTTP_PROXY`: the proxy for http endpoints (an endpoint override such as a local emulator).
pub const HTTP_PROXY: &str = "HTTP_PROXY";
/// `http_proxy`, read when `HTTP_PROXY` is unset.
pub const HTTP_PROXY_LOWER: &str = "http_proxy";
/// `NO_PROXY`: hosts reached directly.
pub const NO_PROXY: &str = "NO_PROXY";
/// `no_proxy`, read when `NO_PROXY` is unset.
pub const NO_PROXY_LOWER: &str = "no_proxy";

/// What the proxy variables say; empty when none is set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy for https endpoints.
    pub https: Option<String>,
    /// The proxy for http endpoints.
    pub http: Option<String>,
    /// The `NO_PROXY` list, as given.
    pub no_proxy: Option<String>,
}

impl ProxyConfig {
    /// The matcher the HTTP client asks for each destination, or `None` when no proxy is configured.
    pub fn matcher(&self) -> Option<Matcher> {
        if self.https.is_none() && self.http.is_none() {
            return None;
        }
        Some(
            Matcher::builder()
                .https(self.https.as_deref().unwrap_or_default())
                .http(self.http.as_deref().unwrap_or_default())
                .no(self.no_proxy.as_deref().unwrap_or_default())
                .build(),
        )
    }
}

/// Whether `value` is a proxy we can use: `http://host[:port]` or `host[:port]`, with optional credentials.
pub fn is_usable_proxy(value: &str) -> bool {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    match with_scheme.parse::<http::Uri>() {
        Ok(uri) => uri.scheme_str() == Some("http") && uri.host().is_some_and(|h| !h.is_empty()),
        Err(_) => false,
    }
}

/// The proxy's scheme, host and port, without credentials or path.
fn shown(value: &str) -> String {
    let rest = value.split_once("://").map_or(value, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("http://{host}")
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("https", &self.https.as_deref().map(shown))
            .field("http", &self.http.as_deref().map(shown))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_http_urls_and_their_credentials_are_never_shown() {
        assert!(is_usable_proxy("http://proxy.internal:3128"));
        assert!(is_usable_proxy("proxy.internal:3128"));
        assert!(is_usable_proxy("http://user:pa55@10.0.0.1:8080"));
        assert!(!is_usable_proxy("https://proxy.internal:3128"));
        assert!(!is_usable_proxy("socks5://proxy.internal:1080"));
        assert!(!is_usable_proxy("http://"));
        let config = ProxyConfig {
            https: Some("http://user:pa55@10.0.0.1:8080".into()),
            http: None,
            no_proxy: Some("localhost,169.254.169.254".into()),
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("10.0.0.1:8080") && !shown.contains("pa55"),
            "{shown}"
        );
    }

    #[test]
    fn no_proxy_bypasses_and_the_scheme_picks_the_proxy() {
        let config = ProxyConfig {
            https: Some("http://127.0.0.1:3128".into()),
            http: None,
            no_proxy: Some("localhost, .internal".into()),
        };
        let matcher = config.matcher().expect("a matcher");
        let via = |uri: &str| {
            matcher
                .intercept(&uri.parse().expect("uri"))
                .map(|i| i.uri().to_string())
        };
        assert_eq!(
            via("https://secretsmanager.us-east-1.amazonaws.com/").as_deref(),
            Some("http://127.0.0.1:3128/")
        );
        assert_eq!(via("https://localhost:4566/"), None);
        assert_eq!(via("https://vpce.secrets.internal/"), None);
        assert_eq!(via("http://secretsmanager.us-east-1.amazonaws.com/"), None);
        assert!(ProxyConfig::default().matcher().is_none());
    }
}
