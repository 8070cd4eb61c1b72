//! The end of the wrapper: becoming the runtime with the resolved values, or telling Lambda why init failed
//! (`init/error`).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secretcache_client::{ExposeSecret, SecretString};

use crate::config::AWS_LAMBDA_RUNTIME_API;

use super::{Failure, INIT_ERROR_TYPE};

/// Becomes `program`, with the resolved `values` and the plain `settings` (the SDK endpoints) in its environment:
/// returns only when that fails.
pub(super) fn exec(
    program: &OsStr,
    args: &[OsString],
    values: &[(String, SecretString)],
    settings: &[(&str, String)],
) -> ExitCode {
    let mut command = Command::new(program);
    command.args(args);
    for (variable, value) in settings {
        command.env(variable, value);
    }
    for (variable, value) in values {
        command.env(variable, value.expose_secret());
    }
    let e = command.exec();
    tracing::error!(program = %program.to_string_lossy(), error = %e, "cannot start the runtime");
    // The shell's codes: 127 when there is no such program, 126 when it cannot be run.
    ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// Tells Lambda why init failed (`POST /runtime/init/error`), so that the invoker gets [`INIT_ERROR_TYPE`] and the
/// variables' names rather than a bare exit status. Best effort: the exit status says it anyway.
pub(super) fn report_init_error(failures: &[Failure]) {
    let Some(api) = std::env::var_os(AWS_LAMBDA_RUNTIME_API) else {
        return;
    };
    let message = failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let body = serde_json::json!({
        "errorMessage": format!("secretcache could not resolve the environment's references: {message}"),
        "errorType": INIT_ERROR_TYPE,
        "stackTrace": [],
    })
    .to_string();
    if let Err(e) = post_init_error(&api.to_string_lossy(), &body) {
        tracing::warn!(error = %e, "could not report the failure to the Runtime API");
    }
}

/// `POST /2018-06-01/runtime/init/error` through hyper, on a runtime of its own (the wrapper's is gone by now), within
/// one second: the Runtime API is local, and init is failing anyway.
pub(super) fn post_init_error(api: &str, body: &str) -> Result<(), String> {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime to report with: {e}"))?;
    let request = http::Request::post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", INIT_ERROR_TYPE)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| format!("AWS_LAMBDA_RUNTIME_API={api:?} makes no request: {e}"))?;
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = tokio::time::timeout(TIMEOUT, client.request(request))
            .await
            .map_err(|_| "the Runtime API did not answer within 1 s".to_owned())?
            .map_err(|e| format!("the Runtime API cannot be reached: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the Runtime API answered {}", response.status()))
        }
    })
}
