//! Which growth path is active, and what growth has cost: per-path counters and cycle samples
//! (for `stats` and `bench growth`). Everything here is lock-free, because fault handlers
//! write it.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::arch::x86_64::idt::{self, PfDelivery};

/// How an overflow of a growable stack is turned into growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No growth: #PF on a normal gate, an overflow becomes #DF, which reports and stops (the
    /// SDM-abort baseline). A growable policy then only has its initial pages.
    Abort,
    /// #PF on its own IST stack; non-growth faults move back to the thread's stack.
    PfIst,
    /// Like `PfIst` but without moving other faults off the IST stack: the hazard a nested
    /// #PF exposes (kept for demonstration).
    PfIstNaive,
    /// #PF on a normal gate; the overflow escalates to #DF, whose handler maps pages and
    /// returns (outside the SDM).
    DfRecover,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["abort", "pf-ist", "pf-ist-naive", "df-recover"];

    pub fn from_name(s: &str) -> Option<Mode> {
        match s {
            "abort" => Some(Mode::Abort),
            "pf-ist" => Some(Mode::PfIst),
            "pf-ist-naive" => Some(Mode::PfIstNaive),
            "df-recover" => Some(Mode::DfRecover),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Mode::NAMES[self as usize]
    }
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Abort as u8);

/// Selects the growth path (and loads the matching IDT).
pub fn set_mode(m: Mode) {
    MODE.store(m as u8, Ordering::Relaxed);
    idt::load(match m {
        Mode::PfIst | Mode::PfIstNaive => PfDelivery::Ist,
        Mode::Abort | Mode::DfRecover => PfDelivery::Gate,
    });
}

/// The active growth path.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        0 => Mode::Abort,
        1 => Mode::PfIst,
        2 => Mode::PfIstNaive,
        _ => Mode::DfRecover,
    }
}

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
}

pub const PATHS: usize = 4;
pub const PATH_NAMES: [&str; PATHS] = ["pf-ist", "pf-gate", "df-recover", "demand"];
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
    pub events: u64,
    pub pages: u64,
    pub cycles: u64,
    pub last_rip: u64,
    pub deepest: u64,
}

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
