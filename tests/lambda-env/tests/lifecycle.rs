//! The lifecycle rules of `lambda-env`, checked with tiny shell processes (curl against the real APIs, as in
//! Lambda's own custom-runtime tutorial), so each rule is driven on purpose: post-runtime time, init errors, init
//! and invoke timeouts, and SIGKILL at the shutdown deadline.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lambda_env::{InvokeStatus, LambdaEnv, Options, Outcome};

/// An external extension: registers for INVOKE and SHUTDOWN, logs every event, exits on SHUTDOWN, and can sleep
/// after an INVOKE (`EXT_POST_SLEEP`) or before registering (`EXT_REGISTER_SLEEP`), or report `exit/error` and end
/// on its first INVOKE (`EXT_EXIT_ERROR`).
const EXTENSION: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
[ -n "${EXT_REGISTER_SLEEP:-}" ] && sleep "$EXT_REGISTER_SLEEP"
curl -sS -D "$TMPDIR/ext-headers" -o /dev/null -X POST "$api/register" \
  -H "Lambda-Extension-Name: $(basename "$0")" -d '{"events":["INVOKE","SHUTDOWN"]}'
id=$(grep -i '^lambda-extension-identifier:' "$TMPDIR/ext-headers" | cut -d' ' -f2 | tr -d '\r')
while true; do
  event=$(curl -sS -H "Lambda-Extension-Identifier: $id" "$api/event/next")
  echo "event $event"
  case "$event" in *SHUTDOWN*) exit 0 ;; esac
  if [ -n "${EXT_EXIT_ERROR:-}" ]; then
    curl -sS -o /dev/null -X POST "$api/exit/error" -H "Lambda-Extension-Identifier: $id" \
      -H "Lambda-Extension-Function-Error-Type: Extension.TestExit" -d '{}'
    exit 1
  fi
  if [ -n "${EXT_POST_SLEEP:-}" ]; then sleep "$EXT_POST_SLEEP"; fi
done
"#;

/// A runtime that echoes each event; `RT_INIT_ERROR` makes it report an init error, `RT_SLEEP` makes each invoke
/// slow, `RT_IGNORE_TERM` makes it ignore SIGTERM.
const RUNTIME: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
if [ -n "${RT_IGNORE_TERM:-}" ]; then trap '' TERM; fi
if [ -n "${RT_INIT_ERROR:-}" ]; then
  curl -sS -o /dev/null -X POST "$api/init/error" -H "Lambda-Runtime-Function-Error-Type: Runtime.TestInit" \
    -d '{"errorMessage":"init went wrong","errorType":"Runtime.TestInit"}'
  exit 1
fi
while true; do
  curl -sS -D "$TMPDIR/rt-headers" -o "$TMPDIR/rt-event" "$api/invocation/next"
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$TMPDIR/rt-headers" | cut -d' ' -f2 | tr -d '\r')
  echo "deadline $(grep -i '^lambda-runtime-deadline-ms:' "$TMPDIR/rt-headers" | cut -d' ' -f2 | tr -d '\r')"
  if [ -n "${RT_SLEEP:-}" ]; then sleep "$RT_SLEEP"; fi
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" --data-binary "@$TMPDIR/rt-event"
done
"#;

struct Zips {
    _dir: tempfile::TempDir,
    layer: PathBuf,
    function: PathBuf,
}

fn write_exec(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn zip(dir: &Path, out: &str, member: &str) -> PathBuf {
    let status = std::process::Command::new("zip")
        .current_dir(dir)
        .args(["-q", "-X", out, member])
        .status()
        .expect("zip");
    assert!(status.success());
    dir.join(out)
}

fn zips(tag: &str) -> Zips {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lambda-env-test-{tag}-"))
        .tempdir()
        .expect("a temporary folder");
    write_exec(&dir.path().join("extensions/probe-ext"), EXTENSION);
    write_exec(&dir.path().join("bootstrap"), RUNTIME);
    let layer = zip(dir.path(), "layer.zip", "extensions/probe-ext");
    let function = zip(dir.path(), "function.zip", "bootstrap");
    Zips {
        _dir: dir,
        layer,
        function,
    }
}

fn options(z: &Zips, vars: &[(&str, &str)]) -> Options {
    let mut o = Options::new(&z.function, vec![z.layer.clone()]);
    o.shutdown_timeout = Duration::from_millis(800);
    for (k, v) in vars {
        o = o.var(k, v);
    }
    o
}

fn dump(env: &LambdaEnv) -> String {
    env.logs()
        .iter()
        .map(|l| format!("[{}] {} | {}\n", l.phase, l.source, l.text))
        .collect()
}

#[tokio::test]
async fn an_invoke_waits_for_the_extension_and_reports_its_post_runtime_time() {
    let z = zips("post");
    let env = LambdaEnv::start(options(&z, &[("EXT_POST_SLEEP", "0.3")]))
        .await
        .expect("start");
    let init = env.init_result().expect("ran").expect("init succeeds");
    assert_eq!(init.extensions, ["probe-ext"]);
    let invoked = env
        .invoke(r#"{"hello":"world"}"#.into())
        .await
        .expect("invoke");
    assert_eq!(
        invoked.outcome,
        Outcome::Response(r#"{"hello":"world"}"#.into()),
        "{}",
        dump(&env)
    );
    let r = &invoked.report;
    assert_eq!(r.status, InvokeStatus::Success);
    assert!(r.init_duration.is_some());
    // The extension is back on next 0.3 s after the event, whenever the runtime answered within that time.
    assert!(
        r.runtime_duration + r.post_runtime_duration >= Duration::from_millis(250),
        "{r}"
    );
    assert!(r.post_runtime_duration > Duration::ZERO, "{r}");
    assert!(r.duration >= r.runtime_duration + r.post_runtime_duration - Duration::from_millis(1));

    // The extension saw the INVOKE with the same request id and a real deadline; the runtime the same deadline.
    let logs = env.logs();
    let event = logs
        .iter()
        .find_map(|l| l.text.strip_prefix("event "))
        .expect("the extension logged its event");
    let event: serde_json::Value = serde_json::from_str(event).expect("JSON event");
    assert_eq!(event["eventType"], "INVOKE");
    assert_eq!(event["requestId"], r.request_id.as_str());
    assert_eq!(
        event["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:function"
    );
    let deadline = event["deadlineMs"].as_u64().expect("deadlineMs");
    assert!(
        deadline > lambda_env::ids::epoch_millis() + 1_000,
        "{deadline}"
    );
    assert!(
        logs.iter()
            .any(|l| l.text == format!("deadline {deadline}")),
        "{}",
        dump(&env)
    );

    let shutdown = env.shutdown().await;
    assert!(shutdown.all_exited_in_time(), "{shutdown}");
}

#[tokio::test]
async fn a_runtime_init_error_fails_init_and_the_next_invoke_tries_again() {
    let z = zips("initerr");
    let env = LambdaEnv::start(options(&z, &[("RT_INIT_ERROR", "1")]))
        .await
        .expect("start");
    let failure = env.init_result().expect("ran").expect_err("init fails");
    assert_eq!(failure.error_type, "Runtime.TestInit", "{}", dump(&env));
    let err = env.invoke("{}".into()).await.expect_err("init fails again");
    assert!(err.to_string().contains("Runtime.TestInit"), "{err}");
    let inits = env
        .logs()
        .iter()
        .filter(|l| l.text.starts_with("INIT_START"))
        .count();
    assert_eq!(inits, 2);
}

#[tokio::test]
async fn an_extension_that_never_registers_hits_the_init_limit() {
    let z = zips("inittimeout");
    let mut o = options(&z, &[("EXT_REGISTER_SLEEP", "5")]);
    o.init_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let env = LambdaEnv::start(o).await.expect("start");
    let failure = env.init_result().expect("ran").expect_err("init times out");
    assert_eq!(failure.error_type, "Sandbox.Timedout");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        env.processes().await.is_empty(),
        "init failure kills everything"
    );
}

#[tokio::test]
async fn an_invoke_past_its_deadline_times_out_and_resets_the_environment() {
    let z = zips("timeout");
    let mut o = options(&z, &[("RT_SLEEP", "3")]);
    o.timeout = Duration::from_millis(700);
    let env = LambdaEnv::start(o).await.expect("start");
    let invoked = env.invoke("{}".into()).await.expect("invoke runs");
    assert_eq!(invoked.report.status, InvokeStatus::Timeout);
    assert!(
        matches!(&invoked.outcome, Outcome::Error { error_type, .. } if error_type == "Sandbox.Timedout"),
        "{:?}",
        invoked.outcome
    );
    assert!(
        env.processes().await.is_empty(),
        "a timeout resets the environment"
    );
    assert!(
        env.logs()
            .iter()
            .any(|l| l.source == "probe-ext" && l.text.contains("\"shutdownReason\":\"timeout\"")),
        "{}",
        dump(&env)
    );
}

#[tokio::test]
async fn a_process_alive_at_the_shutdown_deadline_gets_sigkill() {
    let z = zips("kill");
    let env = LambdaEnv::start(options(&z, &[("RT_IGNORE_TERM", "1")]))
        .await
        .expect("start");
    assert!(env.init_result().expect("ran").is_ok(), "{}", dump(&env));
    let started = std::time::Instant::now();
    let report = env.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let runtime = report
        .processes
        .iter()
        .find(|p| p.name == "runtime")
        .expect("runtime");
    let extension = report
        .processes
        .iter()
        .find(|p| p.name == "probe-ext")
        .expect("extension");
    assert!(runtime.killed, "{report}");
    assert!(!extension.killed, "{report}");
    assert!(!report.all_exited_in_time());
}

#[tokio::test]
async fn an_extension_exit_error_fails_the_invoke_and_the_next_one_starts_a_new_environment() {
    let z = zips("exiterr");
    let env = LambdaEnv::start(options(&z, &[("EXT_EXIT_ERROR", "1")]))
        .await
        .expect("start");
    assert_eq!(env.processes().await.len(), 2);
    let invoked = env.invoke("{}".into()).await.expect("invoke runs");
    assert!(
        matches!(invoked.report.status, InvokeStatus::Error(_)),
        "{}\n{}",
        invoked.report,
        dump(&env)
    );
    assert!(env.processes().await.is_empty(), "the environment is reset");
    // The next invoke starts a fresh init (and fails the same way, since the extension always does).
    let again = env.invoke("{}".into()).await.expect("invoke runs");
    assert!(again.report.init_duration.is_some(), "{}", again.report);
    let inits = env
        .logs()
        .iter()
        .filter(|l| l.text.starts_with("INIT_START"))
        .count();
    assert_eq!(inits, 2);
}
