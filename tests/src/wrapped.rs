//! A `provided.al2023` function started through the exec wrapper by the one-line `bootstrap` the README documents
//! (`exec /opt/extensions/secretcache exec -- ./runtime.sh`), where Lambda runs the function's `bootstrap` itself
//! and `AWS_LAMBDA_EXEC_WRAPPER` does not apply.
//!
//! Its runtime is a shell custom runtime, as in Lambda's own custom-runtime tutorial (sh and curl). Each invoke
//! answers with its pid and, for every variable named in `REPORT_VARIABLES` (comma-separated), the value's length
//! in bytes and its SHA-256, never the value: a test compares those with what it expects, and no value reaches a
//! response or a log line. The end-to-end tests of the wrapper and `make run` use it.

use std::path::PathBuf;

/// The documented line, with `/opt` where lambda-env keeps this environment's (`LAMBDA_ENV_OPT`; unset in Lambda).
const BOOTSTRAP: &str = r#"#!/bin/sh
exec "${LAMBDA_ENV_OPT:-/opt}/extensions/secretcache" exec -- ./runtime.sh
"#;

const RUNTIME: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
dir="${TMPDIR:-/tmp}"
describe() {
  eval "isset=\${$1+x} value=\${$1-}"
  if [ -z "$isset" ]; then
    printf '"%s":null' "$1"
    return
  fi
  length=$(printf '%s' "$value" | wc -c | tr -d ' ')
  sum=$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)
  printf '"%s":{"length":%s,"sha256":"%s"}' "$1" "$length" "$sum"
}
report() {
  printf '{"pid":%s,"variables":{' "$$"
  first=1
  for name in $(echo "${REPORT_VARIABLES:-}" | tr ',' ' '); do
    [ "$first" = 1 ] || printf ','
    first=0
    describe "$name"
  done
  printf '}}'
}
echo "runtime.sh started as pid $$; variables described: ${REPORT_VARIABLES:-}"
while true; do
  curl -sS -D "$dir/wrapped-headers" -o /dev/null "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$dir/wrapped-headers" | cut -d' ' -f2 | tr -d '\r')
  report >"$dir/wrapped-body"
  curl -sS -X POST "$api/invocation/$id/response" --data-binary "@$dir/wrapped-body" -o /dev/null
done
"#;

/// The function's zip (`bootstrap` and `runtime.sh`, both mode 755), in a temporary directory that lives as long as
/// the returned handle.
pub fn function_zip() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("wrapped-")
        .tempdir()
        .expect("a temporary directory");
    for (name, text) in [("bootstrap", BOOTSTRAP), ("runtime.sh", RUNTIME)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let zip = dir.path().join("wrapped.zip");
    let status = std::process::Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "-X", "wrapped.zip", "bootstrap", "runtime.sh"])
        .status()
        .expect("run zip");
    assert!(status.success(), "zip failed");
    (dir, zip)
}

/// What one of these functions (or `tests/runtimes/python/env_report.py`) says about a variable: its length in bytes
/// and its SHA-256, in hex.
pub fn describe(value: &str) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({ "length": value.len(), "sha256": hex })
}
