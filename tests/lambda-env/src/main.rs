//! `lambda-env`: runs a function zip with layer zips as Lambda would, behind a local API Gateway front door, until
//! Ctrl-C (then SHUTDOWN, as when Lambda retires an environment).
//!
//! ```text
//! lambda-env --function items-function-x86_64.zip --layer secretcache-layer-x86_64.zip \
//!   [--port 9000] [--name items] [--memory 256] [--timeout 15] [--region us-east-1] \
//!   [--env KEY=VALUE]... [--no-freeze] [--managed-instances [--max-concurrency N]] [--quiet]
//! ```
//!
//! `--managed-instances` runs the environment as Lambda Managed Instances do (see `Options::managed_instances`):
//! never frozen, no INVOKE for extensions (a registration asking for it is refused), concurrent invocations up to
//! `--max-concurrency` (`AWS_LAMBDA_MAX_CONCURRENCY`, 16 by default).
//!
//! ```text
//! ```
//!
//! The parsing is by hand: a few flags do not need a command-line crate in every test build.

use std::time::Duration;

use lambda_env::{front_door, LambdaEnv, Options};

#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{flag}: {value:?} is not {expected}")]
    Invalid {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown argument {0:?} (see the usage in the crate's main.rs or README)")]
    Unknown(String),
    #[error("--function <zip> is required")]
    NoFunction,
}

struct Args {
    options: Options,
    port: u16,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut function = None;
    let mut layers = Vec::new();
    let mut port = 9000;
    let mut name = "function".to_owned();
    let mut memory = 128;
    let mut timeout = 3;
    let mut region = "us-east-1".to_owned();
    let mut env = Vec::new();
    let mut freeze = true;
    let mut echo = true;
    let mut managed_instances = false;
    let mut max_concurrency = lambda_env::options::DEFAULT_MAX_CONCURRENCY;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| ArgsError::MissingValue(flag.to_owned()))
        };
        match arg.as_str() {
            "--function" => function = Some(value("--function")?),
            "--layer" => layers.push(value("--layer")?.into()),
            "--port" => {
                let v = value("--port")?;
                port = v.parse().map_err(|_| ArgsError::Invalid {
                    flag: "--port",
                    value: v,
                    expected: "a port (0-65535)",
                })?;
            }
            "--name" => name = value("--name")?,
            "--memory" => {
                let v = value("--memory")?;
                memory = v.parse().ok().filter(|m| (128..=10240).contains(m)).ok_or(
                    ArgsError::Invalid {
                        flag: "--memory",
                        value: v,
                        expected: "MB between 128 and 10240",
                    },
                )?;
            }
            "--timeout" => {
                let v = value("--timeout")?;
                timeout =
                    v.parse()
                        .ok()
                        .filter(|t| (1..=900).contains(t))
                        .ok_or(ArgsError::Invalid {
                            flag: "--timeout",
                            value: v,
                            expected: "seconds between 1 and 900",
                        })?;
            }
            "--region" => region = value("--region")?,
            "--env" => {
                let v = value("--env")?;
                let Some((k, val)) = v.split_once('=') else {
                    return Err(ArgsError::Invalid {
                        flag: "--env",
                        value: v,
                        expected: "KEY=VALUE",
                    });
                };
                env.push((k.to_owned(), val.to_owned()));
            }
            "--no-freeze" => freeze = false,
            "--managed-instances" => managed_instances = true,
            "--max-concurrency" => {
                let v = value("--max-concurrency")?;
                max_concurrency = v.parse().ok().filter(|n| (1..=1024).contains(n)).ok_or(
                    ArgsError::Invalid {
                        flag: "--max-concurrency",
                        value: v,
                        expected: "a whole number from 1 to 1024",
                    },
                )?;
            }
            "--quiet" => echo = false,
            other => return Err(ArgsError::Unknown(other.to_owned())),
        }
    }
    let mut options = Options::new(function.ok_or(ArgsError::NoFunction)?, layers);
    options.function_name = name;
    options.memory_mb = memory;
    options.timeout = Duration::from_secs(timeout);
    options.region = region;
    options.env = env;
    options.freeze = freeze;
    options.echo_logs = echo;
    if managed_instances {
        options = options.managed_instances(max_concurrency);
    }
    Ok(Args { options, port })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { options, port } = parse(std::env::args().skip(1))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let env = LambdaEnv::start(options).await?;
    match env.init_result() {
        Some(Ok(init)) => eprintln!(
            "lambda-env: init done in {:.1} ms (extensions: {})",
            init.duration.as_secs_f64() * 1000.0,
            if init.extensions.is_empty() {
                "none".to_owned()
            } else {
                init.extensions.join(", ")
            }
        ),
        Some(Err(e)) => eprintln!("lambda-env: {e}; the first invoke will try again"),
        None => {}
    }
    eprintln!(
        "lambda-env: front door on http://{} (API Gateway HTTP API events; raw events: POST /2015-03-31/functions/function/invocations)",
        listener.local_addr()?
    );
    front_door::serve(std::sync::Arc::clone(&env), listener, stop_signal()).await;
    let report = env.shutdown().await;
    eprintln!("lambda-env: {report}");
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, ArgsError> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn flags_parse_into_options() {
        let a = args("--function f.zip --layer l.zip --port 9100 --name items --memory 256 --timeout 15 --env A=b=c --no-freeze")
            .expect("valid");
        assert_eq!(a.port, 9100);
        assert_eq!(a.options.function_name, "items");
        assert_eq!(a.options.layers.len(), 1);
        assert_eq!(a.options.timeout, Duration::from_secs(15));
        assert_eq!(a.options.env, [("A".to_owned(), "b=c".to_owned())]);
        assert!(!a.options.freeze);
    }

    #[test]
    fn managed_instances_mode_never_freezes_and_carries_its_concurrency() {
        let a = args("--function f.zip --managed-instances --max-concurrency 4").expect("valid");
        assert!(a.options.managed_instances);
        assert_eq!(a.options.max_concurrency, 4);
        assert!(!a.options.freeze);
        assert!(args("--function f --max-concurrency 0")
            .is_err_and(|e| e.to_string().contains("--max-concurrency")));
    }

    #[test]
    fn bad_flags_name_themselves() {
        assert!(matches!(args("--layer l.zip"), Err(ArgsError::NoFunction)));
        assert!(args("--function f --memory 64").is_err_and(|e| e.to_string().contains("--memory")));
        assert!(args("--function f --bogus").is_err_and(|e| e.to_string().contains("--bogus")));
    }
}
