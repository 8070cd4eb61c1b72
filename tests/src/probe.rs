//! Tiny functions for the local Lambda environment, as custom runtimes in the way of Lambda's own custom-runtime
//! tutorial (a shell `bootstrap` and curl):
//!
//! - [`function_zip`]: each invoke reads `DB_SECRET_ARN` through the extension and answers with exactly what it got,
//!   so a test sees the value the extension served inside an invoke, and nothing else of a function's own doing gets
//!   in the way. It logs one line per read, `probe read: status=<code> cache=<x-secretcache-cache> seconds=<time>`,
//!   so a test also sees how the read was served and how long it took.
//! - [`concurrent_function_zip`]: the same reads, from `PROBE_WORKERS` loops (4 by default) that each hold an
//!   `invocation/next` open, as a runtime serves concurrent invocations on Lambda Managed Instances.
//! - [`idle_function_zip`]: each invoke answers `{}` at once and reads nothing, for tests of the extension's own
//!   lifecycle that read it from outside.

use std::path::PathBuf;

const READER: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers="${TMPDIR:-/tmp}/probe-headers"
while true; do
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  read=$(curl -sS -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
    -w 'status=%{http_code} cache=%header{x-secretcache-cache} seconds=%{time_total}' \
    "http://127.0.0.1:${PARAMETERS_SECRETS_EXTENSION_HTTP_PORT}/secretsmanager/get?secretId=${DB_SECRET_ARN}" \
    -o "${TMPDIR:-/tmp}/probe-body")
  echo "probe read: $read" >&2
  curl -sS -X POST "$api/invocation/$id/response" --data-binary "@${TMPDIR:-/tmp}/probe-body" -o /dev/null
done
"#;

const CONCURRENT_READER: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
worker() {
  headers="${TMPDIR:-/tmp}/probe-headers-$1"
  body="${TMPDIR:-/tmp}/probe-body-$1"
  while true; do
    curl -sS -D "$headers" -o /dev/null "$api/invocation/next"
    id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
    read=$(curl -sS -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
      -w 'status=%{http_code} cache=%header{x-secretcache-cache} seconds=%{time_total}' \
      "http://127.0.0.1:${PARAMETERS_SECRETS_EXTENSION_HTTP_PORT}/secretsmanager/get?secretId=${DB_SECRET_ARN}" \
      -o "$body")
    echo "probe read: $read worker=$1" >&2
    curl -sS -X POST "$api/invocation/$id/response" --data-binary "@$body" -o /dev/null
  done
}
w=1
while [ "$w" -le "${PROBE_WORKERS:-4}" ]; do
  worker "$w" &
  w=$((w + 1))
done
wait
"#;

const IDLE: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers="${TMPDIR:-/tmp}/idle-headers"
while true; do
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  curl -sS -X POST "$api/invocation/$id/response" --data-binary '{}' -o /dev/null
done
"#;

/// The reading probe's function zip, in a temporary directory that lives as long as the returned handle.
pub fn function_zip() -> (tempfile::TempDir, PathBuf) {
    zip_bootstrap(READER)
}

/// The concurrent reading probe's function zip (`PROBE_WORKERS` loops), in a temporary directory that lives as long
/// as the returned handle.
pub fn concurrent_function_zip() -> (tempfile::TempDir, PathBuf) {
    zip_bootstrap(CONCURRENT_READER)
}

/// The idle function's zip, in a temporary directory that lives as long as the returned handle.
pub fn idle_function_zip() -> (tempfile::TempDir, PathBuf) {
    zip_bootstrap(IDLE)
}

/// The reads the reading probe logged, in order: `(status, x-secretcache-cache, milliseconds)`.
pub fn reads(logs: &[lambda_env::LogLine]) -> Vec<(u16, String, f64)> {
    logs.iter()
        .filter_map(|l| l.text.strip_prefix("probe read: "))
        .map(|read| {
            let field = |name: &str| {
                read.split_whitespace()
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                field("status").parse().unwrap_or(0),
                field("cache"),
                field("seconds").parse::<f64>().unwrap_or(f64::NAN) * 1000.0,
            )
        })
        .collect()
}

fn zip_bootstrap(script: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir()
        .expect("a temporary directory");
    let bootstrap = dir.path().join("bootstrap");
    std::fs::write(&bootstrap, script).expect("write bootstrap");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let zip = dir.path().join("function.zip");
    let status = std::process::Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "-X", "function.zip", "bootstrap"])
        .status()
        .expect("run zip");
    assert!(status.success(), "zip failed");
    (dir, zip)
}
