//! The bochsrc of a stacklab machine: the only place in the repository that spells out Bochs
//! configuration (as [`crate::qemu::args`] is for QEMU).
//!
//! The machine: the `wildcat_lake` CPU (the Bochs model with FRED), i440FX with PCI and the
//! QEMU-compatible fw_cfg device that OVMF needs, OVMF as the ROM at the top of the 4 GiB
//! space, the boot image as the IDE primary master (OVMF's IDE driver finds the FAT image and
//! its `EFI/BOOT/BOOTX64.EFI` there), COM1 as a TCP client of the host tool, the port 0xE9
//! console (the kernel writes its exit status there, see [`super::EXIT_LINE`]) and the
//! shutdown port 0x8900 (always there). A triple fault stops Bochs instead of resetting, like
//! QEMU's `-no-reboot`.

use std::fmt::Write;
use std::path::Path;

use crate::Error;

/// Instructions per emulated second. Guest time follows instructions (`clock: sync=none`),
/// so this sets how many instructions the kernel's 1 kHz timer leaves between two ticks
/// (100 000), and it is the TSC's frequency: Bochs's TSC counts instructions.
pub const IPS: u64 = 100_000_000;

/// One Bochs machine.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'a> {
    /// The OVMF image (code and variables in one file).
    pub firmware: &'a Path,
    /// The firmware's size in bytes (it is mapped to end at 4 GiB).
    pub firmware_size: u64,
    /// The VGA BIOS (Bochs refuses to start without one).
    pub vga_rom: &'a Path,
    /// The disk image (a per-run copy: Bochs writes to it and locks it).
    pub disk: &'a Path,
    /// The TCP port on 127.0.0.1 where the host tool waits for COM1.
    pub serial_port: u16,
    /// Guest memory in MiB.
    pub memory_mib: u64,
}

/// A path as a bochsrc value: quoted; refused if it holds what the bochsrc syntax cannot
/// carry (a quote, a line break, `$` which Bochs expands as an environment variable, or a
/// comma which separates options).
pub fn quote_path(p: &Path) -> Result<String, Error> {
    let s = p.to_str().ok_or_else(|| {
        Error::usage(format!(
            "{}: a path Bochs is given must be UTF-8",
            p.display()
        ))
    })?;
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '"' | '\n' | '\r' | '$' | ','))
    {
        return Err(Error::usage(format!(
            "{s}: Bochs cannot be given a path containing {c:?} (move the file or the workspace)"
        )));
    }
    Ok(format!("\"{s}\""))
}

impl Machine<'_> {
    /// The text of the bochsrc.
    pub fn bochsrc(&self) -> Result<String, Error> {
        crate::qemu::args::check_memory_mib(self.memory_mib).map_err(Error::usage)?;
        if self.firmware_size == 0
            || self.firmware_size > 4 << 20
            || !self.firmware_size.is_multiple_of(0x1_0000)
        {
            return Err(Error::env(format!(
                "{}: {} bytes is not a firmware image size (a multiple of 64 KiB, at most 4 MiB)",
                self.firmware.display(),
                self.firmware_size
            )));
        }
        let rom_base = (1u64 << 32) - self.firmware_size;
        let mut s = String::new();
        let mut line = |text: String| {
            let _ = writeln!(s, "{text}");
        };
        line("# A stacklab machine, written by the host tool for one run.".into());
        line("config_interface: textconfig".into());
        line("display_library: nogui".into());
        line(format!(
            "memory: guest={}, host={}",
            self.memory_mib, self.memory_mib
        ));
        line(format!(
            "cpu: model=wildcat_lake, count=1, ips={IPS}, reset_on_triple_fault=0, ignore_bad_msrs=1"
        ));
        line("clock: sync=none, time0=utc".into());
        line("pci: enabled=1, chipset=i440fx".into());
        line("fw_cfg: enabled=1".into());
        line(format!(
            "romimage: file={}, address={rom_base:#x}",
            quote_path(self.firmware)?
        ));
        line(format!("vgaromimage: file={}", quote_path(self.vga_rom)?));
        line("boot: disk".into());
        line("ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14".into());
        line(format!(
            "ata0-master: type=disk, mode=flat, path={}",
            quote_path(self.disk)?
        ));
        line(format!(
            "com1: enabled=1, mode=socket-client, dev=127.0.0.1:{}",
            self.serial_port
        ));
        line("port_e9_hack: enabled=1".into());
        line("log: -".into());
        line("panic: action=fatal".into());
        line("error: action=report".into());
        line("info: action=ignore".into());
        line("debug: action=ignore".into());
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn machine<'a>(fw: &'a Path, disk: &'a Path) -> Machine<'a> {
        Machine {
            firmware: fw,
            vga_rom: Path::new("/b/VGA.bin"),
            firmware_size: 2 << 20,
            disk,
            serial_port: 40123,
            memory_mib: 512,
        }
    }

    fn lines_with<'a>(rc: &'a str, key: &str) -> Vec<&'a str> {
        rc.lines().filter(|l| l.starts_with(key)).collect()
    }

    #[test]
    fn the_machine_has_fred_fw_cfg_the_disk_and_com1_on_the_host_port() {
        let (fw, disk) = (
            PathBuf::from("/b/OVMF.fd"),
            PathBuf::from("/t/run 1/disk.img"),
        );
        let rc = machine(&fw, &disk).bochsrc().unwrap();
        assert_eq!(
            lines_with(&rc, "cpu:"),
            [
                "cpu: model=wildcat_lake, count=1, ips=100000000, reset_on_triple_fault=0, ignore_bad_msrs=1"
            ]
        );
        assert_eq!(
            lines_with(&rc, "romimage:"),
            ["romimage: file=\"/b/OVMF.fd\", address=0xffe00000"]
        );
        assert_eq!(
            lines_with(&rc, "ata0-master:"),
            ["ata0-master: type=disk, mode=flat, path=\"/t/run 1/disk.img\""]
        );
        assert_eq!(
            lines_with(&rc, "com1:"),
            ["com1: enabled=1, mode=socket-client, dev=127.0.0.1:40123"]
        );
        assert_eq!(lines_with(&rc, "memory:"), ["memory: guest=512, host=512"]);
        for needed in [
            "fw_cfg: enabled=1",
            "pci: enabled=1, chipset=i440fx",
            "port_e9_hack: enabled=1",
            "panic: action=fatal",
        ] {
            assert_eq!(lines_with(&rc, needed), [needed], "{rc}");
        }
    }

    #[test]
    fn a_4_mib_firmware_starts_at_4_gib_minus_4_mib() {
        let (fw, disk) = (PathBuf::from("/f"), PathBuf::from("/d"));
        let m = Machine {
            firmware_size: 4 << 20,
            memory_mib: 1024,
            ..machine(&fw, &disk)
        };
        let rc = m.bochsrc().unwrap();
        assert_eq!(
            lines_with(&rc, "romimage:"),
            ["romimage: file=\"/f\", address=0xffc00000"]
        );
        assert_eq!(
            lines_with(&rc, "memory:"),
            ["memory: guest=1024, host=1024"]
        );
    }

    #[test]
    fn bad_sizes_and_unquotable_paths_are_refused() {
        let (fw, disk) = (PathBuf::from("/f"), PathBuf::from("/d"));
        for size in [0, 1000, 8 << 20] {
            let e = Machine {
                firmware_size: size,
                ..machine(&fw, &disk)
            }
            .bochsrc()
            .unwrap_err();
            assert_eq!(e.exit_status(), 7, "{size}: {}", e.msg);
        }
        let e = Machine {
            memory_mib: 32,
            ..machine(&fw, &disk)
        }
        .bochsrc()
        .unwrap_err();
        assert_eq!(e.exit_status(), 2);
        for bad in ["/a\"b", "/a$HOME", "/a,b", "/a\nb"] {
            let d = PathBuf::from(bad);
            let e = machine(&fw, &d).bochsrc().unwrap_err();
            assert_eq!(e.exit_status(), 2, "{bad}");
            assert!(e.msg.starts_with(bad), "{}", e.msg);
        }
    }
}
