//! Running QEMU: the only place in the repository that spells QEMU's command line.
//!
//! Also: finding the binary, escaping the kernel command line for `-fw_cfg`, reading the
//! serial line with a hard timeout, never leaving a QEMU behind, and the KVM probe.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use stacklab_core::cmdline::MAX_CMDLINE;
use stacklab_core::proto::{DEBUG_EXIT_PORT, FW_CFG_CMDLINE};
use stacklab_ovmf::{Firmware, Layout, TempDir};

use crate::exit::QemuEnd;
use crate::{Error, ErrorKind};

/// The QEMU binary's name.
pub const QEMU_BIN: &str = "qemu-system-x86_64";
/// Environment variable overriding the QEMU binary (a path, or a name looked up in PATH).
pub const ENV_QEMU: &str = "STACKLAB_QEMU";
/// How long the KVM probe may take.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The value the probe VM writes to isa-debug-exit.
const PROBE_EXIT_VALUE: i32 = 0x2a;

/// The accelerator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the user asked for (`--accel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM if the probe boot proves it works, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(Error::usage(format!(
                "--accel must be auto, kvm or tcg, got '{other}'"
            ))),
        }
    }
}

/// Finds QEMU: `$STACKLAB_QEMU` (path or name) or `qemu-system-x86_64` in PATH.
pub fn find_qemu() -> Result<PathBuf, Error> {
    let missing = || {
        Error::env(format!(
            "{QEMU_BIN} not found: install it with `apt-get install qemu-system-x86` (or run `cargo lab setup`)"
        ))
    };
    match std::env::var_os(ENV_QEMU).filter(|v| !v.is_empty()) {
        Some(v) => {
            let p = PathBuf::from(&v);
            if p.components().count() > 1 {
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(Error::env(format!(
                        "${ENV_QEMU} is set to {} but that file does not exist",
                        p.display()
                    )))
                }
            } else {
                which(&v).ok_or_else(|| {
                    Error::env(format!("${ENV_QEMU}={} is not in PATH", p.display()))
                })
            }
        }
        None => which(QEMU_BIN.as_ref()).ok_or_else(missing),
    }
}

/// Looks a program up in PATH.
pub fn which(name: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

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

/// The `-fw_cfg` argument carrying the kernel command line, or `None` for an empty command
/// line (QEMU rejects an empty `string=`; the kernel treats a missing file as empty).
pub fn fw_cfg_cmdline(cmdline: &str) -> Result<Option<OsString>, Error> {
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
        &format!("name={FW_CFG_CMDLINE},string="),
        cmdline.as_bytes(),
    )))
}

/// One stacklab machine.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'a> {
    pub image: &'a Path,
    pub firmware: &'a Firmware,
    /// The per-run writable copy of the variable store (split firmware only).
    pub vars: Option<&'a Path>,
    pub cmdline: &'a str,
    pub accel: Accel,
}

impl Machine<'_> {
    /// QEMU's arguments. Serial (COM1) goes to stdout; QEMU's own messages to stderr.
    pub fn args(&self) -> Result<Vec<OsString>, Error> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-machine");
        push("q35");
        push("-m");
        push("512M");
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
        push(&format!(
            "isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"
        ));
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
    a.push(format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04").into());
    a.push("-drive".into());
    a.push(opt_path("format=raw,file=", probe));
    a
}

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

// ---- running, with timeout and cleanup -------------------------------------------------------

/// Process groups of QEMUs running now, so Ctrl-C can kill them.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// For the Ctrl-C handler: kills every QEMU this process started and marks the process as
/// interrupted (the run in progress then returns an `Interrupted` error). Returns whether a
/// QEMU was running.
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let running = RUNNING.lock().map(|v| v.clone()).unwrap_or_default();
    for pgid in &running {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    !running.is_empty()
}

/// A running child in its own process group; killed (group and all) when dropped.
struct Guard {
    child: Child,
    pgid: i32,
    done: bool,
}

impl Guard {
    fn spawn(cmd: &mut Command) -> std::io::Result<Guard> {
        cmd.process_group(0);
        let mut list = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        list.push(pgid);
        Ok(Guard {
            child,
            pgid,
            done: false,
        })
    }

    fn kill(&mut self) {
        // SAFETY: as in `interrupt`.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
            let _ = self.child.wait();
        } else {
            // Leftover grandchildren (never QEMU itself) go too.
            // SAFETY: as in `interrupt`.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
        if let Ok(mut list) = RUNNING.lock() {
            list.retain(|p| *p != self.pgid);
        }
    }
}

/// How a QEMU run went.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub end: QemuEnd,
    pub stderr: String,
    pub last_line: Option<String>,
    pub elapsed: Duration,
}

impl RunResult {
    /// The last lines of QEMU's stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let v: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

/// Runs `bin args`, calling `on_line` for every stdout line (without its terminator), and kills
/// the process (group) if it is still running after `timeout`.
pub fn run(
    bin: &Path,
    args: &[OsString],
    timeout: Duration,
    on_line: &mut dyn FnMut(&str),
) -> Result<RunResult, Error> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let start = Instant::now();
    let deadline = start + timeout;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard::spawn(&mut cmd).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::env(format!(
                "{} not found: install it with `apt-get install qemu-system-x86` (or run `cargo lab setup`)",
                bin.display()
            ))
        } else {
            Error::env(format!("cannot start {}: {e}", bin.display()))
        }
    })?;

    let stdout = guard.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stderr_buf = Arc::new(Mutex::new(Vec::new()));
    let (err_done_tx, err_done_rx) = mpsc::channel::<()>();
    {
        let mut stderr = guard.child.stderr.take().expect("piped stderr");
        let buf = Arc::clone(&stderr_buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
            let _ = err_done_tx.send(());
        });
    }

    let mut last_line: Option<String> = None;
    let mut handle = |line: String, last: &mut Option<String>| {
        on_line(&line);
        if !line.trim().is_empty() {
            *last = Some(line);
        }
    };
    let mut timed_out = false;
    // Serial output until EOF or the deadline.
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => handle(line, &mut last_line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Stdout is closed (or time is up): the process should be gone or going.
    let status = if timed_out {
        None
    } else {
        loop {
            match guard.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    timed_out = true;
                    break None;
                }
                Err(e) => return Err(Error::env(format!("waiting for {}: {e}", bin.display()))),
            }
        }
    };
    if timed_out {
        guard.kill();
        let _ = guard.child.wait();
    }
    guard.done = true;
    drop(guard);
    // Whatever the reader threads still hold (they end once the pipes close).
    let _ = err_done_rx.recv_timeout(Duration::from_millis(500));
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(if timed_out { 0 } else { 50 })) {
        handle(line, &mut last_line);
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let stderr = String::from_utf8_lossy(&stderr_buf.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    let end = match status {
        None => QemuEnd::TimedOut,
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => QemuEnd::Exited(c),
            (None, Some(sig)) => QemuEnd::Signaled(sig),
            (None, None) => QemuEnd::Exited(-1),
        },
    };
    Ok(RunResult {
        end,
        stderr,
        last_line,
        elapsed: start.elapsed(),
    })
}

fn interrupted() -> Error {
    Error {
        kind: ErrorKind::Interrupted,
        msg: "interrupted".into(),
    }
}

// ---- accelerator choice ----------------------------------------------------------------------

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
    let dir = TempDir::new("kvm-probe").map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let probe = dir.path().join("probe.bin");
    std::fs::write(&probe, kvm_probe_sector())
        .map_err(|e| format!("cannot write the probe: {e}"))?;
    let r = run(
        qemu,
        &kvm_probe_args(&probe),
        KVM_PROBE_TIMEOUT,
        &mut |_| {},
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
        QemuEnd::TimedOut => Err(format!(
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

    #[test]
    fn machine_args_spell_the_documented_command_line() {
        let fw = Firmware {
            layout: Layout::Split {
                code: "/fw/CODE.fd".into(),
                vars: "/fw/VARS.fd".into(),
            },
            origin: Origin::System,
        };
        let m = Machine {
            image: Path::new("/t/a,b.img"),
            firmware: &fw,
            vars: Some(Path::new("/tmp/v/VARS.fd")),
            cmdline: "int3, exit",
            accel: Accel::Tcg,
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
    fn probe_sector_is_the_documented_program() {
        let s = kvm_probe_sector();
        assert_eq!(&s[..7], &[0xB0, 0x2A, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]);
        assert!(s[7..510].iter().all(|b| *b == 0));
        assert_eq!(&s[510..], &[0x55, 0xAA]);
        let a = strs(&kvm_probe_args(Path::new("/p/probe.bin"))).join(" ");
        assert_eq!(
            a,
            "-machine q35 -cpu host -accel kvm -nodefaults -display none -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -drive format=raw,file=/p/probe.bin"
        );
    }

    #[test]
    fn accel_choice_parses() {
        assert_eq!("auto".parse::<AccelChoice>().unwrap(), AccelChoice::Auto);
        assert_eq!("kvm".parse::<AccelChoice>().unwrap(), AccelChoice::Kvm);
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        let e = "hvf".parse::<AccelChoice>().unwrap_err();
        assert_eq!(
            (e.exit_status(), e.msg.as_str()),
            (2, "--accel must be auto, kvm or tcg, got 'hvf'")
        );
    }

    fn fake(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-qemu");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_hung_process_is_killed_at_the_timeout_with_its_children() {
        let dir = TempDir::new("fake-qemu").unwrap();
        let marker = dir.path().join("survived");
        let bin = fake(
            dir.path(),
            &format!(
                "echo booting; echo 'still here'; (sleep 1.5; touch {}) & sleep 30",
                marker.display()
            ),
        );
        let mut lines = Vec::new();
        let t = Instant::now();
        let r = run(&bin, &[], Duration::from_millis(500), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(r.end, QemuEnd::TimedOut);
        assert!(
            t.elapsed() < Duration::from_millis(1400),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(lines, ["booting", "still here"]);
        assert_eq!(r.last_line.as_deref(), Some("still here"));
        std::thread::sleep(Duration::from_millis(2000));
        assert!(
            !marker.exists(),
            "a child of the fake QEMU outlived the timeout"
        );
    }

    #[test]
    fn exit_status_stderr_and_partial_last_line_are_reported() {
        let dir = TempDir::new("fake-qemu").unwrap();
        let bin = fake(
            dir.path(),
            "printf 'a\\r\\nb'; echo 'qemu: oops' >&2; exit 41",
        );
        let mut lines = Vec::new();
        let r = run(&bin, &[], Duration::from_secs(10), &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(r.end, QemuEnd::Exited(41));
        assert_eq!(lines, ["a", "b"]);
        assert_eq!(r.stderr_tail(1), "qemu: oops");
        let e = run(
            &dir.path().join("nope"),
            &[],
            Duration::from_secs(1),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(e.exit_status(), 7);
        assert!(
            e.msg.contains("apt-get install qemu-system-x86"),
            "{}",
            e.msg
        );
    }
}
