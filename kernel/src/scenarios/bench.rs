//! Benchmarks: context switch, spawn, idle-thread memory, the cost of one growth event per
//! path beside a plain demand fault and `ensure`, and the stack memory of parked threads under
//! grow and fixed policies. Each prints figures measured in one run; none judges a time.

use alloc::vec::Vec;
use stacklab_core::cmdline::ArgError;
use stacklab_core::stack_layout::{Policy, median_p99};

use super::recursion::recurse;
use super::{policy, spawn_error};
use crate::arch::x86_64::{cpu, provoke};
use crate::commands::{Call, Command, command};
use crate::growth;
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks, thread};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[command!(
    "bench",
    "WHAT:switch|spawn|idle|threads|growth|memory|fred ...",
    "switch [ROUNDS] | spawn [N] | idle [N] | threads (all three) | growth [N] | memory [N] | fred [N]",
    "bench switch 100",
    bench
)];

fn bench<'a>(c: &mut Call<'a>) -> Result<(), ArgError<'a>> {
    let what = c.word(0);
    let rest = &mut c.args.rest;
    let n = match what {
        "growth" => rest.number_or("N", 240, 12, 2000)?,
        "fred" => rest.number_or("N", 200, 12, 2000)?,
        "memory" => rest.number_or("N", 1000, 10, 2000)?,
        "switch" => rest.number_or("ROUNDS", 2000, 1, 1_000_000)?,
        "spawn" => rest.number_or("N", 500, 1, 100_000)?,
        "idle" => rest.number_or("N", 1000, 1, 4000)?,
        _ => 0,
    };
    rest.clone().finish()?;
    match what {
        "growth" => bench_growth(n),
        "fred" => super::fred_sim::bench_fred(n),
        "memory" => bench_memory(n),
        "switch" => bench_switch(policy(), n),
        "spawn" => bench_spawn(policy(), n),
        "idle" => {
            bench_idle(policy(), n);
        }
        _ => {
            bench_switch(policy(), 2000);
            bench_spawn(policy(), 500);
            for kib in [8, 16, 32] {
                if interrupted() {
                    break;
                }
                bench_idle(Policy::Fixed { bytes: kib * 1024 }, 1000);
            }
        }
    }
    if interrupted() {
        crate::commands::shell::report_interrupted(false);
    }
    Ok(())
}

fn interrupted() -> bool {
    crate::commands::shell::interrupted()
}

fn bench_record(name: &str, samples: &mut [u64]) -> (u64, u64) {
    let (med, p99) = median_p99(samples);
    log::info!(
        "bench {name}: median {med} cycles, p99 {p99} cycles ({} samples)",
        samples.len()
    );
    report::emit("bench", |r| {
        r.str("name", name)
            .u64("median_cycles", med)
            .u64("p99_cycles", p99)
            .u64("samples", samples.len() as u64)
    });
    (med, p99)
}

/// Context switch cost from a ping-pong of two threads that yield to each other.
fn bench_switch(policy: Policy, rounds: u64) {
    let ping = thread::spawn("ping", policy, move || {
        let mut samples = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
            if interrupted() {
                break;
            }
            let t0 = cpu::rdtsc();
            thread::yield_now();
            samples.push((cpu::rdtsc() - t0) / 2);
        }
        let (med, p99) = median_p99(&mut samples);
        med | (p99 << 32)
    });
    let pong = thread::spawn("pong", policy, move || {
        for _ in 0..rounds + 1 {
            thread::yield_now();
        }
        0
    });
    let (Ok(ping), Ok(pong)) = (ping, pong) else {
        return spawn_error(thread::SpawnError::NoSlot);
    };
    let packed = thread::join(ping).expect("joinable").result;
    thread::join(pong);
    let (med, p99) = (packed & 0xffff_ffff, packed >> 32);
    log::info!(
        "bench switch: median {med} cycles, p99 {p99} cycles per switch ({rounds} round trips)"
    );
    report::emit("bench", |r| {
        r.str("name", "switch")
            .u64("median_cycles", med)
            .u64("p99_cycles", p99)
            .u64("samples", rounds)
    });
}

/// Spawn plus join of a thread that returns at once.
fn bench_spawn(policy: Policy, n: u64) {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        if interrupted() {
            break;
        }
        let t0 = cpu::rdtsc();
        let Ok(t) = thread::spawn("nop", policy, move || i) else {
            return spawn_error(thread::SpawnError::NoSlot);
        };
        thread::join(t);
        samples.push(cpu::rdtsc() - t0);
    }
    bench_record("spawn-join", &mut samples);
}

/// Physical memory held by `n` idle threads (blocked at their first instruction's depth).
fn bench_idle(policy: Policy, n: u64) -> u64 {
    let before = crate::mem::frame::stats().in_use;
    let mut tids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        match thread::spawn("idle", policy, || {
            thread::block();
            0
        }) {
            Ok(t) => tids.push(t),
            Err(e) => {
                spawn_error(e);
                break;
            }
        }
    }
    // Let every thread run once and block.
    thread::sleep_ms(5);
    let frames = crate::mem::frame::stats().in_use - before;
    let stack_pages: u64 = tids.len() as u64 * policy.initial_bytes() / 4096;
    for t in &tids {
        thread::wake(*t);
    }
    for t in tids {
        thread::join(t);
    }
    let bytes = frames * 4096;
    log::info!(
        "bench idle: {n} idle threads on {policy}: {} KiB of frames ({} KiB stack pages, the rest page tables and bookkeeping)",
        bytes / 1024,
        stack_pages * 4
    );
    report::emit("bench", |r| {
        r.str("name", "idle-memory")
            .fmt("policy", format_args!("{policy}"))
            .u64("threads", n)
            .u64("bytes", bytes)
            .u64("stack_bytes", stack_pages * 4096)
    });
    bytes
}

static SAMPLES: spin::Mutex<Vec<u64>> = spin::Mutex::new(Vec::new());

fn take_samples() -> Vec<u64> {
    cpu::without_interrupts(|| core::mem::take(&mut *SAMPLES.lock()))
}

fn push_sample(v: u64) {
    cpu::without_interrupts(|| SAMPLES.lock().push(v));
}

/// Growth steps one thread takes (one page each) in a 64 KiB slot with max 60 KiB.
const STEPS: u64 = 12;

fn grow_policy_for_bench() -> Policy {
    Policy::Grow {
        initial: 4096,
        max: stacks::layout().span - 4096,
    }
}

/// Round-trip cycles of `n` growth faults by the given path, from the faulting code's view.
pub(super) fn growth_round_trips(mode: growth::Mode, n: u64) -> Vec<u64> {
    growth::set_mode(mode);
    take_samples();
    let threads = n.div_ceil(STEPS);
    for _ in 0..threads {
        let t = thread::spawn("bench-grow", grow_policy_for_bench(), || {
            for _ in 0..STEPS {
                let s = stacks::find(cpu::rsp()).expect("on a thread stack");
                match provoke::push_below(s.lo(), &KernelSpace) {
                    Ok(c) => push_sample(c),
                    Err(_) => return 1,
                }
            }
            0
        });
        match t {
            Ok(t) => {
                thread::join(t);
            }
            Err(e) => {
                spawn_error(e);
                break;
            }
        }
    }
    take_samples()
}

fn ratio(a: u64, b: u64) -> (u64, u64) {
    let r = a * 100 / b.max(1);
    (r / 100, r % 100)
}

/// `bench growth N`: cycles per growth event for each path beside a plain demand-paging #PF
/// and beside `ensure_stack` mapping the same page without a fault, as ratios to the plain
/// #PF, all from one run.
fn bench_growth(n: u64) {
    let saved = growth::mode();
    // Plain demand paging on a normal #PF gate.
    growth::set_mode(growth::Mode::Abort);
    lazy::reset();
    let mut demand = Vec::with_capacity(n as usize);
    for i in 0..n.min(lazy::SIZE / 2 / 4096) {
        let t0 = cpu::rdtsc();
        lazy::write(lazy::BASE + i * 4096, 1);
        demand.push(cpu::rdtsc() - t0);
    }
    lazy::reset();
    let mut pf_ist = growth_round_trips(growth::Mode::PfIst, n);
    let mut df = growth_round_trips(growth::Mode::DfRecover, n);
    // ensure_stack: the same pages, mapped ahead by an explicit call.
    take_samples();
    for _ in 0..n.div_ceil(STEPS) {
        if let Ok(t) = thread::spawn("bench-ensure", grow_policy_for_bench(), || {
            let s = stacks::find(cpu::rsp()).expect("on a thread stack");
            let rsp = cpu::rsp();
            for k in 1..=STEPS {
                let need = (rsp - s.lo()) + k * 4096 - (rsp & 4095);
                let t0 = cpu::rdtsc();
                let _ = stacks::ensure(rsp, need);
                push_sample(cpu::rdtsc() - t0);
            }
            0
        }) {
            thread::join(t);
        }
    }
    let mut ensure = take_samples();
    growth::set_mode(saved);
    let (dm, dp) = median_p99(&mut demand);
    let rows: [(&str, &mut Vec<u64>); 3] = [
        ("pf-ist", &mut pf_ist),
        ("df-recover", &mut df),
        ("ensure", &mut ensure),
    ];
    log::info!(
        "bench growth: plain demand #PF median {dm} cycles, p99 {dp} ({} samples) = 1.00",
        demand.len()
    );
    report::emit("bench", |r| {
        r.str("name", "growth")
            .str("path", "demand")
            .u64("median_cycles", dm)
            .u64("p99_cycles", dp)
            .u64("samples", demand.len() as u64)
            .str("ratio", "1.00")
    });
    for (name, v) in rows {
        let (m, p) = median_p99(v);
        let (ri, rf) = ratio(m, dm);
        log::info!(
            "bench growth: {name:<10} median {m} cycles, p99 {p} ({} samples) = {ri}.{rf:02} x plain #PF",
            v.len()
        );
        report::emit("bench", |r| {
            r.str("name", "growth")
                .str("path", name)
                .u64("median_cycles", m)
                .u64("p99_cycles", p)
                .u64("samples", v.len() as u64)
                .fmt("ratio", format_args!("{ri}.{rf:02}"))
        });
    }
}

/// Stack pages held by `n` parked threads of `policy` after each ran its share of `mixed`
/// work (or none), and the lower bound: each thread's high-water mark rounded up to pages.
fn parked_stack_pages(policy: Policy, n: u64, mixed: bool) -> Option<thread::StackPages> {
    static ARRIVED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    ARRIVED.store(0, core::sync::atomic::Ordering::Relaxed);
    let mut tids = Vec::with_capacity(n as usize);
    let mut failed = false;
    for k in 0..n {
        // Mostly shallow, some medium, 5% deep (the RFC saw ~5% of tasks fault).
        let (depth, frame) = if !mixed {
            (0, 0)
        } else if k % 20 == 0 {
            (36, 256)
        } else if k % 5 == 0 {
            (12, 256)
        } else {
            (3, 128)
        };
        match thread::spawn("parked", policy, move || {
            let v = if depth > 0 {
                recurse(depth, frame, 0).unwrap_or(0)
            } else {
                0
            };
            ARRIVED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            thread::block();
            v
        }) {
            Ok(t) => tids.push(t),
            Err(e) => {
                // The threads already started are parked and released below, as usual.
                spawn_error(e);
                failed = true;
                break;
            }
        }
    }
    // Every started thread must have blocked before it is woken: a wake that comes first is
    // lost, and the join would wait for ever.
    while ARRIVED.load(core::sync::atomic::Ordering::Relaxed) < tids.len() as u64 {
        thread::sleep_ms(2);
    }
    let pages = thread::live_stack_pages();
    for t in &tids {
        thread::wake(*t);
    }
    for t in tids {
        thread::join(t);
    }
    (!failed).then_some(pages)
}

/// `bench memory N`: stack memory of N parked threads under grow(4K,32K) and fixed(16K),
/// after a mixed workload and idle (blocked at once, the case Tatashin's RFC measured).
fn bench_memory(n: u64) {
    let grow = Policy::Grow {
        initial: 4096,
        max: 32 * 1024,
    };
    let fixed = Policy::Fixed { bytes: 16 * 1024 };
    let saved = growth::mode();
    growth::set_mode(growth::Mode::PfIst);
    for (name, mixed) in [("memory", true), ("memory-idle", false)] {
        let Some(thread::StackPages {
            mapped: grow_pages,
            needed: lower,
        }) = parked_stack_pages(grow, n, mixed)
        else {
            break;
        };
        let Some(thread::StackPages {
            mapped: fixed_pages,
            ..
        }) = parked_stack_pages(fixed, n, mixed)
        else {
            break;
        };
        let saved_pct = ratio(fixed_pages.saturating_sub(grow_pages) * 100, fixed_pages);
        let (bi, bf) = ratio(grow_pages, lower);
        log::info!(
            "bench {name}: {n} threads: fixed(16K) {} KiB, grow(4K,32K) {} KiB ({}.{:02}% saved), lower bound {} KiB (grow = {bi}.{bf:02} x bound)",
            fixed_pages * 4,
            grow_pages * 4,
            saved_pct.0,
            saved_pct.1,
            lower * 4
        );
        report::emit("bench", |r| {
            r.str("name", name)
                .u64("threads", n)
                .str("workload", if mixed { "mixed" } else { "idle" })
                .u64("fixed16k_bytes", fixed_pages * 4096)
                .u64("grow_bytes", grow_pages * 4096)
                .u64("lower_bound_bytes", lower * 4096)
                .fmt(
                    "saved_pct",
                    format_args!("{}.{:02}", saved_pct.0, saved_pct.1),
                )
                .fmt("grow_over_bound", format_args!("{bi}.{bf:02}"))
        });
    }
    growth::set_mode(saved);
}
