//! The host tool's error type: a one-line message plus a kind that picks the exit status.

use std::fmt;

use crate::exit::status;

/// What went wrong, coarsely: decides the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad flag, bad argument, bad input file (exit 2).
    Usage,
    /// The kernel or the image failed to build (exit 2: the input did not build).
    Build,
    /// Something the tool needs is missing or broken: QEMU, OVMF, a toolchain (exit 7).
    Environment,
    /// Ctrl-C (exit 130).
    Interrupted,
}

/// A one-line, user-facing error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Usage,
            msg: msg.into(),
        }
    }
    pub fn build(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Build,
            msg: msg.into(),
        }
    }
    pub fn env(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Environment,
            msg: msg.into(),
        }
    }

    /// The host tool's exit status for this error.
    pub fn exit_status(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage | ErrorKind::Build => status::USAGE,
            ErrorKind::Environment => status::ENVIRONMENT,
            ErrorKind::Interrupted => status::INTERRUPTED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
