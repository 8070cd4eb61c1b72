//! A real moto server (the AWS API emulator) on a free port, from the project's virtualenv (`make venv`).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Anything the extension can use as its AWS endpoint (moto itself, or a proxy in front of it).
pub trait Endpoint {
    /// `http://127.0.0.1:<port>`.
    fn endpoint(&self) -> String;
}

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    _child: Child,
    port: u16,
}

/// Region used everywhere in tests.
pub const REGION: &str = "us-east-1";

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Moto {
        let bin = crate::workspace_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing; run `make venv` (make test does)",
            bin.display()
        );
        for _attempt in 0..3 {
            let port = crate::free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn moto_server");
            let moto = Moto {
                _child: child,
                port,
            };
            for _ in 0..300 {
                if let Ok(r) =
                    crate::http::get(&format!("{}/moto-api/data.json", moto.endpoint()), &[]).await
                {
                    if r.status == 200 {
                        return moto;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("moto_server did not start");
    }

    /// A Secrets Manager client pointed at this moto.
    pub async fn sm_client(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.endpoint()).await)
    }
}

impl Endpoint for Moto {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// SDK configuration with test credentials for `endpoint`.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

impl Moto {
    /// A Secrets Manager client of another account: the credentials of `role`, assumed through moto's STS (moto keeps
    /// accounts apart by the caller's credentials), as that account's own admin would use.
    pub async fn sm_client_as(&self, role: &str) -> aws_sdk_secretsmanager::Client {
        let base = sdk_config(&self.endpoint()).await;
        let assumed = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("owner")
            .configure(&base)
            .build()
            .await;
        let config = base
            .into_builder()
            .credentials_provider(
                aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(assumed),
            )
            .build();
        aws_sdk_secretsmanager::Client::new(&config)
    }

    /// An SSM client pointed at this moto.
    pub async fn ssm_client(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.endpoint()).await)
    }
}
