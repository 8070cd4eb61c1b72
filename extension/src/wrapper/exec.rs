//! The end of the wrapper: becoming the runtime with the resolved values, or telling Lambda why init failed
//! (`init/error`).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

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

pub(super) fn post_init_error(api: &str, body: &str) -> std::io::Result<()> {
    use std::net::{TcpStream, ToSocketAddrs};
    const TIMEOUT: Duration = Duration::from_secs(1);
    let addr = api
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("AWS_LAMBDA_RUNTIME_API names no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {INIT_ERROR_TYPE}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.starts_with(b"HTTP/1.1 2") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the Runtime API answered {}",
            String::from_utf8_lossy(&head[9..])
        )))
    }
}
