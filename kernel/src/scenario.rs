//! Scenarios the command line can run: deep recursion with a checked result, many threads
//! under preemption, a calibrated high-water mark, deliberate guard hits, and benchmarks.

use alloc::vec::Vec;
use core::hint::black_box;
use stacklab_core::stack::{HISTOGRAM_LABELS, Policy, median_p99};

use crate::arch::x86_64::{cpu, provoke};
use crate::report;
use crate::stack;
use crate::thread;
use crate::time;

/// Frame buffer sizes `recurse` accepts (one compiled function each).
pub const FRAME_SIZES: [u64; 10] = [32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 8192];

/// One level's contribution to the checksum: a function of the depth and byte index.
fn byte(depth: u64, i: usize) -> u8 {
    (depth.wrapping_mul(131).wrapping_add(i as u64 * 7) % 251) as u8
}

fn mix(acc: u64, level_sum: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01b3).wrapping_add(level_sum)
}

/// Recurses `depth` levels with an `N`-byte buffer per frame. Each level fills its buffer,
/// recurses, and only then sums the buffer, so a frame lost or overwritten by a deeper one
/// changes the result. Optionally spins `spin_ms` at the bottom (to be preempted there).
#[inline(never)]
fn rec<const N: usize>(depth: u64, spin_ms: u64) -> u64 {
    let mut buf = [0u8; N];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(depth, i);
    }
    black_box(&mut buf);
    let below = if depth == 0 {
        if spin_ms > 0 {
            time::spin_ms(spin_ms);
        }
        0
    } else {
        rec::<N>(depth - 1, spin_ms)
    };
    let sum: u64 = black_box(&buf).iter().map(|b| *b as u64).sum();
    mix(below, sum)
}

/// The value `rec::<N>(depth)` must return, computed without recursion.
pub fn expected(depth: u64, frame: u64) -> u64 {
    let mut acc = 0;
    for d in 0..=depth {
        let sum: u64 = (0..frame as usize).map(|i| byte(d, i) as u64).sum();
        acc = mix(acc, sum);
    }
    acc
}

/// Runs the recursion for a supported frame size; `None` for other sizes.
pub fn recurse(depth: u64, frame: u64, spin_ms: u64) -> Option<u64> {
    Some(match frame {
        32 => rec::<32>(depth, spin_ms),
        64 => rec::<64>(depth, spin_ms),
        128 => rec::<128>(depth, spin_ms),
        256 => rec::<256>(depth, spin_ms),
        512 => rec::<512>(depth, spin_ms),
        1024 => rec::<1024>(depth, spin_ms),
        2048 => rec::<2048>(depth, spin_ms),
        3072 => rec::<3072>(depth, spin_ms),
        4096 => rec::<4096>(depth, spin_ms),
        8192 => rec::<8192>(depth, spin_ms),
        _ => return None,
    })
}

fn fail() {
    report::note_outcome(stacklab_core::proto::ExitCode::Failure);
}

fn spawn_error(cmd: &str, e: thread::SpawnError) {
    log::error!("{cmd}: cannot spawn: {e}");
    report::emit("result", |r| {
        r.str("cmd", cmd)
            .bool("ok", false)
            .fmt("error", format_args!("{e}"))
    });
    fail();
}

/// `recurse DEPTH FRAME`: one thread, checked result. Under a grow policy the record also
/// names the growth path and counts the thread's growth events.
pub fn recurse_cmd(policy: Policy, depth: u64, frame: u64) {
    let start = cpu::rdtsc();
    let tid = match thread::spawn("recurse", policy, move || {
        recurse(depth, frame, 0).unwrap_or(0)
    }) {
        Ok(t) => t,
        Err(e) => return spawn_error("recurse", e),
    };
    let j = thread::join(tid).expect("spawned thread can be joined");
    let cycles = cpu::rdtsc() - start;
    let want = expected(depth, frame);
    let ok = j.result == want;
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
    report::emit("result", |r| {
        let r = r
            .str("cmd", "recurse")
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
/// deepest point, so the timer preempts it there.
pub fn threads_cmd(policy: Policy, n: u64) {
    const FRAME: u64 = 128;
    let (sw0, pre0, _) = thread::stats();
    let depth_of = |i: u64| 4 + (i * 37) % 40;
    let mut tids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let d = depth_of(i);
        match thread::spawn("worker", policy, move || recurse(d, FRAME, 3).unwrap_or(0)) {
            Ok(t) => tids.push((t, d)),
            Err(e) => return spawn_error("threads", e),
        }
    }
    let (mut correct, mut max_hw) = (0u64, 0u64);
    for (tid, d) in tids {
        let j = thread::join(tid).expect("joinable");
        if j.result == expected(d, FRAME) {
            correct += 1;
        }
        max_hw = max_hw.max(j.high_water);
    }
    let (sw1, pre1, live) = thread::stats();
    let ok = correct == n;
    log::info!(
        "threads: {correct}/{n} correct on {policy}; {} switches, {} preemptions; deepest stack {max_hw} B",
        sw1 - sw0,
        pre1 - pre0
    );
    report::emit("result", |r| {
        r.str("cmd", "threads")
            .bool("ok", ok)
            .fmt("policy", format_args!("{policy}"))
            .u64("threads", n)
            .u64("correct", correct)
            .u64("switches", sw1 - sw0)
            .u64("preemptions", pre1 - pre0)
            .u64("max_high_water", max_hw)
            .u64("live_threads_after", live as u64)
    });
    if !ok {
        fail();
    }
}

/// `hwm BYTES`: a thread marks the word `BYTES` below its stack top; the measured high-water
/// mark must be within one 64-byte line of that.
pub fn hwm_cmd(policy: Policy, bytes: u64) {
    let tid = match thread::spawn("hwm", policy, move || {
        let s = stack::find(cpu::rsp()).expect("a thread runs on its stack");
        let addr = (s.hi - bytes) & !7;
        provoke::mark_stack_word(addr, s.lo);
        s.hi - addr
    }) {
        Ok(t) => t,
        Err(e) => return spawn_error("hwm", e),
    };
    let j = thread::join(tid).expect("joinable");
    let truth = j.result;
    let ok = j.high_water >= truth && j.high_water - truth < 64;
    log::info!("hwm: true use {truth} B, measured {} B", j.high_water);
    report::emit("result", |r| {
        r.str("cmd", "hwm")
            .bool("ok", ok)
            .u64("true_use", truth)
            .u64("high_water", j.high_water)
    });
    if !ok {
        fail();
    }
}

/// `guard-touch`: a thread reads its own guard page (the #PF frame fits; the report moves to
/// the #DF stack). Ends the machine.
pub fn guard_touch_cmd(policy: Policy) {
    let tid = thread::spawn("guard-touch", policy, || {
        let s = stack::find(cpu::rsp()).expect("a thread runs on its stack");
        provoke::read_byte(s.guard.0 + 8) as u64
    });
    match tid {
        Ok(t) => {
            thread::join(t);
            report::emit("result", |r| r.str("cmd", "guard-touch").bool("ok", false));
            fail();
        }
        Err(e) => spawn_error("guard-touch", e),
    }
}

/// `stacks`: the histogram of per-thread maximum use.
pub fn stacks_cmd() {
    let h = stack::histogram();
    let l = stack::layout();
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
    report::emit("result", |r| {
        r.str("cmd", "stacks")
            .bool("ok", true)
            .u64("threads", h.total())
            .u64_list("histogram", &h.buckets)
            .u64("span", l.span)
    });
}

// ---- benchmarks ----

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
pub fn bench_switch(policy: Policy, rounds: u64) {
    let ping = thread::spawn("ping", policy, move || {
        let mut samples = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
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
        return spawn_error("bench", thread::SpawnError::NoSlot);
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
pub fn bench_spawn(policy: Policy, n: u64) {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t0 = cpu::rdtsc();
        let Ok(t) = thread::spawn("nop", policy, move || i) else {
            return spawn_error("bench", thread::SpawnError::NoSlot);
        };
        thread::join(t);
        samples.push(cpu::rdtsc() - t0);
    }
    bench_record("spawn-join", &mut samples);
}

/// Physical memory held by `n` idle threads (blocked at their first instruction's depth).
pub fn bench_idle(policy: Policy, n: u64) -> u64 {
    let before = crate::mem::frame::stats().in_use;
    let mut tids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        match thread::spawn("idle", policy, || {
            thread::block();
            0
        }) {
            Ok(t) => tids.push(t),
            Err(e) => {
                spawn_error("bench", e);
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

// ---- growth scenarios (issue 4) ----

fn growth_fields<'a>(
    r: stacklab_core::proto::Record<'a, alloc::string::String>,
    j: &thread::Joined,
) -> stacklab_core::proto::Record<'a, alloc::string::String> {
    r.str("growth", crate::growth::mode().name())
        .u64("grow_events", j.grow_events)
        .u64("grow_pages", j.grow_pages)
}

/// `edge-irq`: RSP parked exactly at the mapped edge until a timer interrupt arrives; the
/// interrupt's own frame push is the growth fault.
pub fn edge_irq_cmd(policy: Policy) {
    // Read before the spawn: the timer may run the new thread before `spawn` returns.
    let lost0 = crate::arch::x86_64::pic::lost_recovered();
    let tid = thread::spawn("edge-irq", policy, || {
        let s = stack::find(cpu::rsp()).expect("on a thread stack");
        provoke::spin_at_edge(s.lo, crate::arch::x86_64::pic::ticks_counter());
        s.lo
    });
    let tid = match tid {
        Ok(t) => t,
        Err(e) => return spawn_error("edge-irq", e),
    };
    let j = thread::join(tid).expect("joinable");
    let lost = crate::arch::x86_64::pic::lost_recovered() - lost0;
    let ok = j.grow_events >= 1 && j.grow_pages >= 1;
    log::info!(
        "edge-irq: survived; {} growth events, {} pages; {lost} timer interrupt(s) consumed by the faulting delivery, replayed with EOI",
        j.grow_events,
        j.grow_pages
    );
    report::emit("result", |r| {
        growth_fields(
            r.str("cmd", "edge-irq")
                .bool("ok", ok)
                .hex("edge", j.result)
                .u64("lost_irqs_recovered", lost),
            &j,
        )
    });
    if !ok {
        fail();
    }
}

/// `demand-nested`: a demand fault whose handler takes a nested demand fault.
pub fn demand_nested_cmd() {
    crate::mem::lazy::reset();
    let before = crate::fault::NESTED_OK.load(core::sync::atomic::Ordering::Relaxed);
    let addr = crate::mem::lazy::BASE + 0x1234;
    crate::fault::arm_nested_demo();
    provoke::write_byte(addr, 0x5a);
    let back = provoke::read_byte(addr);
    let shadow = provoke::read_byte(addr + crate::mem::lazy::SIZE / 2);
    let nested = crate::fault::NESTED_OK.load(core::sync::atomic::Ordering::Relaxed) - before;
    let ok = back == 0x5a && shadow == 0 && nested == 1;
    log::info!(
        "demand-nested: outer frame intact after a nested #PF ({}); value read back {back:#x}",
        crate::growth::mode().name()
    );
    report::emit("result", |r| {
        r.str("cmd", "demand-nested")
            .bool("ok", ok)
            .str("growth", crate::growth::mode().name())
            .u64("value", back as u64)
            .u64("nested", nested)
    });
    if !ok {
        fail();
    }
}

/// `ensure D F`: map the stack the recursion will need first, then recurse.
pub fn ensure_cmd(policy: Policy, depth: u64, frame: u64) {
    // Bytes per level: the buffer plus about 64 bytes of frame overhead, plus a margin.
    let need = (depth + 1) * (frame + 64) + 1024;
    let tid = thread::spawn("ensure", policy, move || {
        match stack::ensure(cpu::rsp(), need) {
            Ok(_) => recurse(depth, frame, 0).unwrap_or(0),
            Err(_) => u64::MAX,
        }
    });
    let tid = match tid {
        Ok(t) => t,
        Err(e) => return spawn_error("ensure", e),
    };
    let j = thread::join(tid).expect("joinable");
    let want = expected(depth, frame);
    let refused = j.result == u64::MAX;
    let ok = refused || j.result == want;
    log::info!(
        "ensure: {} ({need} bytes asked); {} pages mapped, {} growth faults",
        if refused {
            "ensure_stack refused: the policy's maximum is too small"
        } else {
            "recursion completed"
        },
        j.pages,
        j.grow_events
    );
    report::emit("result", |r| {
        growth_fields(
            r.str("cmd", "ensure")
                .bool("ok", ok)
                .bool("refused", refused)
                .u64("bytes", need)
                .hex("result", j.result)
                .hex("expected", want)
                .u64("pages", j.pages),
            &j,
        )
    });
    if !ok {
        fail();
    }
}

// The reclaim chain: an allocation that enters direct reclaim, which compresses a page (with a
// large frame, like the GPU driver's Rust frame in the Asahi report) and allocates again.

const RECLAIM_FRAME: usize = 2560;
/// Stack one level of the chain needs (measured: alloc + reclaim + compress frames).
pub const RECLAIM_LEVEL_BYTES: u64 = 3584;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReclaimMode {
    Plain,
    Ensure,
    Extra,
}

#[inline(never)]
fn alloc_page(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut meta = [0u8; 256];
    meta[level as usize % 256] = level as u8 + 1;
    black_box(&mut meta);
    if level == levels {
        return Ok(level);
    }
    let inner = direct_reclaim(level, levels, mode)?;
    Ok(mix(inner, black_box(&meta).iter().map(|b| *b as u64).sum()))
}

#[inline(never)]
fn direct_reclaim(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut lru = [0u8; 512];
    lru[(level * 3) as usize % 512] = 7;
    black_box(&mut lru);
    let inner = match mode {
        ReclaimMode::Extra => {
            let need = (levels - level) * RECLAIM_LEVEL_BYTES;
            match stack::with_extra_stack(need.min(RECLAIM_LEVEL_BYTES * 4), || {
                compress(level, levels, mode)
            }) {
                Ok(r) => r?,
                Err(stack::ExtraError::PoolEmpty) => return Err("extra-stack pool empty"),
            }
        }
        _ => compress(level, levels, mode)?,
    };
    Ok(mix(inner, black_box(&lru).iter().map(|b| *b as u64).sum()))
}

#[inline(never)]
fn compress(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut work = [0u8; RECLAIM_FRAME];
    for (i, b) in work.iter_mut().enumerate() {
        *b = byte(level, i);
    }
    black_box(&mut work);
    let inner = alloc_page(level + 1, levels, mode)?;
    Ok(mix(inner, black_box(&work).iter().map(|b| *b as u64).sum()))
}

fn reclaim_expected(levels: u64) -> u64 {
    let mut acc = levels;
    for level in (0..levels).rev() {
        let work: u64 = (0..RECLAIM_FRAME).map(|i| byte(level, i) as u64).sum();
        acc = mix(acc, work);
        acc = mix(acc, 7);
        acc = mix(acc, level % 256 + 1);
    }
    acc
}

/// `reclaim LEVELS MODE`.
pub fn reclaim_cmd(policy: Policy, levels: u64, mode: ReclaimMode) {
    let used0 = stack::EXTRA_USED.load(core::sync::atomic::Ordering::Relaxed);
    let tid = thread::spawn("reclaim", policy, move || {
        if mode == ReclaimMode::Ensure
            && stack::ensure(cpu::rsp(), (levels + 1) * RECLAIM_LEVEL_BYTES).is_err()
        {
            return u64::MAX - 1;
        }
        alloc_page(0, levels, mode).unwrap_or(u64::MAX)
    });
    let tid = match tid {
        Ok(t) => t,
        Err(e) => return spawn_error("reclaim", e),
    };
    let j = thread::join(tid).expect("joinable");
    let want = reclaim_expected(levels);
    let outcome = match j.result {
        v if v == u64::MAX => "pool-empty-error",
        v if v == u64::MAX - 1 => "ensure-refused",
        v if v == want => "completed",
        _ => "wrong-result",
    };
    let extra = stack::EXTRA_USED.load(core::sync::atomic::Ordering::Relaxed) - used0;
    let ok = outcome != "wrong-result";
    log::info!(
        "reclaim: {levels} levels, {outcome}; extra stacks used {extra}; high-water {} B",
        j.high_water
    );
    report::emit("result", |r| {
        growth_fields(
            r.str("cmd", "reclaim")
                .bool("ok", ok)
                .u64("levels", levels)
                .str("outcome", outcome)
                .u64("extra_stacks", extra)
                .hex("result", j.result)
                .hex("expected", want)
                .u64("high_water", j.high_water)
                .u64("pages", j.pages),
            &j,
        )
    });
    if !ok {
        fail();
    }
}

/// `stats`: growth counters per path, the reserve, demand faults.
pub fn stats_cmd() {
    let (now, target, low) = stack::reserve_stats();
    for (i, name) in crate::growth::PATH_NAMES.iter().enumerate() {
        let s = crate::growth::snapshot(i);
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
    let held = if stack::reserve_held() { ", held" } else { "" };
    let lost = crate::arch::x86_64::pic::lost_recovered();
    log::info!("stats reserve: {now} frames (target {target}, low-water {low}{held})");
    log::info!("stats: {lost} interrupt(s) lost to a growth fault and replayed");
    report::emit("result", |r| {
        r.str("cmd", "stats")
            .bool("ok", true)
            .u64("reserve_now", now)
            .u64("reserve_target", target)
            .u64("reserve_low", low)
            .bool("reserve_hold", stack::reserve_held())
            .u64("demand_faults", crate::mem::lazy::faults())
            .u64("lost_irqs_recovered", lost)
    });
}

// ---- growth benchmarks ----

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
        max: stack::layout().span - 4096,
    }
}

/// Round-trip cycles of `n` growth faults by the given path, from the faulting code's view.
fn growth_round_trips(mode: crate::growth::Mode, n: u64) -> Vec<u64> {
    crate::growth::set_mode(mode);
    take_samples();
    let threads = n.div_ceil(STEPS);
    for _ in 0..threads {
        let t = thread::spawn("bench-grow", grow_policy_for_bench(), || {
            for _ in 0..STEPS {
                let s = stack::find(cpu::rsp()).expect("on a thread stack");
                push_sample(provoke::push_below(s.lo));
            }
            0
        });
        match t {
            Ok(t) => {
                thread::join(t);
            }
            Err(e) => {
                spawn_error("bench", e);
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
pub fn bench_growth(n: u64) {
    let saved = crate::growth::mode();
    // Plain demand paging on a normal #PF gate.
    crate::growth::set_mode(crate::growth::Mode::Abort);
    crate::mem::lazy::reset();
    let mut demand = Vec::with_capacity(n as usize);
    for i in 0..n.min(crate::mem::lazy::SIZE / 2 / 4096) {
        let t0 = cpu::rdtsc();
        provoke::write_byte(crate::mem::lazy::BASE + i * 4096, 1);
        demand.push(cpu::rdtsc() - t0);
    }
    crate::mem::lazy::reset();
    let mut pf_ist = growth_round_trips(crate::growth::Mode::PfIst, n);
    let mut df = growth_round_trips(crate::growth::Mode::DfRecover, n);
    // ensure_stack: the same pages, mapped ahead by an explicit call.
    take_samples();
    for _ in 0..n.div_ceil(STEPS) {
        if let Ok(t) = thread::spawn("bench-ensure", grow_policy_for_bench(), || {
            let s = stack::find(cpu::rsp()).expect("on a thread stack");
            let rsp = cpu::rsp();
            for k in 1..=STEPS {
                let need = (rsp - s.lo) + k * 4096 - (rsp & 4095);
                let t0 = cpu::rdtsc();
                let _ = stack::ensure(rsp, need);
                push_sample(cpu::rdtsc() - t0);
            }
            0
        }) {
            thread::join(t);
        }
    }
    let mut ensure = take_samples();
    crate::growth::set_mode(saved);
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
fn parked_stack_pages(policy: Policy, n: u64, mixed: bool) -> Option<(u64, u64)> {
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
                spawn_error("bench", e);
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
pub fn bench_memory(n: u64) {
    let grow = Policy::Grow {
        initial: 4096,
        max: 32 * 1024,
    };
    let fixed = Policy::Fixed { bytes: 16 * 1024 };
    let saved = crate::growth::mode();
    crate::growth::set_mode(crate::growth::Mode::PfIst);
    for (name, mixed) in [("memory", true), ("memory-idle", false)] {
        let Some((grow_pages, lower)) = parked_stack_pages(grow, n, mixed) else {
            break;
        };
        let Some((fixed_pages, _)) = parked_stack_pages(fixed, n, mixed) else {
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
    crate::growth::set_mode(saved);
}
