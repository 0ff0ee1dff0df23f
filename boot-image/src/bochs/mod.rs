//! Bochs, the second emulator: the only one available that implements FRED (its main branch,
//! CPU model `wildcat_lake`). Three parts:
//!
//! * [`build`]: `cargo lab setup --with-bochs SRC` configures and compiles a Bochs source
//!   tree or tarball into `target/stacklab/bochs/`, skipping the work when that source was
//!   already built;
//! * [`config`]: the bochsrc of a stacklab machine, the only place that spells out Bochs
//!   configuration;
//! * [`serial`]: the COM1 link (a TCP socket Bochs connects to), which streams the kernel's
//!   serial lines and answers its request for the command line (Bochs's fw_cfg device carries
//!   no user files).

pub mod boot;
pub mod build;
pub mod config;
pub mod serial;

use std::path::PathBuf;

use crate::{Error, paths};

/// Environment variable naming a Bochs binary to use instead of the one setup built.
pub const ENV_BOCHS: &str = "STACKLAB_BOCHS";
/// Environment variable that makes the Bochs tests fail, rather than skip, without Bochs.
pub const ENV_REQUIRE: &str = "STACKLAB_REQUIRE_BOCHS";

/// `target/stacklab/bochs`: the build of Bochs and its firmware.
pub fn dir() -> PathBuf {
    paths::stacklab_dir().join("bochs")
}

/// The Bochs binary setup builds.
pub fn built_binary() -> PathBuf {
    build::Layout::new(dir()).binary()
}

/// The OVMF image setup copies from the Bochs source (`bios/OVMF/OVMF-pure-efi.fd`).
pub fn built_firmware() -> PathBuf {
    build::Layout::new(dir()).firmware()
}

/// Which emulator boots the image (`cargo lab run --emulator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Emulator {
    /// QEMU (q35, TCG or KVM): the default.
    #[default]
    Qemu,
    /// Bochs built by `cargo lab setup --with-bochs SRC`: slower, but its CPU has FRED.
    Bochs,
}

/// What a run on Bochs reports as its accelerator: Bochs has none, it interprets.
pub const NO_ACCEL_REASON: &str = "Bochs interprets every instruction; --accel does not apply";

/// The VGA BIOS setup copies from the Bochs source (`bios/VGABIOS-lgpl/`): Bochs will not
/// start without one, though OVMF drives the display itself.
pub fn built_vga_rom() -> PathBuf {
    build::Layout::new(dir()).vga_rom()
}

/// A usable Bochs: the binary and the ROM images it boots with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// The `bochs` executable.
    pub binary: PathBuf,
    /// OVMF built for Bochs (one file: code and variables).
    pub firmware: PathBuf,
    /// The VGA BIOS.
    pub vga_rom: PathBuf,
}

/// Finds Bochs: `$STACKLAB_BOCHS` or the binary setup built, plus the firmware setup copied.
pub fn find() -> Result<Install, Error> {
    let firmware = built_firmware();
    let binary = match std::env::var_os(ENV_BOCHS).filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v),
        None => built_binary(),
    };
    if !binary.is_file() {
        return Err(Error::env(format!(
            "Bochs is not built ({} does not exist): run `cargo lab setup --with-bochs SRC` \
             with SRC a Bochs source tree or tarball (main branch, with FRED)",
            binary.display()
        )));
    }
    let vga_rom = built_vga_rom();
    if let Some(missing) = [&firmware, &vga_rom].into_iter().find(|p| !p.is_file()) {
        return Err(Error::env(format!(
            "{} (a ROM image Bochs boots with) is missing: run `cargo lab setup --with-bochs SRC` again",
            missing.display()
        )));
    }
    Ok(Install {
        binary,
        firmware,
        vga_rom,
    })
}

/// Whether the Bochs tests must fail (not skip) when Bochs is missing.
pub fn required() -> bool {
    std::env::var_os(ENV_REQUIRE).is_some_and(|v| !v.is_empty() && v != "0")
}
