//! Output for people and for the host: the `log` facade on COM1, and result-protocol records
//! (`@stacklab {json}`, see `stacklab_core::proto` and docs/running.md).

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, Ordering};
use stacklab_core::proto::{ExitCode, Record};

use crate::arch::x86_64::{cpu, pic, serial};

/// Writes one record built by `build`, as a single serial write (lines never interleave).
pub fn emit<F>(kind: &str, build: F)
where
    F: for<'a> FnOnce(Record<'a, String>) -> Record<'a, String>,
{
    let mut s = String::with_capacity(256);
    if let Ok(r) = Record::begin(&mut s, kind) {
        let _ = build(r).end();
    }
    serial::write_fmt(format_args!("{s}"));
}

/// The command whose records are being written (stamped into `result` records).
static COMMAND: spin::Mutex<&'static str> = spin::Mutex::new("");

/// Makes `name` the command that [`result`] records name; returns the previous one, to be
/// restored when this command ends (`demo` runs commands inside a command).
pub fn set_command(name: &'static str) -> &'static str {
    cpu::without_interrupts(|| core::mem::replace(&mut *COMMAND.lock(), name))
}

/// Writes the running command's `result` record: `{"kind":"result","cmd":NAME, ...}` with
/// the fields `build` adds.
pub fn result<F>(build: F)
where
    F: for<'a> FnOnce(Record<'a, String>) -> Record<'a, String>,
{
    let cmd = cpu::without_interrupts(|| *COMMAND.lock());
    emit("result", |r| build(r.str("cmd", cmd)));
}

/// Like [`emit`] for fatal paths: no heap, no lock.
pub fn emit_fatal<F>(kind: &str, build: F)
where
    F: for<'a> FnOnce(Record<'a, serial::Emergency>) -> Record<'a, serial::Emergency>,
{
    let mut w = serial::emergency();
    if let Ok(r) = Record::begin(&mut w, kind) {
        let _ = build(r).end();
    }
}

/// The worst outcome so far; the final `exit` record reports it.
static OUTCOME: AtomicU8 = AtomicU8::new(0);

fn code_of(v: u8) -> ExitCode {
    ExitCode::ALL
        .into_iter()
        .find(|c| c.code() == v)
        .unwrap_or(ExitCode::Success)
}

/// Folds `code` into the run's outcome.
pub fn note_outcome(code: ExitCode) {
    let mut cur = OUTCOME.load(Ordering::Relaxed);
    loop {
        let cur_code = if cur == 0 {
            ExitCode::Success
        } else {
            code_of(cur)
        };
        let new = cur_code.worst(code).code();
        match OUTCOME.compare_exchange(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(v) => cur = v,
        }
    }
}

/// The outcome so far.
pub fn outcome() -> ExitCode {
    match OUTCOME.load(Ordering::Relaxed) {
        0 => ExitCode::Success,
        v => code_of(v),
    }
}

/// An `error` record for a bad command; the kernel goes on with the next one.
pub fn bad_command(cmd: &str, msg: core::fmt::Arguments<'_>) {
    log::warn!("{cmd}: {msg}");
    emit("error", |r| r.str("cmd", cmd).fmt("msg", msg));
    note_outcome(ExitCode::BadCommand);
}

/// Writes the `exit` record and leaves QEMU with `code` (folded with earlier outcomes).
pub fn exit(code: ExitCode) -> ! {
    note_outcome(code);
    let code = outcome();
    emit_fatal("exit", |r| r.str("code", code.name()));
    cpu::exit(code)
}

/// Writes the `exit` record for a fatal stop (no heap, no locks) and leaves QEMU.
pub fn exit_fatal(code: ExitCode) -> ! {
    emit_fatal("exit", |r| r.str("code", code.name()));
    cpu::exit(code)
}

struct SerialLogger;

impl log::Log for SerialLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let ms = pic::ticks();
        let mut line = String::with_capacity(128);
        let _ = writeln!(
            line,
            "[{:>5}.{:03} {:<5}] {}",
            ms / 1000,
            ms % 1000,
            record.level(),
            record.args()
        );
        serial::write_fmt(format_args!("{line}"));
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

/// Installs the serial logger (after the heap exists).
pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
