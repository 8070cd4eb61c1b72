//! How a program from the zips is started: directly, or through a user-mode emulator when it is an ELF binary for
//! another machine than this one (an arm64 zip on an x86_64 host, or the reverse).
//!
//! Lambda runs a zip on the architecture the function is configured for; here the host may differ, and the kernel
//! has no `binfmt_misc` entry to hand a foreign binary to an emulator by itself. So the emulator is named
//! explicitly: `qemu-aarch64 -L /usr/aarch64-linux-gnu <binary>`, from Debian's `qemu-user`, with the guest's glibc
//! from `libc6-arm64-cross`. qemu-user runs the guest inside one host process: the emulator *is* the process, so
//! its pid, its process group, SIGSTOP/SIGCONT/SIGKILL (the freeze, the thaw, the shutdown deadline) and `/proc`
//! behave as for a native binary, and a signal the guest handles (SIGTERM) reaches the guest's handler.
//!
//! Scripts (`#!`) run as they are: their interpreter is the host's. What a script starts in turn is not emulated
//! (binfmt would do that; no zip here needs it). A file that is neither a script nor an ELF binary this module knows
//! also starts directly, so the kernel refuses it as Lambda would (`exec format error`).
//!
//! Parts: [`Machine`] (the ELF header's `e_machine`), [`decide`] (the pure rule), [`Launcher`] (finds the emulator)
//! and [`Launch`] (the resulting command).

use std::fmt;
use std::path::{Path, PathBuf};

/// The ELF machines lambda-env knows how to emulate: Lambda's two architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `EM_X86_64` (62): Lambda's `x86_64`.
    X86_64,
    /// `EM_AARCH64` (183): Lambda's `arm64`.
    Aarch64,
    /// Any other `e_machine` value.
    Other(u16),
}

impl Machine {
    /// The machine this process runs on.
    pub fn host() -> Machine {
        match std::env::consts::ARCH {
            "x86_64" => Machine::X86_64,
            "aarch64" => Machine::Aarch64,
            // Neither of Lambda's architectures: every zip is foreign, and no emulator is looked for.
            _ => Machine::Other(0),
        }
    }

    fn from_e_machine(value: u16) -> Machine {
        match value {
            62 => Machine::X86_64,
            183 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }

    /// The qemu-user binary and the Debian cross-glibc root (`-L`) that run this machine's binaries, and the
    /// Debian package that holds that glibc.
    fn emulator_names(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Machine::Aarch64 => Some((
                "qemu-aarch64",
                "/usr/aarch64-linux-gnu",
                "libc6-arm64-cross",
            )),
            Machine::X86_64 => Some(("qemu-x86_64", "/usr/x86_64-linux-gnu", "libc6-amd64-cross")),
            Machine::Other(_) => None,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

/// What to do with a program, from its first bytes and the host's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it as it is: a script, a binary for this machine, or something the kernel should judge.
    Direct,
    /// Start it under the emulator for this machine.
    Emulate(Machine),
}

/// The first bytes of a file that [`decide`] needs: the ELF identification and `e_machine` (offsets 0 to 19).
pub const HEADER_LEN: usize = 20;

/// The rule, without touching the file system: an ELF binary whose `e_machine` is one of Lambda's architectures
/// and not the host's is emulated; everything else starts directly.
pub fn decide(header: &[u8], host: Machine) -> Decision {
    let Some(machine) = elf_machine(header) else {
        return Decision::Direct;
    };
    if machine == host || machine.emulator_names().is_none() {
        Decision::Direct
    } else {
        Decision::Emulate(machine)
    }
}

/// `e_machine` of an ELF header, read in the byte order the header declares (`EI_DATA`), or `None` when `header`
/// is not the start of an ELF file.
pub fn elf_machine(header: &[u8]) -> Option<Machine> {
    if header.len() < HEADER_LEN || !header.starts_with(b"\x7fELF") {
        return None;
    }
    let bytes = [header[18], header[19]];
    let value = match header[5] {
        1 => u16::from_le_bytes(bytes),
        2 => u16::from_be_bytes(bytes),
        _ => return None,
    };
    Some(Machine::from_e_machine(value))
}

/// Why a program cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Its first bytes could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The program.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// It needs an emulator this machine lacks.
    #[error(
        "{path} is an {machine} binary and this is an {host} machine: it runs under `{emulator} -L {sysroot}`, \
         which is missing here (install the Debian packages qemu-user and {package}; `make test` does)"
    )]
    NoEmulator {
        /// The program.
        path: PathBuf,
        /// Its machine.
        machine: Machine,
        /// This machine.
        host: Machine,
        /// The qemu-user binary looked for.
        emulator: &'static str,
        /// The guest glibc root looked for.
        sysroot: &'static str,
        /// The package that holds that glibc.
        package: &'static str,
    },
}

/// Decides how to start the programs of one environment: knows the host's machine and where to find emulators.
#[derive(Debug, Clone)]
pub struct Launcher {
    host: Machine,
    /// Where `qemu-*` is looked for: the host's `PATH` (not the sandbox's, which the function may change).
    bin_dirs: Vec<PathBuf>,
    /// Prefixed to the cross-glibc roots (`/` in production; a temporary folder in tests).
    root: PathBuf,
}

impl Launcher {
    /// The host's machine and `PATH`.
    pub fn from_host() -> Launcher {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        Launcher {
            host: Machine::host(),
            bin_dirs: std::env::split_paths(&path).collect(),
            root: PathBuf::from("/"),
        }
    }

    /// A launcher for `host` that looks for emulators in `bin_dirs` and for the guest glibc under `root`.
    pub fn new(host: Machine, bin_dirs: Vec<PathBuf>, root: impl Into<PathBuf>) -> Launcher {
        Launcher {
            host,
            bin_dirs,
            root: root.into(),
        }
    }

    /// How to start `program`: reads its first bytes, applies [`decide`], and for a foreign binary finds the
    /// emulator and the guest glibc, or says which packages are missing.
    pub fn plan(&self, program: &Path) -> Result<Launch, LaunchError> {
        use std::io::Read;
        let mut header = Vec::with_capacity(HEADER_LEN);
        std::fs::File::open(program)
            .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
            .map_err(|source| LaunchError::Read {
                path: program.to_path_buf(),
                source,
            })?;
        let machine = match decide(&header, self.host) {
            Decision::Direct => return Ok(Launch::Direct(program.to_path_buf())),
            Decision::Emulate(machine) => machine,
        };
        let Some((emulator, sysroot, package)) = machine.emulator_names() else {
            return Ok(Launch::Direct(program.to_path_buf()));
        };
        let found = self
            .bin_dirs
            .iter()
            .map(|d| d.join(emulator))
            .find(|p| p.is_file());
        let sysroot_path = self.root.join(sysroot.trim_start_matches('/'));
        match found {
            Some(emulator) if sysroot_path.is_dir() => Ok(Launch::Emulated {
                program: program.to_path_buf(),
                machine,
                emulator,
                sysroot: sysroot_path,
            }),
            _ => Err(LaunchError::NoEmulator {
                path: program.to_path_buf(),
                machine,
                host: self.host,
                emulator,
                sysroot,
                package,
            }),
        }
    }
}

/// How one program is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `program` itself.
    Direct(PathBuf),
    /// `emulator -L sysroot program`.
    Emulated {
        /// The guest binary.
        program: PathBuf,
        /// Its machine.
        machine: Machine,
        /// The qemu-user binary.
        emulator: PathBuf,
        /// The guest's glibc root, where the emulator finds the dynamic loader and libc.
        sysroot: PathBuf,
    },
}

impl Launch {
    /// The command that starts it, with no arguments of the program's own (Lambda passes none).
    pub fn command(&self) -> tokio::process::Command {
        match self {
            Launch::Direct(program) => tokio::process::Command::new(program),
            Launch::Emulated {
                program,
                emulator,
                sysroot,
                ..
            } => {
                let mut cmd = tokio::process::Command::new(emulator);
                cmd.arg("-L").arg(sysroot).arg(program);
                cmd
            }
        }
    }

    /// Whether it runs under an emulator.
    pub fn is_emulated(&self) -> bool {
        matches!(self, Launch::Emulated { .. })
    }
}

impl fmt::Display for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Launch::Direct(program) => write!(f, "{}", program.display()),
            Launch::Emulated {
                program,
                machine,
                emulator,
                sysroot,
            } => write!(
                f,
                "{} ({machine}) under {} -L {}",
                program.display(),
                emulator.display(),
                sysroot.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of a 64-bit ELF executable for `e_machine`, in the given byte order.
    fn elf(e_machine: u16, big_endian: bool) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, if big_endian { 2 } else { 1 }, 1];
        h.resize(16, 0);
        h.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
        h.extend_from_slice(&if big_endian {
            e_machine.to_be_bytes()
        } else {
            e_machine.to_le_bytes()
        });
        h
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "lambda-env-launch-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
        fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, bytes).expect("write");
            p
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_binary_for_the_other_lambda_architecture_is_emulated() {
        assert_eq!(
            decide(&elf(183, false), Machine::X86_64),
            Decision::Emulate(Machine::Aarch64)
        );
        assert_eq!(
            decide(&elf(62, false), Machine::Aarch64),
            Decision::Emulate(Machine::X86_64)
        );
    }

    #[test]
    fn a_native_binary_a_script_or_anything_else_starts_directly() {
        assert_eq!(decide(&elf(62, false), Machine::X86_64), Decision::Direct);
        assert_eq!(decide(&elf(183, false), Machine::Aarch64), Decision::Direct);
        assert_eq!(
            decide(b"#!/bin/sh\nexec true\n", Machine::X86_64),
            Decision::Direct
        );
        // s390x (22) has no emulator here: the kernel answers `exec format error`, as Lambda's would.
        assert_eq!(decide(&elf(22, true), Machine::X86_64), Decision::Direct);
        assert_eq!(decide(b"\x7fELF", Machine::X86_64), Decision::Direct);
        assert_eq!(decide(b"", Machine::X86_64), Decision::Direct);
    }

    #[test]
    fn e_machine_is_read_in_the_byte_order_the_header_declares() {
        assert_eq!(elf_machine(&elf(183, false)), Some(Machine::Aarch64));
        assert_eq!(elf_machine(&elf(183, true)), Some(Machine::Aarch64));
        assert_eq!(elf_machine(&elf(22, true)), Some(Machine::Other(22)));
        let mut bad_order = elf(62, false);
        bad_order[5] = 7;
        assert_eq!(elf_machine(&bad_order), None);
    }

    #[test]
    fn the_running_test_binary_is_native() {
        let exe = std::env::current_exe().expect("current exe");
        let launch = Launcher::new(Machine::host(), Vec::new(), "/")
            .plan(&exe)
            .expect("plan");
        assert_eq!(launch, Launch::Direct(exe));
    }

    #[test]
    fn a_foreign_binary_runs_under_qemu_with_the_guest_glibc_root() {
        let tmp = TempDir::new("found");
        let program = tmp.file("opt/extensions/ext", &elf(183, false));
        let qemu = tmp.file("bin/qemu-aarch64", b"");
        std::fs::create_dir_all(tmp.0.join("usr/aarch64-linux-gnu")).expect("sysroot");
        let launcher = Launcher::new(
            Machine::X86_64,
            vec![tmp.0.join("nothing-here"), tmp.0.join("bin")],
            &tmp.0,
        );
        let launch = launcher.plan(&program).expect("plan");
        assert!(launch.is_emulated());
        let cmd = launch.command();
        let cmd = cmd.as_std();
        assert_eq!(cmd.get_program(), qemu.as_os_str());
        let args: Vec<_> = cmd.get_args().collect();
        let sysroot = tmp.0.join("usr/aarch64-linux-gnu");
        assert_eq!(
            args,
            [
                std::ffi::OsStr::new("-L"),
                sysroot.as_os_str(),
                program.as_os_str()
            ]
        );
        assert!(launch.to_string().contains("(aarch64) under"), "{launch}");
    }

    #[test]
    fn a_missing_emulator_or_guest_glibc_names_the_packages() {
        let tmp = TempDir::new("missing");
        let program = tmp.file("bootstrap", &elf(183, false));
        let no_qemu = Launcher::new(Machine::X86_64, vec![tmp.0.join("bin")], &tmp.0);
        let e = no_qemu.plan(&program).expect_err("no emulator");
        let message = e.to_string();
        assert!(
            message.contains("qemu-user") && message.contains("libc6-arm64-cross"),
            "{message}"
        );
        // The emulator alone is not enough: without the guest's glibc its dynamic loader cannot start.
        tmp.file("bin/qemu-aarch64", b"");
        let no_glibc = Launcher::new(Machine::X86_64, vec![tmp.0.join("bin")], &tmp.0);
        assert!(matches!(
            no_glibc.plan(&program),
            Err(LaunchError::NoEmulator {
                machine: Machine::Aarch64,
                ..
            })
        ));
    }

    #[test]
    fn an_unreadable_program_is_an_error_that_names_it() {
        let launcher = Launcher::new(Machine::X86_64, Vec::new(), "/");
        let e = launcher
            .plan(Path::new("/nonexistent/bootstrap"))
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/bootstrap"), "{e}");
    }
}
