//! stacklab's host side: everything between `cargo lab ...` and QEMU.
//!
//! * [`record`]: the `@stacklab {json}` result protocol (parsing and friendly rendering);
//! * [`exit`]: mapping the kernel's `exit` record and QEMU's status to a verdict;
//! * [`elf`] and [`symbols`]: kernel ELF validation and address symbolization;
//! * [`qemu`]: QEMU's command line (the one place that spells it), process supervision
//!   (timeouts, Ctrl-C, no QEMU left behind) and the KVM probe;
//! * [`build`]: kernel and UEFI image builds; [`toolchain`]: what rustup has;
//!   [`setup`]: installing toolchains and packages; [`doctor`]: reporting on all of it;
//! * [`harness`]: the API the QEMU integration tests in `tests/` use; [`snapshot`]: runs
//!   started from a saved machine instead of the firmware; [`stress`]: seeded, parallel
//!   stress runs checked against what each program must do;
//! * [`cli`]: the `boot-image` binary's command line and commands; [`out`]: stdout without
//!   panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bochs;
pub mod build;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod elf;
pub mod error;
pub mod exit;
pub mod harness;
pub mod out;
pub mod paths;
pub mod qemu;
pub mod record;
pub mod setup;
pub mod snapshot;
pub mod stress;
pub mod symbols;
pub mod toolchain;

pub use error::{Error, ErrorKind};
pub use exit::KernelExit;
pub use harness::{Harness, Outcome, RunOptions};
pub use qemu::{Accel, AccelChoice, Flow};
pub use record::Record;
pub use snapshot::{BootChoice, BootKind};
pub use stacklab_core::proto::ExitCode;
