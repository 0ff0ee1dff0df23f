//! Where the command line comes from: fw_cfg file `opt/stacklab/cmdline` on a cold boot; in
//! wait mode (command line `await`, used to make the host's snapshot), the program fw_cfg
//! file that a run resumed from that snapshot carries. The host saves the machine while the
//! kernel polls here; each resumed run continues in this loop with its own fw_cfg files.

use alloc::string::String;
use stacklab_core::cmdline::MAX_CMDLINE;
use stacklab_core::proto::{AWAIT_CMDLINE, FW_CFG_CMDLINE, FW_CFG_PROGRAM};

use crate::arch::x86_64::{cpu, fwcfg};
use crate::report;

/// How this run got its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Booted with its command line.
    Cold,
    /// Resumed from a saved machine that was waiting for its program.
    Resumed,
}

impl Start {
    /// The name in the `ready` record's `start` field.
    pub fn name(self) -> &'static str {
        match self {
            Start::Cold => "cold",
            Start::Resumed => "resumed",
        }
    }
}

/// The command line, how it came, and the TSC when the kernel was ready for it.
pub struct CommandLine {
    /// The commands to run.
    pub text: String,
    /// Cold boot or resumed snapshot.
    pub start: Start,
    /// TSC when the kernel had started up (before any wait for a program).
    pub ready_tsc: u64,
}

/// Reads the command line (and, in wait mode, waits for the program).
pub fn command_line() -> CommandLine {
    let text = read_text(FW_CFG_CMDLINE, "cmdline").unwrap_or_default();
    let ready_tsc = cpu::rdtsc();
    if text.trim() != AWAIT_CMDLINE {
        return CommandLine {
            text,
            start: Start::Cold,
            ready_tsc,
        };
    }
    let text = await_program();
    CommandLine {
        text: if text.trim().is_empty() {
            String::new()
        } else {
            text
        },
        start: Start::Resumed,
        ready_tsc,
    }
}

/// Writes `awaiting`, then polls (once per timer tick) until the program file appears.
fn await_program() -> String {
    let files = fwcfg::file_count();
    report::emit("awaiting", |r| {
        r.str("file", FW_CFG_PROGRAM).u64("files", u64::from(files))
    });
    let mut polls: u32 = 0;
    loop {
        // A resumed run has one more file; a full look every 64 ticks covers the rest.
        if (fwcfg::file_count() != files || polls.is_multiple_of(64))
            && let Some(text) = read_text(FW_CFG_PROGRAM, "program")
        {
            return text;
        }
        polls = polls.wrapping_add(1);
        cpu::wait_for_interrupt();
    }
}

/// A fw_cfg text file, `None` if absent; too long or not UTF-8 is a bad command (the kernel
/// then runs nothing of it).
fn read_text(name: &str, what: &str) -> Option<String> {
    let mut buf = [0u8; MAX_CMDLINE];
    let (n, size) = fwcfg::read_file(name, &mut buf)?;
    if n < size {
        report::bad_command(
            what,
            format_args!("command line is {size} bytes; the limit is {MAX_CMDLINE}"),
        );
        return Some(String::new());
    }
    match core::str::from_utf8(&buf[..n]) {
        Ok(s) => Some(String::from(s.trim_end_matches('\0'))),
        Err(_) => {
            report::bad_command(what, format_args!("command line is not UTF-8"));
            Some(String::new())
        }
    }
}
