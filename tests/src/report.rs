//! Lines a test prints past libtest's output capture, so that they show in `make test` even when the test passes:
//! a check that could not run on this machine ([`skipped`]: `SKIPPED: ...`, never a silent pass), and a wall-clock
//! number the test reports instead of asserting ([`timing`]: on a shared, loaded machine a time is a measurement, not
//! a verdict; the targets are `make reliability`'s, which prints them in its table).
//!
//! libtest captures `print!` and `eprint!` only; these write to the process's standard error directly.

use std::io::Write;
use std::time::Duration;

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_owned()
}

fn emit(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// Says, visibly, that the running test did not check what it is for here, and why.
pub fn skipped(reason: &str) {
    emit(&format!("SKIPPED: {}: {reason}\n", test_name()));
}

/// Reports how long `what` took (e.g. "worst of 120 hits while every upstream call took 500 ms").
pub fn timing(what: &str, took: Duration) {
    emit(&format!(
        "TIMING: {}: {what}: {:.1} ms\n",
        test_name(),
        took.as_secs_f64() * 1000.0
    ));
}
