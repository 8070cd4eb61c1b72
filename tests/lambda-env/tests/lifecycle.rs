//! The lifecycle rules of `lambda-env`, checked with tiny shell processes (curl against the real APIs, as in
//! Lambda's own custom-runtime tutorial), so each rule is driven on purpose: post-runtime time, init errors, init
//! and invoke timeouts, SIGKILL at the shutdown deadline, and the Managed Instances mode (a refused INVOKE
//! registration, no freezing, concurrent invocations).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lambda_env::{InvokeStatus, LambdaEnv, Options, Outcome};

/// An external extension: registers for INVOKE and SHUTDOWN (or for `EXT_EVENTS`, a JSON list's items), logs the
/// registration's status and exits when it is not 200, logs every event, exits on SHUTDOWN, and can sleep
/// after an INVOKE (`EXT_POST_SLEEP`) or before registering (`EXT_REGISTER_SLEEP`), or report `exit/error` and end
/// on its first INVOKE (`EXT_EXIT_ERROR`).
const EXTENSION: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2020-01-01/extension"
[ -n "${EXT_REGISTER_SLEEP:-}" ] && sleep "$EXT_REGISTER_SLEEP"
status=$(curl -sS -D "$TMPDIR/ext-headers" -o /dev/null -w '%{http_code}' -X POST "$api/register" \
  -H "Lambda-Extension-Name: $(basename "$0")" -d "{\"events\":[${EXT_EVENTS:-\"INVOKE\",\"SHUTDOWN\"}]}")
echo "register $status"
echo "init-type ${AWS_LAMBDA_INITIALIZATION_TYPE:-} ${AWS_LAMBDA_MAX_CONCURRENCY:-}"
[ "$status" = 200 ] || exit 1
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

/// A runtime that serves invocations concurrently, as Lambda Managed Instances let a runtime do: `RT_WORKERS` loops,
/// each with its own `invocation/next` open. Each invocation waits until `RT_BARRIER` invocations have arrived before
/// answering, so a test proves they overlapped without measuring any time (one at a time, they would time out).
const CONCURRENT_RUNTIME: &str = r#"#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
worker() {
  while true; do
    curl -sS -D "$TMPDIR/rt-headers-$1" -o "$TMPDIR/rt-event-$1" "$api/invocation/next"
    id=$(grep -i '^lambda-runtime-aws-request-id:' "$TMPDIR/rt-headers-$1" | cut -d' ' -f2 | tr -d '\r')
    touch "$TMPDIR/arrived-$id"
    while [ "$(ls "$TMPDIR" | grep -c '^arrived-')" -lt "$RT_BARRIER" ]; do sleep 0.05; done
    echo "worker $1 answers $id"
    curl -sS -o /dev/null -X POST "$api/invocation/$id/response" --data-binary "{\"worker\":$1,\"id\":\"$id\"}"
  done
}
w=1
while [ "$w" -le "$RT_WORKERS" ]; do worker "$w" & w=$((w + 1)); done
wait
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
    zips_with(tag, RUNTIME)
}

fn zips_with(tag: &str, runtime: &str) -> Zips {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lambda-env-test-{tag}-"))
        .tempdir()
        .expect("a temporary folder");
    write_exec(&dir.path().join("extensions/probe-ext"), EXTENSION);
    write_exec(&dir.path().join("bootstrap"), runtime);
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

#[tokio::test]
async fn managed_instances_refuse_an_invoke_registration_with_a_400_and_init_fails_with_the_extension(
) {
    let z = zips("mirefuse");
    let env = LambdaEnv::start(options(&z, &[]).managed_instances(4))
        .await
        .expect("start");
    let failure = env
        .init_result()
        .expect("ran")
        .expect_err("an extension that insists on INVOKE fails init");
    assert_eq!(failure.error_type, "Extension.Crash", "{}", dump(&env));
    assert!(
        env.logs().iter().any(|l| l.text == "register 400"),
        "{}",
        dump(&env)
    );
    assert!(env.registrations().is_empty());
}

#[tokio::test]
async fn managed_instances_run_invocations_side_by_side_send_extensions_no_invoke_and_never_freeze()
{
    let z = zips_with("miconcurrent", CONCURRENT_RUNTIME);
    let mut o = options(
        &z,
        &[
            ("EXT_EVENTS", "\"SHUTDOWN\""),
            ("RT_WORKERS", "4"),
            ("RT_BARRIER", "4"),
        ],
    )
    .managed_instances(4);
    o.timeout = Duration::from_secs(20);
    let env = LambdaEnv::start(o).await.expect("start");
    assert!(env.init_result().expect("ran").is_ok(), "{}", dump(&env));
    let registrations = env.registrations();
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].events, ["SHUTDOWN"]);
    assert!(env.logs().iter().any(|l| l.text == "register 200"));
    assert!(
        env.logs()
            .iter()
            .any(|l| l.text == "init-type lambda-managed-instances 4"),
        "{}",
        dump(&env)
    );

    // Four invocations that each wait for all four: they can only finish if they ran at once.
    let invocations: Vec<_> = (0..4)
        .map(|i| {
            let env = std::sync::Arc::clone(&env);
            tokio::spawn(async move { env.invoke(format!("{{\"n\":{i}}}").into()).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let mut workers = std::collections::HashSet::new();
    for handle in invocations {
        let invoked = handle.await.expect("joined").expect("invoke runs");
        assert_eq!(
            invoked.report.status,
            InvokeStatus::Success,
            "{}",
            dump(&env)
        );
        let Outcome::Response(body) = &invoked.outcome else {
            panic!("{:?}\n{}", invoked.outcome, dump(&env));
        };
        let doc: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(doc["id"], invoked.report.request_id.as_str());
        ids.insert(invoked.report.request_id.clone());
        workers.insert(doc["worker"].to_string());
    }
    assert_eq!(ids.len(), 4, "each invocation is a different one");
    assert_eq!(workers.len(), 4, "each went to a different parked next");

    // No INVOKE reached the extension, and nothing was frozen after the invocations.
    assert!(
        !env.logs()
            .iter()
            .any(|l| l.source == "probe-ext" && l.text.contains("INVOKE")),
        "{}",
        dump(&env)
    );
    env.settled().await;
    for (name, pid) in env.processes().await {
        let state = lambda_env::process::process_state(pid);
        assert_ne!(state, Some('T'), "{name} is stopped");
    }
    let shutdown = env.shutdown().await;
    assert!(
        env.logs()
            .iter()
            .any(|l| l.source == "probe-ext" && l.text.contains("SHUTDOWN")),
        "{shutdown}\n{}",
        dump(&env)
    );
}
