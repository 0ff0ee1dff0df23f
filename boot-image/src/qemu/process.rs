//! Supervising a QEMU process: its own process group, stdin closed, serial output (stdout)
//! streamed line by line, stderr collected, a hard timeout, an early stop when the caller
//! has seen enough, Ctrl-C, and no QEMU (or child of it) left behind: the whole group is
//! killed when the run ends early and when the supervising value is dropped.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::exit::QemuEnd;
use crate::{Error, ErrorKind};

/// What the line callback of [`run`] wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Kill the process now; the run ends with [`QemuEnd::Stopped`].
    Stop,
}

/// Process groups of QEMUs running now, so Ctrl-C can kill them.
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn kill_group(pgid: Pid) {
    // ESRCH (the group is already gone) is the normal case after a clean exit.
    let _ = kill_process_group(pgid, Signal::KILL);
}

/// For the Ctrl-C handler: kills every QEMU this process started and marks the process as
/// interrupted (the run in progress then returns an `Interrupted` error). Returns whether a
/// QEMU was running.
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let running = RUNNING.lock().map(|v| v.clone()).unwrap_or_default();
    for pgid in &running {
        kill_group(*pgid);
    }
    !running.is_empty()
}

/// A running child in its own process group; killed (group and all) when dropped.
struct Guard {
    child: Child,
    pgid: Pid,
    done: bool,
}

impl Guard {
    fn spawn(cmd: &mut Command) -> std::io::Result<Guard> {
        cmd.process_group(0);
        let mut list = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let child = cmd.spawn()?;
        // The child leads its own group (process_group(0)), so its pid is the group id.
        let pgid = Pid::from_child(&child);
        list.push(pgid);
        Ok(Guard {
            child,
            pgid,
            done: false,
        })
    }

    fn kill(&mut self) {
        kill_group(self.pgid);
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
            kill_group(self.pgid);
        }
        if let Ok(mut list) = RUNNING.lock() {
            list.retain(|p| *p != self.pgid);
        }
    }
}

/// How a QEMU run went.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// How the process ended.
    pub end: QemuEnd,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// Everything it wrote to stdout, when the serial lines came from elsewhere
    /// ([`run_from`]); empty otherwise.
    pub stdout: String,
    /// The last non-blank serial line.
    pub last_line: Option<String>,
    /// Wall time from start to end.
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

fn interrupted() -> Error {
    Error {
        kind: ErrorKind::Interrupted,
        msg: "interrupted".into(),
    }
}

/// Reads `stdout` line by line (terminators removed, invalid UTF-8 replaced) on a thread.
pub(crate) fn line_reader(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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
    rx
}

/// Collects `stderr` on a thread; the receiver gets a message when it reached EOF.
fn collector(mut stderr: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let shared = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = shared.lock() {
                b.extend_from_slice(&chunk[..n]);
            }
        }
        let _ = done_tx.send(());
    });
    (buf, done_rx)
}

/// Runs `bin args`, calling `on_line` for every stdout line (without its terminator). Kills
/// the process (group) if it is still running after `timeout`, or as soon as `on_line`
/// returns [`Flow::Stop`].
pub fn run(
    bin: &Path,
    args: &[OsString],
    timeout: Duration,
    on_line: &mut dyn FnMut(&str) -> Flow,
) -> Result<RunResult, Error> {
    run_from(bin, args, timeout, None, on_line)
}

/// [`run`], with the serial lines taken from `serial` instead of the process's standard
/// output when given (Bochs: COM1 is a socket). The process's standard output is then
/// collected in [`RunResult::stdout`], and the run ends when the process has exited and
/// `serial` has nothing more within 200 ms (or is closed).
pub fn run_from(
    bin: &Path,
    args: &[OsString],
    timeout: Duration,
    serial: Option<mpsc::Receiver<String>>,
    on_line: &mut dyn FnMut(&str) -> Flow,
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
            super::not_installed(bin)
        } else {
            Error::env(format!("cannot start {}: {e}", bin.display()))
        }
    })?;
    let stdout = guard.child.stdout.take().expect("piped stdout");
    let external = serial.is_some();
    let (rx, stdout_buf) = match serial {
        Some(rx) => (rx, Some(collector(stdout))),
        None => (line_reader(stdout), None),
    };
    // With an external serial source the process can end while the source stays open.
    let mut exited_at: Option<Instant> = None;
    let (stderr_buf, err_done) = collector(guard.child.stderr.take().expect("piped stderr"));

    let mut last_line: Option<String> = None;
    let mut stopped = false;
    let mut handle = |line: String, last: &mut Option<String>| {
        let flow = on_line(&line);
        if !line.trim().is_empty() {
            *last = Some(line);
        }
        flow
    };
    let mut timed_out = false;
    // Serial output until EOF, the deadline, or the caller says stop.
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        let slice = if external {
            (deadline - now).min(Duration::from_millis(100))
        } else {
            deadline - now
        };
        match rx.recv_timeout(slice) {
            Ok(line) => {
                if handle(line, &mut last_line) == Flow::Stop {
                    stopped = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if external => {
                if exited_at.is_none() && matches!(guard.child.try_wait(), Ok(Some(_))) {
                    exited_at = Some(Instant::now());
                }
                if exited_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(200)) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Stdout is closed (or time is up, or we stop): the process should be gone or going.
    let status = if timed_out || stopped {
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
    if status.is_none() {
        guard.kill();
        let _ = guard.child.wait();
    }
    guard.done = true;
    drop(guard);
    // Whatever the reader threads still hold (they end once the pipes close). After a stop
    // the caller wants nothing more.
    let _ = err_done.recv_timeout(Duration::from_millis(500));
    if !stopped {
        let wait = Duration::from_millis(if timed_out { 0 } else { 50 });
        while let Ok(line) = rx.recv_timeout(wait) {
            handle(line, &mut last_line);
        }
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let stderr = String::from_utf8_lossy(&stderr_buf.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    let stdout = stdout_buf
        .map(|(buf, done)| {
            let _ = done.recv_timeout(Duration::from_millis(500));
            String::from_utf8_lossy(&buf.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
        })
        .unwrap_or_default();
    Ok(RunResult {
        end: end_of(status, stopped),
        stderr,
        stdout,
        last_line,
        elapsed: start.elapsed(),
    })
}

/// What an interactive run ([`run_interactive`]) is told, in arrival order, on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Bytes for the guest's serial input (QEMU's standard input).
    Input(Vec<u8>),
    /// The user leaves: QEMU is stopped, the run ends with [`QemuEnd::Stopped`].
    Leave,
    /// Serial output (from the reader thread this module starts).
    Output(Vec<u8>),
    /// QEMU closed its standard output.
    Closed,
}

/// Runs `bin args` with standard input piped: every [`Io::Input`] sent on `tx`'s channel
/// (whose receiving end is `rx`) is written to it, serial output is passed to `on_output` as
/// it arrives (in chunks, not lines), and [`Io::Leave`] (or [`Flow::Stop`] from `on_output`)
/// stops QEMU. No timeout: a person is at the other end. Ctrl-C of this process is handled as
/// in [`run`].
pub fn run_interactive(
    bin: &Path,
    args: &[OsString],
    tx: mpsc::Sender<Io>,
    rx: mpsc::Receiver<Io>,
    on_output: &mut dyn FnMut(&[u8]) -> Flow,
) -> Result<RunResult, Error> {
    use std::io::Write;
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let start = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = Guard::spawn(&mut cmd)
        .map_err(|e| Error::env(format!("cannot start {}: {e}", bin.display())))?;
    let mut stdin = guard.child.stdin.take().expect("piped stdin");
    let mut stdout = guard.child.stdout.take().expect("piped stdout");
    let (stderr_buf, err_done) = collector(guard.child.stderr.take().expect("piped stderr"));
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 || tx.send(Io::Output(chunk[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = tx.send(Io::Closed);
    });
    let mut stopped = false;
    let mut tail = Vec::new();
    while let Ok(io) = rx.recv() {
        match io {
            Io::Input(b) => {
                // A QEMU that is exiting no longer reads; its end is reported below.
                let _ = stdin.write_all(&b).and_then(|_| stdin.flush());
            }
            Io::Leave => {
                stopped = true;
                break;
            }
            Io::Output(b) => {
                tail.extend_from_slice(&b);
                let keep = tail.len().saturating_sub(4096);
                tail.drain(..keep);
                if on_output(&b) == Flow::Stop {
                    stopped = true;
                    break;
                }
            }
            Io::Closed => break,
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
    }
    let status = if stopped {
        guard.kill();
        let _ = guard.child.wait();
        None
    } else {
        guard.child.wait().ok()
    };
    guard.done = true;
    drop(guard);
    let _ = err_done.recv_timeout(Duration::from_millis(500));
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(interrupted());
    }
    let stderr = String::from_utf8_lossy(&stderr_buf.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    let last_line = String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string);
    Ok(RunResult {
        end: end_of(status, stopped),
        stderr,
        stdout: String::new(),
        last_line,
        elapsed: start.elapsed(),
    })
}

/// How the process ended: its status, or killed by us (stopped or at the timeout).
fn end_of(status: Option<std::process::ExitStatus>, stopped: bool) -> QemuEnd {
    match status {
        None if stopped => QemuEnd::Stopped,
        None => QemuEnd::TimedOut,
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => QemuEnd::Exited(c),
            (None, Some(sig)) => QemuEnd::Signaled(sig),
            (None, None) => QemuEnd::Exited(-1),
        },
    }
}

#[cfg(test)]
mod tests;
