//! QEMU's command line: the only place in the repository that spells QEMU flags.
//!
//! [`Machine::args`] is the stacklab machine (q35, OVMF, the image, the kernel command line in
//! fw_cfg, isa-debug-exit for the kernel's exit status); [`kvm_probe_args`] is the tiny
//! SeaBIOS guest of the KVM probe. Values are escaped for QEMU's `key=value,...` syntax.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use stacklab_core::cmdline::MAX_CMDLINE;
use stacklab_core::proto::{DEBUG_EXIT_PORT, FW_CFG_CMDLINE};
use stacklab_ovmf::{Firmware, Layout};

use super::Accel;
use crate::Error;

/// Guest memory when nothing else is asked for (`-m 512M`).
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// The smallest guest memory accepted (OVMF and the kernel need room to start).
pub const MIN_MEMORY_MIB: u64 = 64;
/// The largest guest memory accepted.
pub const MAX_MEMORY_MIB: u64 = 64 * 1024;

/// Escapes a value for QEMU's option syntax (`key=value,key=value`): a comma is doubled.
pub fn escape_opt(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    out
}

fn opt(prefix: &str, value: &[u8]) -> OsString {
    let mut v = prefix.as_bytes().to_vec();
    v.extend(escape_opt(value));
    OsString::from_vec(v)
}

fn opt_path(prefix: &str, path: &Path) -> OsString {
    opt(prefix, path.as_os_str().as_bytes())
}

fn debug_exit_device() -> String {
    format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04")
}

/// The `-fw_cfg` argument carrying the kernel command line, or `None` for an empty command
/// line (QEMU rejects an empty `string=`; the kernel treats a missing file as empty).
pub fn fw_cfg_cmdline(cmdline: &str) -> Result<Option<OsString>, Error> {
    fw_cfg_text(FW_CFG_CMDLINE, cmdline)
}

/// The `-fw_cfg` argument carrying a command line as file `name` (checked like
/// [`fw_cfg_cmdline`]), or `None` when it is blank.
pub fn fw_cfg_text(name: &str, cmdline: &str) -> Result<Option<OsString>, Error> {
    if cmdline.len() > MAX_CMDLINE {
        return Err(Error::usage(format!(
            "the command line is {} bytes; the kernel accepts at most {MAX_CMDLINE}",
            cmdline.len()
        )));
    }
    if cmdline.contains('\0') {
        return Err(Error::usage(
            "the command line must not contain NUL characters",
        ));
    }
    if cmdline.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(opt(
        &format!("name={name},string="),
        cmdline.as_bytes(),
    )))
}

/// Checks a guest memory size in MiB against the accepted range.
pub fn check_memory_mib(mib: u64) -> Result<u64, String> {
    if mib < MIN_MEMORY_MIB {
        Err(format!(
            "{mib} MiB of guest memory is too little; at least {MIN_MEMORY_MIB}M"
        ))
    } else if mib > MAX_MEMORY_MIB {
        Err(format!(
            "{mib} MiB of guest memory is too much; at most {}G",
            MAX_MEMORY_MIB / 1024
        ))
    } else {
        Ok(mib)
    }
}

/// Parses a guest memory size for `--memory`: a whole number with an optional unit `M`
/// (MiB, the default, as in QEMU) or `G` (GiB), e.g. `512M`, `4G`, `768`. Returns MiB.
pub fn parse_memory_size(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a memory size (use a whole number of MiB or GiB: 512M, 4G)");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor = match unit {
        "" | "M" | "m" | "MiB" => 1,
        "G" | "g" | "GiB" => 1024,
        _ => return Err(bad()),
    };
    check_memory_mib(n.checked_mul(factor).ok_or_else(bad)?)
}

/// One stacklab machine.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'a> {
    /// The UEFI disk image to boot.
    pub image: &'a Path,
    /// The firmware files.
    pub firmware: &'a Firmware,
    /// The per-run writable copy of the variable store (split firmware only).
    pub vars: Option<&'a Path>,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The accelerator.
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u64,
}

impl Machine<'_> {
    /// QEMU's arguments. Serial (COM1) goes to stdout; QEMU's own messages to stderr.
    pub fn args(&self) -> Result<Vec<OsString>, Error> {
        check_memory_mib(self.memory_mib).map_err(Error::usage)?;
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-machine");
        push("q35");
        push("-m");
        push(&format!("{}M", self.memory_mib));
        push("-cpu");
        push(match self.accel {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        });
        push("-smp");
        push("1");
        push("-nodefaults");
        push("-no-reboot");
        push("-display");
        push("none");
        push("-serial");
        push("stdio");
        push("-device");
        push(&debug_exit_device());
        match &self.firmware.layout {
            Layout::Split { code, .. } => {
                let vars = self
                    .vars
                    .ok_or_else(|| Error::env("internal: split OVMF firmware needs a VARS copy"))?;
                a.push("-drive".into());
                a.push(opt_path("if=pflash,format=raw,readonly=on,file=", code));
                a.push("-drive".into());
                a.push(opt_path("if=pflash,format=raw,file=", vars));
            }
            Layout::Combined { image } => {
                a.push("-bios".into());
                a.push(image.into());
            }
        }
        // snapshot=on: the image is opened read-only with a shared lock and guest writes go
        // to a throw-away overlay, so parallel runs (tests) can boot the same image.
        a.push("-drive".into());
        a.push(opt_path("format=raw,snapshot=on,file=", self.image));
        if let Some(fw) = fw_cfg_cmdline(self.cmdline)? {
            a.push("-fw_cfg".into());
            a.push(fw);
        }
        a.push("-accel".into());
        a.push(self.accel.name().into());
        Ok(a)
    }
}

/// The gdb port `run --gdb` uses unless told otherwise (QEMU's `-s` default).
pub const DEFAULT_GDB_PORT: u16 = 1234;

/// The arguments that start QEMU's gdb stub on `127.0.0.1:port` with the CPU halted before
/// the firmware's first instruction (`-S`), to be appended to [`Machine::args`]. The serial
/// line stays on standard input and output (`-serial stdio` above), also for `run --shell`,
/// where the host tool writes the terminal's bytes to QEMU's standard input.
pub fn gdb_args(port: u16) -> Vec<OsString> {
    vec![
        "-gdb".into(),
        format!("tcp:127.0.0.1:{port}").into(),
        "-S".into(),
    ]
}

/// The arguments of the KVM probe VM (SeaBIOS boots the raw sector in `probe`).
///
/// The probe uses the same machine and CPU model as a real KVM run (`-machine q35 -cpu host`):
/// on hosts with incomplete nested virtualisation the default CPU model boots fine under KVM
/// while `-cpu host` makes QEMU abort (e.g. "failed to set MSR 0x10a"), so a probe with the
/// default CPU would wrongly report KVM as usable.
pub fn kvm_probe_args(probe: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "-machine",
        "q35",
        "-cpu",
        "host",
        "-accel",
        "kvm",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-device",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    a.push(debug_exit_device().into());
    a.push("-drive".into());
    a.push(opt_path("format=raw,file=", probe));
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use stacklab_ovmf::Origin;

    fn strs(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn commas_in_the_cmdline_are_doubled_for_fw_cfg() {
        let a = fw_cfg_cmdline("policy grow,fixed; recurse 1,2")
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            "name=opt/stacklab/cmdline,string=policy grow,,fixed; recurse 1,,2"
        );
        assert_eq!(
            fw_cfg_cmdline("a,,b").unwrap().unwrap(),
            "name=opt/stacklab/cmdline,string=a,,,,b"
        );
        assert_eq!(
            fw_cfg_cmdline("int3").unwrap().unwrap(),
            "name=opt/stacklab/cmdline,string=int3"
        );
        assert_eq!(fw_cfg_cmdline("   ").unwrap(), None);
        assert_eq!(fw_cfg_cmdline("a\0b").unwrap_err().exit_status(), 2);
        let long = "x".repeat(MAX_CMDLINE + 1);
        assert!(
            fw_cfg_cmdline(&long)
                .unwrap_err()
                .msg
                .contains("at most 4096")
        );
    }

    fn split_fw() -> Firmware {
        Firmware {
            layout: Layout::Split {
                code: "/fw/CODE.fd".into(),
                vars: "/fw/VARS.fd".into(),
            },
            origin: Origin::System,
        }
    }

    #[test]
    fn machine_args_spell_the_documented_command_line() {
        let fw = split_fw();
        let m = Machine {
            image: Path::new("/t/a,b.img"),
            firmware: &fw,
            vars: Some(Path::new("/tmp/v/VARS.fd")),
            cmdline: "int3, exit",
            accel: Accel::Tcg,
            memory_mib: DEFAULT_MEMORY_MIB,
        };
        let a = strs(&m.args().unwrap()).join(" ");
        assert_eq!(
            a,
            "-machine q35 -m 512M -cpu max -smp 1 -nodefaults -no-reboot -display none -serial stdio \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -drive if=pflash,format=raw,readonly=on,file=/fw/CODE.fd \
             -drive if=pflash,format=raw,file=/tmp/v/VARS.fd -drive format=raw,snapshot=on,file=/t/a,,b.img \
             -fw_cfg name=opt/stacklab/cmdline,string=int3,, exit -accel tcg"
        );
        let kvm = Machine {
            accel: Accel::Kvm,
            cmdline: "",
            ..m
        };
        let a = strs(&kvm.args().unwrap()).join(" ");
        assert!(
            a.contains("-cpu host") && a.ends_with("-accel kvm") && !a.contains("fw_cfg"),
            "{a}"
        );
        let no_vars = Machine { vars: None, ..m };
        assert!(no_vars.args().is_err());
        let combined = Firmware {
            layout: Layout::Combined {
                image: "/o/OVMF.fd".into(),
            },
            origin: Origin::System,
        };
        let c = Machine {
            firmware: &combined,
            vars: None,
            ..m
        };
        assert!(
            strs(&c.args().unwrap())
                .join(" ")
                .contains("-bios /o/OVMF.fd")
        );
    }

    #[test]
    fn memory_reaches_dash_m_and_is_range_checked() {
        let fw = split_fw();
        let m = Machine {
            image: Path::new("/i.img"),
            firmware: &fw,
            vars: Some(Path::new("/v.fd")),
            cmdline: "",
            accel: Accel::Tcg,
            memory_mib: 4096,
        };
        let a = strs(&m.args().unwrap());
        let i = a.iter().position(|s| s == "-m").unwrap();
        assert_eq!(a[i + 1], "4096M");
        let small = Machine {
            memory_mib: 63,
            ..m
        };
        let e = small.args().unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert_eq!(e.msg, "63 MiB of guest memory is too little; at least 64M");
    }

    #[test]
    fn memory_sizes_parse_in_mib_and_gib() {
        assert_eq!(parse_memory_size("512M"), Ok(512));
        assert_eq!(parse_memory_size("512"), Ok(512));
        assert_eq!(parse_memory_size("4G"), Ok(4096));
        assert_eq!(parse_memory_size("1GiB"), Ok(1024));
        assert_eq!(parse_memory_size("64m"), Ok(64));
        for bad in ["", "M", "-1G", "1.5G", "4T", "512 K", "0x200", "G4"] {
            assert_eq!(
                parse_memory_size(bad),
                Err(format!(
                    "'{bad}' is not a memory size (use a whole number of MiB or GiB: 512M, 4G)"
                )),
                "{bad}"
            );
        }
        assert_eq!(
            parse_memory_size("32M"),
            Err("32 MiB of guest memory is too little; at least 64M".into())
        );
        assert_eq!(
            parse_memory_size("65G"),
            Err("66560 MiB of guest memory is too much; at most 64G".into())
        );
        assert!(parse_memory_size("99999999999999999999G").is_err());
    }

    #[test]
    fn probe_args_are_the_documented_command_line() {
        let a = strs(&kvm_probe_args(Path::new("/p/probe.bin"))).join(" ");
        assert_eq!(
            a,
            "-machine q35 -cpu host -accel kvm -nodefaults -display none -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -drive format=raw,file=/p/probe.bin"
        );
    }
}
