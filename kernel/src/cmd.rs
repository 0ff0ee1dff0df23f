//! The kernel command line (from fw_cfg `opt/stacklab/cmdline`): each command runs in order and
//! reports a `result` (or an `error` for a bad command); after the last one the kernel exits
//! with the worst outcome.

use spin::Mutex;
use stacklab_core::cmdline::{self, ArgError, Args, Command};
use stacklab_core::proto::ExitCode;
use stacklab_core::stack::Policy;

use crate::arch::x86_64::{cpu, pic, provoke};
use crate::{fault, growth, report, scenario, stack, time};

/// What `demo` runs: growth by each path, the hazards they meet, then the SDM-abort baseline
/// (an overflow of a fixed stack, reported by #DF, machine stopped).
pub const DEMO: &str = "info; int3; \
    policy grow 4K 32K; growth pf-ist; recurse 40 256; growth df-recover; recurse 40 256; edge-irq; \
    growth pf-ist; demand-nested; ensure 40 256; reclaim 6 plain; stats; \
    policy fixed 16K; growth abort; recurse 100 256";

/// Every command with its arguments and one line of help.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "", "list the commands"),
    ("info", "", "memory, timer and CPU facts"),
    (
        "int3",
        "",
        "execute int3; the #BP handler returns to the caller",
    ),
    (
        "ticks",
        "MS",
        "busy-wait MS milliseconds of TSC time and count timer interrupts",
    ),
    (
        "gp",
        "",
        "load a selector past the GDT limit: #GP(0x50), a fatal report",
    ),
    (
        "read",
        "ADDR",
        "read one byte at ADDR (an unmapped ADDR is a fatal #PF report)",
    ),
    (
        "boot-overflow",
        "",
        "recurse on the boot stack into its guard page: #DF report, stop",
    ),
    (
        "policy",
        "P ..",
        "stack policy for later threads: 'fixed BYTES' (8K/16K/32K) or 'grow INITIAL MAX'",
    ),
    (
        "growth",
        "MODE",
        "abort (default) | pf-ist | pf-ist-naive | df-recover",
    ),
    (
        "reserve",
        "N [refill|hold]",
        "frames kept for stack growth (0-256, default 16); hold: no refill until the next 'reserve'",
    ),
    (
        "edge-irq",
        "",
        "a thread parks RSP at its mapped edge until a timer interrupt arrives",
    ),
    (
        "demand-nested",
        "",
        "a #PF whose handler takes a nested #PF (demand area)",
    ),
    (
        "ensure",
        "D F",
        "recurse D x F after ensure_stack() mapped the needed bytes",
    ),
    (
        "reclaim",
        "LEVELS MODE",
        "zram-style reclaim chain: plain | ensure | extra",
    ),
    (
        "stats",
        "",
        "growth counters per path, reserve, demand faults",
    ),
    (
        "stack-span",
        "BYTES",
        "span of each stack slot (power of two, before the first thread)",
    ),
    (
        "recurse",
        "D F",
        "a thread recurses D levels with F-byte frames; checks the result",
    ),
    (
        "threads",
        "N",
        "N threads with varied depths under timer preemption; checks every result",
    ),
    (
        "hwm",
        "BYTES",
        "a thread marks its stack BYTES below the top; checks the high-water mark",
    ),
    (
        "guard-touch",
        "",
        "a thread reads its own guard page: #PF report from the #DF stack, stop",
    ),
    ("stacks", "", "histogram of per-thread maximum stack use"),
    (
        "bench",
        "WHAT",
        "switch | spawn | idle N | threads (all three) | growth N | memory N",
    ),
    (
        "demo",
        "",
        "a tour: growth by each path and its hazards, then the #DF abort baseline",
    ),
    (
        "halt",
        "",
        "stop running commands; keep taking timer interrupts forever",
    ),
    ("exit", "", "exit now with the outcome so far"),
];

/// Runs every command of `line`, then exits.
pub fn run_all(line: &str) -> ! {
    for c in cmdline::commands(line) {
        run(c);
    }
    report::exit(ExitCode::Success)
}

fn run(c: Command<'_>) {
    let mut args = c.args();
    let res = match c.name {
        "help" => args.finish().map(|_| help()),
        "info" => args.finish().map(|_| info()),
        "int3" => args.finish().map(|_| int3()),
        "ticks" => args
            .number("MS", 1, 60_000)
            .and_then(|ms| args.finish().map(|_| ticks(ms))),
        "gp" => args.finish().map(|_| provoke::general_protection()),
        "read" => args.number("ADDR", 0, u64::MAX).and_then(|a| {
            args.finish()?;
            let v = provoke::read_byte(a);
            report::emit("result", |r| {
                r.str("cmd", "read")
                    .bool("ok", true)
                    .hex("addr", a)
                    .u64("value", v as u64)
            });
            Ok(())
        }),
        "boot-overflow" => args.finish().map(|_| boot_overflow()),
        "policy" => policy_cmd(&mut args).and_then(|p| {
            args.finish()?;
            set_policy(p);
            Ok(())
        }),
        "stack-span" => args.number("BYTES", 16 * 1024, 1 << 20).and_then(|b| {
            args.finish()?;
            match stack::set_span(b) {
                Ok(()) => report::emit("result", |r| {
                    r.str("cmd", "stack-span").bool("ok", true).u64("span", b)
                }),
                Err(stack::SpanError::Bad) => report::bad_command(
                    c.text,
                    format_args!("span must be a power of two from 16K to 1M"),
                ),
                Err(stack::SpanError::InUse) => report::bad_command(
                    c.text,
                    format_args!("the span cannot change after threads have run"),
                ),
            }
            Ok(())
        }),
        "recurse" | "ensure" => args.number("DEPTH", 0, 100_000).and_then(|d| {
            let f = args.number("FRAME", 1, 8192)?;
            args.finish()?;
            if !scenario::FRAME_SIZES.contains(&f) {
                report::bad_command(
                    c.text,
                    format_args!("FRAME must be one of {:?}", scenario::FRAME_SIZES),
                );
            } else if c.name == "ensure" {
                scenario::ensure_cmd(policy(), d, f);
            } else {
                scenario::recurse_cmd(policy(), d, f);
            }
            Ok(())
        }),
        "growth" => args.choice("MODE", growth::Mode::NAMES).and_then(|m| {
            args.finish()?;
            let mode = growth::Mode::from_name(m).expect("a listed name");
            growth::set_mode(mode);
            log::info!("growth: {m}");
            report::emit("result", |r| {
                r.str("cmd", "growth").bool("ok", true).str("growth", m)
            });
            Ok(())
        }),
        "reserve" => args
            .number("N", 0, stack::RESERVE_CAPACITY as u64)
            .and_then(|n| {
                let hold = args.optional_choice("MODE", &["refill", "hold"])? == Some("hold");
                args.finish()?;
                stack::reserve_set(n as usize, hold);
                let (now, _, _) = stack::reserve_stats();
                report::emit("result", |r| {
                    r.str("cmd", "reserve")
                        .bool("ok", now == n)
                        .u64("target", n)
                        .u64("frames", now)
                        .bool("hold", hold)
                });
                Ok(())
            }),
        "edge-irq" => args.finish().map(|_| scenario::edge_irq_cmd(policy())),
        "demand-nested" => args.finish().map(|_| scenario::demand_nested_cmd()),
        "reclaim" => args.number("LEVELS", 1, 64).and_then(|l| {
            let m = match args.choice("MODE", &["plain", "ensure", "extra"])? {
                "plain" => scenario::ReclaimMode::Plain,
                "ensure" => scenario::ReclaimMode::Ensure,
                _ => scenario::ReclaimMode::Extra,
            };
            args.finish()?;
            scenario::reclaim_cmd(policy(), l, m);
            Ok(())
        }),
        "stats" => args.finish().map(|_| scenario::stats_cmd()),
        "threads" => args
            .number("N", 1, 2000)
            .and_then(|n| args.finish().map(|_| scenario::threads_cmd(policy(), n))),
        "hwm" => args.number("BYTES", 512, 1 << 20).and_then(|b| {
            args.finish()?;
            if b + 256 > policy().initial_bytes() {
                report::bad_command(
                    c.text,
                    format_args!(
                        "BYTES must leave 256 bytes of the {} initially mapped",
                        policy().initial_bytes()
                    ),
                );
            } else {
                scenario::hwm_cmd(policy(), b);
            }
            Ok(())
        }),
        "guard-touch" => args.finish().map(|_| scenario::guard_touch_cmd(policy())),
        "stacks" => args.finish().map(|_| scenario::stacks_cmd()),
        "bench" => bench_cmd(&mut args),
        "demo" => args.finish().map(|_| {
            for c in cmdline::commands(DEMO) {
                run(c);
            }
        }),
        "halt" => args.finish().map(|_| halt()),
        "exit" => args.finish().map(|_| report::exit(ExitCode::Success)),
        other => {
            unknown(other, args);
            return;
        }
    };
    if let Err(e) = res {
        report::bad_command(c.text, format_args!("{e}"));
    }
}

static POLICY: Mutex<Policy> = Mutex::new(Policy::Fixed { bytes: 16 * 1024 });

fn policy() -> Policy {
    cpu::without_interrupts(|| *POLICY.lock())
}

fn set_policy(p: Policy) {
    log::info!("policy: new threads get {p}");
    cpu::without_interrupts(|| *POLICY.lock() = p);
    report::emit("result", |r| {
        r.str("cmd", "policy")
            .bool("ok", true)
            .fmt("policy", format_args!("{p}"))
    });
}

fn policy_cmd<'a>(args: &mut Args<'a>) -> Result<Policy, ArgError<'a>> {
    match args.choice("KIND", &["fixed", "grow"])? {
        "grow" => {
            let initial = args.number_or("INITIAL", 4096, 4096, 1 << 20)?;
            let max = args.number_or("MAX", 32 * 1024, 4096, 1 << 20)?;
            let p = Policy::Grow { initial, max };
            if let Err(e) = p.validate(stack::layout().span) {
                return Err(ArgError::Invalid {
                    cmd: "policy",
                    msg: e.message(),
                });
            }
            Ok(p)
        }
        _ => {
            let word = args.clone().word("BYTES")?;
            let bytes = args.number("BYTES", 4096, 1 << 20)?;
            if ![8 * 1024, 16 * 1024, 32 * 1024].contains(&bytes) {
                return Err(ArgError::BadChoice {
                    cmd: "policy",
                    what: "BYTES",
                    got: word,
                    choices: &["8K", "16K", "32K"],
                });
            }
            Ok(Policy::Fixed { bytes })
        }
    }
}

fn bench_cmd<'a>(args: &mut Args<'a>) -> Result<(), ArgError<'a>> {
    match args.choice(
        "WHAT",
        &["switch", "spawn", "idle", "threads", "growth", "memory"],
    )? {
        "growth" => scenario::bench_growth(args.number_or("N", 240, 12, 2000)?),
        "memory" => scenario::bench_memory(args.number_or("N", 1000, 10, 2000)?),
        "switch" => scenario::bench_switch(policy(), args.number_or("ROUNDS", 2000, 1, 1_000_000)?),
        "spawn" => scenario::bench_spawn(policy(), args.number_or("N", 500, 1, 100_000)?),
        "idle" => {
            scenario::bench_idle(policy(), args.number_or("N", 1000, 1, 4000)?);
        }
        _ => {
            scenario::bench_switch(policy(), 2000);
            scenario::bench_spawn(policy(), 500);
            for kib in [8, 16, 32] {
                scenario::bench_idle(Policy::Fixed { bytes: kib * 1024 }, 1000);
            }
        }
    }
    Ok(())
}

fn unknown(name: &str, _args: Args<'_>) {
    report::bad_command(name, format_args!("unknown command '{name}' (try 'help')"));
}

fn help() {
    for (name, args, what) in COMMANDS {
        log::info!("  {name} {args:<6} {what}");
    }
    report::emit("result", |r| {
        r.str("cmd", "help")
            .bool("ok", true)
            .u64("commands", COMMANDS.len() as u64)
    });
}

fn info() {
    let frames = crate::mem::frame::stats();
    let (heap_used, heap_free) = crate::mem::heap::usage();
    log::info!(
        "memory: {} frames ({} MiB), {} in use; heap {} KiB used, {} KiB free; tsc {} MHz",
        frames.total,
        (frames.total * 4096) >> 20,
        frames.in_use,
        heap_used / 1024,
        heap_free / 1024,
        time::tsc_hz() / 1_000_000
    );
    report::emit("result", |r| {
        r.str("cmd", "info")
            .bool("ok", true)
            .u64("frames_total", frames.total)
            .u64("frames_in_use", frames.in_use)
            .u64("heap_used", heap_used as u64)
            .u64("heap_free", heap_free as u64)
            .u64("tsc_hz", time::tsc_hz())
            .u64("ticks", pic::ticks())
    });
}

fn int3() {
    let (before, _) = fault::breakpoint_stats();
    provoke::breakpoint();
    let (after, rip) = fault::breakpoint_stats();
    let ok = after == before + 1;
    log::info!(
        "int3: handler ran {} time(s), returned to {rip:#x}",
        after - before
    );
    report::emit("result", |r| {
        r.str("cmd", "int3")
            .bool("ok", ok)
            .str("handler", "breakpoint")
            .u64("vector", 3)
            .u64("hits", after - before)
            .hex("rip", rip)
    });
    if !ok {
        report::note_outcome(ExitCode::Failure);
    }
}

fn ticks(ms: u64) {
    let start = pic::ticks();
    time::spin_ms(ms);
    let counted = pic::ticks() - start;
    // The timer must fire and be counted. Its rate against TSC time is reported, not judged:
    // under a loaded TCG host the emulated PIT falls behind the TSC, and this is no benchmark.
    let expected = ms * pic::TIMER_HZ as u64 / 1000;
    let ok = counted >= 1;
    log::info!("ticks: {counted} timer interrupts in {ms} ms (expected about {expected})");
    report::emit("result", |r| {
        r.str("cmd", "ticks")
            .bool("ok", ok)
            .u64("ms", ms)
            .u64("ticks", counted)
            .u64("expected", expected)
    });
    if !ok {
        report::note_outcome(ExitCode::Failure);
    }
}

/// Recurses with 512-byte frames until the boot stack's guard page stops it.
fn boot_overflow() {
    log::info!("boot-overflow: recursing on the boot stack until it hits its guard page");
    let depth = overflow(0);
    // Unreachable unless the guard page is missing.
    report::emit("result", |r| {
        r.str("cmd", "boot-overflow")
            .bool("ok", false)
            .u64("depth", depth)
    });
    report::note_outcome(ExitCode::Failure);
}

#[inline(never)]
fn overflow(n: u64) -> u64 {
    let mut buf = [0u8; 512];
    buf[n as usize % 512] = n as u8;
    let buf = core::hint::black_box(buf);
    if core::hint::black_box(n) == u64::MAX {
        0
    } else {
        overflow(n + 1) + buf[0] as u64
    }
}

fn halt() -> ! {
    log::info!("halt: idle, taking timer interrupts (stop QEMU to end)");
    loop {
        cpu::wait_for_interrupt();
    }
}
