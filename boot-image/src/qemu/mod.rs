//! Everything about QEMU, in three parts:
//!
//! * [`args`]: QEMU's command line for a stacklab machine and for the KVM probe. It and
//!   [`snapshot`] are the only places in the repository that spell QEMU flags;
//! * [`process`]: running QEMU in its own process group, streaming its serial output, the
//!   timeout, Ctrl-C, stopping early, and never leaving a QEMU behind;
//! * [`kvm`]: whether KVM really works here (a probe boot) and which accelerator a run uses;
//! * [`snapshot`]: the extra arguments of snapshot starts (saving and resuming a machine
//!   that waits for its program) and the saving through QMP.
//!
//! This file finds the QEMU binary and defines the accelerator types.

pub mod args;
pub mod kvm;
pub mod process;
pub mod snapshot;

use std::path::PathBuf;

pub use args::{DEFAULT_MEMORY_MIB, Machine, fw_cfg_cmdline};
pub use kvm::{probe_kvm, resolve_accel};
pub use process::{Flow, Io, RunResult, interrupt, run, run_interactive};

use crate::Error;

/// The QEMU binary's name.
pub const QEMU_BIN: &str = "qemu-system-x86_64";
/// Environment variable overriding the QEMU binary (a path, or a name looked up in PATH).
pub const ENV_QEMU: &str = "STACKLAB_QEMU";

/// The accelerator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through `/dev/kvm`.
    Kvm,
    /// QEMU's own binary translator.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` takes.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the user asked for (`--accel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM if the probe boot proves it works, else TCG.
    #[default]
    Auto,
    /// KVM, or an error (exit 7) if the probe fails.
    Kvm,
    /// TCG, without probing.
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(Error::usage(format!(
                "--accel must be auto, kvm or tcg, got '{other}'"
            ))),
        }
    }
}

fn not_installed(what: &std::path::Path) -> Error {
    Error::env(format!(
        "{} not found: install it with `apt-get install qemu-system-x86` (or run `cargo lab setup`)",
        what.display()
    ))
}

/// Finds QEMU: `$STACKLAB_QEMU` (path or name) or `qemu-system-x86_64` in PATH.
pub fn find_qemu() -> Result<PathBuf, Error> {
    match std::env::var_os(ENV_QEMU).filter(|v| !v.is_empty()) {
        Some(v) => {
            let p = PathBuf::from(&v);
            if p.components().count() > 1 {
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(Error::env(format!(
                        "${ENV_QEMU} is set to {} but that file does not exist",
                        p.display()
                    )))
                }
            } else {
                which(&v).ok_or_else(|| {
                    Error::env(format!("${ENV_QEMU}={} is not in PATH", p.display()))
                })
            }
        }
        None => which(QEMU_BIN.as_ref()).ok_or_else(|| not_installed(QEMU_BIN.as_ref())),
    }
}

/// Looks a program up in PATH.
pub fn which(name: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accel_choice_parses() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("kvm".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        let e = "hvf".parse::<AccelChoice>().unwrap_err();
        assert_eq!(
            (e.exit_status(), e.msg.as_str()),
            (2, "--accel must be auto, kvm or tcg, got 'hvf'")
        );
    }
}
