//! The Lambda entry point: tracing, configuration, then the `lambda_http` loop around [`items_function::handle`].
//!
//! Everything that can be tested lives in the library; this file only wires it up. The [`App`] (and so the database
//! pool and the credential provider) is built once here and shared by every invocation of this execution
//! environment, including the concurrent ones of Lambda Managed Instances.
//!
//! `items-function migrate [--secret-stdin] [--grant ROLE]` is the operator's one-shot migration instead
//! (function/README.md, "Migrations"): it reads the same settings, or the RDS secret JSON of an administrator from
//! standard input, applies the migrations, checks the table, optionally grants ROLE what the function needs, and
//! exits.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use items_function::config::{Config, ProcessEnv};
use items_function::secret::Secret;
use items_function::App;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL (or RUST_LOG) and AWS_LAMBDA_LOG_FORMAT=json.
    lambda_http::tracing::init_default_subscriber();

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("migrate") {
        return migrate(&args[1..]).await;
    }
    let config = Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
    })?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let app = Arc::new(App::new(&config).inspect_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
    })?);
    app.log_startup();

    // `run_concurrent` rather than `run`: under Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1) it runs
    // that many invocation loops in this process, all sharing the one `App`; without the variable it is `run`'s
    // own sequential loop (lambda_runtime 1.5, `Runtime::run_concurrent`), so one entry point serves every mode.
    lambda_http::run_concurrent(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(items_function::handle(&app, request).await) }
    }))
    .await
}

/// `migrate [--secret-stdin] [--grant ROLE]`.
async fn migrate(args: &[String]) -> Result<(), Error> {
    const USAGE: &str = "usage: items-function migrate [--secret-stdin] [--grant ROLE]";
    let (mut secret_stdin, mut grant) = (false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secret-stdin" => secret_stdin = true,
            "--grant" => grant = Some(args.next().ok_or(USAGE)?.clone()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}").into()),
        }
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let admin_secret = if secret_stdin {
        // The administrator's RDS secret JSON, piped from `aws secretsmanager get-secret-value`: the password is
        // never in the environment or on a command line.
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Some(Secret::new(text))
    } else {
        None
    };
    let config = items_function::migrate_config(&env, admin_secret)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    items_function::migrate(&config, grant.as_deref())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "migration failed"))?;
    Ok(())
}
