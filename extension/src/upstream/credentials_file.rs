//! `PARAMETERS_SECRETS_EXTENSION_CREDENTIALS_FILE` (the Workload Credentials Provider's `credentials_file_path`):
//! every upstream call signs with the `default` profile of a shared credentials file, read again every 5 minutes, so
//! a file that another process keeps fresh (IAM Roles Anywhere's `aws_signing_helper update`) is followed without a
//! restart. Only temporary credentials are taken: a profile without `aws_session_token` is refused with an error
//! that says so, as the Provider refuses it.
//!
//! The file is read by the SDK's own profile parser ([`ProfileFileCredentialsProvider`]); since that provider parses
//! its files once, one is built per read. The credentials are handed to the SDK with an expiry 5 minutes out, so its
//! identity cache asks again then.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::{self, error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_secretsmanager::config::SharedHttpClient;

/// How long credentials read from the file are used before it is read again.
pub(super) const REREAD: Duration = Duration::from_secs(300);

/// The profile read, as the Provider reads it.
const PROFILE: &str = "default";

/// Credentials from a shared credentials file, read again every [`REREAD`].
#[derive(Debug)]
pub(super) struct CredentialsFile {
    path: PathBuf,
    /// The SDK's provider builds its instance-metadata and container fallbacks at once, and they need an HTTP
    /// client even when the profile never uses them: ours.
    provider_config: ProviderConfig,
}

impl CredentialsFile {
    pub(super) fn new(path: PathBuf, http: SharedHttpClient) -> Self {
        Self {
            path,
            provider_config: ProviderConfig::default().with_http_client(http),
        }
    }

    async fn load(&self) -> provider::Result {
        let files = EnvConfigFiles::builder()
            .with_file(EnvConfigFileKind::Credentials, &self.path)
            .build();
        let read = ProfileFileCredentialsProvider::builder()
            .configure(&self.provider_config)
            .profile_files(files)
            .profile_name(PROFILE)
            .build()
            .provide_credentials()
            .await?;
        let Some(token) = read.session_token() else {
            return Err(CredentialsError::invalid_configuration(format!(
                "{}: the [{PROFILE}] profile has no aws_session_token; a credentials file must hold temporary \
                 credentials (as IAM Roles Anywhere writes them), not long-lived keys",
                self.path.display()
            )));
        };
        Ok(Credentials::new(
            read.access_key_id(),
            read.secret_access_key(),
            Some(token.to_owned()),
            Some(SystemTime::now() + REREAD),
            "secretcache-credentials-file",
        ))
    }
}

impl ProvideCredentials for CredentialsFile {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyConfig;

    fn at(path: PathBuf) -> CredentialsFile {
        CredentialsFile::new(path, super::super::http::client(1, &ProxyConfig::default()))
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> CredentialsFile {
        let path = dir.path().join("credentials");
        std::fs::write(&path, text).expect("write");
        at(path)
    }

    #[tokio::test]
    async fn temporary_credentials_are_read_and_expire_when_the_file_is_due_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = file(
            &dir,
            "[default]\naws_access_key_id = AKIDTEMP\naws_secret_access_key = s3cr3t\naws_session_token = tok1\n\
             [other]\naws_access_key_id = OTHER\naws_secret_access_key = x\naws_session_token = y\n",
        );
        let before = SystemTime::now();
        let c = f.provide_credentials().await.expect("credentials");
        assert_eq!(c.access_key_id(), "AKIDTEMP");
        assert_eq!(c.session_token(), Some("tok1"));
        let expiry = c.expiry().expect("an expiry");
        assert!(expiry >= before + REREAD && expiry <= SystemTime::now() + REREAD);
        // Written again (as a credential helper does): the next read sees the new keys.
        std::fs::write(
            dir.path().join("credentials"),
            "[default]\naws_access_key_id = AKIDNEXT\naws_secret_access_key = s\naws_session_token = tok2\n",
        )
        .expect("rewrite");
        let next = f.provide_credentials().await.expect("credentials");
        assert_eq!(
            (next.access_key_id(), next.session_token()),
            ("AKIDNEXT", Some("tok2"))
        );
    }

    #[tokio::test]
    async fn long_lived_keys_a_missing_file_or_profile_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys_only = file(
            &dir,
            "[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cr3t\n",
        );
        let e = keys_only
            .provide_credentials()
            .await
            .expect_err("no session token");
        let shown = format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        );
        assert!(shown.contains("aws_session_token"), "{shown}");
        assert!(
            !format!("{e:?}").contains("s3cr3t"),
            "the secret key is never shown"
        );
        let missing = at(dir.path().join("absent"));
        assert!(missing.provide_credentials().await.is_err());
        let other = file(
            &dir,
            "[profile x]\naws_access_key_id = A\naws_secret_access_key = B\n",
        );
        assert!(other.provide_credentials().await.is_err());
    }
}
