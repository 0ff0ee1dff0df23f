//! Snapshot starts: boot once to a kernel waiting for its program, save the machine, and
//! start later runs from that state with their program in fw_cfg (QEMU side:
//! [`crate::qemu::snapshot`]). Under TCG this skips the firmware's 4 s.
//!
//! The saved state is cached in `target/stacklab/snapshots/ACCEL-MEMM.state` with a
//! `.json` beside it recording its [`Key`] (what the state depends on: the image's contents,
//! QEMU's version, the machine's arguments, memory, accelerator, host CPU) and the state file's
//! length and checksum. A state whose key differs is stale, one whose checksum differs is
//! corrupt; both are rebuilt, with a note saying why. [`decide`] is the fallback rule.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stacklab_core::proto::AWAIT_CMDLINE;

use crate::harness::Harness;
use crate::qemu::snapshot::{save_args, save_state};
use crate::qemu::{self, Accel, Flow, Machine};
use crate::record::{self, Line};
use crate::{Error, paths};

/// How runs should start (`--boot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BootChoice {
    /// From a snapshot if one can be made and resumed, else cold, saying why.
    #[default]
    Auto,
    /// Always through the firmware.
    Cold,
    /// From a snapshot, or an error (exit 7) if that is impossible.
    Snapshot,
}

impl BootChoice {
    /// The name `--boot` takes.
    pub fn name(self) -> &'static str {
        match self {
            BootChoice::Auto => "auto",
            BootChoice::Cold => "cold",
            BootChoice::Snapshot => "snapshot",
        }
    }
}

impl std::str::FromStr for BootChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(BootChoice::Auto),
            "cold" => Ok(BootChoice::Cold),
            "snapshot" => Ok(BootChoice::Snapshot),
            other => Err(Error::usage(format!(
                "--boot must be cold, snapshot or auto, got '{other}'"
            ))),
        }
    }
}

/// How a run actually started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootKind {
    /// Through the firmware, with its command line.
    Cold,
    /// Resumed from a saved machine, with its program in fw_cfg.
    Snapshot,
}

impl BootKind {
    /// `cold` or `snapshot`.
    pub fn name(self) -> &'static str {
        match self {
            BootKind::Cold => "cold",
            BootKind::Snapshot => "snapshot",
        }
    }

    /// The choice that replays a run of this kind exactly.
    pub fn choice(self) -> BootChoice {
        match self {
            BootKind::Cold => BootChoice::Cold,
            BootKind::Snapshot => BootChoice::Snapshot,
        }
    }
}

/// What a run will do, from [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A cold boot; with the reason when a snapshot was wanted but is not usable.
    Cold(Option<String>),
    /// Resume this saved state.
    Snapshot(PathBuf),
}

/// The fallback rule: `cold` boots cold; `snapshot` uses the state or fails (exit 7) with
/// the reason; `auto` uses the state, or boots cold and says why.
pub fn decide(choice: BootChoice, state: &Result<PathBuf, String>) -> Result<Start, Error> {
    match (choice, state) {
        (BootChoice::Cold, _) => Ok(Start::Cold(None)),
        (_, Ok(p)) => Ok(Start::Snapshot(p.clone())),
        (BootChoice::Snapshot, Err(e)) => Err(Error::env(format!(
            "cannot start from a snapshot: {e} (use --boot cold or auto)"
        ))),
        (BootChoice::Auto, Err(e)) => Ok(Start::Cold(Some(format!(
            "no snapshot start ({e}); cold boot"
        )))),
    }
}

/// Everything a saved state depends on, as named parts (compared part by part, so a stale
/// state's note says what changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    parts: Vec<(&'static str, String)>,
}

impl Key {
    /// A key from its parts.
    pub fn new(parts: Vec<(&'static str, String)>) -> Key {
        Key { parts }
    }

    fn to_json(&self) -> Value {
        Value::Object(
            self.parts
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// The first part that differs from the key recorded as `recorded`, if any.
    fn changed(&self, recorded: &Value) -> Option<&'static str> {
        let same_len = recorded.as_object().map(|o| o.len()) == Some(self.parts.len());
        self.parts
            .iter()
            .find(|(k, v)| recorded.get(k).and_then(Value::as_str) != Some(v.as_str()))
            .map(|(k, _)| *k)
            .or(if same_len { None } else { Some("format") })
    }
}

/// A 64-bit checksum (FNV-1a over 8-byte words): enough to notice damage, not an adversary.
pub fn checksum(mut r: impl Read) -> std::io::Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        let mut words = buf[..n].chunks_exact(8);
        for w in &mut words {
            h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes")))
                .wrapping_mul(0x100_0000_01b3);
        }
        for &b in words.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        if n < buf.len() {
            return Ok(h);
        }
    }
}

fn file_checksum(p: &Path) -> Result<u64, String> {
    std::fs::File::open(p)
        .and_then(checksum)
        .map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// The metadata written beside a state file.
pub fn meta_json(key: &Key, state_len: u64, state_sum: u64, made: Duration) -> String {
    let v = json!({
        "key": key.to_json(),
        "state_bytes": state_len,
        "state_checksum": format!("{state_sum:016x}"),
        "made_secs": (made.as_secs_f64() * 10.0).round() / 10.0,
    });
    serde_json::to_string_pretty(&v).expect("a JSON value serializes") + "\n"
}

/// Checks a cached state against the key: `Err` says why it cannot be used (missing,
/// stale: which part changed, corrupt). `state_sum` is only computed when the rest agrees.
pub fn check(
    key: &Key,
    meta: Option<&str>,
    state_len: Option<u64>,
    state_sum: impl FnOnce() -> Result<u64, String>,
) -> Result<(), String> {
    let (Some(meta), Some(len)) = (meta, state_len) else {
        return Err("there is none yet".into());
    };
    let m: Value = serde_json::from_str(meta)
        .map_err(|e| format!("it is corrupt (its metadata is not JSON: {e})"))?;
    if let Some(part) = key.changed(m.get("key").unwrap_or(&Value::Null)) {
        return Err(format!("it is stale (the {part} changed)"));
    }
    if m.get("state_bytes").and_then(Value::as_u64) != Some(len) {
        return Err("it is corrupt (its length differs from the one recorded)".into());
    }
    let sum = format!("{:016x}", state_sum()?);
    if m.get("state_checksum").and_then(Value::as_str) != Some(sum.as_str()) {
        return Err("it is corrupt (its checksum differs from the one recorded)".into());
    }
    Ok(())
}

/// `target/stacklab/snapshots`.
pub fn default_dir() -> PathBuf {
    paths::stacklab_dir().join("snapshots")
}

/// The state file of one accelerator and memory size in `dir` (the metadata is the same
/// path with `.json`).
pub fn state_path(dir: &Path, accel: Accel, memory_mib: u64) -> PathBuf {
    dir.join(format!("{}-{memory_mib}M.state", accel.name()))
}

fn meta_path(state: &Path) -> PathBuf {
    state.with_extension("json")
}

/// A usable state, or why there is none.
type Found = Result<PathBuf, String>;

/// The snapshots of one harness: per accelerator and memory size, the usable state or why
/// there is none, found or made once per process (under a file lock across processes).
#[derive(Default)]
pub struct Store {
    states: Mutex<HashMap<(&'static str, u64), Found>>,
    notes: Mutex<Vec<String>>,
    qemu_version: OnceLock<String>,
    dir: OnceLock<PathBuf>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir()).finish()
    }
}

impl Store {
    /// A store keeping its files in `dir` instead of `target/stacklab/snapshots`.
    pub fn in_dir(dir: PathBuf) -> Store {
        let s = Store::default();
        let _ = s.dir.set(dir);
        s
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        self.dir.get_or_init(default_dir)
    }

    /// Takes the notes written so far (a state rebuilt and why, made in how long, a resume
    /// that failed), oldest first.
    pub fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    fn note(&self, s: String) {
        if let Ok(mut n) = self.notes.lock() {
            n.push(s);
        }
    }

    /// The usable state for this machine, found, checked or made now; or why there is none.
    pub fn state(&self, h: &Harness, accel: Accel, memory_mib: u64) -> Result<PathBuf, String> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .entry((accel.name(), memory_mib))
            .or_insert_with(|| self.find_or_make(h, accel, memory_mib))
            .clone()
    }

    /// Marks the state of this machine unusable for the rest of the process and removes
    /// its files (a resume failed: `why`).
    pub fn discard(&self, accel: Accel, memory_mib: u64, why: &str) {
        let state = state_path(self.dir(), accel, memory_mib);
        let _ = std::fs::remove_file(meta_path(&state));
        let _ = std::fs::remove_file(&state);
        let msg = format!("resuming {} failed ({why}); removed it", state.display());
        self.note(msg.clone());
        if let Ok(mut s) = self.states.lock() {
            s.insert((accel.name(), memory_mib), Err(msg));
        }
    }

    fn key(&self, h: &Harness, accel: Accel, memory_mib: u64) -> Result<Key, String> {
        let version = self.qemu_version.get_or_init(|| qemu_version(&h.qemu));
        let machine = Machine {
            image: &h.image,
            firmware: &h.firmware,
            vars: Some(Path::new("VARS")),
            cmdline: AWAIT_CMDLINE,
            accel,
            memory_mib,
        };
        let args = machine.args().map_err(|e| e.msg)?;
        let image = file_checksum(&h.image)?;
        Ok(Key::new(vec![
            ("kernel image", format!("{image:016x}")),
            ("QEMU version", version.clone()),
            ("machine arguments", join(&args)),
            ("firmware files", firmware_stamp(h)),
            ("host CPU", host_cpu()),
        ]))
    }

    fn find_or_make(&self, h: &Harness, accel: Accel, memory_mib: u64) -> Result<PathBuf, String> {
        let key = self.key(h, accel, memory_mib)?;
        let dir = self.dir();
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock_path = dir.join(".lock");
        let lock = std::fs::File::create(&lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        let state = state_path(dir, accel, memory_mib);
        let meta = std::fs::read_to_string(meta_path(&state)).ok();
        let len = std::fs::metadata(&state).ok().map(|m| m.len());
        match check(&key, meta.as_deref(), len, || file_checksum(&state)) {
            Ok(()) => return Ok(state),
            Err(why) if meta.is_some() || len.is_some() => {
                self.note(format!("snapshot {}: {why}; rebuilding", state.display()));
            }
            Err(_) => {}
        }
        let started = Instant::now();
        let tmp = state.with_extension("state.tmp");
        let made = make(h, accel, memory_mib, &tmp);
        let n = match made {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("making it failed: {e}"));
            }
        };
        let sum = file_checksum(&tmp)?;
        std::fs::rename(&tmp, &state)
            .map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
        std::fs::write(
            meta_path(&state),
            meta_json(&key, n, sum, started.elapsed()),
        )
        .map_err(|e| format!("cannot write {}: {e}", meta_path(&state).display()))?;
        drop(lock);
        self.note(format!(
            "snapshot {} made in {:.1} s ({} MiB)",
            state.display(),
            started.elapsed().as_secs_f64(),
            n >> 20
        ));
        Ok(state)
    }
}

fn join(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn qemu_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn firmware_stamp(h: &Harness) -> String {
    let files: Vec<&Path> = match &h.firmware.layout {
        stacklab_ovmf::Layout::Split { code, vars } => vec![code, vars],
        stacklab_ovmf::Layout::Combined { image } => vec![image],
    };
    files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok();
            let mtime = m
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{} {} {mtime}", p.display(), m.map_or(0, |m| m.len()))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The saving boot: a cold boot with command line `await`; when the kernel writes `awaiting`,
/// the machine is saved into `out`. Returns the state's size in bytes.
fn make(h: &Harness, accel: Accel, memory_mib: u64, out: &Path) -> Result<u64, String> {
    let vars = h
        .firmware
        .fresh_vars()
        .map_err(|e| format!("cannot copy the OVMF variable store: {e}"))?;
    // Sockets live in a short temporary directory (Unix socket paths are limited to 108 bytes).
    let work = tempfile::Builder::new()
        .prefix("stacklab-snap-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let qmp = work.path().join("qmp.sock");
    let machine = Machine {
        image: &h.image,
        firmware: &h.firmware,
        vars: vars.as_ref().map(|v| v.path()),
        cmdline: AWAIT_CMDLINE,
        accel,
        memory_mib,
    };
    let mut args = machine.args().map_err(|e| e.msg)?;
    args.extend(save_args(&qmp));
    let mut saved = None;
    let r = qemu::run(&h.qemu, &args, Duration::from_secs(300), &mut |line| {
        if let Line::Record { record, .. } = record::classify(line)
            && record.kind == "awaiting"
        {
            saved = Some(save_state(&qmp, work.path(), out));
            return Flow::Stop;
        }
        Flow::Continue
    })
    .map_err(|e| e.msg)?;
    saved.unwrap_or_else(|| {
        Err(format!(
            "the saving boot ended ({:?}) before the kernel waited for a program; last line: {}; \
             QEMU stderr: {}",
            r.end,
            r.last_line
                .as_deref()
                .map_or("-".into(), record::strip_control),
            r.stderr_tail(3)
        ))
    })
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
