//! The runtime and extension processes: started in their own process group, their output captured line by line,
//! their exit recorded, and signals sent to the whole group.
//!
//! Signals go to the whole process group (`killpg`, through nix's safe binding: the workspace forbids `unsafe`), so
//! a freeze reaches whatever the process itself started, as Lambda's cgroup freeze does. A signal is one system
//! call, not a fork: the freeze and thaw add next to nothing to an invoke's latency, as with Lambda's own freezer.
//! A binary run under an emulator ([`crate::launch`]) is no different: qemu-user is the process itself.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

use crate::launch::Launch;
use crate::logs::LogBook;
use crate::state::{Exit, Shared};

/// What a process is to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An external extension from `/opt/extensions`.
    Extension,
    /// The runtime (`bootstrap`).
    Runtime,
}

/// A started process. Dropping it kills it (SIGKILL).
#[derive(Debug)]
pub struct Proc {
    /// `runtime`, or the extension's file name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    watcher: JoinHandle<()>,
    captures: Vec<JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The watcher owns the child with kill_on_drop, so aborting it kills the process.
        self.watcher.abort();
        for c in &self.captures {
            c.abort();
        }
    }
}

impl Proc {
    /// Waits until everything the process wrote has been logged (its output reached end of file), at most until
    /// `deadline`. Call it after the process ended, so that no line it wrote is missing from the log.
    pub async fn drain_logs(&mut self, deadline: tokio::time::Instant) {
        for c in &mut self.captures {
            let _ = tokio::time::timeout_at(deadline, c).await;
        }
    }
}

/// Starts the program `launch` names with exactly `env`, in `cwd`, in a new process group.
pub fn spawn(
    name: &str,
    role: Role,
    launch: &Launch,
    env: &[(String, String)],
    cwd: &Path,
    logs: &LogBook,
    shared: &Arc<Shared>,
) -> std::io::Result<Proc> {
    let mut cmd = launch.command();
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Taken before the spawn, which returns once the program is exec'd: its start includes loading it.
    let spawned_at = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before its pid was read"))?;
    shared
        .lock()
        .started
        .push((name.to_owned(), pid, spawned_at));
    let mut captures = Vec::new();
    if let Some(out) = child.stdout.take() {
        captures.push(capture(out, name.to_owned(), logs.clone()));
    }
    if let Some(err) = child.stderr.take() {
        captures.push(capture(err, name.to_owned(), logs.clone()));
    }
    let (watch_name, shared) = (name.to_owned(), Arc::clone(shared));
    let watcher = tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(s) => describe(s),
            Err(e) => format!("unknown ({e})"),
        };
        shared.lock().exits.push(Exit {
            pid,
            name: watch_name,
            status,
            at: Instant::now(),
        });
        shared.notify();
    });
    Ok(Proc {
        name: name.to_owned(),
        role,
        pid,
        watcher,
        captures,
    })
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "killed by SIGKILL".to_owned(),
        (None, Some(15)) => "killed by SIGTERM".to_owned(),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "ended".to_owned(),
    }
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    source: String,
    logs: LogBook,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.push(&source, &line);
        }
    })
}

/// A signal the platform sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Freeze.
    Stop,
    /// Thaw.
    Cont,
    /// Ask to end (the runtime, at shutdown).
    Term,
    /// End now.
    Kill,
}

impl Signal {
    fn nix(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal as S;
        match self {
            Self::Stop => S::SIGSTOP,
            Self::Cont => S::SIGCONT,
            Self::Term => S::SIGTERM,
            Self::Kill => S::SIGKILL,
        }
    }
}

/// Waits (at most 1 s) until `pid` is stopped, or gone. `killpg` returns once the signal is queued; the process stops
/// when it next runs. Lambda's freezer reports a sandbox frozen only once it is, and so does this.
pub async fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + std::time::Duration::from_secs(1);
    while Instant::now() < deadline {
        match process_state(pid) {
            Some('T') | Some('t') | Some('Z') | Some('X') | None => return,
            _ => tokio::time::sleep(std::time::Duration::from_micros(200)).await,
        }
    }
}

/// The kernel's state letter for `pid` (`T` = stopped, `Z` = exited, not yet reaped), from `/proc/<pid>/stat`.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the state follows the last `)`.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Sends `signal` to the process group `pgid`: one system call, so it does not wait. A group that already ended is
/// not an error.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal.nix());
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `RssAnon`, ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident memory (`VmHWM`) of `pid` in KiB, from `/proc`; 0 once it is gone.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM").unwrap_or(0)
}

/// The TCP ports `pid` listens on, IPv4 and IPv6, from `/proc`: its socket descriptors (`/proc/<pid>/fd`) matched by
/// inode with the listening rows of `/proc/net/tcp` and `/proc/net/tcp6`. Empty when the process is gone.
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
        for row in text.lines().skip(1) {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let (Some(local), Some(&"0A"), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if inodes.contains(*inode) {
                if let Some(port) = local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}
