//! A rehearsal of the first calls, during init: one GetSecretValue and one GetParameter through the real clients'
//! whole stack (the request's serializer, the endpoint rules, SigV4 signing, the HTTP connector's set-up, the
//! response's parser and our body), with everything but the network.
//!
//! A new process pays on its first call for what the SDK does lazily: the HTTP connector for the call's timeout
//! settings (a rustls configuration, the system's root certificates parsed again for it), first-use statics, and the
//! page faults of code it has not run yet. Rehearsed in the background once the clients are built, none of that is
//! left for the first real read. The rehearsal's HTTP client asks the real one for its connector, which the real one
//! keeps for the calls that follow, and answers from a canned body instead of calling it. Nothing leaves the
//! process, and the credentials are placeholders: neither the environment's nor an assumed role's are asked for.

use aws_sdk_secretsmanager::config::Credentials;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::HttpResponse;

/// Secrets Manager's answer to the rehearsal's GetSecretValue.
const SECRET: &str = r#"{"ARN":"arn:aws:secretsmanager:us-east-1:000000000000:secret:secretcache-rehearsal-AbCdEf","Name":"secretcache-rehearsal","VersionId":"00000000-0000-4000-8000-000000000000","SecretString":"rehearsal","VersionStages":["AWSCURRENT"],"CreatedDate":1.7E9}"#;

/// Parameter Store's answer to the rehearsal's GetParameter.
const PARAMETER: &str = r#"{"Parameter":{"ARN":"arn:aws:ssm:us-east-1:000000000000:parameter/secretcache/rehearsal","Name":"/secretcache/rehearsal","Type":"String","Value":"rehearsal","Version":1,"LastModifiedDate":1.7E9,"DataType":"text"}}"#;

/// Answers every request with `200` and its body, at once.
#[derive(Debug)]
struct Canned(&'static str);

impl HttpConnector for Canned {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(
            StatusCode::try_from(200).expect("200 is a status code"),
            SdkBody::from(self.0),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// An HTTP client that has `real` build (and cache) its connector for the settings it is asked with, then answers
/// with `body` instead.
fn stand_in(real: SharedHttpClient, body: &'static str) -> SharedHttpClient {
    http_client_fn(move |settings, components| {
        let _ = real.http_connector(settings, components);
        SharedHttpConnector::new(Canned(body))
    })
}

fn placeholder_credentials() -> Credentials {
    Credentials::new(
        "rehearsal",
        "rehearsal",
        None,
        None,
        "secretcache-rehearsal",
    )
}

/// Runs one GetSecretValue through a copy of `secrets` and one GetParameter through a copy of `ssm`, each with a
/// stand-in for its HTTP client, and builds our bodies from the answers. An error says which step failed; it costs
/// nothing but the warm start it would have given. Clients without an HTTP client (never built so) are an error,
/// not a skipped rehearsal.
pub(super) async fn rehearse(
    secrets: &aws_sdk_secretsmanager::Client,
    ssm: &aws_sdk_ssm::Client,
) -> Result<(), String> {
    let no_http = |service| format!("the {service} client has no HTTP client");
    let secrets_http = secrets
        .config()
        .http_client()
        .ok_or_else(|| no_http("Secrets Manager"))?;
    let ssm_http = ssm.config().http_client().ok_or_else(|| no_http("SSM"))?;

    let secrets = aws_sdk_secretsmanager::Client::from_conf(
        secrets
            .config()
            .to_builder()
            .http_client(stand_in(secrets_http, SECRET))
            .credentials_provider(placeholder_credentials())
            .build(),
    );
    let out = secrets
        .get_secret_value()
        .secret_id("secretcache-rehearsal")
        .send()
        .await
        .map_err(|e| format!("GetSecretValue: {e}"))?;
    super::secret_fetched(&out).map_err(|e| format!("GetSecretValue's body: {e}"))?;

    let ssm = aws_sdk_ssm::Client::from_conf(
        ssm.config()
            .to_builder()
            .http_client(stand_in(ssm_http, PARAMETER))
            .credentials_provider(placeholder_credentials())
            .build(),
    );
    let out = ssm
        .get_parameter()
        .name("/secretcache/rehearsal")
        .send()
        .await
        .map_err(|e| format!("GetParameter: {e}"))?;
    super::parameter_fetched(&out).map_err(|e| format!("GetParameter's body: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;
    use crate::upstream::AwsUpstream;

    /// The rehearsal runs both calls to the end (bodies built) in Lambda's way of loading the configuration and in
    /// the SDK's default chain, and nothing reaches the endpoint: it is a listener that counts the connections it
    /// is offered.
    #[tokio::test]
    async fn rehearsal_runs_both_calls_and_sends_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&accepted);
        let server = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        for runtime_api in [Some("127.0.0.1:9001"), None] {
            let mut vars: HashMap<String, String> = [
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "not-a-secret"),
                ("AWS_SESSION_TOKEN", "token"),
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.as_str()),
                ("AWS_ENDPOINT_URL_SSM", endpoint.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            if let Some(api) = runtime_api {
                vars.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), api.to_owned());
            }
            let upstream = AwsUpstream::new(&Config::load(&vars, None), Default::default());
            let clients = upstream.clients(None).await;
            super::rehearse(&clients.secrets, &clients.ssm)
                .await
                .expect("the rehearsal runs to the end");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
        server.abort();
    }
}
