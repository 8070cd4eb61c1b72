//! One execution environment and its lifecycle, as the Lambda documentation describes it:
//!
//! - **Init**: every executable in `/opt/extensions` starts; once all have registered, the runtime (`bootstrap`)
//!   starts; init ends when the runtime and every extension wait on `next`, within 10 s.
//! - **Invoke**: INVOKE goes to the extensions that asked for it and the event to the runtime; the invoke ends when
//!   the runtime has answered **and** everyone is back on `next` (the gap is the extensions' post-runtime time).
//!   A timeout or a crash resets the environment, and the next invoke starts a new init.
//! - **Freeze**: between invokes (and after init) every process group gets SIGSTOP, and SIGCONT before the next
//!   event, so anything that counts on running in the background shows up.
//! - **Shutdown**: SIGTERM to the runtime and SHUTDOWN to the extensions with a real deadline (2 s); whoever is
//!   still alive then gets SIGKILL.
//!
//! A zip built for the other architecture runs under qemu-user ([`crate::launch`]); a platform line says so at
//! each start, since Lambda itself never prints one.
//!
//! Lifecycle operations are serialised by one async mutex, as one environment runs one invoke at a time.
//!
//! **Lambda Managed Instances** ([`Options::managed_instances`]) differ as that mode documents: nothing is frozen,
//! a registration for `INVOKE` is refused (see [`crate::api`]), extensions get no INVOKE, and invocations run side by
//! side, up to `AWS_LAMBDA_MAX_CONCURRENCY` at once, each answering one of the runtime's parked `invocation/next`
//! calls. The lifecycle mutex is then held only to init (or to reset after a crash), not for the invocation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::launch::{Launch, Launcher};
use crate::logs::{LogBook, LogLine, PLATFORM};
use crate::options::{lambda_vars, Options, Paths};
use crate::process::{peak_rss_kib, signal_group, spawn, wait_stopped, Proc, Role, Signal};
use crate::report::{
    InitFailure, InitReport, InvokeReport, InvokeStatus, ProcessEnd, ShutdownReport,
};
use crate::sandbox::{Sandbox, SandboxError};
use crate::state::{
    Invocation, Outcome, Phase, Registration, ReportedError, Runtime, Shared, State,
};
use crate::{api, ids};

/// Why an environment could not start or an invoke could not run.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The zips could not be laid out.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The API port could not be bound.
    #[error("binding the Runtime API port: {0}")]
    Bind(std::io::Error),
    /// Init failed (the environment stays down; the next invoke tries a new init, as Lambda does).
    #[error(transparent)]
    Init(#[from] InitFailure),
}

/// The result of one invoke.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// The runtime's response, or the error.
    pub outcome: Outcome,
    /// What it took.
    pub report: InvokeReport,
}

#[derive(Debug, Default)]
struct Life {
    procs: Vec<Proc>,
    alive: bool,
    /// The last init's duration, until the first invoke after it reports it.
    unreported_init: Option<Duration>,
}

/// A running local execution environment. Dropping it kills every process and removes its files.
#[derive(Debug)]
pub struct LambdaEnv {
    options: Options,
    sandbox: Sandbox,
    launcher: Launcher,
    shared: Arc<Shared>,
    logs: LogBook,
    runtime_api: String,
    session_token: String,
    log_stream: String,
    api_task: JoinHandle<()>,
    life: tokio::sync::Mutex<Life>,
    last_init: Mutex<Option<Result<InitReport, InitFailure>>>,
    reports: Mutex<Vec<InvokeReport>>,
    /// Under Managed Instances: one permit per invocation that may run at once (`AWS_LAMBDA_MAX_CONCURRENCY`).
    slots: tokio::sync::Semaphore,
}

impl Drop for LambdaEnv {
    fn drop(&mut self) {
        self.api_task.abort();
        // Dropping a Proc kills the process itself; this also reaches whatever it started (its process group).
        if let Ok(life) = self.life.try_lock() {
            // A group that already ended is skipped: its id may belong to someone else by now.
            let ended: Vec<u32> = self.shared.lock().exits.iter().map(|e| e.pid).collect();
            for p in life.procs.iter().filter(|p| !ended.contains(&p.pid)) {
                signal_group(p.pid, Signal::Kill);
            }
        }
    }
}

impl LambdaEnv {
    /// Lays out the zips, serves the APIs and runs init. An init failure is not an error here: it is kept in
    /// [`LambdaEnv::init_result`], and the first invoke tries again, as Lambda does.
    pub async fn start(options: Options) -> Result<Arc<LambdaEnv>, LambdaError> {
        let sandbox = Sandbox::new(&options.layers, &options.function)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LambdaError::Bind)?;
        let runtime_api = listener
            .local_addr()
            .map_err(LambdaError::Bind)?
            .to_string();
        let shared = Arc::new(Shared::new(State {
            phase: Phase::Stopped,
            registration_open: false,
            expected_extensions: Vec::new(),
            agents: Vec::new(),
            runtime: Runtime::default(),
            errors: Vec::new(),
            exits: Vec::new(),
            started: Vec::new(),
            registrations: Vec::new(),
            function_name: options.function_name.clone(),
            function_version: "$LATEST".to_owned(),
            handler: options.handler.clone(),
            account_id: options.account_id.clone(),
            managed_instances: options.managed_instances,
        }));
        let api_task = tokio::spawn(api::serve(listener, Arc::clone(&shared)));
        let now = ids::epoch_millis();
        let options_slots = options.max_concurrency.max(1) as usize;
        let env = Arc::new(LambdaEnv {
            logs: LogBook::new(options.echo_logs),
            session_token: options
                .session_token
                .clone()
                .unwrap_or_else(|| format!("local-{}{}", ids::hex(16), ids::hex(16))),
            log_stream: format!(
                "{}/[$LATEST]{}{}",
                ids::log_stream_date(now),
                ids::hex(16),
                ids::hex(16)
            ),
            options,
            sandbox,
            launcher: Launcher::from_host(),
            shared,
            runtime_api,
            api_task,
            life: tokio::sync::Mutex::new(Life::default()),
            last_init: Mutex::new(None),
            reports: Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(options_slots),
        });
        {
            let mut life = env.life.lock().await;
            let _ = env.init(&mut life).await;
        }
        Ok(env)
    }

    /// The last init's report or failure.
    pub fn init_result(&self) -> Option<Result<InitReport, InitFailure>> {
        lock(&self.last_init).clone()
    }

    /// Every line logged so far, the platform's included.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs.lines()
    }

    /// Every invoke report so far.
    pub fn reports(&self) -> Vec<InvokeReport> {
        lock(&self.reports).clone()
    }

    /// `AWS_SESSION_TOKEN` of this environment (the secrets extension's request token).
    pub fn session_token(&self) -> &str {
        &self.session_token
    }

    /// `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> &str {
        &self.runtime_api
    }

    /// The `/opt`, `/var/task` and `/tmp` of this environment.
    pub fn paths(&self) -> &Paths {
        &self.sandbox.paths
    }

    /// Every extension registration since the environment was made, across inits, with the ports each extension
    /// was listening on at that moment.
    pub fn registrations(&self) -> Vec<Registration> {
        self.shared.lock().registrations.clone()
    }

    /// How long the extension `name` of the current init took to be ready: from starting its process to its first
    /// `event/next` (its own share of the init), less the time this environment took to answer its registration
    /// (which is this stand-in's, not the extension's). `None` before it is ready.
    pub fn extension_ready_after(&self, name: &str) -> Option<Duration> {
        let state = self.shared.lock();
        let agent = state.agents.iter().find(|a| a.name == name)?;
        let first_next = agent.first_next?;
        let (_, _, started) = state.started.iter().rev().find(|(n, _, _)| n == name)?;
        Some(
            first_next
                .saturating_duration_since(*started)
                .saturating_sub(agent.registration_answered_in),
        )
    }

    /// The `init/error` and `exit/error` reports of the current (or last) init and its invokes.
    pub fn reported_errors(&self) -> Vec<ReportedError> {
        self.shared.lock().errors.clone()
    }

    /// The options it runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Waits until no invoke is in flight. The front door answers as soon as the runtime does, so a caller that
    /// wants the invoke's report (or the processes frozen) waits here first.
    pub async fn settled(&self) {
        let _life = self.life.lock().await;
        if self.options.managed_instances {
            // Invocations there run outside the lifecycle lock: settled means none is in flight.
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let _ = self
                .shared
                .wait_until(far, |s| s.runtime.current.is_empty().then_some(()))
                .await;
        }
    }

    /// Name and pid of every live process.
    pub async fn processes(&self) -> Vec<(String, u32)> {
        self.life
            .lock()
            .await
            .procs
            .iter()
            .map(|p| (p.name.clone(), p.pid))
            .collect()
    }

    /// Invokes the function with `event` and waits for the whole invoke (post-runtime included).
    pub async fn invoke(&self, event: Bytes) -> Result<Invoked, LambdaError> {
        self.invoke_with(event, None).await
    }

    /// Like [`LambdaEnv::invoke`], and sends the outcome to `early` as soon as the runtime answers, as Lambda
    /// returns the response before the extensions' post-runtime work ends. An init failure is sent there too.
    pub async fn invoke_with(
        &self,
        event: Bytes,
        early: Option<oneshot::Sender<Outcome>>,
    ) -> Result<Invoked, LambdaError> {
        if self.options.managed_instances {
            return self.invoke_concurrently(event, early).await;
        }
        let mut life = self.life.lock().await;
        if !life.alive {
            if let Err(e) = self.init(&mut life).await {
                if let Some(early) = early {
                    let _ = early.send(Outcome::Error {
                        error_type: e.error_type.clone(),
                        body: api::error_doc(&e.error_type, &e.message),
                    });
                }
                return Err(e.into());
            }
        }
        let init_duration = life.unreported_init.take();
        self.signal_all(&life, Signal::Cont).await;

        let request_id = ids::uuid();
        let timeout = self.options.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let deadline_ms = ids::epoch_millis() + timeout.as_millis() as u64;
        let pids: Vec<u32> = life.procs.iter().map(|p| p.pid).collect();
        let (reply, outcome_rx) = oneshot::channel();
        self.logs.set_phase(Phase::Invoke.as_str());
        self.logs.push(
            PLATFORM,
            &format!("START RequestId: {request_id} Version: $LATEST"),
        );
        let started = Instant::now();
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Invoke;
            state.runtime.current.push((request_id.clone(), reply));
            let event_doc = serde_json::json!({
                "eventType": "INVOKE",
                "deadlineMs": deadline_ms,
                "requestId": request_id,
                "invokedFunctionArn": self.options.function_arn(),
                "tracing": {"type": "X-Amzn-Trace-Id", "value": ids::trace_id()},
            });
            for agent in state
                .agents
                .iter_mut()
                .filter(|a| a.events.iter().any(|e| e == "INVOKE"))
            {
                agent.deliver(event_doc.clone());
            }
            state.runtime.deliver(Invocation {
                request_id: request_id.clone(),
                deadline_ms,
                invoked_function_arn: self.options.function_arn(),
                trace_id: ids::trace_id(),
                body: event,
            });
        }
        self.shared.notify();

        let mut status = InvokeStatus::Success;
        let outcome = tokio::select! {
            answered = outcome_rx => answered.unwrap_or_else(|_| platform_error("Runtime.ExitError", "the runtime went away")),
            crash = self.shared.wait_until(deadline, |s| crashed(s, &pids)) => match crash {
                Some(message) => {
                    status = InvokeStatus::Error("Runtime.ExitError".to_owned());
                    platform_error("Runtime.ExitError", &message)
                }
                None => {
                    status = InvokeStatus::Timeout;
                    platform_error(
                        "Sandbox.Timedout",
                        &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                    )
                }
            },
        };
        let answered_at = Instant::now();
        if let (InvokeStatus::Success, Outcome::Error { error_type, .. }) = (&status, &outcome) {
            status = InvokeStatus::Error(error_type.clone());
        }
        if let Some(early) = early {
            let _ = early.send(outcome.clone());
        }
        // The runtime may have answered; the invoke is over when everyone is back on `next`.
        let mut healthy = !matches!(status, InvokeStatus::Timeout)
            && !matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Runtime.ExitError");
        if healthy {
            let settled = self
                .shared
                .wait_until(deadline, |s| {
                    if crashed(s, &pids).is_some() {
                        Some(false)
                    } else if s.runtime.is_waiting() && s.agents.iter().all(|a| a.is_waiting()) {
                        Some(true)
                    } else {
                        None
                    }
                })
                .await;
            match settled {
                Some(true) => {}
                Some(false) => {
                    healthy = false;
                    status = InvokeStatus::Error("Runtime.ExitError".to_owned());
                }
                None => {
                    healthy = false;
                    status = InvokeStatus::Timeout;
                }
            }
        }
        let done = Instant::now();
        // Lambda's PostRuntimeExtensionsDuration counts the extensions only: from the response to the last extension
        // back on `event/next` (zero when they were back first). The runtime's own way back to `next` is not theirs.
        let extensions_back = self
            .shared
            .lock()
            .agents
            .iter()
            .filter_map(|a| a.last_next)
            .max();
        let report = InvokeReport {
            request_id: request_id.clone(),
            duration: done - started,
            runtime_duration: answered_at - started,
            post_runtime_duration: extensions_back
                .map_or(Duration::ZERO, |back| {
                    back.saturating_duration_since(answered_at)
                })
                .min(done - answered_at),
            init_duration,
            memory_size_mb: self.options.memory_mb,
            max_memory_used_mb: life.procs.iter().map(|p| peak_rss_kib(p.pid)).sum::<u64>() / 1024,
            status,
        };
        self.logs
            .push(PLATFORM, &format!("END RequestId: {request_id}"));
        self.logs.push(PLATFORM, &report.to_string());
        lock(&self.reports).push(report.clone());
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Idle;
            state.runtime.current.clear();
        }
        self.logs.set_phase(Phase::Idle.as_str());
        if healthy {
            self.signal_all(&life, Signal::Stop).await;
        } else {
            let reason = if report.status == InvokeStatus::Timeout {
                "timeout"
            } else {
                "failure"
            };
            let shutdown = self.shutdown_locked(&mut life, reason).await;
            self.logs.push(PLATFORM, &shutdown.to_string());
        }
        Ok(Invoked { outcome, report })
    }

    /// One invocation under Managed Instances: init first if the environment is down (under the lifecycle lock),
    /// then, holding only one of the `AWS_LAMBDA_MAX_CONCURRENCY` slots, the event goes to the next parked
    /// `invocation/next` and nothing to the extensions. Nothing is frozen after it. A timeout fails this invocation
    /// alone; a runtime that crashes resets the environment.
    async fn invoke_concurrently(
        &self,
        event: Bytes,
        early: Option<oneshot::Sender<Outcome>>,
    ) -> Result<Invoked, LambdaError> {
        let (pids, init_duration) = {
            let mut life = self.life.lock().await;
            if !life.alive {
                if let Err(e) = self.init(&mut life).await {
                    if let Some(early) = early {
                        let _ = early.send(Outcome::Error {
                            error_type: e.error_type.clone(),
                            body: api::error_doc(&e.error_type, &e.message),
                        });
                    }
                    return Err(e.into());
                }
            }
            let pids: Vec<u32> = life.procs.iter().map(|p| p.pid).collect();
            (pids, life.unreported_init.take())
        };
        // Beyond the limit Lambda routes elsewhere or throttles; one local environment queues instead.
        let _slot = self.slots.acquire().await.ok();
        let request_id = ids::uuid();
        let timeout = self.options.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let deadline_ms = ids::epoch_millis() + timeout.as_millis() as u64;
        let (reply, outcome_rx) = oneshot::channel();
        self.logs.set_phase(Phase::Invoke.as_str());
        self.logs.push(
            PLATFORM,
            &format!("START RequestId: {request_id} Version: $LATEST"),
        );
        let started = Instant::now();
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Invoke;
            state.runtime.current.push((request_id.clone(), reply));
            state.runtime.deliver(Invocation {
                request_id: request_id.clone(),
                deadline_ms,
                invoked_function_arn: self.options.function_arn(),
                trace_id: ids::trace_id(),
                body: event,
            });
        }
        self.shared.notify();
        let mut status = InvokeStatus::Success;
        let outcome = tokio::select! {
            answered = outcome_rx => answered.unwrap_or_else(|_| platform_error("Runtime.ExitError", "the runtime went away")),
            crash = self.shared.wait_until(deadline, |s| crashed(s, &pids)) => match crash {
                Some(message) => {
                    status = InvokeStatus::Error("Runtime.ExitError".to_owned());
                    platform_error("Runtime.ExitError", &message)
                }
                None => {
                    status = InvokeStatus::Timeout;
                    platform_error(
                        "Sandbox.Timedout",
                        &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                    )
                }
            },
        };
        let duration = started.elapsed();
        if let (InvokeStatus::Success, Outcome::Error { error_type, .. }) = (&status, &outcome) {
            status = InvokeStatus::Error(error_type.clone());
        }
        if let Some(early) = early {
            let _ = early.send(outcome.clone());
        }
        {
            let mut state = self.shared.lock();
            // Gone already when answered; a timed-out one is forgotten, so a late answer is refused.
            let _ = state.runtime.take_current(&request_id);
            if state.runtime.current.is_empty() {
                state.phase = Phase::Idle;
                self.logs.set_phase(Phase::Idle.as_str());
            }
        }
        self.shared.notify();
        let report = InvokeReport {
            request_id: request_id.clone(),
            duration,
            runtime_duration: duration,
            // No extension takes part in an invocation here.
            post_runtime_duration: Duration::ZERO,
            init_duration,
            memory_size_mb: self.options.memory_mb,
            max_memory_used_mb: pids.iter().map(|&pid| peak_rss_kib(pid)).sum::<u64>() / 1024,
            status,
        };
        self.logs
            .push(PLATFORM, &format!("END RequestId: {request_id}"));
        self.logs.push(PLATFORM, &report.to_string());
        lock(&self.reports).push(report.clone());
        if matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Runtime.ExitError")
        {
            let mut life = self.life.lock().await;
            // Another invocation may have reset it already.
            if life.alive && life.procs.iter().map(|p| p.pid).eq(pids.iter().copied()) {
                let shutdown = self.shutdown_locked(&mut life, "failure").await;
                self.logs.push(PLATFORM, &shutdown.to_string());
            }
        }
        Ok(Invoked { outcome, report })
    }

    /// Sends SHUTDOWN (reason `spindown`) and waits at most its deadline; survivors get SIGKILL.
    pub async fn shutdown(&self) -> ShutdownReport {
        let mut life = self.life.lock().await;
        let report = self.shutdown_locked(&mut life, "spindown").await;
        self.logs.push(PLATFORM, &report.to_string());
        report
    }

    async fn init(&self, life: &mut Life) -> Result<InitReport, InitFailure> {
        let result = self.try_init(life).await;
        match &result {
            Ok(report) => {
                life.alive = true;
                life.unreported_init = Some(report.duration);
                self.logs.push(
                    PLATFORM,
                    &format!(
                        "INIT_REPORT Init Duration: {:.2} ms\tExtensions: {}",
                        report.duration.as_secs_f64() * 1000.0,
                        report.extensions.join(",")
                    ),
                );
                self.shared.lock().phase = Phase::Idle;
                self.logs.set_phase(Phase::Idle.as_str());
                self.signal_all(life, Signal::Stop).await;
            }
            Err(failure) => {
                // What the processes wrote before init failed (a wrapper's reason, say) belongs in the log before
                // the report: they end now, and their output is read to its end first.
                for p in &life.procs {
                    signal_group(p.pid, Signal::Kill);
                }
                let drain_until = tokio::time::Instant::now() + Duration::from_secs(1);
                for p in &mut life.procs {
                    p.drain_logs(drain_until).await;
                }
                self.logs.push(
                    PLATFORM,
                    &format!(
                        "INIT_REPORT Status: error\tError Type: {}\t{}",
                        failure.error_type, failure.message
                    ),
                );
                self.kill_all(life).await;
            }
        }
        *lock(&self.last_init) = Some(result.clone());
        result
    }

    async fn try_init(&self, life: &mut Life) -> Result<InitReport, InitFailure> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.init_timeout;
        let extensions = self.sandbox.extensions().map_err(|e| InitFailure {
            error_type: "Extension.LaunchError".to_owned(),
            message: e.to_string(),
        })?;
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Init;
            state.registration_open = true;
            state.expected_extensions = extensions.iter().map(|(n, _)| n.clone()).collect();
            state.agents.clear();
            state.runtime = Runtime::default();
            state.errors.clear();
            state.exits.clear();
        }
        self.logs.set_phase(Phase::Init.as_str());
        self.logs.push(
            PLATFORM,
            "INIT_START Runtime Version: provided:al2023 (lambda-env)",
        );
        let env = lambda_vars(
            &self.options,
            &self.sandbox.paths,
            &self.runtime_api,
            &self.session_token,
            &self.log_stream,
        );
        let cwd = self.sandbox.paths.task.clone();
        for (name, path) in &extensions {
            let launch = self.plan(path).map_err(|e| InitFailure {
                error_type: "Extension.LaunchError".to_owned(),
                message: e.to_string(),
            })?;
            let proc = spawn(
                name,
                Role::Extension,
                &launch,
                &env,
                &cwd,
                &self.logs,
                &self.shared,
            )
            .map_err(|e| InitFailure {
                error_type: "Extension.LaunchError".to_owned(),
                message: format!("starting {name}: {e}"),
            })?;
            life.procs.push(proc);
        }
        let pids: Vec<u32> = life.procs.iter().map(|p| p.pid).collect();
        let expected = extensions.len();
        let registered = self
            .shared
            .wait_until(deadline, |s| {
                init_failure(s, &pids)
                    .map(Err)
                    .or_else(|| (s.agents.len() == expected).then_some(Ok(())))
            })
            .await;
        match registered {
            Some(Ok(())) => {}
            Some(Err(failure)) => return Err(failure),
            None => {
                return Err(init_timeout(
                    self.options.init_timeout,
                    "extensions to register",
                ))
            }
        }
        self.shared.lock().registration_open = false;

        let bootstrap = self.sandbox.bootstrap().ok_or_else(|| InitFailure {
            error_type: "Runtime.InvalidEntrypoint".to_owned(),
            message: "no bootstrap in the function zip (LAMBDA_TASK_ROOT) or a layer (/opt)"
                .to_owned(),
        })?;
        let launch = self.plan(&bootstrap).map_err(|e| InitFailure {
            error_type: "Runtime.InvalidEntrypoint".to_owned(),
            message: e.to_string(),
        })?;
        let runtime = spawn(
            "runtime",
            Role::Runtime,
            &launch,
            &env,
            &cwd,
            &self.logs,
            &self.shared,
        )
        .map_err(|e| InitFailure {
            error_type: "Runtime.InvalidEntrypoint".to_owned(),
            message: format!("starting bootstrap: {e}"),
        })?;
        life.procs.push(runtime);
        let pids: Vec<u32> = life.procs.iter().map(|p| p.pid).collect();
        let ready = self
            .shared
            .wait_until(deadline, |s| {
                init_failure(s, &pids).map(Err).or_else(|| {
                    (s.runtime.is_waiting() && s.agents.iter().all(|a| a.is_waiting()))
                        .then_some(Ok(()))
                })
            })
            .await;
        match ready {
            Some(Ok(())) => {}
            Some(Err(failure)) => return Err(failure),
            None => {
                return Err(init_timeout(
                    self.options.init_timeout,
                    "the runtime and every extension to call next",
                ))
            }
        }
        let names = self
            .shared
            .lock()
            .agents
            .iter()
            .map(|a| a.name.clone())
            .collect();
        Ok(InitReport {
            duration: started.elapsed(),
            extensions: names,
        })
    }

    /// How to start `program`, logged when it needs the emulator.
    fn plan(&self, program: &std::path::Path) -> Result<Launch, crate::launch::LaunchError> {
        let launch = self.launcher.plan(program)?;
        if launch.is_emulated() {
            self.logs.push(PLATFORM, &format!("EMULATED {launch}"));
        }
        Ok(launch)
    }

    async fn shutdown_locked(&self, life: &mut Life, reason: &str) -> ShutdownReport {
        let has_extensions = !self.shared.lock().agents.is_empty();
        // Lambda's shutdown budget: none without extensions, 2 s with an external one.
        let limit = if has_extensions {
            self.options.shutdown_timeout
        } else {
            Duration::ZERO
        };
        let mut report = ShutdownReport {
            reason: reason.to_owned(),
            limit,
            processes: Vec::new(),
        };
        if life.procs.is_empty() {
            return report;
        }
        self.signal_all(life, Signal::Cont).await;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let deadline_ms = ids::epoch_millis() + limit.as_millis() as u64;
        self.logs.set_phase(Phase::Shutdown.as_str());
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Shutdown;
            let event = serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason,
                "deadlineMs": deadline_ms,
            });
            for agent in state
                .agents
                .iter_mut()
                .filter(|a| a.events.iter().any(|e| e == "SHUTDOWN"))
            {
                agent.deliver(event.clone());
            }
        }
        self.shared.notify();
        if has_extensions {
            for p in life.procs.iter().filter(|p| p.role == Role::Runtime) {
                signal_group(p.pid, Signal::Term);
            }
        }
        let pids: Vec<u32> = life.procs.iter().map(|p| p.pid).collect();
        let all_ended = |s: &State| {
            pids.iter()
                .all(|pid| s.exits.iter().any(|e| e.pid == *pid))
                .then_some(())
        };
        let in_time = self.shared.wait_until(deadline, all_ended).await.is_some();
        if !in_time {
            for p in &life.procs {
                signal_group(p.pid, Signal::Kill);
            }
            let _ = self
                .shared
                .wait_until(
                    tokio::time::Instant::now() + Duration::from_secs(2),
                    all_ended,
                )
                .await;
        }
        // Everything they wrote before ending belongs in the log before the report is read.
        let drain_until = tokio::time::Instant::now() + Duration::from_secs(1);
        for p in &mut life.procs {
            p.drain_logs(drain_until).await;
        }
        {
            let state = self.shared.lock();
            for p in &life.procs {
                let exit = state.exits.iter().find(|e| e.pid == p.pid);
                let after = exit.map(|e| e.at.saturating_duration_since(started));
                report.processes.push(ProcessEnd {
                    name: p.name.clone(),
                    after,
                    status: exit.map_or_else(|| "still running".to_owned(), |e| e.status.clone()),
                    killed: after.is_none_or(|a| a > limit),
                });
            }
        }
        self.kill_all(life).await;
        report
    }

    /// Drops every process (SIGKILL) and forgets the registrations; parked `next` calls get an error.
    async fn kill_all(&self, life: &mut Life) {
        for p in &life.procs {
            // SIGKILL works on stopped processes too, and reaches what they started.
            signal_group(p.pid, Signal::Kill);
        }
        life.procs.clear();
        life.alive = false;
        {
            let mut state = self.shared.lock();
            state.phase = Phase::Stopped;
            state.registration_open = false;
            state.agents.clear();
            state.runtime = Runtime::default();
        }
        self.logs.set_phase(Phase::Stopped.as_str());
        self.shared.notify();
    }

    async fn signal_all(&self, life: &Life, signal: Signal) {
        let never_frozen = !self.options.freeze || self.options.managed_instances;
        if never_frozen && matches!(signal, Signal::Stop | Signal::Cont) {
            return;
        }
        let ended: Vec<u32> = self.shared.lock().exits.iter().map(|e| e.pid).collect();
        let live: Vec<u32> = life
            .procs
            .iter()
            .map(|p| p.pid)
            .filter(|pid| !ended.contains(pid))
            .collect();
        for &pid in &live {
            signal_group(pid, signal);
        }
        if signal == Signal::Stop {
            for &pid in &live {
                wait_stopped(pid).await;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn platform_error(error_type: &str, message: &str) -> Outcome {
    Outcome::Error {
        error_type: error_type.to_owned(),
        body: api::error_doc(error_type, message),
    }
}

fn init_timeout(limit: Duration, waiting_for: &str) -> InitFailure {
    InitFailure {
        error_type: "Sandbox.Timedout".to_owned(),
        message: format!(
            "init did not finish within {} s (waiting for {waiting_for})",
            limit.as_secs()
        ),
    }
}

fn init_failure(s: &State, pids: &[u32]) -> Option<InitFailure> {
    if let Some(e) = s.errors.first() {
        return Some(InitFailure {
            error_type: e.error_type.clone(),
            message: format!("{} called {}", e.source, e.kind),
        });
    }
    s.exits
        .iter()
        .find(|e| pids.contains(&e.pid))
        .map(|e| InitFailure {
            error_type: if e.name == "runtime" {
                "Runtime.ExitError".to_owned()
            } else {
                "Extension.Crash".to_owned()
            },
            message: format!("{} ended during init ({})", e.name, e.status),
        })
}

fn crashed(s: &State, pids: &[u32]) -> Option<String> {
    if let Some(e) = s.errors.iter().find(|e| e.kind == "exit/error") {
        return Some(format!("{} called exit/error ({})", e.source, e.error_type));
    }
    s.exits
        .iter()
        .find(|e| pids.contains(&e.pid))
        .map(|e| format!("{} ended during the invoke ({})", e.name, e.status))
}
