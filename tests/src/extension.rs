//! The built `secretcache` binary as a child process ([`Standalone`]: environment set explicitly, output captured,
//! killed on drop), and [`Client`], which talks to any running extension (one inside the local Lambda environment
//! too) as a function does.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::moto::{Endpoint, REGION};

/// A running extension; killed on drop.
#[derive(Debug)]
pub struct Standalone {
    child: Child,
    port: u16,
    token: String,
    logs: Arc<Mutex<String>>,
}

/// The environment a test extension always gets, before the test's own overrides.
pub fn base_env(endpoint: &str, port: u16, token: &str) -> Vec<(String, String)> {
    [
        ("PATH", std::env::var("PATH").unwrap_or_default().as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", token),
        ("AWS_REGION", REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port.to_string()),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Standalone {
    /// An AWS SDK configuration whose endpoint is this extension (as `AWS_ENDPOINT_URL_SECRETS_MANAGER` points an
    /// application's), signing with access key `testing`, `secret_key` and this extension's token as the session
    /// token: the function's own credentials when `secret_key` is `testing`.
    pub async fn sdk_config(&self, secret_key: &str) -> aws_config::SdkConfig {
        use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
        crate::moto::sdk_config(&self.url())
            .await
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing",
                secret_key,
                Some(self.token()),
                None,
                "tests",
            )))
            .build()
    }

    /// Spawns the extension standalone against `upstream` (moto or a proxy) and waits until `/ping` answers.
    pub async fn spawn(upstream: &impl Endpoint, overrides: &[(&str, &str)]) -> Standalone {
        let port = crate::free_port();
        let token = crate::random_token();
        let ext = Self::spawn_with_env(
            base_env(&upstream.endpoint(), port, &token),
            overrides,
            port,
            token,
        );
        ext.wait_ready(Duration::from_secs(20)).await;
        ext
    }

    /// Spawns with exactly `env` plus `overrides` (an empty override value removes the variable). Does not wait.
    pub fn spawn_with_env(
        env: Vec<(String, String)>,
        overrides: &[(&str, &str)],
        port: u16,
        token: String,
    ) -> Standalone {
        Self::spawn_with_args(env, overrides, &[], port, token)
    }

    /// Like [`Standalone::spawn_with_env`], with command-line arguments (`--config <file>`).
    pub fn spawn_with_args(
        env: Vec<(String, String)>,
        overrides: &[(&str, &str)],
        args: &[&str],
        port: u16,
        token: String,
    ) -> Standalone {
        let mut cmd = Command::new(crate::extension_bin());
        cmd.args(args);
        cmd.env_clear();
        for (k, v) in &env {
            if !overrides.iter().any(|(o, _)| o == k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in overrides {
            if !v.is_empty() {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn secretcache");
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, Arc::clone(&logs));
        }
        if let Some(err) = child.stderr.take() {
            capture(err, Arc::clone(&logs));
        }
        Standalone {
            child,
            port,
            token,
            logs,
        }
    }

    /// Waits until `/ping` answers 200; panics with the logs if the process dies or the time runs out.
    pub async fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(r) = crate::http::get(&format!("{}/ping", self.url()), &[]).await {
                if r.status == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("secretcache did not become ready; logs:\n{}", self.logs());
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resident memory in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid().and_then(crate::rss_kib)
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, ...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid.to_string()])
                .status();
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// The token the extension accepts.
    pub fn token(&self) -> String {
        self.token.clone()
    }
    /// Everything the process wrote so far, stdout and stderr interleaved by line.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `GET /secretsmanager/get?<query>` with the right token.
    pub async fn get_secret(&self, query: &str) -> crate::http::Response {
        self.client().get_secret(query).await
    }

    /// A client for it.
    pub fn client(&self) -> Client {
        Client::new(self.port, &self.token)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Waits for the process to exit, up to `within`; returns its exit status if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

fn capture(stream: impl AsyncRead + Unpin + Send + 'static, logs: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut l) = logs.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
}

/// A running extension as a function sees it: where it listens and the token it accepts.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    token: String,
}

impl Client {
    /// The extension on 127.0.0.1:`port` that accepts `token`.
    pub fn new(port: u16, token: &str) -> Client {
        Client {
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_owned(),
        }
    }

    /// `GET /secretsmanager/get?<query>` with the right token.
    pub async fn get_secret(&self, query: &str) -> crate::http::Response {
        crate::http::get(
            &format!("{}/secretsmanager/get?{query}", self.url),
            &[("X-Aws-Parameters-Secrets-Token", &self.token)],
        )
        .await
        .expect("request to the extension")
    }
}
