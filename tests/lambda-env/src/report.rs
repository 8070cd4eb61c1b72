//! What each phase took, in the shape of Lambda's `REPORT` lines, plus the numbers Lambda only gives as metrics
//! (the runtime's own duration and `PostRuntimeExtensionsDuration`).

use std::fmt;
use std::time::Duration;

/// A finished init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// From starting the first extension to the last `next`.
    pub duration: Duration,
    /// The extensions that registered, in start order.
    pub extensions: Vec<String>,
}

/// A failed init.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("init failed ({error_type}): {message}")]
pub struct InitFailure {
    /// Lambda's error type (`Runtime.ExitError`, `Extension.Crash`, `Sandbox.Timedout`, ...).
    pub error_type: String,
    /// What happened.
    pub message: String,
}

/// How an invoke ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeStatus {
    /// The runtime responded and everyone was back on `next` in time.
    Success,
    /// The runtime reported an error, or a process crashed.
    Error(String),
    /// The deadline passed.
    Timeout,
}

/// A finished invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeReport {
    /// The request id.
    pub request_id: String,
    /// From delivering the event to the runtime and every extension being back on `next`.
    pub duration: Duration,
    /// From delivering the event to the runtime's response.
    pub runtime_duration: Duration,
    /// From the runtime's response to the last extension's `next` (Lambda's `PostRuntimeExtensionsDuration`): the
    /// extensions' own time, zero when they were back before the runtime answered. The runtime's own way back to
    /// `next` is in `duration` only.
    pub post_runtime_duration: Duration,
    /// The init this invoke waited for, on a cold start.
    pub init_duration: Option<Duration>,
    /// The configured memory, in MB.
    pub memory_size_mb: u32,
    /// The peak resident memory of all processes together, in MB.
    pub max_memory_used_mb: u64,
    /// How it ended.
    pub status: InvokeStatus,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for InvokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            self.request_id,
            ms(self.duration),
            self.duration.as_millis() + 1,
            self.memory_size_mb,
            self.max_memory_used_mb
        )?;
        if let Some(init) = self.init_duration {
            write!(f, "\tInit Duration: {:.2} ms", ms(init))?;
        }
        write!(
            f,
            "\tRuntime Duration: {:.2} ms\tPost-Runtime Extensions Duration: {:.2} ms",
            ms(self.runtime_duration),
            ms(self.post_runtime_duration)
        )?;
        match &self.status {
            InvokeStatus::Success => Ok(()),
            InvokeStatus::Error(kind) => write!(f, "\tStatus: error\tError Type: {kind}"),
            InvokeStatus::Timeout => write!(f, "\tStatus: timeout"),
        }
    }
}

/// How one process ended at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEnd {
    /// `runtime`, or the extension's name.
    pub name: String,
    /// When it ended, counted from the SHUTDOWN event; `None` if it never did.
    pub after: Option<Duration>,
    /// How it ended.
    pub status: String,
    /// Whether it was still alive at the deadline and got SIGKILL.
    pub killed: bool,
}

/// A finished shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// `spindown`, `timeout` or `failure`.
    pub reason: String,
    /// What the processes were given.
    pub limit: Duration,
    /// Every process of the environment.
    pub processes: Vec<ProcessEnd>,
}

impl ShutdownReport {
    /// Whether every process ended by itself before the deadline.
    pub fn all_exited_in_time(&self) -> bool {
        self.processes
            .iter()
            .all(|p| !p.killed && p.after.is_some_and(|a| a <= self.limit))
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SHUTDOWN Reason: {}\tLimit: {} ms",
            self.reason,
            self.limit.as_millis()
        )?;
        for p in &self.processes {
            match p.after {
                Some(after) if !p.killed => {
                    write!(f, "\t{}: {} after {:.2} ms", p.name, p.status, ms(after))?
                }
                _ => write!(f, "\t{}: SIGKILL at the deadline", p.name)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_has_lambdas_fields() {
        let r = InvokeReport {
            request_id: "abc".to_owned(),
            duration: Duration::from_micros(12_346),
            runtime_duration: Duration::from_micros(12_000),
            post_runtime_duration: Duration::from_micros(346),
            init_duration: Some(Duration::from_millis(80)),
            memory_size_mb: 128,
            max_memory_used_mb: 20,
            status: InvokeStatus::Success,
        };
        assert_eq!(
            r.to_string(),
            "REPORT RequestId: abc\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\t\
             Max Memory Used: 20 MB\tInit Duration: 80.00 ms\tRuntime Duration: 12.00 ms\t\
             Post-Runtime Extensions Duration: 0.35 ms"
        );
    }
}
