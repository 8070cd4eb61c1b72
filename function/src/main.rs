//! The Lambda entry point: tracing, configuration, then the `lambda_http` loop around [`items_function::handle`].
//!
//! Everything that can be tested lives in the library; this file only wires it up. The [`App`] (and so the database
//! pool) is built once here and shared by every invocation of this execution environment.

use std::sync::Arc;

use items_function::config::{Config, ProcessEnv};
use items_function::App;
use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL (or RUST_LOG) and AWS_LAMBDA_LOG_FORMAT=json.
    lambda_http::tracing::init_default_subscriber();

    let config = Config::from_env(&ProcessEnv).inspect_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
    })?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let app = Arc::new(App::new(&config).inspect_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
    })?);
    match app.db().missing_variable() {
        Some(variable) => tracing::error!(
            missing = variable,
            "no database is configured; every request will get a 503 until {variable} is set"
        ),
        None => tracing::info!(source = app.db().source_name(), "database settings read"),
    }

    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(items_function::handle(&app, request).await) }
    }))
    .await
}
