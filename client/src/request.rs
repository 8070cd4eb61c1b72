//! The typed reads: one request type per path, each with its selectors, its request target and its `send`.
//!
//! Parts:
//! - [`Client::secret`] and [`Client::parameter`], giving [`GetSecret`] and [`GetParameter`]: one read each;
//!   [`GetSecret::path_and_query`] shows what goes on the wire;
//! - [`Client::secret_batch`] and [`Client::parameter_batch`], giving [`SecretBatch`] and [`ParameterBatch`]: (ours)
//!   several current values in one request, which the extension answers from its cache and fetches the misses of in
//!   one upstream call;
//! - the query encoding: every value percent-encoded but the unreserved characters, so an ARN's `:` and `/` arrive
//!   intact.
//!
//! The constructors are `Client` methods written here, beside the types they build, so that `client.rs` (the
//! connection and the token) knows nothing of the paths, and this module depends on it and not the other way round.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::body::{
    BatchGetSecretValueBody, GetParameterBody, GetParametersBody, GetSecretValueBody,
};
use crate::client::Client;
use crate::contract::{path, query};
use crate::error::Error;

/// Everything but the unreserved characters is escaped in a query value, so an ARN's `:` and `/` arrive intact.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Client {
    /// A read of the secret `secret_id` (a name or an ARN): `AWSCURRENT` from the cache, unless the request says
    /// otherwise.
    pub fn secret<'a>(&'a self, secret_id: &'a str) -> GetSecret<'a> {
        GetSecret {
            client: self,
            secret_id,
            version_id: None,
            version_stage: None,
            refresh_now: false,
        }
    }

    /// A read of the SSM parameter `name` (a name or an ARN, optionally with `:version` or `:label`);
    /// `with_decryption` decrypts a `SecureString`.
    pub fn parameter<'a>(&'a self, name: &'a str, with_decryption: bool) -> GetParameter<'a> {
        GetParameter {
            client: self,
            name,
            with_decryption,
            selector: None,
            refresh_now: false,
        }
    }

    /// (secretcache only) A read of several secrets' current versions in one request (`/secretsmanager/batch`): the
    /// extension answers hits from its cache and fetches every miss in one BatchGetSecretValue. At most
    /// [`MAX_SECRET_BATCH`](crate::contract::MAX_SECRET_BATCH) ids; the extension refuses more (a 400).
    pub fn secret_batch<'a>(&'a self, ids: impl IntoIterator<Item = &'a str>) -> SecretBatch<'a> {
        SecretBatch {
            client: self,
            ids: ids.into_iter().collect(),
        }
    }

    /// (secretcache only) A read of several SSM parameters in one request (`/systemsmanager/parameters/batch`), as
    /// GetParameters reads them: names or ARNs, each optionally with `:version` or `:label`. At most
    /// [`MAX_PARAMETER_BATCH`](crate::contract::MAX_PARAMETER_BATCH) names.
    pub fn parameter_batch<'a>(
        &'a self,
        names: impl IntoIterator<Item = &'a str>,
        with_decryption: bool,
    ) -> ParameterBatch<'a> {
        ParameterBatch {
            client: self,
            names: names.into_iter().collect(),
            with_decryption,
        }
    }
}

/// A read of one secret; [`GetSecret::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct GetSecret<'a> {
    client: &'a Client,
    secret_id: &'a str,
    version_id: Option<&'a str>,
    version_stage: Option<&'a str>,
    refresh_now: bool,
}

impl<'a> GetSecret<'a> {
    /// Asks for the version with this id.
    pub fn version_id(mut self, version_id: &'a str) -> Self {
        self.version_id = Some(version_id);
        self
    }

    /// Asks for the version with this staging label (e.g. [`crate::contract::stage::AWSPENDING`]). With
    /// [`GetSecret::version_id`] too, both go upstream, which answers when they agree.
    pub fn version_stage(mut self, version_stage: &'a str) -> Self {
        self.version_stage = Some(version_stage);
        self
    }

    /// (secretcache only) Bypasses the cache and fetches anew; the extension single-flights it, and answers an error
    /// rather than a stale value. For after a rotation; the AWS extension ignores it.
    pub fn refresh_now(mut self, refresh_now: bool) -> Self {
        self.refresh_now = refresh_now;
        self
    }

    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = format!(
            "{}?{}={}",
            path::SECRET,
            query::SECRET_ID,
            utf8_percent_encode(self.secret_id, QUERY_VALUE)
        );
        push(&mut target, query::VERSION_ID, self.version_id);
        push(&mut target, query::VERSION_STAGE, self.version_stage);
        if self.refresh_now {
            push(&mut target, query::REFRESH_NOW, Some("true"));
        }
        target
    }

    /// Reads the secret.
    pub async fn send(self) -> Result<GetSecretValueBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetSecretValue")
            .await
    }
}

/// Which version of a parameter to read.
#[derive(Debug, Clone, Copy)]
enum Selector<'a> {
    Version(u64),
    Label(&'a str),
}

/// A read of one SSM parameter; [`GetParameter::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct GetParameter<'a> {
    client: &'a Client,
    name: &'a str,
    with_decryption: bool,
    selector: Option<Selector<'a>>,
    refresh_now: bool,
}

impl<'a> GetParameter<'a> {
    /// Asks for this version (replacing a label asked for before).
    pub fn version(mut self, version: u64) -> Self {
        self.selector = Some(Selector::Version(version));
        self
    }

    /// Asks for the version with this label (replacing a version asked for before).
    pub fn label(mut self, label: &'a str) -> Self {
        self.selector = Some(Selector::Label(label));
        self
    }

    /// (secretcache only) Bypasses the cache and fetches anew, as [`GetSecret::refresh_now`].
    pub fn refresh_now(mut self, refresh_now: bool) -> Self {
        self.refresh_now = refresh_now;
        self
    }

    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = format!(
            "{}?{}={}",
            path::PARAMETER,
            query::NAME,
            utf8_percent_encode(self.name, QUERY_VALUE)
        );
        let decrypt = if self.with_decryption {
            "true"
        } else {
            "false"
        };
        push(&mut target, query::WITH_DECRYPTION, Some(decrypt));
        match self.selector {
            Some(Selector::Version(v)) => push(&mut target, query::VERSION, Some(&v.to_string())),
            Some(Selector::Label(l)) => push(&mut target, query::LABEL, Some(l)),
            None => {}
        }
        if self.refresh_now {
            push(&mut target, query::REFRESH_NOW, Some("true"));
        }
        target
    }

    /// Reads the parameter.
    pub async fn send(self) -> Result<GetParameterBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetParameter")
            .await
    }
}

/// (secretcache only) A read of several secrets' current versions; [`SecretBatch::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct SecretBatch<'a> {
    client: &'a Client,
    ids: Vec<&'a str>,
}

impl SecretBatch<'_> {
    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        repeated(path::SECRET_BATCH, query::SECRET_ID, &self.ids)
    }

    /// Reads the secrets: one answer for every id, a value or an error (see [`BatchGetSecretValueBody`]).
    pub async fn send(self) -> Result<BatchGetSecretValueBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "BatchGetSecretValue")
            .await
    }
}

/// (secretcache only) A read of several SSM parameters; [`ParameterBatch::send`] makes it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct ParameterBatch<'a> {
    client: &'a Client,
    names: Vec<&'a str>,
    with_decryption: bool,
}

impl ParameterBatch<'_> {
    /// The request target, as it goes on the wire.
    pub fn path_and_query(&self) -> String {
        let mut target = repeated(path::PARAMETER_BATCH, query::NAME, &self.names);
        let decrypt = if self.with_decryption {
            "true"
        } else {
            "false"
        };
        push(&mut target, query::WITH_DECRYPTION, Some(decrypt));
        target
    }

    /// Reads the parameters: one answer for every name (see [`GetParametersBody`]).
    pub async fn send(self) -> Result<GetParametersBody<'static>, Error> {
        self.client
            .get_json(&self.path_and_query(), "GetParameters")
            .await
    }
}

/// `path?name=a&name=b...`, every value escaped.
fn repeated(path: &str, name: &str, values: &[&str]) -> String {
    let mut target = path.to_owned();
    for (i, value) in values.iter().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        target.push_str(name);
        target.push('=');
        target.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    target
}

fn push(target: &mut String, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        target.push('&');
        target.push_str(name);
        target.push('=');
        target.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_escape_everything_but_the_unreserved() {
        let client = Client::builder().build();
        let arn = "arn:aws:secretsmanager:us-east-1:123:secret:db/prod-AbC";
        assert_eq!(
            client.secret(arn).path_and_query(),
            "/secretsmanager/get?secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123%3Asecret%3Adb%2Fprod-AbC"
        );
        assert_eq!(
            client
                .secret("db")
                .version_id("a b")
                .version_stage("AWSPENDING")
                .refresh_now(true)
                .path_and_query(),
            "/secretsmanager/get?secretId=db&versionId=a%20b&versionStage=AWSPENDING&refreshNow=true"
        );
        assert_eq!(
            client.parameter("/app/db-url", true).path_and_query(),
            "/systemsmanager/parameters/get?name=%2Fapp%2Fdb-url&withDecryption=true"
        );
        assert_eq!(
            client
                .parameter("p", false)
                .version(3)
                .label("prod")
                .refresh_now(true)
                .path_and_query(),
            "/systemsmanager/parameters/get?name=p&withDecryption=false&label=prod&refreshNow=true"
        );
        assert_eq!(
            client.parameter("p", false).version(3).path_and_query(),
            "/systemsmanager/parameters/get?name=p&withDecryption=false&version=3"
        );
    }

    #[test]
    fn batch_targets_repeat_the_id_and_escape_each() {
        let client = Client::builder().build();
        assert_eq!(
            client
                .secret_batch(["db", "arn:aws:secretsmanager:us-east-1:123:secret:a/b-AbC"])
                .path_and_query(),
            "/secretsmanager/batch?secretId=db\
             &secretId=arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123%3Asecret%3Aa%2Fb-AbC"
        );
        assert_eq!(
            client
                .parameter_batch(["/app/a", "/app/b:3"], true)
                .path_and_query(),
            "/systemsmanager/parameters/batch?name=%2Fapp%2Fa&name=%2Fapp%2Fb%3A3&withDecryption=true"
        );
    }

    #[test]
    fn debug_redacts_the_token() {
        let client = Client::builder().token("hunter2").build();
        for text in [
            format!("{:?}", client.secret("db")),
            format!("{:?}", client.parameter("p", true)),
            format!("{:?}", client.secret_batch(["db"])),
            format!("{:?}", client.parameter_batch(["p"], true)),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("REDACTED"), "{text}");
        }
    }
}
