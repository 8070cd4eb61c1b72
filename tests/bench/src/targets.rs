//! The servers under test, as child processes: the baseline (a minimal hyper server), ours (the harness's
//! [`Standalone`] extension), and an optional compatible peer started from `BENCH_PEER_CMD`.
//!
//! All three run on the server CPU when the machine allows pinning. The baseline and the peer are started under
//! `taskset`, so a runtime that sizes its thread pool from the CPUs it may use sees the right count; ours has a fixed
//! pool of two workers and is pinned right after the harness spawns it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use secretcache_tests::extension::{base_env, Standalone};
use secretcache_tests::moto::Endpoint;
use tokio::process::{Child, Command};

use crate::host::Pinning;

/// The environment variable holding the peer's command line.
pub const PEER_CMD_VAR: &str = "BENCH_PEER_CMD";

/// Log level for every extension under measurement: `debug` (the harness default) logs every hit.
pub const LOG_LEVEL: (&str, &str) = ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "info");

/// Waits until `GET /ping` on `port` answers 200; returns how long that took from `since`.
pub async fn wait_ping(port: u16, since: Instant, within: Duration) -> Result<Duration, String> {
    let url = format!("http://127.0.0.1:{port}/ping");
    while since.elapsed() < within {
        if let Ok(r) = secretcache_tests::http::get(&url, &[]).await {
            if r.status == 200 {
                return Ok(since.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(format!(
        "nothing answered /ping on port {port} within {within:?}"
    ))
}

/// A child process under test that is not ours; killed on drop.
#[derive(Debug)]
pub struct Process {
    child: Child,
    port: u16,
    /// From spawn until `/ping` answered.
    pub spawn_to_ready: Duration,
}

impl Process {
    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

fn pinned_command(program: &str, pinning: Option<Pinning>) -> Command {
    match pinning {
        Some(p) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &p.server_cpu.to_string(), program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Starts the baseline server answering `body_len` bytes, and waits until it answers.
pub async fn spawn_baseline(body_len: usize, pinning: Option<Pinning>) -> Result<Process, String> {
    let port = secretcache_tests::free_port();
    let bin = secretcache_tests::bin_path("bench-baseline-server");
    let start = Instant::now();
    let child = pinned_command(&bin.to_string_lossy(), pinning)
        .args([port.to_string(), body_len.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let spawn_to_ready = wait_ping(port, start, Duration::from_secs(10)).await?;
    Ok(Process {
        child,
        port,
        spawn_to_ready,
    })
}

/// Starts ours standalone against `upstream`, waits until it answers, and pins it to the server CPU.
pub async fn spawn_ours(
    upstream: &impl Endpoint,
    pinning: Option<Pinning>,
) -> Result<Standalone, String> {
    spawn_ours_with(upstream, &[], pinning).await
}

/// [`spawn_ours`] with `extra` environment variables (after [`LOG_LEVEL`], which they may override).
pub async fn spawn_ours_with(
    upstream: &impl Endpoint,
    extra: &[(&str, &str)],
    pinning: Option<Pinning>,
) -> Result<Standalone, String> {
    let mut env = vec![LOG_LEVEL];
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend_from_slice(extra);
    let ext = Standalone::spawn(upstream, &env).await;
    if let (Some(p), Some(pid)) = (pinning, ext.pid()) {
        crate::host::pin(pid, p.server_cpu)?;
    }
    Ok(ext)
}

/// How to start the peer: its command line, with `{port}` replaced by the port it must listen on.
#[derive(Debug, Clone)]
pub struct PeerCmd(pub String);

impl PeerCmd {
    /// From `BENCH_PEER_CMD`, when set and not blank.
    pub fn from_env() -> Option<PeerCmd> {
        std::env::var(PEER_CMD_VAR)
            .ok()
            .filter(|c| !c.trim().is_empty())
            .map(PeerCmd)
    }

    /// Starts the peer with the same environment ours gets (endpoint, credentials, token, port), plus `AWS_TOKEN`
    /// (the variable the AWS Secrets Manager Agent reads first) and `BENCH_PEER_PORT`. `extra` is added last. It runs
    /// as `sh -c 'exec <command>'`, under `taskset` when pinning, so its pid is the server's own. Its output goes to
    /// `log`. Waits until `/ping` answers 200.
    pub async fn spawn(
        &self,
        upstream: &impl Endpoint,
        token: &str,
        extra: &[(&str, &str)],
        pinning: Option<Pinning>,
        log: &PathBuf,
    ) -> Result<Process, String> {
        let port = secretcache_tests::free_port();
        let line = self.0.replace("{port}", &port.to_string());
        let line = match pinning {
            Some(p) => format!("exec taskset -c {} {line}", p.server_cpu),
            None => format!("exec {line}"),
        };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &line]).env_clear();
        for (k, v) in base_env(&upstream.endpoint(), port, token) {
            cmd.env(k, v);
        }
        if let Ok(home) = std::env::var("HOME") {
            cmd.env("HOME", home);
        }
        cmd.env(LOG_LEVEL.0, LOG_LEVEL.1)
            .env("AWS_TOKEN", token)
            .env("BENCH_PEER_PORT", port.to_string());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("open {}: {e}", log.display()))?;
        let start = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn the peer ({}): {e}", self.0))?;
        let spawn_to_ready = wait_ping(port, start, Duration::from_secs(20))
            .await
            .map_err(|e| format!("peer `{}`: {e}; see {}", self.0, log.display()))?;
        Ok(Process {
            child,
            port,
            spawn_to_ready,
        })
    }
}
