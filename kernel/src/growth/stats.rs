//! What growth has cost: per-path counters and cycle samples (for `stats` and `bench
//! growth`). Everything here is lock-free, because fault handlers write it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What kind of event a counter describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Stack growth from a #PF on the #PF IST stack.
    PfIst = 0,
    /// Stack growth from a #PF on a normal gate (the frame fit: an access below RSP).
    PfGate = 1,
    /// Stack growth from #DF recovery.
    DfRecover = 2,
    /// A plain demand-paging #PF (the baseline).
    Demand = 3,
    /// Stack growth from a #PF delivered by the `fred-sim` trampoline on a FRED stack level.
    FredSim = 4,
    /// Stack growth from a #PF delivered by real FRED on a stack level.
    Fred = 5,
    /// Pages mapped ahead by an explicit `ensure_stack` call (no fault; [`super::ensure`]).
    Ensure = 6,
}

/// Number of paths.
pub const PATHS: usize = 7;
/// Path names as `stats` reports them, in `Path as usize` order.
pub const PATH_NAMES: [&str; PATHS] = [
    "pf-ist",
    "pf-gate",
    "df-recover",
    "demand",
    "fred-sim",
    "fred",
    "ensure",
];
const SAMPLES: usize = 2048;

struct PathStats {
    events: AtomicU64,
    pages: AtomicU64,
    cycles: AtomicU64,
    last_rip: AtomicU64,
    deepest: AtomicU64,
    samples: [AtomicU32; SAMPLES],
}

static STATS: [PathStats; PATHS] = [const {
    PathStats {
        events: AtomicU64::new(0),
        pages: AtomicU64::new(0),
        cycles: AtomicU64::new(0),
        last_rip: AtomicU64::new(0),
        deepest: AtomicU64::new(0),
        samples: [const { AtomicU32::new(0) }; SAMPLES],
    }
}; PATHS];

/// Records one event: handler cycles, the faulting RIP, stack depth reached, pages mapped.
pub fn record(path: Path, cycles: u64, rip: u64, depth: u64, pages: u64) {
    let s = &STATS[path as usize];
    let n = s.events.fetch_add(1, Ordering::Relaxed);
    s.pages.fetch_add(pages, Ordering::Relaxed);
    s.cycles.fetch_add(cycles, Ordering::Relaxed);
    s.last_rip.store(rip, Ordering::Relaxed);
    s.deepest.fetch_max(depth, Ordering::Relaxed);
    s.samples[(n as usize) % SAMPLES].store(cycles.min(u32::MAX as u64) as u32, Ordering::Relaxed);
}

/// A snapshot of one path's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Events counted.
    pub events: u64,
    /// Pages they mapped.
    pub pages: u64,
    /// Handler cycles, summed.
    pub cycles: u64,
    /// RIP of the last faulting instruction.
    pub last_rip: u64,
    /// Deepest stack depth a fault reached.
    pub deepest: u64,
}

/// A snapshot of path `path`'s counters.
pub fn snapshot(path: usize) -> Snapshot {
    let s = &STATS[path];
    Snapshot {
        events: s.events.load(Ordering::Relaxed),
        pages: s.pages.load(Ordering::Relaxed),
        cycles: s.cycles.load(Ordering::Relaxed),
        last_rip: s.last_rip.load(Ordering::Relaxed),
        deepest: s.deepest.load(Ordering::Relaxed),
    }
}

/// Growth events the trace keeps (the first ones; later events are counted, not kept).
pub const TRACE_LEN: usize = 256;

static TRACE_ON: AtomicBool = AtomicBool::new(false);
static TRACE_NEXT: AtomicU64 = AtomicU64::new(0);
/// Per event: TSC, stack slot, pages mapped on that stack after the event.
static TRACE: [[AtomicU64; 3]; TRACE_LEN] = [const { [const { AtomicU64::new(0) }; 3] }; TRACE_LEN];

/// Starts (emptied) or stops the growth trace (`growth-trace on|off`; off at boot).
pub fn set_trace(on: bool) {
    TRACE_ON.store(false, Ordering::Relaxed);
    if on {
        TRACE_NEXT.store(0, Ordering::Relaxed);
        TRACE_ON.store(true, Ordering::Relaxed);
    }
}

/// Whether the growth trace is on.
pub fn trace_on() -> bool {
    TRACE_ON.load(Ordering::Relaxed)
}

/// Records one growth event in the trace, if it is on. Fault path: lock-free.
pub fn trace(tsc: u64, slot: u64, pages: u64) {
    if !trace_on() {
        return;
    }
    let n = TRACE_NEXT.fetch_add(1, Ordering::Relaxed) as usize;
    if let Some(e) = TRACE.get(n) {
        e[0].store(tsc, Ordering::Relaxed);
        e[1].store(slot, Ordering::Relaxed);
        e[2].store(pages, Ordering::Relaxed);
    }
}

/// Calls `f(tsc, slot, pages)` for every kept event, in order; returns how many events
/// happened in all (more than were kept when the trace overflowed).
pub fn for_each_traced(mut f: impl FnMut(u64, u64, u64)) -> u64 {
    let n = TRACE_NEXT.load(Ordering::Relaxed);
    for e in TRACE.iter().take(n as usize) {
        f(
            e[0].load(Ordering::Relaxed),
            e[1].load(Ordering::Relaxed),
            e[2].load(Ordering::Relaxed),
        );
    }
    n
}
