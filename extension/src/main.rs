//! The `secretcache` binary: read config, set up tracing, bind the loopback port, run.

use std::process::ExitCode;

use secretcache::config::{Config, ProcessEnv};

fn main() -> ExitCode {
    // Never fails: a value that cannot be used is replaced by its default and reported once tracing is up. An
    // extension that exits during init fails the whole function, so only an unusable port stops it (below).
    let config = Config::from_env(&ProcessEnv);
    secretcache::logging::init(&config);
    secretcache::logging::report(&config.diagnostics);
    tracing::debug!(config = ?config, "effective configuration");
    // One worker per CPU this process may use (the affinity mask and the cgroup CPU quota both count), at most two:
    // two workers sharing one CPU take turns by preemption, and a hit queued behind the other worker waits a whole
    // scheduler slice (4 ms).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("secretcache: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Loopback only: the cache must never be reachable from another host.
        let listeners = match secretcache::server::bind(config.port).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve");
                return ExitCode::FAILURE;
            }
        };
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "listening");
            }
        }
        match secretcache::run(config, listeners).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped");
                ExitCode::FAILURE
            }
        }
    })
}
