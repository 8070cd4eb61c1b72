//! Tracing, set up once.
//!
//! The level comes from `PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL` (or Lambda's `AWS_LAMBDA_LOG_LEVEL`), the format
//! from `AWS_LAMBDA_LOG_FORMAT` (`json` gives one JSON object a line). Our own crate logs at the chosen level, every
//! dependency at `warn` at most: the SDK's debug and trace output can include raw response bodies, which hold secrets.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, Diagnostics, LogLevel, Notice};

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(config: &Config) {
    let ours = match config.log_level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::None => "off",
    };
    let deps = if config.log_level == LogLevel::None {
        "off"
    } else {
        "warn"
    };
    let filter = EnvFilter::new(format!("{deps},secretcache={ours}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false);
    // A second init (tests that run the library twice) keeps the first subscriber.
    let _ = if config.log_json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Logs what reading the configuration found: one ERROR line per value that could not be used (with the value used
/// instead), one line per value honoured beyond the AWS extension's limits, one WARN per likely misspelling.
pub fn report(diagnostics: &Diagnostics) {
    for e in &diagnostics.errors {
        tracing::error!(variable = e.name, "configuration: {e}");
    }
    for n in &diagnostics.notices {
        match n {
            Notice::BeyondAws(_) => tracing::info!("configuration: {n}"),
            Notice::Clamped(_) => tracing::warn!("configuration: {n}"),
        }
    }
    for w in &diagnostics.misspellings {
        tracing::warn!("{w}");
    }
}
