//! The control plane's shared state: what the Runtime API and the Extensions API know about the processes, and
//! what the lifecycle code waits on.
//!
//! Both APIs are long polls. A process "waiting on next" holds an open request here; delivering an event answers
//! it, or queues the event when the process has not asked yet. The lifecycle code never sleeps in a loop: every
//! change calls [`Shared::notify`], and [`Shared::wait_until`] re-checks its condition on each change.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

/// The lifecycle phase, as the platform sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting extensions and the runtime.
    Init,
    /// Between invokes (frozen, by default).
    Idle,
    /// An invoke is in flight.
    Invoke,
    /// SHUTDOWN was sent.
    Shutdown,
    /// Nothing runs.
    Stopped,
}

impl Phase {
    /// The phase's name in log tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Idle => "idle",
            Self::Invoke => "invoke",
            Self::Shutdown => "shutdown",
            Self::Stopped => "stopped",
        }
    }
}

/// A registered extension.
#[derive(Debug)]
pub struct Agent {
    /// `Lambda-Extension-Identifier`.
    pub id: String,
    /// `Lambda-Extension-Name` (the executable's file name).
    pub name: String,
    /// The events it registered for (`INVOKE`, `SHUTDOWN`).
    pub events: Vec<String>,
    /// Events delivered before it asked for them.
    pub queue: VecDeque<serde_json::Value>,
    /// Its parked `event/next`, if any.
    pub waiter: Option<oneshot::Sender<serde_json::Value>>,
    /// When it last called `event/next`.
    pub last_next: Option<Instant>,
    /// When it first called `event/next`: the end of its own init.
    pub first_next: Option<Instant>,
    /// How long this environment took to answer its registration (most of it the scan of `/proc` for the ports it
    /// listens on, which grows with every socket on the machine): time the extension waited, not time it spent.
    pub registration_answered_in: Duration,
}

impl Agent {
    /// Whether it is parked on `event/next` with nothing left to take.
    pub fn is_waiting(&self) -> bool {
        self.queue.is_empty() && self.waiter.as_ref().is_some_and(|w| !w.is_closed())
    }

    /// Answers its `event/next` with `event`, or queues it.
    pub fn deliver(&mut self, event: serde_json::Value) {
        match self.waiter.take() {
            Some(waiter) => {
                if let Err(event) = waiter.send(event) {
                    // It hung up while parked; it gets the event on its next call.
                    self.queue.push_back(event);
                }
            }
            None => self.queue.push_back(event),
        }
    }
}

/// One invocation for the runtime, with the headers the Runtime API sends along.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: String,
    /// The event.
    pub body: Bytes,
}

/// How the runtime finished an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `invocation/{id}/response`.
    Response(Bytes),
    /// `invocation/{id}/error`, or a platform error (timeout, crash).
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, or the platform's error type.
        error_type: String,
        /// The error document.
        body: Bytes,
    },
}

/// The runtime's side of the Runtime API. On demand there is at most one of each; under Managed Instances a runtime
/// that serves invocations concurrently holds several `invocation/next` calls open (one per worker, or per process
/// of the runtime), and each gets a different invocation.
#[derive(Debug, Default)]
pub struct Runtime {
    /// Its parked `invocation/next` calls, oldest first.
    pub waiters: VecDeque<oneshot::Sender<Invocation>>,
    /// Invocations delivered before it asked, oldest first.
    pub queued: VecDeque<Invocation>,
    /// The invocations in flight and where each one's outcome goes.
    pub current: Vec<(String, oneshot::Sender<Outcome>)>,
}

impl Runtime {
    /// Whether it is parked on `invocation/next` with nothing left to take.
    pub fn is_waiting(&self) -> bool {
        self.queued.is_empty() && self.waiters.iter().any(|w| !w.is_closed())
    }

    /// Answers its oldest parked `invocation/next` that is still open, or queues the invocation.
    pub fn deliver(&mut self, mut invocation: Invocation) {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(invocation) {
                Ok(()) => return,
                // It hung up while parked; the next one (or its next call) gets the invocation.
                Err(back) => invocation = back,
            }
        }
        self.queued.push_back(invocation);
    }

    /// Takes the reply channel of the in-flight invocation `id`, if it is in flight.
    pub fn take_current(&mut self, id: &str) -> Option<oneshot::Sender<Outcome>> {
        let at = self.current.iter().position(|(current, _)| current == id)?;
        Some(self.current.swap_remove(at).1)
    }
}

/// One registration, as the Extensions API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `Lambda-Extension-Name`.
    pub name: String,
    /// The events it registered for.
    pub events: Vec<String>,
    /// The TCP ports the extension's process was listening on when it registered (read from `/proc` before the
    /// answer went out), so a test can tell that an extension was ready to serve before it said so.
    pub listening: Vec<u16>,
}

/// An error a process reported through `init/error` or `exit/error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedError {
    /// `runtime`, or the extension's name.
    pub source: String,
    /// `init/error` or `exit/error`.
    pub kind: &'static str,
    /// The `...-Function-Error-Type` header.
    pub error_type: String,
}

/// A process that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its pid.
    pub pid: u32,
    /// `runtime`, or the extension's name.
    pub name: String,
    /// How it ended (`exit status: 0`, `signal: 9 (SIGKILL)`, ...).
    pub status: String,
    /// When it was reaped.
    pub at: Instant,
}

/// Everything the two APIs and the lifecycle share.
#[derive(Debug)]
pub struct State {
    /// The current phase.
    pub phase: Phase,
    /// Registration is accepted only during init, before the runtime starts.
    pub registration_open: bool,
    /// The extension executables started in this init (their file names).
    pub expected_extensions: Vec<String>,
    /// Registered extensions.
    pub agents: Vec<Agent>,
    /// The runtime.
    pub runtime: Runtime,
    /// `init/error` and `exit/error` reports.
    pub errors: Vec<ReportedError>,
    /// Processes that ended.
    pub exits: Vec<Exit>,
    /// Every process started: its name (`runtime`, or the extension's file name), pid and start, latest last.
    pub started: Vec<(String, u32, Instant)>,
    /// Every registration since the environment was made, across inits.
    pub registrations: Vec<Registration>,
    /// Function name, version and handler, for the register response.
    pub function_name: String,
    /// See `function_name`.
    pub function_version: String,
    /// See `function_name`.
    pub handler: String,
    /// The account id, for extensions that accept the `accountId` feature.
    pub account_id: String,
    /// Lambda Managed Instances: a registration for `INVOKE` is refused.
    pub managed_instances: bool,
}

/// The state behind a mutex, and the change notification.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    /// Wraps `state`.
    pub fn new(state: State) -> Self {
        Self {
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    /// Locks the state. No code here panics while holding it with the state half-changed, so a poisoned lock is
    /// still consistent.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everyone waiting in [`Shared::wait_until`].
    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Waits until `check` gives a value, or `deadline` passes (then `None`).
    pub async fn wait_until<T>(
        &self,
        deadline: tokio::time::Instant,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        loop {
            // Created before the check: a `Notified` sees every `notify_waiters` from its creation on.
            let notified = self.changed.notified();
            if let Some(value) = check(&self.lock()) {
                return Some(value);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&self.lock());
            }
        }
    }
}
