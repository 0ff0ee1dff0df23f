//! Commands that set or show the machine's state: policies, the growth path, the reserve,
//! counters, and the run itself (`help`, `demo`, `halt`, `exit`).

use alloc::string::ToString;
use stacklab_core::cmdline::{ArgError, Args};
use stacklab_core::jitter;
use stacklab_core::proto::ExitCode;
use stacklab_core::stack_layout::Policy;

use super::{Call, Command, command};
use crate::arch::x86_64::{cpu, pic, platform};
use crate::growth::{self, Mode};
use crate::{mem, report, scenarios, stacks, time};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!("help", "", "list the commands", "help", help),
    command!("info", "", "memory, timer and CPU facts", "info", info),
    command!(
        "policy",
        "KIND:fixed|grow ...",
        "stack policy for later threads: 'fixed BYTES' (8K/16K/32K) or 'grow INITIAL MAX'",
        "policy grow 4K 32K",
        policy
    ),
    command!(
        "growth",
        "MODE:abort|pf-ist|pf-ist-naive|df-recover|fred-sim|fred|ensure",
        "how an overflow of a growable stack becomes growth (abort: it does not; ensure: only ensure_stack() before a deep path; fred: real FRED, on a CPU that has it)",
        "growth pf-ist",
        growth_cmd
    ),
    command!(
        "reserve",
        "N:0..256 [MODE:refill|hold]",
        "frames kept for stack growth (default 16); hold: no refill until the next 'reserve'",
        "reserve 4 hold",
        reserve
    ),
    command!(
        "stack-span",
        "BYTES:16K..1M",
        "span of each stack slot (power of two, before the first thread)",
        "stack-span 128K",
        stack_span
    ),
    command!(
        "stats",
        "",
        "growth counters per path, reserve, demand faults",
        "stats",
        stats
    ),
    command!(
        "growth-trace",
        "MODE:on|off",
        "keep a trace of growth events (time, stack slot, pages mapped); 'stats' prints it",
        "growth-trace on",
        growth_trace
    ),
    command!(
        "demo",
        "",
        "a tour: growth by each path and its hazards, then the #DF abort baseline",
        "demo",
        demo
    ),
    command!(
        "halt",
        "",
        "idle, taking timer interrupts, until Ctrl-C (in the shell) or forever",
        "halt",
        halt
    ),
    command!(
        "jitter",
        "...",
        "seeded timer jitter: 'jitter SEED [SPREAD]' varies each tick's period by up to SPREAD percent (0-90, default 50); 'jitter off'",
        "jitter 42 30",
        jitter
    ),
    command!("exit", "", "exit now with the outcome so far", "exit", exit),
];

/// What `demo` runs: growth by each path (simulated FRED delivery included), the hazards they
/// meet, then the SDM-abort baseline
/// (an overflow of a fixed stack, reported by #DF, machine stopped).
pub const DEMO: &str = "info; int3; \
    policy grow 4K 32K; growth pf-ist; recurse 40 256; growth df-recover; recurse 40 256; edge-irq; \
    growth fred-sim; recurse 40 256; edge-irq; fred-state; \
    growth pf-ist; demand-nested; ensure 40 256; reclaim 6 plain; stats; \
    policy fixed 16K; growth abort; recurse 100 256";

fn help(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let mut n = 0;
    for c in super::all() {
        log::info!(
            "  {:<14} {:<16} {}",
            c.name,
            c.args.usage().to_string(),
            c.help
        );
        report::emit("command", |r| {
            r.str("name", c.name)
                .str("args", c.args.0)
                .str("example", c.example)
                .str("help", c.help)
        });
        n += 1;
    }
    report::result(|r| r.bool("ok", true).u64("commands", n));
    Ok(())
}

fn info(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let frames = mem::frame::stats();
    let heap = mem::heap::usage();
    let (heap_used, heap_free) = (heap.used, heap.free);
    log::info!(
        "memory: {} frames ({} MiB), {} in use; heap {} KiB used, {} KiB free; tsc {} MHz; FRED {} ({})",
        frames.total,
        (frames.total * 4096) >> 20,
        frames.in_use,
        heap_used / 1024,
        heap_free / 1024,
        time::tsc_hz() / 1_000_000,
        platform::fred_state(),
        platform::emulator().name()
    );
    report::result(|r| {
        r.bool("ok", true)
            .u64("frames_total", frames.total)
            .u64("frames_in_use", frames.in_use)
            .u64("heap_used", heap_used as u64)
            .u64("heap_free", heap_free as u64)
            .u64("tsc_hz", time::tsc_hz())
            .u64("ticks", pic::ticks())
            .str("fred", platform::fred_state())
            .str("emulator", platform::emulator().name())
    });
    Ok(())
}

fn policy<'a>(c: &mut Call<'a>) -> Result<(), ArgError<'a>> {
    let kind = c.word(0);
    let p = parse_policy(kind, &mut c.args.rest)?;
    c.args.rest.clone().finish()?;
    log::info!("policy: new threads get {p}");
    scenarios::set_policy(p);
    report::result(|r| r.bool("ok", true).fmt("policy", format_args!("{p}")));
    Ok(())
}

fn parse_policy<'a>(kind: &str, args: &mut Args<'a>) -> Result<Policy, ArgError<'a>> {
    if kind == "grow" {
        let initial = args.number_or("INITIAL", 4096, 4096, 1 << 20)?;
        let max = args.number_or("MAX", 32 * 1024, 4096, 1 << 20)?;
        let p = Policy::Grow { initial, max };
        if let Err(e) = p.validate(stacks::layout().span) {
            return Err(ArgError::Invalid {
                cmd: "policy",
                msg: e.message(),
            });
        }
        return Ok(p);
    }
    let word = args.clone().word("BYTES")?;
    let bytes = args.number("BYTES", 4096, 1 << 20)?;
    if ![8 * 1024, 16 * 1024, 32 * 1024].contains(&bytes) {
        return Err(ArgError::BadChoice {
            cmd: "policy",
            what: "BYTES",
            got: word,
            choices: "8K|16K|32K",
        });
    }
    Ok(Policy::Fixed { bytes })
}

fn growth_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let m = c.word(0);
    let mode = Mode::from_name(m).expect("the spec lists only mode names");
    if mode == Mode::Fred
        && let Err(e) = crate::fred::enable()
    {
        c.refuse(format_args!("{}", crate::fred::refusal(e)));
        return Ok(());
    }
    growth::set_mode(mode);
    log::info!("growth: {m}");
    report::result(|r| {
        r.bool("ok", true)
            .str("growth", mode.name())
            .str("fred", crate::arch::x86_64::fred::status())
    });
    Ok(())
}

fn growth_trace(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let on = c.word(0) == "on";
    growth::stats::set_trace(on);
    report::result(|r| r.bool("ok", true).bool("trace", on));
    Ok(())
}

fn reserve(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let n = c.number(0);
    let hold = c.word(1) == "hold";
    stacks::reserve_set(n as usize, hold);
    let s = stacks::reserve_stats();
    report::result(|r| {
        r.bool("ok", s.now == n)
            .u64("target", n)
            .u64("frames", s.now)
            .bool("hold", hold)
    });
    Ok(())
}

fn stack_span(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let b = c.number(0);
    let p = scenarios::policy();
    if b.is_power_of_two()
        && let Err(e) = p.validate(b)
    {
        c.refuse(format_args!(
            "the current policy {p} does not fit a {}K slot: {e}",
            b / 1024
        ));
        return Ok(());
    }
    match stacks::set_span(b) {
        Ok(()) => report::result(|r| r.bool("ok", true).u64("span", b)),
        Err(stacks::SpanError::Bad) => {
            c.refuse(format_args!("span must be a power of two from 16K to 1M"))
        }
        Err(stacks::SpanError::InUse) => c.refuse(format_args!(
            "the span cannot change after threads have run"
        )),
    }
    Ok(())
}

fn stats(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let res = stacks::reserve_stats();
    for (i, name) in growth::stats::PATH_NAMES.iter().enumerate() {
        let s = growth::stats::snapshot(i);
        let avg = s.cycles.checked_div(s.events).unwrap_or(0);
        log::info!(
            "stats {name}: {} events, {} pages, avg {avg} cycles in handler, deepest {} B, last rip {:#x}",
            s.events,
            s.pages,
            s.deepest,
            s.last_rip
        );
        report::emit("stats", |r| {
            r.str("path", name)
                .u64("events", s.events)
                .u64("pages", s.pages)
                .u64("avg_cycles", avg)
                .u64("deepest", s.deepest)
                .hex("last_rip", s.last_rip)
        });
    }
    if growth::stats::trace_on() {
        let n = growth::stats::for_each_traced(|tsc, slot, pages| {
            report::emit("growth-event", |r| {
                r.u64("tsc", tsc).u64("slot", slot).u64("pages", pages)
            });
        });
        log::info!("stats trace: {n} growth event(s)");
    }
    let held = if res.hold { ", held" } else { "" };
    let lost = pic::lost_recovered();
    log::info!(
        "stats reserve: {} frames (target {}, low-water {}{held})",
        res.now,
        res.target,
        res.low
    );
    log::info!("stats: {lost} interrupt(s) lost to a growth fault and replayed");
    report::result(|r| {
        r.bool("ok", res.distinct)
            .u64("reserve_now", res.now)
            .u64("reserve_target", res.target)
            .u64("reserve_low", res.low)
            .bool("reserve_hold", res.hold)
            .bool("reserve_distinct", res.distinct)
            .u64("demand_faults", mem::lazy::faults())
            .u64("lost_irqs_recovered", lost)
    });
    if !res.distinct {
        report::note_outcome(ExitCode::Failure);
    }
    Ok(())
}

fn jitter<'a>(c: &mut Call<'a>) -> Result<(), ArgError<'a>> {
    let mut args = c.args.rest.clone();
    if args.peek() == Some("off") {
        args.word("SEED")?;
        args.finish()?;
        let periods = pic::jitter_periods();
        pic::set_jitter(None);
        log::info!("jitter: off after {periods} jittered periods");
        report::result(|r| {
            r.bool("ok", true)
                .bool("jitter", false)
                .u64("periods", periods)
        });
        return Ok(());
    }
    let seed = args.number("SEED", 0, u64::MAX)?;
    let spread = args.number_or(
        "SPREAD",
        jitter::DEFAULT_SPREAD as u64,
        0,
        jitter::MAX_SPREAD as u64,
    )?;
    args.finish()?;
    pic::set_jitter(Some(jitter::Jitter::new(seed, spread as u32)));
    log::info!("jitter: seed {seed:#x}, periods within {spread}% of 1 ms");
    report::result(|r| {
        r.bool("ok", true)
            .bool("jitter", true)
            .hex("seed", seed)
            .u64("spread", spread)
    });
    Ok(())
}

fn demo(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    super::run_line(DEMO);
    Ok(())
}

fn halt(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    log::info!(
        "halt: idle, taking timer interrupts (Ctrl-C in the shell, or stop the emulator, to end)"
    );
    while !super::shell::interrupted() {
        cpu::wait_for_interrupt();
    }
    super::shell::report_interrupted(true);
    Ok(())
}

fn exit(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    report::exit(ExitCode::Success)
}
