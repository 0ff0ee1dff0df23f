//! One boot on Bochs: a temporary directory with the bochsrc and a copy of the disk image
//! (Bochs opens its disk read-write and locks it, so parallel runs each get their own), COM1
//! on a socket ([`super::serial`]), Bochs supervised like QEMU
//! ([`crate::qemu::process::run_from`]): own process group, timeout, Ctrl-C.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use stacklab_core::bochs::parse_exit_line;

use super::Install;
use super::config::Machine;
use super::serial::Link;
use crate::Error;
use crate::exit::QemuEnd;
use crate::qemu::{Flow, RunResult, process};

/// How Bochs's end reads as QEMU's: the status the kernel wrote on port 0xE9 before it
/// powered off (what QEMU's isa-debug-exit would have produced), or Bochs's own status if
/// there is no such line (a triple fault, a Bochs error: then it names no kernel exit).
pub fn as_qemu_end(end: QemuEnd, bochs_stdout: &str) -> QemuEnd {
    match end {
        QemuEnd::Exited(raw) => QemuEnd::Exited(
            bochs_stdout
                .lines()
                .find_map(parse_exit_line)
                .unwrap_or(raw),
        ),
        other => other,
    }
}

/// Boots `image` on Bochs with `cmdline`; `on_line` gets every COM1 line. The result's `end`
/// is already mapped with [`as_qemu_end`].
pub fn run(
    install: &Install,
    image: &Path,
    cmdline: &str,
    memory_mib: u64,
    timeout: Duration,
    on_line: &mut dyn FnMut(&str) -> Flow,
) -> Result<RunResult, Error> {
    let dir = tempfile::Builder::new()
        .prefix("stacklab-bochs-")
        .tempdir()
        .map_err(|e| Error::env(format!("cannot create a temporary directory: {e}")))?;
    let disk = dir.path().join("disk.img");
    std::fs::copy(image, &disk)
        .map_err(|e| Error::usage(format!("cannot copy {}: {e}", image.display())))?;
    let firmware_size = std::fs::metadata(&install.firmware)
        .map_err(|e| Error::env(format!("{}: {e}", install.firmware.display())))?
        .len();
    let link = Link::bind()?;
    let rc = Machine {
        firmware: &install.firmware,
        vga_rom: &install.vga_rom,
        firmware_size,
        disk: &disk,
        serial_port: link.port()?,
        memory_mib,
    }
    .bochsrc()?;
    let rc_path = dir.path().join("bochsrc");
    std::fs::write(&rc_path, rc)
        .map_err(|e| Error::env(format!("cannot write {}: {e}", rc_path.display())))?;
    let serial = link.start(cmdline.to_string(), Instant::now() + timeout);
    let args: Vec<OsString> = vec!["-q".into(), "-f".into(), rc_path.into_os_string()];
    let mut r = process::run_from(&install.binary, &args, timeout, Some(serial), on_line)?;
    r.end = as_qemu_end(r.end, &r.stdout);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stacklab_core::proto::ExitCode;

    #[test]
    fn the_kernels_e9_line_gives_the_status_qemu_would_have() {
        let out = "Bochs x86 Emulator\nstacklab-exit 41\n";
        assert_eq!(as_qemu_end(QemuEnd::Exited(1), out), QemuEnd::Exited(41));
        assert_eq!(
            ExitCode::from_qemu_status(41),
            Some(ExitCode::Abort),
            "41 is abort's status"
        );
        assert_eq!(
            as_qemu_end(QemuEnd::Exited(1), "banner\n"),
            QemuEnd::Exited(1)
        );
        assert_eq!(as_qemu_end(QemuEnd::TimedOut, out), QemuEnd::TimedOut);
    }
}
