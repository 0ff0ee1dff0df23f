//! `stacklab-imager <kernel-elf> <out.img>`: wraps the kernel ELF in a bootable UEFI (GPT)
//! disk image using `bootloader` 0.11.17.
//!
//! Built and run by the host tool (`cargo lab build`) with the pinned nightly; see README.md
//! for why this lives in its own crate.

use std::path::PathBuf;
use std::process::ExitCode;

use bootloader::{BootConfig, UefiBoot};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kernel, out] = args.as_slice() else {
        eprintln!("usage: stacklab-imager <kernel-elf> <out.img>");
        return ExitCode::from(2);
    };
    let (kernel, out) = (PathBuf::from(kernel), PathBuf::from(out));
    if !kernel.is_file() {
        eprintln!(
            "stacklab-imager: kernel ELF {} does not exist",
            kernel.display()
        );
        return ExitCode::from(2);
    }

    // COM1 belongs to the kernel's result protocol: keep the bootloader quiet on it (and on
    // the framebuffer, which nobody looks at under `-display none`).
    let mut config = BootConfig::default();
    config.serial_logging = false;
    config.frame_buffer_logging = false;

    // Write next to the target and rename, so an interrupted run never leaves a truncated
    // image that looks newer than the kernel.
    let tmp = out.with_extension("img.partial");
    if let Err(e) = UefiBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&tmp)
    {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("stacklab-imager: creating the UEFI image failed: {e:#}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::rename(&tmp, &out) {
        eprintln!(
            "stacklab-imager: moving {} to {}: {e}",
            tmp.display(),
            out.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
