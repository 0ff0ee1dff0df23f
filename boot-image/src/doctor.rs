//! `cargo lab doctor`: reports toolchains, QEMU (path and version), OVMF, the build outputs
//! with their ages, and which accelerator `auto` would pick and why (a fresh KVM probe).
//! Exits 7 with the fix commands if something essential is missing.

use std::time::SystemTime;

use crate::out::say;
use crate::setup::{rust_items, system_items};
use crate::toolchain::capture;
use crate::{Error, build, paths, qemu};

fn age(path: &std::path::Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    let secs = SystemTime::now()
        .duration_since(m)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(match secs {
        0..120 => format!("{secs} s old"),
        120..7200 => format!("{} min old", secs / 60),
        7200..172_800 => format!("{} h old", secs / 3600),
        _ => format!("{} days old", secs / 86_400),
    })
}

/// Whether the first CPU of a `/proc/cpuinfo` text lists `flag` in its `flags` line.
pub fn cpu_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(_, flags)| flags.split_whitespace().any(|f| f == flag))
}

/// `cargo lab doctor`: reports everything; an error if something essential is missing.
pub fn doctor() -> Result<(), Error> {
    let mut problems = Vec::new();
    say!("toolchains:")?;
    for i in rust_items() {
        if i.present {
            say!("  ✓ {}", i.what)?;
        } else {
            say!("  ✗ {} missing (fix: {})", i.what, i.fix)?;
            problems.push(i.fix);
        }
    }
    say!("system:")?;
    let items = system_items()?;
    for i in &items {
        if i.present {
            say!("  ✓ {}: {}", i.what, i.detail)?;
        } else {
            say!("  ✗ {} missing (fix: {})", i.what, i.fix)?;
            problems.push(i.fix.clone());
        }
    }
    let q = qemu::find_qemu().ok();
    if let Some(q) = &q {
        let version = capture(&q.display().to_string(), &["--version"]).unwrap_or_default();
        say!(
            "  qemu version: {}",
            version.lines().next().unwrap_or("(unknown)")
        )?;
    }
    say!("build outputs:")?;
    for (what, p) in [
        ("kernel ELF (release)", paths::kernel_elf(false)),
        ("kernel ELF (debug)", paths::kernel_elf(true)),
        ("UEFI image", paths::default_image()),
    ] {
        match age(&p) {
            Some(a) => say!("  ✓ {what}: {} ({a})", p.display())?,
            None => say!("  - {what}: not built ({})", p.display())?,
        }
    }
    let (elf, img) = (paths::kernel_elf(false), paths::default_image());
    if elf.exists() && img.exists() {
        let fresh = build::image_up_to_date(&elf, &img);
        say!(
            "  image is {} the release kernel",
            if fresh {
                "up to date with"
            } else {
                "older than / not from"
            }
        )?;
    }
    say!("snapshot starts (checked and rebuilt when stale at their first use):")?;
    let dir = crate::snapshot::default_dir();
    let mut states: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    states.retain(|p| p.extension().is_some_and(|e| e == "state"));
    states.sort();
    if states.is_empty() {
        say!(
            "  none saved yet in {} (`cargo lab bench-boot` or a stress run makes one)",
            dir.display()
        )?;
    }
    for p in states {
        let mib = std::fs::metadata(&p).map_or(0, |m| m.len() >> 20);
        say!(
            "  {} ({mib} MiB, {})",
            p.display(),
            age(&p).unwrap_or_default()
        )?;
    }
    say!("FRED (flexible return and event delivery):")?;
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(info) if cpu_has_flag(&info, "fred") => say!(
            "  this host CPU reports FRED; a guest sees it only under KVM with a QEMU that passes it through"
        )?,
        Ok(_) => say!(
            "  this host CPU does not report FRED; QEMU's TCG does not emulate it, so the kernel reports \"fred\": \"absent\" and `growth fred-sim` simulates it"
        )?,
        Err(e) => say!("  /proc/cpuinfo unreadable ({e}): cannot tell")?,
    }
    say!("accelerator:")?;
    match &q {
        Some(q) => match qemu::probe_kvm(q) {
            Ok(()) => say!("  auto picks kvm: the KVM probe guest ran and exited as expected")?,
            Err(why) => say!("  auto picks tcg: KVM probe failed: {why}")?,
        },
        None => say!("  (no QEMU, no probe)")?,
    }
    if problems.is_empty() {
        say!("all essentials present")?;
        Ok(())
    } else {
        Err(Error::env(format!(
            "{} essential item(s) missing; run `cargo lab setup` or: {}",
            problems.len(),
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_has_flag;

    #[test]
    fn cpu_flags_are_whole_words_of_the_flags_line() {
        let info = "processor\t: 0\nmodel name\t: fredcpu\nflags\t\t: fpu lkgs fred sse\n";
        assert!(cpu_has_flag(info, "fred"));
        assert!(cpu_has_flag(info, "lkgs"));
        assert!(!cpu_has_flag(info, "fre"));
        assert!(!cpu_has_flag("flags\t: fpu fredx\n", "fred"));
        assert!(!cpu_has_flag("model name: fred\n", "fred"));
    }
}
