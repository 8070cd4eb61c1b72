//! A real moto server (the AWS API emulator) on a free port, from the project's virtualenv (`make venv`).
//!
//! Starting one costs a second or two of CPU (Python's imports), so a test binary starts one, [`Moto::shared`], and
//! its tests, which run in parallel, keep apart by name: each names what it creates through [`crate::seed::unique`].
//! A test that needs a moto of its own (one it stops, or whose every call it must see) starts one with
//! [`Moto::start`] and says why; that one stops when dropped. The shared one lives in a static, which is never
//! dropped, so a small watchdog process stops it as soon as the test process has exited, as
//! [`crate::postgres::PgCluster::shared`] does for PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::OnceCell;

/// Anything the extension can use as its AWS endpoint (moto itself, or a proxy in front of it).
pub trait Endpoint {
    /// `http://127.0.0.1:<port>`.
    fn endpoint(&self) -> String;
}

/// A reference to an endpoint is one too, so `&Moto::shared().await` and `&moto` read alike.
impl<T: Endpoint + ?Sized> Endpoint for &T {
    fn endpoint(&self) -> String {
        (**self).endpoint()
    }
}

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

/// Region used everywhere in tests.
pub const REGION: &str = "us-east-1";

static SHARED: OnceCell<Moto> = OnceCell::const_new();

impl Moto {
    /// The moto shared by every test of this binary, started on first use. Name what you create in it with
    /// [`crate::seed::unique`].
    pub async fn shared() -> &'static Moto {
        SHARED
            .get_or_init(|| async {
                let moto = Moto::start().await;
                moto.spawn_watchdog();
                moto
            })
            .await
    }

    /// Starts a moto of the caller's own and waits until it answers. Prefer [`Moto::shared`].
    pub async fn start() -> Moto {
        let bin = crate::workspace_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing; run `make venv` (make test does)",
            bin.display()
        );
        for _attempt in 0..3 {
            let port = crate::free_port();
            // A std child, not tokio's: the shared one outlives the runtime of the test that started it.
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto_server");
            let moto = Moto { child, port };
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
            // Dropped here, killed: most likely the port was taken between free_port() and the bind.
        }
        panic!("moto_server did not start");
    }

    /// Stops this moto once the test process has exited, for the shared one, which is never dropped.
    fn spawn_watchdog(&self) {
        crate::after_this_process_exits(&format!("kill {} 2>/dev/null", self.child.id()));
    }

    /// A Secrets Manager client pointed at this moto.
    pub async fn sm_client(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.endpoint()).await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
