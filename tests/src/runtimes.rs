//! Functions in other runtimes than ours, for the local Lambda environment: the Python and Node.js functions in
//! `tests/runtimes/<runtime>/`, each zipped as a user would zip it (a handler and a `bootstrap`), started through
//! AWS's own runtime interface client for that language against lambda-env's Runtime API.
//!
//! In Lambda the managed runtime brings the interpreter and the runtime interface client; here they come from
//! `make venv` (Python 3 and `awslambdaric` from PyPI) and `make node-ric` (the machine's node and `aws-lambda-ric`
//! from npm). The fixture's `bootstrap` starts them, told where by one variable of lambda-env's own
//! (`LAMBDA_ENV_PYTHON`, `LAMBDA_ENV_NODE_RIC`), so the zip itself holds only what a user would upload.

use std::path::{Path, PathBuf};

use crate::workspace_root;

/// A language runtime whose function reads through the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `tests/runtimes/python`: `app.handler` under awslambdaric.
    Python,
    /// `tests/runtimes/node`: `index.handler` (an ES module) under aws-lambda-ric.
    Node,
    /// `tests/runtimes/python-sdk`: `app.handler` under awslambdaric, reading with boto3's own GetSecretValue (the
    /// SDK protocol, through the endpoint variable).
    PythonSdk,
}

impl Runtime {
    /// `python` or `node`: the fixture folder's name.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "node",
            Runtime::PythonSdk => "python-sdk",
        }
    }

    /// `_HANDLER`, as the function's configuration would name it.
    pub fn handler(self) -> &'static str {
        match self {
            Runtime::Python | Runtime::PythonSdk => "app.handler",
            Runtime::Node => "index.handler",
        }
    }

    /// The variable that tells the fixture's `bootstrap` where this machine keeps the interpreter or the runtime
    /// interface client (what the managed runtime would provide in Lambda). Fails with the command that installs
    /// it when it is missing.
    pub fn provided_by_the_managed_runtime(self) -> (&'static str, String) {
        let (var, path, install) = match self {
            Runtime::Python | Runtime::PythonSdk => (
                "LAMBDA_ENV_PYTHON",
                workspace_root().join(".venv/bin/python"),
                "make venv",
            ),
            Runtime::Node => (
                "LAMBDA_ENV_NODE_RIC",
                workspace_root().join(".node-ric/node_modules/aws-lambda-ric"),
                "make node-ric",
            ),
        };
        let ready = match self {
            Runtime::Python | Runtime::PythonSdk => python_has_awslambdaric(&path),
            Runtime::Node => path.join("dist/rapid-client.node").is_file(),
        };
        assert!(
            ready,
            "the {} runtime interface client is missing at {}: run `{install}` (make test does)",
            self.name(),
            path.display()
        );
        (var, path.display().to_string())
    }

    /// The function zip, built from the fixture folder into a temporary folder removed with the returned value.
    pub fn function_zip(self) -> FunctionZip {
        let source = workspace_root().join("tests/runtimes").join(self.name());
        let dir = tempfile::Builder::new()
            .prefix(&format!("runtime-{}-", self.name()))
            .tempdir()
            .expect("a temporary folder");
        let zip = dir.path().join("function.zip");
        // `-X -D`: no extra attributes, no folder entries, as layer/build.sh zips. zip keeps the modes, so the
        // bootstrap's executable bit (from git) reaches the task root as in a real upload.
        let status = std::process::Command::new("zip")
            .current_dir(&source)
            .args(["-q", "-X", "-D", "-r"])
            .arg(&zip)
            .arg(".")
            .status()
            .expect("run zip");
        assert!(status.success(), "zipping {}", source.display());
        FunctionZip { _dir: dir, zip }
    }
}

fn python_has_awslambdaric(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import awslambdaric"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A function zip in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct FunctionZip {
    _dir: tempfile::TempDir,
    /// The zip.
    pub zip: PathBuf,
}
