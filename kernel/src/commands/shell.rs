//! The interactive shell on COM1 (`shell`, normally the last command of the command line:
//! `cargo lab run --shell`), and the two commands written for it, `ps` (the live threads) and
//! `stack-map` (every stack as a bar; `threads` and `stacks` were taken by scenarios).
//!
//! The shell reads bytes that IRQ 4 put in the serial ring, edits the line with
//! `stacklab_core::line_edit` and runs each finished line through [`super::run_line`], the
//! same dispatcher as the command line. A bad command prints its error and the prompt comes
//! back; a command that stops the machine (an overflow report) stops it. Ctrl-C while a
//! command runs raises the serial cancel flag, which long-running commands poll
//! ([`interrupted`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use stacklab_core::cmdline::ArgError;
use stacklab_core::line_edit::{Editor, Key};
use stacklab_core::stack_bar::Zones;
use stacklab_core::stack_layout::PAGE;

use super::{Call, Command, command};
use crate::arch::x86_64::gdt::{self, Ist};
use crate::arch::x86_64::{cpu, serial};
use crate::{growth, report, scenarios, stacks, thread};

/// The prompt.
pub const PROMPT: &str = "stacklab> ";

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "shell",
        "",
        "an interactive prompt on COM1 (Ctrl-C stops a running command; `exit` ends)",
        "shell",
        shell
    ),
    command!(
        "ps",
        "",
        "each live thread: id, name, state, stack policy",
        "ps",
        ps
    ),
    command!(
        "park",
        "N:1..32",
        "start N threads on the current policy; thread k recurses 8k levels of 256 B, then sleeps until 'unpark'",
        "park 3",
        park
    ),
    command!(
        "unpark",
        "",
        "end and join the threads 'park' started",
        "unpark",
        unpark
    ),
    command!(
        "stack-map",
        "",
        "each stack's guard, reserved and mapped span as a bar [g|.|#], low addresses left",
        "stack-map",
        stack_map
    ),
];

static IN_SHELL: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C arrived while the current command runs (long-running commands poll this
/// and end early with `"interrupted": true`).
pub fn interrupted() -> bool {
    serial::cancel_requested()
}

/// Writes the result of a command that Ctrl-C ended early.
pub fn report_interrupted(ok: bool) {
    log::info!("interrupted (Ctrl-C)");
    report::result(|r| r.bool("ok", ok).bool("interrupted", true));
}

/// Every command's name, for Tab completion.
fn names() -> &'static [&'static str] {
    static NAMES: spin::Once<&'static [&'static str]> = spin::Once::new();
    NAMES.call_once(|| {
        let v: Vec<&'static str> = super::all().map(|c| c.name).collect();
        alloc::boxed::Box::leak(v.into_boxed_slice())
    })
}

fn write(out: &mut String) {
    serial::write_fmt(format_args!("{out}"));
    out.clear();
}

fn shell(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    if IN_SHELL.swap(true, Ordering::SeqCst) {
        c.refuse(format_args!("the shell is already running"));
        return Ok(());
    }
    serial::enable_rx();
    log::info!("shell: 'help' lists the commands; Ctrl-C stops a running command; 'exit' ends");
    let mut ed = alloc::boxed::Box::new(Editor::new(PROMPT, names()));
    let mut out = String::with_capacity(256);
    // Ctrl-C bytes that stopped a command: already acted on, not keys for the next line.
    let mut skip = 0;
    loop {
        ed.start(&mut out);
        write(&mut out);
        let line = loop {
            let Some(b) = serial::read_byte() else {
                cpu::wait_for_interrupt();
                continue;
            };
            if b == serial::CTRL_C && skip > 0 {
                skip -= 1;
                continue;
            }
            let k = ed.feed(b, &mut out);
            write(&mut out);
            match k {
                Key::Submit => break String::from(ed.line()),
                Key::Cancel => {
                    ed.start(&mut out);
                    write(&mut out);
                }
                Key::None => {}
            }
        };
        serial::clear_cancel();
        let before = serial::ctrl_c_count();
        super::run_line(&line);
        skip += serial::ctrl_c_count() - before;
    }
}

fn policy_name(p: Option<stacklab_core::stack_layout::Policy>) -> String {
    match p {
        Some(p) => alloc::format!("{p}"),
        None => String::from("boot stack"),
    }
}

fn thread_name(v: &thread::ThreadView) -> String {
    match v.slot_top.and_then(|top| stacks::find(top - 1)) {
        Some(info) => String::from(info.name()),
        None => String::from("main"),
    }
}

fn ps(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let list = thread::snapshot();
    log::info!("  {:>4}  {:<20} {:<9} policy", "tid", "name", "state");
    for v in &list {
        let (name, policy) = (thread_name(v), policy_name(v.policy));
        log::info!("  {:>4}  {name:<20} {:<9} {policy}", v.tid, v.state);
        report::emit("thread", |r| {
            r.u64("tid", v.tid)
                .str("name", &name)
                .str("state", v.state)
                .str("policy", &policy)
        });
    }
    report::result(|r| r.bool("ok", true).u64("threads", list.len() as u64));
    Ok(())
}

/// One stack for `stacks`: `[lo, hi)` is the whole area (guard included).
struct Span<'a> {
    tid: u64,
    name: &'a str,
    kind: &'a str,
    lo: u64,
    floor: u64,
    mapped_lo: u64,
    hi: u64,
}

fn show(s: &Span<'_>) {
    let z = Zones {
        guard: (s.floor - s.lo) / PAGE,
        reserved: (s.mapped_lo - s.floor) / PAGE,
        mapped: (s.hi - s.mapped_lo) / PAGE,
    };
    log::info!(
        "{:>4} {:<10} {:<6} {:#x} {z} map {}K res {}K guard {}K",
        s.tid,
        s.name,
        s.kind,
        s.lo,
        z.mapped * 4,
        z.reserved * 4,
        z.guard * 4
    );
    report::emit("stack", |r| {
        r.u64("tid", s.tid)
            .str("name", s.name)
            .str("type", s.kind)
            .hex("lo", s.lo)
            .hex("hi", s.hi)
            .hex("mapped_lo", s.mapped_lo)
            .u64("guard_pages", z.guard)
            .u64("reserved_pages", z.reserved)
            .u64("mapped_pages", z.mapped)
            .fmt("bar", format_args!("{z}"))
    });
}

fn stack_map(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    log::info!(
        " tid name       kind   lowest address     [g guard|. reserved|# mapped], low addresses left"
    );
    let mut n = 0;
    for v in thread::snapshot() {
        let name = thread_name(&v);
        let span = match v.slot_top {
            Some(top) => stacks::live_slot(top - 1).map(|s| Span {
                tid: v.tid,
                name: &name,
                kind: "thread",
                lo: s.range.base,
                floor: s.floor,
                mapped_lo: s.mapped_lo,
                hi: s.range.top,
            }),
            None => stacks::find(cpu::rsp()).map(|info| Span {
                tid: v.tid,
                name: &name,
                kind: "boot",
                lo: info.guard.start,
                floor: info.guard.end,
                mapped_lo: info.lo(),
                hi: info.hi(),
            }),
        };
        if let Some(s) = span {
            show(&s);
            n += 1;
        }
    }
    for ist in Ist::ALL {
        let a = gdt::ist_area(ist);
        show(&Span {
            tid: 0,
            name: ist.name(),
            kind: "ist",
            lo: a.start - PAGE,
            floor: a.start,
            mapped_lo: a.start,
            hi: a.end,
        });
        n += 1;
    }
    report::result(|r| r.bool("ok", true).u64("stacks", n));
    Ok(())
}

/// Threads `park` started and `unpark` has not joined yet.
static PARKED: spin::Mutex<Vec<thread::Tid>> = spin::Mutex::new(Vec::new());
static UNPARK: AtomicBool = AtomicBool::new(false);
/// Bytes of stack one level of a 256-byte-frame recursion takes, at most (frame, return
/// address, saved registers), for sizing `park`'s recursions within a policy.
const LEVEL_BYTES: u64 = 512;

fn park(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let n = c.number(0);
    let policy = scenarios::policy();
    // What a thread may use: its maximum if growth can reach it, else its initial pages.
    let usable = match growth::mode() {
        growth::Mode::Abort => policy.initial_bytes(),
        _ => policy.max_bytes(),
    };
    let cap = (usable / 2 / LEVEL_BYTES).max(1);
    UNPARK.store(false, Ordering::SeqCst);
    let mut started = Vec::new();
    for k in 1..=n {
        let depth = (8 * k).min(cap);
        let spawned = thread::spawn("parked", policy, move || {
            let r = scenarios::recursion::recurse(depth, 256, 0).unwrap_or(0);
            while !UNPARK.load(Ordering::SeqCst) {
                thread::sleep_ms(60_000);
            }
            r
        });
        match spawned {
            Ok(t) => started.push(t),
            Err(e) => {
                c.refuse(format_args!("thread {k} of {n} could not start: {e}"));
                break;
            }
        }
    }
    // Let each run its recursion and go to sleep (a few milliseconds; at most 5 s).
    for _ in 0..2500 {
        if all_in_state(&started, "sleeping") {
            break;
        }
        thread::sleep_ms(2);
    }
    log::info!(
        "park: {} threads on {policy}, sleeping until 'unpark'",
        started.len()
    );
    let count = started.len() as u64;
    cpu::without_interrupts(|| PARKED.lock().extend(started));
    report::result(|r| {
        r.bool("ok", count == n)
            .u64("threads", count)
            .fmt("policy", format_args!("{policy}"))
    });
    Ok(())
}

fn unpark(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let tids = cpu::without_interrupts(|| core::mem::take(&mut *PARKED.lock()));
    UNPARK.store(true, Ordering::SeqCst);
    // Wake them until each has seen the flag and exited: a thread that checked the flag just
    // before it was set, and was not yet asleep when woken, is woken again.
    while !all_in_state(&tids, "exited") {
        for t in &tids {
            thread::wake(*t);
        }
        thread::sleep_ms(2);
    }
    let joined = tids.iter().filter(|t| thread::join(**t).is_some()).count() as u64;
    log::info!("unpark: {joined} threads ended");
    report::result(|r| {
        r.bool("ok", joined == tids.len() as u64)
            .u64("threads", joined)
    });
    Ok(())
}

/// Whether every thread of `tids` is in `state` (see `thread::ThreadView::state`).
fn all_in_state(tids: &[thread::Tid], state: &str) -> bool {
    let now = thread::snapshot();
    tids.iter()
        .all(|t| now.iter().any(|v| v.tid == *t && v.state == state))
}
