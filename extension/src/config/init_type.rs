//! How Lambda started this execution environment (`AWS_LAMBDA_INITIALIZATION_TYPE`), and the few choices that depend
//! on it: which events to register for, and how many worker threads to run.
//!
//! - `on-demand` and `provisioned-concurrency`: one invocation at a time, the environment frozen between them. The
//!   extension registers for SHUTDOWN only, so an invocation never wakes it: a registered extension is scheduled on
//!   every INVOKE, and that wake-up took 12-15% of a warm `/items` invoke on 2 CPUs (BENCHMARKS.md, row 7), where the
//!   refresh it drives gains little: a read of a value near expiry is answered at once and refreshes it behind, a read
//!   of an expired one waits for the fetch either way, and the timer ([`crate::refresh_timer`]) runs whenever the
//!   environment is thawed. `PARAMETERS_SECRETS_EXTENSION_INVOKE_WAIT_MILLIS`, when set, brings back the INVOKE
//!   registration and its bounded wait for refreshes.
//! - `snap-start`: the same, and the environment may be restored from a snapshot (nothing prefetched before it, and
//!   everything cached dropped after it): it registers for INVOKE always, so that the first INVOKE after a restore
//!   drops what was cached before it, whatever the clocks say.
//! - `lambda-managed-instances`: never frozen, many invocations at once (up to `AWS_LAMBDA_MAX_CONCURRENCY`), and an
//!   extension may register for SHUTDOWN only, so refresh is driven by time.

use std::time::Duration;

/// The value of `AWS_LAMBDA_INITIALIZATION_TYPE` under Lambda Managed Instances.
pub const MANAGED_INSTANCES: &str = "lambda-managed-instances";

/// How long an INVOKE waits for the refreshes it starts when it is registered for and the wait is not set.
pub const DEFAULT_INVOKE_WAIT: Duration = Duration::from_millis(100);

/// Most worker threads under Managed Instances. A hit is a few microseconds of CPU, so four workers keep up with
/// hundreds of concurrent readers; more would only take CPU from the function's own handlers, which share the
/// environment's vCPUs with us.
pub const MANAGED_INSTANCES_MAX_WORKERS: usize = 4;

/// The mode Lambda started this environment in. Unset (outside Lambda) or a value we do not know reads as
/// [`InitType::OnDemand`]: should a new mode refuse INVOKE too, the registration falls back to SHUTDOWN only
/// ([`crate::extensions_api::register_or_shutdown_only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitType {
    /// `on-demand` (or unset).
    #[default]
    OnDemand,
    /// `provisioned-concurrency`.
    ProvisionedConcurrency,
    /// `snap-start`.
    SnapStart,
    /// `lambda-managed-instances`.
    ManagedInstances,
}

/// The Extensions API events an extension asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// `["INVOKE", "SHUTDOWN"]`: refresh rides on each INVOKE.
    InvokeAndShutdown,
    /// `["SHUTDOWN"]`: no INVOKE will come, so refresh is driven by time.
    ShutdownOnly,
}

impl Events {
    /// The names as the register call sends them.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Self::InvokeAndShutdown => &["INVOKE", "SHUTDOWN"],
            Self::ShutdownOnly => &["SHUTDOWN"],
        }
    }
}

impl InitType {
    /// Reads the variable's (trimmed) value.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("provisioned-concurrency") => Self::ProvisionedConcurrency,
            Some("snap-start") => Self::SnapStart,
            Some(MANAGED_INSTANCES) => Self::ManagedInstances,
            _ => Self::OnDemand,
        }
    }

    /// The variable's value for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnDemand => "on-demand",
            Self::ProvisionedConcurrency => "provisioned-concurrency",
            Self::SnapStart => "snap-start",
            Self::ManagedInstances => MANAGED_INSTANCES,
        }
    }

    /// What to register for, given whether the INVOKE wait was set (`invoke_wait_set`): Managed Instances refuse an
    /// INVOKE registration (an init error), so SHUTDOWN only there, always; SnapStart needs INVOKE to drop what was
    /// cached before a restore; on demand and with provisioned concurrency, INVOKE only when the wait was set.
    pub fn events(self, invoke_wait_set: bool) -> Events {
        match self {
            Self::ManagedInstances => Events::ShutdownOnly,
            Self::SnapStart => Events::InvokeAndShutdown,
            Self::OnDemand | Self::ProvisionedConcurrency if invoke_wait_set => {
                Events::InvokeAndShutdown
            }
            Self::OnDemand | Self::ProvisionedConcurrency => Events::ShutdownOnly,
        }
    }

    /// How many tokio worker threads to run, given the CPUs this process may use (its affinity mask and cgroup quota)
    /// and `AWS_LAMBDA_MAX_CONCURRENCY` when Lambda sets it.
    ///
    /// On demand (and the other frozen modes): one per CPU, at most two. Lambda gives such an environment one or two
    /// vCPUs shared with the function, and two workers on one CPU take turns by preemption: a hit queued behind the
    /// other worker waits a whole scheduler slice (4 ms).
    ///
    /// Managed Instances: the environment owns several vCPUs and serves many invocations at once, so one per CPU up
    /// to [`MANAGED_INSTANCES_MAX_WORKERS`], and no more than the readers that can come at once (but two at least, so
    /// background refreshes never queue behind a hit).
    pub fn worker_threads(self, cpus: usize, max_concurrency: Option<u32>) -> usize {
        let cpus = cpus.max(1);
        match self {
            Self::ManagedInstances => {
                let readers = max_concurrency.map_or(usize::MAX, |n| (n as usize).max(2));
                cpus.min(MANAGED_INSTANCES_MAX_WORKERS).min(readers)
            }
            _ => cpus.min(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_value_reads_as_its_mode_and_anything_else_as_on_demand() {
        for mode in [
            InitType::OnDemand,
            InitType::ProvisionedConcurrency,
            InitType::SnapStart,
            InitType::ManagedInstances,
        ] {
            assert_eq!(InitType::parse(Some(mode.as_str())), mode);
        }
        assert_eq!(InitType::parse(None), InitType::OnDemand);
        assert_eq!(InitType::parse(Some("a-future-mode")), InitType::OnDemand);
    }

    #[test]
    fn invoke_is_registered_for_under_snap_start_or_when_its_wait_is_set_and_never_under_managed_instances(
    ) {
        for set in [false, true] {
            assert_eq!(InitType::ManagedInstances.events(set).names(), ["SHUTDOWN"]);
            assert_eq!(
                InitType::SnapStart.events(set).names(),
                ["INVOKE", "SHUTDOWN"]
            );
        }
        for mode in [InitType::OnDemand, InitType::ProvisionedConcurrency] {
            assert_eq!(mode.events(false).names(), ["SHUTDOWN"]);
            assert_eq!(mode.events(true).names(), ["INVOKE", "SHUTDOWN"]);
        }
    }

    #[test]
    fn workers_stay_at_two_on_demand_and_follow_the_cpus_under_managed_instances() {
        assert_eq!(InitType::OnDemand.worker_threads(1, None), 1);
        assert_eq!(InitType::OnDemand.worker_threads(8, Some(64)), 2);
        assert_eq!(InitType::SnapStart.worker_threads(4, None), 2);
        let mi = InitType::ManagedInstances;
        assert_eq!(mi.worker_threads(1, Some(64)), 1);
        assert_eq!(mi.worker_threads(3, Some(64)), 3);
        assert_eq!(
            mi.worker_threads(16, Some(64)),
            MANAGED_INSTANCES_MAX_WORKERS
        );
        assert_eq!(mi.worker_threads(16, None), MANAGED_INSTANCES_MAX_WORKERS);
        // One reader at a time needs no more than two workers.
        assert_eq!(mi.worker_threads(16, Some(1)), 2);
    }
}
