//! Tracing, set up once.
//!
//! The level comes from `PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL` (or Lambda's `AWS_LAMBDA_LOG_LEVEL`), the format
//! from `AWS_LAMBDA_LOG_FORMAT` (`json` gives one JSON object a line). Our own crate logs at the chosen level, every
//! dependency at `warn` at most: the SDK's debug and trace output can include raw response bodies, which hold secrets.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, Diagnostics, LogLevel, Notice};

/// Installs the global subscriber, writing to stdout. Call once, before anything logs.
pub fn init(config: &Config) {
    init_to(config.log_level, config.log_json, std::io::stdout);
}

/// Installs the global subscriber at `level`, in the format `json` says, writing to `writer`: what [`init`] does,
/// for a process whose stdout is someone else's (`secretcache exec` writes to stderr, the runtime's being the
/// function's).
pub fn init_to<W>(level: LogLevel, json: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let ours = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::None => LevelFilter::OFF,
    };
    // A fixed filter by target (no `RUST_LOG` parsing, so no regex engine in the layer).
    let filter = Targets::new()
        .with_default(ours.min(LevelFilter::WARN))
        .with_target("secretcache", ours);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests that run the library twice) keeps the first subscriber.
    let _ = if json {
        registry.with(fmt.json().flatten_event(true)).try_init()
    } else {
        registry.with(fmt).try_init()
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
