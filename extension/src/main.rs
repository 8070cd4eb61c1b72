//! The `secretcache` binary: read config, set up tracing, bind 127.0.0.1, run.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use secretcache::config::{Config, ProcessEnv};

fn main() -> ExitCode {
    // A bad value stops start-up before anything binds, with a message that names the variable.
    let config = match Config::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("secretcache: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    secretcache::logging::init(&config);
    for warning in Config::warnings(&ProcessEnv) {
        tracing::warn!("{warning}");
    }
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
        // Localhost only: the cache must never be reachable from another host.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(%addr, "listening");
        match secretcache::run(config, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped");
                ExitCode::FAILURE
            }
        }
    })
}
