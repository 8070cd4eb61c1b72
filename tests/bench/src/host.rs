//! The machine the bench runs on: its CPUs, pinning processes to them, and per-process figures from `/proc`.
//!
//! Pinning goes through `taskset` (util-linux) rather than `sched_setaffinity` directly, because the workspace
//! forbids `unsafe` and the command does exactly this job.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

/// Which CPU the load generator and the servers under test run on, when the machine allows pinning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pinning {
    /// CPU of this process (load generator, harness, moto).
    pub client_cpu: usize,
    /// CPU of every server under load (baseline, ours, peer).
    pub server_cpu: usize,
}

/// What the table says about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: Vec<usize>,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// The pinning in force, if any.
    pub pinning: Option<Pinning>,
}

impl Machine {
    /// Reads the machine and chooses a pinning: the first allowed CPU for the client, the last for the servers.
    /// With one CPU, or without `taskset`, nothing is pinned.
    pub fn detect() -> Machine {
        let cpus = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(|v| parse_cpu_list(v.trim()))
            })
            .unwrap_or_default();
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = command_output("uname", &["-r"]).unwrap_or_else(|| "unknown".to_owned());
        let taskset = command_output("taskset", &["--version"]).is_some();
        let pinning = match (cpus.first(), cpus.last()) {
            (Some(&c), Some(&s)) if c != s && taskset => Some(Pinning {
                client_cpu: c,
                server_cpu: s,
            }),
            _ => None,
        };
        Machine {
            cpus,
            cpu_model,
            kernel,
            pinning,
        }
    }

    /// One line for the table header.
    pub fn describe(&self) -> String {
        let pin = match self.pinning {
            Some(p) => format!(
                "servers pinned to CPU {} with taskset, load generator and harness to CPU {}",
                p.server_cpu, p.client_cpu
            ),
            None => "nothing pinned (one CPU, or no taskset): client and server share the CPUs"
                .to_owned(),
        };
        format!(
            "{} CPUs ({}), {}, Linux {}; {}",
            self.cpus.len(),
            self.cpus
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.cpu_model,
            self.kernel,
            pin
        )
    }
}

/// Parses a kernel CPU list such as `0-3,6`.
pub fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => {
                if let Ok(c) = part.parse() {
                    cpus.push(c);
                }
            }
        }
    }
    cpus
}

/// Pins every thread of `pid` to `cpu`. Threads created later inherit the affinity of the thread that creates them.
pub fn pin(pid: u32, cpu: usize) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -a -p -c {cpu} {pid}: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        ))
    }
}

/// CPU time used so far by every live thread of `pid`, in nanoseconds (first field of each
/// `/proc/<pid>/task/<tid>/schedstat`). The server's threads live as long as it does, so differences are exact.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Whether `file` says the ELF binary at `path` is stripped (`None` when `file` is not installed).
pub fn is_stripped(path: &Path) -> Option<bool> {
    let out = command_output("file", &[&path.to_string_lossy()])?;
    Some(!out.contains("not stripped"))
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), vec![0, 1]);
        assert_eq!(parse_cpu_list("0-2,5, 7"), vec![0, 1, 2, 5, 7]);
        assert_eq!(parse_cpu_list("3"), vec![3]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
    }
}
