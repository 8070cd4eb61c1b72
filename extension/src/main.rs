//! The `secretcache` binary: read config, set up tracing, bind the loopback port, run.
//!
//! ```text
//! secretcache                      as a Lambda extension (AWS_LAMBDA_RUNTIME_API set), or a standalone sidecar
//! secretcache --config agent.toml  the same, with an AWS Secrets Manager Agent configuration file
//! secretcache sm start --config f  the same, spelled as the Workload Credentials Provider 3 is started
//! secretcache ping [--config f]    a container health check: exit 0 when the local /ping answers 200
//! secretcache exec -- <command>    the exec wrapper: the environment's secret references resolved, then exec
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use secretcache::{Config, ProcessEnv};

// The static layer binaries (musl) allocate with mimalloc: musl's own allocator kept freed pages resident and grew
// under churn (Cargo.toml; BENCHMARKS.md, "The allocator"). Builds for glibc keep the C library's.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: secretcache [sm start] [--config <agent.toml>] | secretcache ping [--config <agent.toml>] \
     | secretcache exec -- <command...>";

/// What the command line asks for.
struct Args {
    ping: bool,
    config: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        ping: false,
        config: None,
    };
    let all: Vec<String> = std::env::args().skip(1).collect();
    // `sm start` is how the Workload Credentials Provider 3 is started; a container's entrypoint may keep it.
    let skip = if all.starts_with(&["sm".to_owned(), "start".to_owned()]) {
        2
    } else {
        0
    };
    let mut args = all.into_iter().skip(skip);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "ping" => parsed.ping = true,
            "--config" => parsed.config = Some(args.next().ok_or("--config needs a file")?.into()),
            a if a.starts_with("--config=") => parsed.config = Some(a["--config=".len()..].into()),
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    // Before `args()`: the runtime's command line is not ours to parse, and may not be UTF-8.
    if let Some(command) = secretcache::wrapper_requested(std::env::args_os()) {
        return secretcache::wrapper_main(command);
    }
    let args = match args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Never fails: a value that cannot be used is replaced by its default and reported once tracing is up. An
    // extension that exits during init fails the whole function, so only an unusable port stops it (below).
    let config = Config::load(&ProcessEnv, args.config.as_deref());
    if args.ping {
        return secretcache::ping(config.port);
    }
    secretcache::init_logging(&config);
    secretcache::report_diagnostics(&config.diagnostics);
    tracing::debug!(config = ?config, "effective configuration");
    // One worker per CPU this process may use (the affinity mask and the cgroup CPU quota both count): at most two on
    // demand, where two workers sharing one CPU take turns by preemption and a hit queued behind the other waits a
    // whole scheduler slice (4 ms); a few more on Lambda Managed Instances, where the environment owns several vCPUs
    // and serves many invocations at once. The reasons are at `InitType::worker_threads`.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = config
        .init_type
        .worker_threads(cpus, config.max_concurrency);
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
        let listeners = match secretcache::bind(config.port).await {
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
