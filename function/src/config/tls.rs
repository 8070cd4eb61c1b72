//! PostgreSQL's TLS settings: the mode (`DATABASE_SSLMODE`, libpq's names) and the CA bundle that verifies the server
//! (`DATABASE_SSL_ROOT_CERT`, else one packaged with the function under `$LAMBDA_TASK_ROOT`). They are applied when
//! the pool is built (`db/pool.rs`).

use std::path::PathBuf;

use secretcache_client::env::Env;

use super::names::{BUNDLED_CA_PATH, DATABASE_SSLMODE, DATABASE_SSL_ROOT_CERT, LAMBDA_TASK_ROOT};
use super::read::{optional, ConfigError};

/// PostgreSQL TLS modes, with libpq's names and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it.
    Prefer,
    /// TLS, without verifying the certificate (libpq's meaning). Our default.
    Require,
    /// TLS, with the certificate verified against the CA bundle.
    VerifyCa,
    /// TLS, with the certificate and the host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" | "verify_ca" => Self::VerifyCa,
            "verify-full" | "verify_full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// TLS settings for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `DATABASE_SSLMODE`, when it was set. Unset means `verify-full` when there is a CA bundle and `require` when
    /// there is none, unless a `DATABASE_URL` names its own `sslmode`.
    pub mode: Option<SslMode>,
    /// The CA bundle for verify-ca / verify-full: `DATABASE_SSL_ROOT_CERT`, else the one packaged with the function
    /// (`$LAMBDA_TASK_ROOT/certs/database-ca.pem`). Without one, the webpki roots are used.
    pub root_cert: Option<PathBuf>,
}

impl TlsConfig {
    /// The mode used when neither `DATABASE_SSLMODE` nor a URL names one: a CA bundle means the operator can verify
    /// the server, so we do; without one, `require` (the seed's mode) encrypts but trusts any certificate.
    pub fn default_mode(&self) -> SslMode {
        if self.root_cert.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Require
        }
    }
}

impl TlsConfig {
    /// `DATABASE_SSLMODE` and the CA bundle.
    pub(super) fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            mode: optional(
                env,
                DATABASE_SSLMODE,
                SslMode::parse,
                "disable, allow, prefer, require, verify-ca or verify-full",
            )?,
            root_cert: env
                .non_blank(DATABASE_SSL_ROOT_CERT)
                .map(PathBuf::from)
                .or_else(|| {
                    env.non_blank(LAMBDA_TASK_ROOT)
                        .map(|root| PathBuf::from(root).join(BUNDLED_CA_PATH))
                        .filter(|bundle| bundle.is_file())
                }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use secretcache_client::env::from_pairs as env;

    #[test]
    fn a_bundle_in_the_task_root_is_found_and_makes_verify_full_the_default() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
        let root = dir.to_string_lossy().into_owned();
        let tls = TlsConfig::from_env(&env(&[(LAMBDA_TASK_ROOT, &root)])).expect("config");
        assert_eq!(tls.root_cert, None, "no bundle packaged yet");
        assert_eq!(tls.default_mode(), SslMode::Require);
        std::fs::write(dir.join(BUNDLED_CA_PATH), "-----BEGIN CERTIFICATE-----\n").expect("write");
        let tls = TlsConfig::from_env(&env(&[(LAMBDA_TASK_ROOT, &root)])).expect("config");
        assert_eq!(tls.root_cert, Some(dir.join(BUNDLED_CA_PATH)));
        assert_eq!(tls.default_mode(), SslMode::VerifyFull);
        // DATABASE_SSL_ROOT_CERT wins over the packaged bundle.
        let tls = TlsConfig::from_env(&env(&[
            (LAMBDA_TASK_ROOT, &root),
            (DATABASE_SSL_ROOT_CERT, "/opt/rds.pem"),
        ]))
        .expect("config");
        assert_eq!(tls.root_cert, Some(PathBuf::from("/opt/rds.pem")));
    }

    #[test]
    fn sslmode_parses_in_any_case_and_names_itself_when_bad() {
        let tls = TlsConfig::from_env(&env(&[
            (DATABASE_SSLMODE, "Verify-Full"),
            (DATABASE_SSL_ROOT_CERT, "/opt/ca.pem"),
        ]))
        .expect("config");
        assert_eq!(tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(tls.root_cert, Some(PathBuf::from("/opt/ca.pem")));
        assert_eq!(
            TlsConfig::from_env(&env(&[(DATABASE_SSLMODE, " verify_ca ")])).map(|t| t.mode),
            Ok(Some(SslMode::VerifyCa))
        );
        assert_eq!(TlsConfig::from_env(&env(&[])).map(|t| t.mode), Ok(None));
        let e = TlsConfig::from_env(&env(&[(DATABASE_SSLMODE, "sure")])).expect_err("bad");
        assert!(e.to_string().contains(DATABASE_SSLMODE), "{e}");
        assert!(!e.to_string().contains("sure"), "{e}");
    }
}
