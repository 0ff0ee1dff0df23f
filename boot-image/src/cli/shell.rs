//! `cargo lab run --shell`: the user's terminal on the kernel's COM1.
//!
//! The kernel boots with `PRE; shell` and prints its prompt; this side puts the terminal in
//! raw mode (restored on every way out: normal end, error, panic, Ctrl-C/SIGTERM/SIGHUP of
//! this process), sends every key to QEMU's standard input (the serial line), Ctrl-C included
//! as byte 0x03, and leaves on Ctrl-] (QEMU is stopped). Serial output is shown as it comes;
//! `@stacklab` records are held until their line ends and shown in the friendly form of
//! `run` (see [`Screen`]), or verbatim with `--raw`, and the records also decide the exit
//! status as in a batch run.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Mutex, mpsc};

use rustix::termios::{self, OptionalActions, Termios};

use super::run::{RunArgs, prepare};
use super::{note, secs};
use crate::Error;
use crate::exit::{self, QemuEnd};
use crate::qemu::{self, Flow, Io};
use crate::record::{self, Line, Record, Renderer, Style};
use crate::symbols::Symbolizer;

/// The key that leaves the shell: Ctrl-] (as in telnet).
pub const LEAVE_KEY: u8 = 0x1d;
const MARK: &[u8] = b"@stacklab ";

/// The command line a shell session boots with: `pre`, then `shell` unless it already ends
/// with it.
pub fn shell_cmdline(pre: &str) -> String {
    let last = pre.rsplit(';').find(|c| !c.trim().is_empty());
    match last.map(str::trim) {
        None => "shell".into(),
        Some("shell") => pre.into(),
        Some(_) => format!("{}; shell", pre.trim_end().trim_end_matches(';')),
    }
}

/// Splits terminal input at the leave key: the bytes for the kernel, and whether the user
/// pressed Ctrl-] (whatever follows it is dropped).
pub fn scan_keys(input: &[u8]) -> (&[u8], bool) {
    match input.iter().position(|b| *b == LEAVE_KEY) {
        Some(i) => (&input[..i], true),
        None => (input, false),
    }
}

/// Record kinds the shell shows. The others (`command`, `thread`, `stack`, `stats`, `bench`,
/// ...) repeat what the kernel's log lines just printed for people.
const SHOWN: &[&str] = &["ready", "result", "error", "abort", "exit"];

/// Serial output on its way to the terminal: plain text passes through at once (prompts and
/// echoes have no line end); a line that starts with `@stacklab ` is held until it ends and
/// then shown rendered. Every complete line is also classified, so the records (and the
/// final `exit`) are known whatever was displayed.
pub struct Screen<'a> {
    line: Vec<u8>,
    /// The current line is (so far) a record and is being held.
    holding: bool,
    raw: bool,
    renderer: Renderer<'a>,
    /// Every record so far.
    pub records: Vec<Record>,
}

impl<'a> Screen<'a> {
    /// A screen that renders records with `style` and `symbols` (or shows them raw).
    pub fn new(style: Style, symbols: Option<&'a Symbolizer>, raw: bool) -> Screen<'a> {
        Screen {
            line: Vec::new(),
            holding: true,
            raw,
            renderer: Renderer::new(style, symbols),
            records: Vec::new(),
        }
    }

    /// Takes serial bytes; returns what to write to the (raw-mode) terminal.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            self.line.push(b);
            if b == b'\n' {
                self.end_line(&mut out);
                continue;
            }
            if !self.holding {
                out.push(b);
                continue;
            }
            let text = self.text();
            let could_be = MARK.starts_with(text) || text.starts_with(MARK);
            if !could_be || self.raw {
                // Not a record after all: show what was held, and pass the rest through.
                self.holding = false;
                out.extend_from_slice(&self.line);
            }
        }
        out
    }

    /// Whether the terminal's cursor is after text that has no line end yet (a prompt).
    pub fn mid_line(&self) -> bool {
        !self.line.is_empty()
    }

    /// The current line without the carriage returns in front.
    fn text(&self) -> &[u8] {
        let start = self
            .line
            .iter()
            .position(|b| *b != b'\r')
            .unwrap_or(self.line.len());
        &self.line[start..]
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        let parsed = record::classify(line.trim_end_matches(['\r', '\n']));
        if let Line::Record { record, .. } = &parsed {
            self.records.push(record.clone());
        }
        if !self.holding {
            out.push(b'\n');
        } else if let Line::Record { record, .. } = &parsed {
            if SHOWN.contains(&record.kind.as_str()) {
                let text = self.renderer.render(record).replace('\n', "\r\n");
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        } else {
            // A held line that did not parse: show it as it came.
            out.extend_from_slice(&self.line);
        }
        self.line.clear();
        self.holding = true;
    }
}

/// The terminal's settings before raw mode, for [`restore_terminal`].
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts the terminal back as it was before `--shell` changed it (no-op otherwise). Called
/// when the session ends, from the panic hook, and from the signal handler of `main`.
pub fn restore_terminal() {
    let saved = SAVED
        .lock()
        .map(|mut s| s.take())
        .unwrap_or_else(|e| e.into_inner().take());
    if let Some(t) = saved {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &t);
    }
}

/// Raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn enter() -> Result<RawMode, Error> {
        let stdin = std::io::stdin();
        let orig = termios::tcgetattr(stdin.as_fd())
            .map_err(|e| Error::usage(format!("cannot read the terminal's settings: {e}")))?;
        let mut raw = orig.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(orig);
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            prev(info);
        }));
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).map_err(|e| {
            restore_terminal();
            Error::usage(format!("cannot put the terminal in raw mode: {e}"))
        })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Reads the terminal on a thread of its own: keys go to QEMU, Ctrl-] leaves. The thread
/// blocks in `read` and ends with the process.
fn keyboard(tx: mpsc::Sender<Io>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 256];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Io::Leave);
                    return;
                }
                Ok(n) => n,
            };
            let (keys, leave) = scan_keys(&buf[..n]);
            if !keys.is_empty() && tx.send(Io::Input(keys.to_vec())).is_err() {
                return;
            }
            if leave {
                let _ = tx.send(Io::Leave);
                return;
            }
        }
    });
}

/// `cargo lab run --shell`: returns the exit status.
pub fn shell_cmd(r: &RunArgs) -> Result<i32, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(
            "--shell connects your terminal to the kernel's serial line, but standard input \
             is not a terminal (run it from an interactive terminal, or use --cmdline alone)",
        ));
    }
    let cmdline = shell_cmdline(&r.cmdline);
    let (h, accel, reason) = prepare(r, &cmdline)?;
    note(&format!("accelerator: {} ({reason})", accel.name()));
    let vars = h
        .firmware
        .fresh_vars()
        .map_err(|e| Error::env(format!("cannot copy the OVMF variable store: {e}")))?;
    let args = qemu::Machine {
        image: &h.image,
        firmware: &h.firmware,
        vars: vars.as_ref().map(|v| v.path()),
        cmdline: &cmdline,
        accel,
        memory_mib: r.memory_mib,
    }
    .args()?;
    note(&format!(
        "booting {} with cmdline \"{cmdline}\" ({} MiB, no timeout)",
        h.image.display(),
        r.memory_mib
    ));
    note("shell: Ctrl-] leaves (QEMU is stopped); Ctrl-C stops the running command");
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let mut screen = Screen::new(style, Some(h.symbols()), r.raw);
    let (tx, rx) = mpsc::channel();
    let mut stdout_err = None;
    let result = {
        let _raw = RawMode::enter()?;
        keyboard(tx.clone());
        let stdout = std::io::stdout();
        qemu::run_interactive(&h.qemu, &args, tx, rx, &mut |bytes| {
            let shown = screen.feed(bytes);
            let mut o = stdout.lock();
            match o.write_all(&shown).and_then(|_| o.flush()) {
                Ok(()) => Flow::Continue,
                Err(e) => {
                    stdout_err = Some(e);
                    Flow::Stop
                }
            }
        })
    };
    drop(vars);
    if screen.mid_line() {
        println!();
    }
    let res = result?;
    if let Some(e) = stdout_err {
        return Err(Error::stdout(e));
    }
    if let Some(path) = &r.json {
        let text: String = screen
            .records
            .iter()
            .map(|r| r.to_json_line() + "\n")
            .collect();
        std::fs::write(path, text)
            .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let exit_code = screen
        .records
        .iter()
        .rev()
        .find(|r| r.kind == "exit")
        .and_then(|r| r.str("code"))
        .map(str::to_string);
    let elapsed = secs(res.elapsed);
    if res.end == QemuEnd::Stopped && exit_code.is_none() {
        note(&format!("left the shell after {elapsed}; QEMU stopped"));
        return Ok(exit::status::SUCCESS);
    }
    let v = exit::decide(
        exit_code.as_deref(),
        res.end,
        0,
        res.last_line.as_deref(),
        &res.stderr_tail(5),
    );
    match &v.problem {
        Some(p) => note(&format!("{} [{elapsed}]", style.red(p))),
        None => note(&format!("kernel exit: {:?} after {elapsed}", v.exit)),
    }
    Ok(v.exit.host_status())
}

#[cfg(test)]
mod tests;
