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
    /// Standard output was closed by its reader (exit 141); nothing more is printed.
    BrokenPipe,
}

/// A one-line, user-facing error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure (picks the exit status).
    pub kind: ErrorKind,
    /// The message, one line.
    pub msg: String,
}

impl Error {
    /// A usage error or bad input (exit 2).
    pub fn usage(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Usage,
            msg: msg.into(),
        }
    }
    /// A failed build (exit 2).
    pub fn build(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Build,
            msg: msg.into(),
        }
    }
    /// A missing or broken environment (exit 7).
    pub fn env(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Environment,
            msg: msg.into(),
        }
    }

    /// Standard output is gone (exit 141).
    pub fn broken_pipe() -> Error {
        Error {
            kind: ErrorKind::BrokenPipe,
            msg: "standard output was closed".into(),
        }
    }

    /// A failed write to standard output: a broken pipe is its own quiet error, anything
    /// else an environment error.
    pub fn stdout(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::broken_pipe()
        } else {
            Error::env(format!("writing to standard output failed: {e}"))
        }
    }

    /// The host tool's exit status for this error.
    pub fn exit_status(&self) -> i32 {
        match self.kind {
            ErrorKind::Usage | ErrorKind::Build => status::USAGE,
            ErrorKind::Environment => status::ENVIRONMENT,
            ErrorKind::Interrupted => status::INTERRUPTED,
            ErrorKind::BrokenPipe => status::BROKEN_PIPE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
