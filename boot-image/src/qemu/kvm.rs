//! Does KVM work here? `/dev/kvm` existing proves nothing (guests can still fail under it),
//! so a one-sector guest is booted under KVM and must write a known value to isa-debug-exit.
//! The verdict picks the accelerator for `--accel auto` and is cached per process and on disk.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use stacklab_core::proto::DEBUG_EXIT_PORT;

use super::args::kvm_probe_args;
use super::process::{Flow, RunResult, run};
use super::{Accel, AccelChoice};
use crate::Error;
use crate::exit::QemuEnd;

/// How long the KVM probe may take.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The value the probe VM writes to isa-debug-exit.
const PROBE_EXIT_VALUE: i32 = 0x2a;

/// The probe boot sector: `mov al,0x2a; out 0xf4,al; hlt; jmp $-1`, signature at 510.
pub fn kvm_probe_sector() -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..7].copy_from_slice(&[
        0xB0,
        PROBE_EXIT_VALUE as u8,
        0xE6,
        DEBUG_EXIT_PORT as u8,
        0xF4,
        0xEB,
        0xFD,
    ]);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

static KVM_VERDICT: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether KVM works here, proven by booting a one-sector guest under it. Cached for the
/// process, and on disk (keyed by the boot id and the QEMU binary) in `cache_file` if given.
pub fn kvm_usable(qemu: &Path, cache_file: Option<&Path>) -> Result<(), String> {
    KVM_VERDICT
        .get_or_init(|| probe_with_cache(qemu, cache_file))
        .clone()
}

fn probe_with_cache(qemu: &Path, cache_file: Option<&Path>) -> Result<(), String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let key = format!("{}\n{}\n", boot_id.trim(), qemu.display());
    if let Some(cache) = cache_file
        && let Ok(text) = std::fs::read_to_string(cache)
        && let Some(verdict) = text.strip_prefix(&key)
        && !boot_id.trim().is_empty()
    {
        return match verdict.strip_prefix("ok") {
            Some(_) => Ok(()),
            None => Err(verdict
                .strip_prefix("fail: ")
                .unwrap_or(verdict)
                .trim()
                .to_string()),
        };
    }
    let verdict = probe_kvm(qemu);
    if let Some(cache) = cache_file {
        let line = match &verdict {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("fail: {e}\n"),
        };
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(cache, key + &line);
    }
    verdict
}

/// The first line of QEMU's stderr that says something (for one-line probe verdicts).
fn first_stderr_line(r: &RunResult) -> String {
    let line = r
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    crate::exit::one_line(line.strip_prefix("qemu-system-x86_64: ").unwrap_or(line))
}

/// Boots the probe sector under KVM (uncached).
pub fn probe_kvm(qemu: &Path) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("/dev/kvm does not exist".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("stacklab-kvm-probe-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let probe = dir.path().join("probe.bin");
    std::fs::write(&probe, kvm_probe_sector())
        .map_err(|e| format!("cannot write the probe: {e}"))?;
    let r = run(
        qemu,
        &kvm_probe_args(&probe),
        KVM_PROBE_TIMEOUT,
        &mut |_| Flow::Continue,
    )
    .map_err(|e| e.msg)?;
    let expected = (PROBE_EXIT_VALUE << 1) | 1;
    match r.end {
        QemuEnd::Exited(s) if s == expected => Ok(()),
        QemuEnd::Exited(s) => {
            let tail = first_stderr_line(&r);
            if tail.is_empty() {
                Err(format!(
                    "probe guest ended with status {s}, expected {expected}"
                ))
            } else {
                Err(format!("probe guest ended with status {s} ({tail})"))
            }
        }
        QemuEnd::Signaled(sig) => {
            let tail = first_stderr_line(&r);
            Err(format!("QEMU was killed by signal {sig} ({tail})"))
        }
        QemuEnd::TimedOut | QemuEnd::Stopped => Err(format!(
            "probe guest did not finish within {} s",
            KVM_PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// Picks the accelerator and says why.
pub fn resolve_accel(
    choice: AccelChoice,
    qemu: &Path,
    cache_file: Option<&Path>,
) -> Result<(Accel, String), Error> {
    match choice {
        AccelChoice::Tcg => Ok((Accel::Tcg, "TCG requested (--accel tcg)".into())),
        AccelChoice::Kvm => match kvm_usable(qemu, cache_file) {
            Ok(()) => Ok((Accel::Kvm, "KVM requested and the KVM probe passed".into())),
            Err(why) => Err(Error::env(format!(
                "--accel kvm: KVM is not usable here: {why}"
            ))),
        },
        AccelChoice::Auto => match kvm_usable(qemu, cache_file) {
            Ok(()) => Ok((Accel::Kvm, "KVM probe passed".into())),
            Err(why) => Ok((Accel::Tcg, format!("KVM probe failed: {why}; using TCG"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sector_is_the_documented_program() {
        let s = kvm_probe_sector();
        assert_eq!(&s[..7], &[0xB0, 0x2A, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]);
        assert!(s[7..510].iter().all(|b| *b == 0));
        assert_eq!(&s[510..], &[0x55, 0xAA]);
    }
}
