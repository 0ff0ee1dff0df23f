//! stacklab's host side: everything between `cargo lab ...` and QEMU.
//!
//! * [`record`]: the `@stacklab {json}` result protocol (parsing and friendly rendering);
//! * [`exit`]: mapping the kernel's `exit` record and QEMU's status to a verdict;
//! * [`elf`] and [`symbols`]: kernel ELF validation and address symbolization;
//! * [`qemu`]: the one place that spells QEMU's command line, the KVM probe, timeouts;
//! * [`build`]: kernel and UEFI image builds; [`setup`]: toolchains and packages;
//! * [`harness`]: the API the QEMU integration tests in `tests/` use;
//! * [`cli`]: the `boot-image` binary's argument parsing and commands.

pub mod build;
pub mod cli;
pub mod elf;
pub mod error;
pub mod exit;
pub mod harness;
pub mod paths;
pub mod qemu;
pub mod record;
pub mod setup;
pub mod symbols;

pub use error::{Error, ErrorKind};
pub use exit::KernelExit;
pub use harness::{Harness, Outcome, RunOptions};
pub use qemu::{Accel, AccelChoice};
pub use record::Record;
pub use stacklab_core::proto::ExitCode;
