//! A local Lambda execution environment that runs a **layer zip and a function zip exactly as Lambda does**, with
//! no Docker and no AWS account, written from the public Runtime API and Extensions API documentation.
//!
//! It exists because no emulator available here runs extensions faithfully: one does not wait for extensions,
//! drops INVOKE events while an extension is busy, sends `deadline_ms: 0` and cannot run zips; the others need
//! Docker. The end-to-end tests and `make run` use this one.
//!
//! Parts:
//! - [`sandbox`]: the zips extracted into `/opt`- and `/var/task`-like directories;
//! - [`options`]: the function's settings and the variables Lambda sets;
//! - [`api`] and [`state`]: the Runtime API and Extensions API on one local port, and what they share;
//! - [`launch`]: how a program starts: directly, or under qemu-user when the zip is for the other architecture;
//! - [`process`]: the processes, their logs and the signals (freeze, thaw, terminate, kill);
//! - [`environment`]: the lifecycle (init, invoke, freeze, shutdown) in [`LambdaEnv`];
//! - [`report`]: init, invoke and shutdown reports, in the shape of Lambda's `REPORT` lines;
//! - [`logs`]: every line, tagged with its source and lifecycle phase;
//! - [`apigw`] and [`front_door`]: API Gateway HTTP API events in and out, and the direct-invoke endpoint.

pub mod api;
pub mod apigw;
pub mod environment;
pub mod front_door;
pub mod ids;
pub mod launch;
pub mod logs;
pub mod options;
pub mod process;
pub mod report;
pub mod sandbox;
pub mod state;

pub use environment::{Invoked, LambdaEnv, LambdaError};
pub use logs::LogLine;
pub use options::Options;
pub use report::{InitFailure, InitReport, InvokeReport, InvokeStatus, ShutdownReport};
pub use state::{Outcome, Registration, ReportedError};
