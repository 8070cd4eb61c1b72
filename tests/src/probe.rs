//! A probe function for the local Lambda environment: a custom runtime, as in Lambda's own custom-runtime tutorial
//! (a shell `bootstrap` and curl). Each invoke reads `DB_SECRET_ARN` through the extension and answers with exactly
//! what it got, so a test sees the value the extension served inside an invoke, and nothing else of a function's
//! own doing gets in the way.

use std::path::PathBuf;

const BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers="${TMPDIR:-/tmp}/probe-headers"
while true; do
  curl -sS -D "$headers" -o /dev/null "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  curl -sS -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" \
    "http://127.0.0.1:${PARAMETERS_SECRETS_EXTENSION_HTTP_PORT}/secretsmanager/get?secretId=${DB_SECRET_ARN}" \
    -o "${TMPDIR:-/tmp}/probe-body"
  curl -sS -X POST "$api/invocation/$id/response" --data-binary "@${TMPDIR:-/tmp}/probe-body" -o /dev/null
done
"#;

/// The probe's function zip, written into a temporary directory that lives as long as the returned handle.
pub fn function_zip() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir()
        .expect("a temporary directory");
    let bootstrap = dir.path().join("bootstrap");
    std::fs::write(&bootstrap, BOOTSTRAP).expect("write bootstrap");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let zip = dir.path().join("probe.zip");
    let status = std::process::Command::new("zip")
        .current_dir(dir.path())
        .args(["-q", "-X", "probe.zip", "bootstrap"])
        .status()
        .expect("run zip");
    assert!(status.success(), "zip failed");
    (dir, zip)
}
