//! Whole-system test harness: real components, started per test (moto and PostgreSQL once per test binary) and
//! stopped on drop.
//!
//! - [`moto`]: a real AWS API emulator (moto server from the project's virtualenv) for Secrets Manager and SSM, one
//!   per test binary; [`seed`]: per-test names in it, and the secrets and parameters the tests create;
//! - [`extension`]: the built `secretcache` binary spawned standalone, and a client for any running extension (for
//!   lifecycle tests it runs in the local Lambda environment, `lambda-env`, through [`with_extension_binary`]);
//! - [`proxy`]: a counting and **fault-injecting** proxy between the extension and moto (counts are taken outside the
//!   extension; faults are the ones moto cannot produce: timeouts, throttles, 500s, dropped connections);
//! - [`http`]: a tiny HTTP/1.1 client for talking to all of them;
//! - [`probe`]: shell custom runtimes: one reads a secret through the extension per invoke, one does nothing;
//! - [`runtimes`]: Python and Node functions (AWS's runtime interface clients) that read through the layer;
//! - [`wrapped`]: a provided.al2023 function started through the exec wrapper by the documented `bootstrap` line;
//! - [`cfn`]: the CloudFormation templates in `deploy/`, read and evaluated under given parameters, and cfn-lint;
//! - [`items`]: the `/items` function in-process: fixture events, the handler without a socket, per-test logs;
//! - [`postgres`]: a throwaway PostgreSQL 15 cluster with TLS; [`raw`]: raw HTTP/1.x for hostile requests;
//! - [`report`]: `SKIPPED:` and `TIMING:` lines that show in `make test` even when a test passes;
//! - [`reliability`]: the reliability suite, one module per scenario; [`stats`]: the percentiles and summaries that
//!   it and `make bench` print.

pub mod cfn;
pub mod credentials_endpoint;
pub mod extension;
pub mod http;
pub mod items;
pub mod moto;
pub mod postgres;
pub mod probe;
pub mod proxy;
pub mod raw;
pub mod reliability;
pub mod report;
pub mod runtimes;
pub mod seed;
pub mod stats;
pub mod wrapped;

use std::path::PathBuf;

/// The workspace root (where `Cargo.toml`, `.venv` and `target` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Runs the shell command `cleanup` once this test process has exited: how a server kept in a static (never
/// dropped: the shared moto, the shared PostgreSQL cluster) is stopped. The helper is not waited for on purpose.
pub(crate) fn after_this_process_exits(cleanup: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id()
    );
    let _ = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Path of a binary built by this workspace in the running executable's profile directory
/// (`target/<profile>/deps/<test>` or `target/<profile>/<bin>` -> `target/<profile>/<name>`). `make test` builds
/// them first.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let mut profile_dir = exe
        .parent()
        .map(PathBuf::from)
        .expect("target/<profile> directory");
    // Test binaries live in target/<profile>/deps; `cargo run` binaries in target/<profile>.
    if profile_dir.ends_with("deps") {
        profile_dir.pop();
    }
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// Environment variable: the `secretcache` binary to run instead of this build's (`make bench` points it at the
/// packaged one, `target/lambda/<arch>/layer/extensions/secretcache`, so the bench measures the binary that ships).
pub const EXTENSION_BIN_VAR: &str = "SECRETCACHE_BIN";

/// The `secretcache` binary the tests and the bench run: [`EXTENSION_BIN_VAR`] when set, else this build's.
pub fn extension_bin() -> PathBuf {
    match std::env::var_os(EXTENSION_BIN_VAR) {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            assert!(
                path.exists(),
                "{EXTENSION_BIN_VAR}={} does not exist",
                path.display()
            );
            path
        }
        _ => bin_path("secretcache"),
    }
}

/// One of Lambda's two instruction set architectures, named as the zips name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64`.
    X86_64,
    /// `arm64` (Graviton).
    Arm64,
}

impl Arch {
    /// This machine's.
    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "aarch64" => Arch::Arm64,
            _ => Arch::X86_64,
        }
    }

    /// `x86_64` or `arm64`, as in `layer/dist/<stem>-<arch>.zip` and `make package ARCH=...`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Whether this machine runs its binaries only under an emulator (lambda-env's `launch` module), which is
    /// several times slower: the tests give such runs longer limits.
    pub fn is_emulated(self) -> bool {
        self != Arch::host()
    }
}

/// A zip from `make package ARCH=<arch>` (`layer/dist/<stem>-<arch>.zip`), or from `$LAMBDA_ZIP_DIR` when set.
pub fn lambda_zip(stem: &str, arch: Arch) -> PathBuf {
    let dir = std::env::var_os("LAMBDA_ZIP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("layer/dist"));
    let path = dir.join(format!("{stem}-{}.zip", arch.as_str()));
    assert!(
        path.is_file(),
        "{} is missing: run `make package ARCH={}` first (`make test` builds both architectures)",
        path.display(),
        arch.as_str()
    );
    path
}

/// `function` with the secretcache layer of `arch`, for the local Lambda environment: AWS calls go to `endpoint`
/// with test credentials, and the extension listens on a free port (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`), so
/// tests can run side by side.
pub fn with_layer(function: impl Into<PathBuf>, arch: Arch, endpoint: &str) -> lambda_env::Options {
    with_extension(function, lambda_zip("secretcache-layer", arch), endpoint)
}

/// `function` with the `secretcache` binary of [`extension_bin`] (no zip: lambda-env links it into
/// `/opt/extensions`), set up as [`with_layer`] sets up the layer, and logging at debug. For the extension's lifecycle
/// tests, which need the build under test, and the bench.
pub fn with_extension_binary(function: impl Into<PathBuf>, endpoint: &str) -> lambda_env::Options {
    with_extension(function, extension_bin(), endpoint)
        .var("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")
        .var("AWS_EC2_METADATA_DISABLED", "true")
}

fn with_extension(
    function: impl Into<PathBuf>,
    layer: PathBuf,
    endpoint: &str,
) -> lambda_env::Options {
    lambda_env::Options::new(function, vec![layer])
        .var("AWS_ACCESS_KEY_ID", "testing")
        .var("AWS_SECRET_ACCESS_KEY", "testing")
        .var("AWS_ENDPOINT_URL", endpoint)
        .var(
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
            &free_port().to_string(),
        )
}

/// The `/items` function zip with the secretcache layer of `arch`, set up as deploy/template.yaml sets it up:
/// function `items`, its database secret `db_secret_arn` read through the extension (which prefetches it during
/// init), as [`with_layer`] sets up the rest.
pub fn items_with_layer(
    function: impl Into<PathBuf>,
    arch: Arch,
    endpoint: &str,
    db_secret_arn: &str,
) -> lambda_env::Options {
    let mut options = with_layer(function, arch, endpoint)
        .var("DB_SECRET_ARN", db_secret_arn)
        .var("PARAMETERS_SECRETS_EXTENSION_PREFETCH", db_secret_arn);
    options.function_name = "items".to_owned();
    options
}

/// A random-enough token for one test run (not a credential anywhere real).
pub fn random_token() -> String {
    format!("tok-{:016x}", fastrand::u64(..))
}

/// The extension's port in `options` (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, which [`with_layer`] sets).
pub fn extension_port(options: &lambda_env::Options) -> u16 {
    options
        .env
        .iter()
        .find(|(k, _)| k == "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
        .and_then(|(_, v)| v.parse().ok())
        .expect("the options name the extension's port")
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    lambda_env::process::status_kib(pid, "VmRSS")
}

/// The heap part of a process's resident memory in KiB (`RssAnon` of `/proc/<pid>/status`): the rest of `VmRSS` is
/// file-backed pages, mostly the binary's own.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    lambda_env::process::status_kib(pid, "RssAnon")
}
