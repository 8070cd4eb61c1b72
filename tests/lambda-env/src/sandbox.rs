//! The execution environment's file system: the layers extracted into an `/opt`-like directory and the function
//! into a `/var/task`-like one, under a temporary root removed on drop.
//!
//! Extraction uses Info-ZIP's `unzip`, which restores the Unix modes stored in the zip as Lambda does, so a
//! `bootstrap` zipped without its executable bit fails here as it would in Lambda.
//!
//! A layer or a function may also be a bare executable instead of a zip (a binary a test just built): it is linked
//! where its zip would have put it, `/opt/extensions/<its file name>` for a layer and `bootstrap` for a function, so a
//! test runs the build it has without packaging it first.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::options::Paths;

/// Why the sandbox could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A zip is missing.
    #[error("{0} does not exist (build it with `make package`)")]
    Missing(PathBuf),
    /// The file system refused.
    #[error("preparing {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `unzip` failed.
    #[error("unzip {zip} failed: {detail}")]
    Unzip {
        /// The zip.
        zip: PathBuf,
        /// What unzip said.
        detail: String,
    },
}

/// The directories of one environment, removed on drop.
#[derive(Debug)]
pub struct Sandbox {
    _root: tempfile::TempDir,
    /// The directories inside it.
    pub paths: Paths,
}

impl Sandbox {
    /// Makes a fresh root and extracts `layers` (in order, later ones overwriting) and `function` into it.
    pub fn new(layers: &[PathBuf], function: &Path) -> Result<Self, SandboxError> {
        let root = tempfile::Builder::new()
            .prefix("lambda-env-")
            .tempdir()
            .map_err(|source| SandboxError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let paths = Paths {
            opt: root.path().join("opt"),
            task: root.path().join("var/task"),
            tmp: root.path().join("tmp"),
        };
        let sandbox = Sandbox { _root: root, paths };
        for dir in [&sandbox.paths.opt, &sandbox.paths.task, &sandbox.paths.tmp] {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        for layer in layers {
            if is_zip(layer)? {
                unzip(layer, &sandbox.paths.opt)?;
            } else {
                let name = layer.file_name().unwrap_or(layer.as_os_str());
                link(layer, &sandbox.paths.opt.join("extensions").join(name))?;
            }
        }
        if is_zip(function)? {
            unzip(function, &sandbox.paths.task)?;
        } else {
            link(function, &sandbox.paths.task.join("bootstrap"))?;
        }
        Ok(sandbox)
    }

    /// The executables in `opt/extensions`, by file name, in the order Lambda starts them (alphabetical).
    pub fn extensions(&self) -> Result<Vec<(String, PathBuf)>, SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.paths.opt.join("extensions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SandboxError::Io { path: dir, source }),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let executable = std::fs::metadata(&path)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if executable {
                found.push((entry.file_name().to_string_lossy().into_owned(), path));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The runtime's entry point: `bootstrap` in the task root, else in `/opt`, as for OS-only runtimes.
    pub fn bootstrap(&self) -> Option<PathBuf> {
        [
            self.paths.task.join("bootstrap"),
            self.paths.opt.join("bootstrap"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }
}

/// Whether `path` starts like a zip archive (a local file header, or the end record of an empty archive).
fn is_zip(path: &Path) -> Result<bool, SandboxError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let io = |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SandboxError::Missing(path.to_path_buf()),
        _ => io(e),
    })?;
    let read = file.read(&mut magic).map_err(io)?;
    Ok(read == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06"))
}

/// Links the executable `target` at `at` (a symbolic link: the file keeps its own name for what it reports).
fn link(target: &Path, at: &Path) -> Result<(), SandboxError> {
    let io = |source| SandboxError::Io {
        path: at.to_path_buf(),
        source,
    };
    let target = std::fs::canonicalize(target).map_err(io)?;
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(&target, at).map_err(io)
}

fn unzip(zip: &Path, into: &Path) -> Result<(), SandboxError> {
    if !zip.is_file() {
        return Err(SandboxError::Missing(zip.to_path_buf()));
    }
    let out = Command::new("unzip")
        .args(["-q", "-o"])
        .arg(zip)
        .arg("-d")
        .arg(into)
        .output()
        .map_err(|source| SandboxError::Io {
            path: zip.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(SandboxError::Unzip {
            zip: zip.to_path_buf(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
