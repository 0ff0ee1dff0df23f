//! Snapshot starts, the QEMU side: the extra arguments of the run that saves a machine waiting
//! for its program and of a run resumed from it, and the saving itself through QMP.
//!
//! The saving run is a cold boot of the ordinary machine with the command line `await`
//! (`stacklab_core::proto::AWAIT_CMDLINE`) plus a QMP socket. When the kernel writes its
//! `awaiting` record, [`save_state`] asks QEMU to migrate the running machine into a Unix
//! socket this process listens on and copies the stream into a file; when QEMU reports the
//! migration `completed` (the machine is then stopped), the file is whole. A resumed run is the
//! same machine plus `-incoming exec:cat FILE` and the program as fw_cfg file
//! `opt/stacklab/program`: fw_cfg file contents come from the resuming QEMU's command line, not
//! from the migration stream, and the kernel, still polling fw_cfg, finds the file and runs it.
//! The machine was live when saved, so the resumed QEMU starts it without a `cont`.
//!
//! QEMU's guest clocks (the TSC under TCG, the PIT on the virtual clock) are part of the
//! migrated state and stand still while no QEMU runs the machine, so time in the kernel goes on
//! from where it was saved.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stacklab_core::proto::FW_CFG_PROGRAM;

use super::args::{escape_opt, fw_cfg_text};
use crate::Error;

/// What QEMU writes to stderr when it cannot load a migration stream.
pub const RESUME_FAILED: &str = "load of migration failed";

/// The QMP socket argument of the saving run.
pub fn save_args(qmp_socket: &Path) -> Vec<OsString> {
    let mut v = b"unix:".to_vec();
    v.extend(escape_opt(qmp_socket.as_os_str().as_bytes()));
    v.extend(b",server=on,wait=off");
    vec!["-qmp".into(), OsString::from_vec(v)]
}

/// Quotes a path for `/bin/sh` (QEMU runs `exec:` migration commands through it).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The arguments a resumed run adds to the machine's: the saved state and the program.
/// The program is checked like a command line (length, NUL); an empty one is sent as a
/// single space (QEMU rejects an empty fw_cfg string; the kernel treats blank as empty).
pub fn resume_args(state: &Path, program: &str) -> Result<Vec<OsString>, Error> {
    let fw = match fw_cfg_text(FW_CFG_PROGRAM, program)? {
        Some(fw) => fw,
        None => format!("name={FW_CFG_PROGRAM},string= ").into(),
    };
    let state = state.to_str().ok_or_else(|| {
        Error::env(format!(
            "the snapshot path {} is not UTF-8",
            state.display()
        ))
    })?;
    Ok(vec![
        "-incoming".into(),
        format!("exec:cat {}", sh_quote(state)).into(),
        "-fw_cfg".into(),
        fw,
    ])
}

/// Whether a run's QEMU failed to load the saved state (its stderr says so).
pub fn resume_failed(stderr: &str) -> bool {
    stderr.contains(RESUME_FAILED) || stderr.contains("Not a migration stream")
}

/// A QMP connection (QEMU's JSON machine protocol), enough for `migrate`.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying for up to `wait` while QEMU creates the socket) and leaves
    /// capabilities negotiation mode.
    fn connect(path: &Path, wait: Duration) -> Result<Qmp, String> {
        let until = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= until => {
                    return Err(format!("cannot connect to QMP at {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("no QMP greeting: {greeting}"));
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP connection closed".into()),
            Ok(_) => {
                serde_json::from_str(&line).map_err(|e| format!("bad QMP reply {line:?}: {e}"))
            }
            Err(e) => Err(format!("reading QMP: {e}")),
        }
    }

    /// Runs one command; returns its `return` value (events in between are skipped).
    fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, String> {
        let msg = json!({ "execute": cmd, "arguments": args });
        writeln!(self.writer, "{msg}").map_err(|e| format!("writing QMP: {e}"))?;
        loop {
            let v = self.read()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(format!("QMP {cmd}: {e}"));
            }
        }
    }
}

/// Saves the running machine of the saving run into `out`: connects to its QMP socket,
/// migrates into a Unix socket in `work_dir` and copies the stream to `out`. Returns the
/// number of bytes saved. QEMU's machine is stopped afterwards (the caller kills it).
pub fn save_state(qmp_socket: &Path, work_dir: &Path, out: &Path) -> Result<u64, String> {
    let mig = work_dir.join("migrate.sock");
    let listener =
        UnixListener::bind(&mig).map_err(|e| format!("cannot listen on {}: {e}", mig.display()))?;
    let mut file =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let copier = std::thread::spawn(move || -> Result<u64, String> {
        let (mut conn, _) = listener
            .accept()
            .map_err(|e| format!("migration socket: {e}"))?;
        let n = std::io::copy(&mut conn, &mut file).map_err(|e| format!("saving state: {e}"))?;
        file.sync_all().map_err(|e| format!("saving state: {e}"))?;
        Ok(n)
    });
    let mut qmp = Qmp::connect(qmp_socket, Duration::from_secs(10))?;
    let uri = format!("unix:{}", mig.display());
    let started = qmp.execute("migrate", json!({ "uri": uri }));
    if let Err(e) = started {
        // Unblock the copier's accept so its thread ends.
        let _ = UnixStream::connect(&mig);
        let _ = copier.join();
        return Err(e);
    }
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let st = qmp.execute("query-migrate", json!({}))?;
        match st.get("status").and_then(Value::as_str) {
            Some("completed") => break,
            Some(s @ ("failed" | "cancelled")) => {
                let _ = UnixStream::connect(&mig);
                let _ = copier.join();
                let why = st.get("error-desc").and_then(Value::as_str).unwrap_or("");
                return Err(format!("migration {s}: {why}"));
            }
            _ if Instant::now() >= until => return Err("migration did not complete in 60 s".into()),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    copier
        .join()
        .map_err(|_| "the state copier panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn resume_args_name_the_state_and_carry_the_program() {
        let a = strs(&resume_args(Path::new("/t/s it's.state"), "policy grow,x; int3").unwrap());
        assert_eq!(
            a,
            [
                "-incoming",
                r"exec:cat '/t/s it'\''s.state'",
                "-fw_cfg",
                "name=opt/stacklab/program,string=policy grow,,x; int3"
            ]
        );
        let blank = strs(&resume_args(Path::new("/s"), "").unwrap());
        assert_eq!(blank[3], "name=opt/stacklab/program,string= ");
        assert_eq!(
            resume_args(Path::new("/s"), "a\0b")
                .unwrap_err()
                .exit_status(),
            2
        );
    }

    #[test]
    fn save_args_spell_a_qmp_server() {
        assert_eq!(
            strs(&save_args(Path::new("/tmp/a,b/qmp.sock"))),
            ["-qmp", "unix:/tmp/a,,b/qmp.sock,server=on,wait=off"]
        );
    }

    #[test]
    fn resume_failures_are_recognised_by_qemus_words() {
        assert!(resume_failed(
            "qemu-system-x86_64: error while loading state section id 2(ram)\n\
             qemu-system-x86_64: load of migration failed: Input/output error\n"
        ));
        assert!(resume_failed("qemu: Not a migration stream\n"));
        assert!(!resume_failed("qemu: terminating on signal 15\n"));
    }
}
