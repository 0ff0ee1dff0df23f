//! Threads on guard-paged stacks: checked deep recursion, many threads under preemption, a
//! calibrated high-water mark, a deliberate guard hit, and the histogram of stack use.

use alloc::vec::Vec;
use stacklab_core::cmdline::ArgError;
use stacklab_core::stack_layout::{HISTOGRAM_LABELS, Policy};

use super::recursion::{FRAME_SIZES, expected, recurse, stack_need};
use super::{ENSURE_REFUSED, ensure_ahead, fail, growth_fields, policy, refused_field, run_thread};
use crate::arch::x86_64::{cpu, pic, provoke};
use crate::commands::{Call, Command, command};
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks, thread, time};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "recurse",
        "DEPTH:0..100000 FRAME:1..8K",
        "a thread recurses DEPTH levels below its first frame with FRAME-byte frames; checks the result",
        "recurse 40 256",
        recurse_cmd
    ),
    command!(
        "threads",
        "N:1..2000",
        "N threads with varied depths under timer preemption; checks every result",
        "threads 8",
        threads_cmd
    ),
    command!(
        "hwm",
        "BYTES:512..1M",
        "a thread marks its stack BYTES below the top; checks the high-water mark",
        "hwm 5000",
        hwm_cmd
    ),
    command!(
        "guard-touch",
        "",
        "a thread reads its own guard page: #PF report from the #DF stack, stop",
        "guard-touch",
        guard_touch_cmd
    ),
    command!(
        "stacks",
        "",
        "histogram of per-thread maximum stack use",
        "stacks",
        stacks_cmd
    ),
];

/// The FRAME argument, which must be one of the compiled frame sizes.
pub(super) fn frame_arg(c: &Call<'_>, i: usize) -> Option<u64> {
    let f = c.number(i);
    if FRAME_SIZES.contains(&f) {
        Some(f)
    } else {
        c.refuse(format_args!("FRAME must be one of {FRAME_SIZES:?}"));
        None
    }
}

/// `recurse DEPTH FRAME`: one thread, checked result. Under a grow policy the record also
/// names the growth path and counts the thread's growth events.
fn recurse_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let depth = c.number(0);
    if let Some(frame) = frame_arg(c, 1) {
        recurse_on(policy(), depth, frame);
    }
    Ok(())
}

fn recurse_on(policy: Policy, depth: u64, frame: u64) {
    let start = cpu::rdtsc();
    let Some((j, tid)) = run_thread("recurse", policy, move || {
        if !ensure_ahead(stack_need(depth, frame)) {
            return ENSURE_REFUSED;
        }
        recurse(depth, frame, 0).unwrap_or(0)
    }) else {
        return;
    };
    let cycles = cpu::rdtsc() - start;
    let want = expected(depth, frame);
    let refused = j.result == ENSURE_REFUSED;
    let ok = refused || j.result == want;
    let grows = matches!(policy, Policy::Grow { .. });
    log::info!(
        "recurse: depth {depth} x {frame} B frames on {policy}: result {:#x} ({}), high-water {} B, {} pages, {} us",
        j.result,
        if ok { "correct" } else { "WRONG" },
        j.high_water,
        j.pages,
        time::cycles_to_ns(cycles) / 1000
    );
    if grows {
        log::info!(
            "recurse: via {}: {} growth events added {} pages",
            crate::growth::mode().name(),
            j.grow_events,
            j.grow_pages
        );
    }
    report::result(|r| {
        let r = refused_field(r, refused)
            .bool("ok", ok)
            .fmt("policy", format_args!("{policy}"))
            .u64("depth", depth)
            .u64("frame", frame)
            .hex("result", j.result)
            .hex("expected", want)
            .u64("high_water", j.high_water)
            .u64("pages", j.pages)
            .u64("tid", tid);
        if grows { growth_fields(r, &j) } else { r }
    });
    if !ok {
        fail();
    }
}

/// `threads N`: N threads with varied depths, each spinning 3 ms (more than a quantum) at its
/// deepest point, so the timer preempts it there. A spawn that fails stops the spawning; the
/// threads already started are still joined, so their slots and frames come back.
fn threads_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    const FRAME: u64 = 128;
    let (n, policy) = (c.number(0), policy());
    let before = thread::stats();
    let depth_of = |i: u64| 4 + (i * 37) % 40;
    let mut tids = Vec::with_capacity(n as usize);
    let mut spawn_failed = None;
    for i in 0..n {
        if crate::commands::shell::interrupted() {
            break;
        }
        let d = depth_of(i);
        match thread::spawn("worker", policy, move || recurse(d, FRAME, 3).unwrap_or(0)) {
            Ok(t) => tids.push((t, d)),
            Err(e) => {
                spawn_failed = Some(e);
                break;
            }
        }
    }
    let (mut correct, mut max_hw) = (0u64, 0u64);
    let started = tids.len() as u64;
    for (tid, d) in tids {
        let j = thread::join(tid).expect("joinable");
        if j.result == expected(d, FRAME) {
            correct += 1;
        }
        max_hw = max_hw.max(j.high_water);
    }
    if crate::commands::shell::interrupted() {
        log::info!("threads: stopped after {started} of {n}, all joined");
        crate::commands::shell::report_interrupted(false);
        return Ok(());
    }
    if let Some(e) = spawn_failed {
        log::error!(
            "threads: spawn {} of {n} failed: {e}; joined the {started} started",
            started + 1
        );
        report::result(|r| {
            r.bool("ok", false)
                .fmt("error", format_args!("{e}"))
                .u64("threads", n)
                .u64("started", started)
                .u64("correct", correct)
        });
        fail();
        return Ok(());
    }
    let after = thread::stats();
    let (switches, preemptions) = (
        after.switches - before.switches,
        after.preemptions - before.preemptions,
    );
    let ok = correct == n;
    log::info!(
        "threads: {correct}/{n} correct on {policy}; {switches} switches, {preemptions} preemptions; deepest stack {max_hw} B"
    );
    report::result(|r| {
        r.bool("ok", ok)
            .fmt("policy", format_args!("{policy}"))
            .u64("threads", n)
            .u64("correct", correct)
            .u64("switches", switches)
            .u64("preemptions", preemptions)
            .u64("max_high_water", max_hw)
            .u64("live_threads_after", after.live)
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `hwm BYTES`: a thread marks the word `BYTES` below its stack top; the measured high-water
/// mark must be within one 64-byte line of that.
fn hwm_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let (bytes, policy) = (c.number(0), policy());
    if bytes + 256 > policy.initial_bytes() {
        c.refuse(format_args!(
            "BYTES must leave 256 bytes of the {} initially mapped",
            policy.initial_bytes()
        ));
        return Ok(());
    }
    // The mark is the deepest word written, and an interrupt taken while the thread runs
    // writes its frame (and its handler's) below the thread's RSP too: with a shallow BYTES
    // that can go deeper than the marker. So a mismatch while a timer tick came during the
    // thread's life is measured again, up to five times; one with no tick is a failure.
    let mut attempts = 0;
    let (j, truth, ok) = loop {
        attempts += 1;
        let t0 = pic::ticks();
        let Some((j, _)) = run_thread("hwm", policy, move || {
            let s = stacks::find(cpu::rsp()).expect("a thread runs on its stack");
            let addr = (s.hi() - bytes) & !7;
            match provoke::mark_stack_word(addr, &KernelSpace) {
                Ok(()) => s.hi() - addr,
                Err(_) => 0,
            }
        }) else {
            return Ok(());
        };
        let truth = j.result;
        let ok = truth != 0 && j.high_water >= truth && j.high_water - truth < 64;
        if ok || pic::ticks() == t0 || attempts == 5 {
            break (j, truth, ok);
        }
    };
    log::info!("hwm: true use {truth} B, measured {} B", j.high_water);
    report::result(|r| {
        r.bool("ok", ok)
            .u64("true_use", truth)
            .u64("high_water", j.high_water)
            .u64("attempts", attempts)
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `guard-touch`: a thread reads its own guard page (the #PF frame fits; the report moves to
/// the #DF stack). Ends the machine.
fn guard_touch_cmd(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let ran = run_thread("guard-touch", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("a thread runs on its stack");
        crate::mem::probe_read(s.guard.start + 8).map_or(0, u64::from)
    });
    // Reaching this point at all means the guard page did not stop the thread.
    if ran.is_some() {
        report::result(|r| r.bool("ok", false));
        fail();
    }
    Ok(())
}

/// `stacks`: the histogram of per-thread maximum use.
fn stacks_cmd(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let h = stacks::histogram();
    let l = stacks::layout();
    let mut line = alloc::string::String::new();
    for (label, n) in HISTOGRAM_LABELS.iter().zip(h.buckets) {
        use core::fmt::Write;
        let _ = write!(line, " {label}:{n}");
    }
    log::info!(
        "stacks: {} threads ended; max use by bucket:{line}; slot span {} K",
        h.total(),
        l.span / 1024
    );
    report::result(|r| {
        r.bool("ok", true)
            .u64("threads", h.total())
            .u64_list("histogram", &h.buckets)
            .u64("span", l.span)
    });
    Ok(())
}
