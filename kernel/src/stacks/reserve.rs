//! The growth reserve's policy: how many frames to keep (`reserve N`), when to refill (at
//! context switch and at spawn, never in the fault path), and `hold`, which stops refills so a
//! test can exhaust the reserve deterministically. The lock-free store itself is
//! `mem::reserve::FrameReserve`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::x86_64::cpu;
use crate::mem::frame::Frame;
use crate::mem::reserve::{self, FrameReserve};

/// Most frames the reserve can hold.
pub const RESERVE_CAPACITY: usize = reserve::CAPACITY;
/// Default refill target.
pub const DEFAULT_RESERVE: u64 = 16;

/// One CPU: this is the per-CPU reserve of the dynamic-stacks RFC.
static RESERVE: FrameReserve = FrameReserve::new();
static TARGET: AtomicU64 = AtomicU64::new(DEFAULT_RESERVE);
/// When set, context switches and spawns leave the reserve alone (`reserve N hold`).
static HOLD: AtomicBool = AtomicBool::new(false);

/// Takes a frame for growth (fault path).
pub(super) fn pop() -> Option<Frame> {
    RESERVE.pop()
}

/// Returns a frame growth took but could not map.
pub(super) fn put_back(f: Frame) {
    if let Err(reserve::Full(f)) = RESERVE.push(f) {
        crate::mem::frame::give_back(f);
    }
}

/// Tops the reserve up to its target from the frame allocator, unless it is held. Process
/// context only.
pub fn refill() {
    if !HOLD.load(Ordering::Relaxed) {
        RESERVE.fill_to(TARGET.load(Ordering::Relaxed));
    }
}

/// Fills (or drains) the reserve to exactly `n` frames now. With `hold`, it is not refilled
/// again until the next call: a run can then see what growth does when refill falls behind.
pub fn set(n: usize, hold: bool) {
    HOLD.store(false, Ordering::Relaxed);
    let n = n.min(RESERVE_CAPACITY) as u64;
    TARGET.store(n, Ordering::Relaxed);
    cpu::without_interrupts(|| RESERVE.drain_to(n));
    RESERVE.fill_to(n);
    RESERVE.reset_low();
    HOLD.store(hold, Ordering::Relaxed);
}

/// The reserve's state, for `stats`, `reserve` and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReserveStats {
    /// Frames held now.
    pub now: u64,
    /// The refill target.
    pub target: u64,
    /// Lowest count seen since the target was set.
    pub low: u64,
    /// Whether refills are held.
    pub hold: bool,
    /// Whether no frame is listed twice (checked on every read).
    pub distinct: bool,
}

/// The reserve's state now.
pub fn stats() -> ReserveStats {
    ReserveStats {
        now: RESERVE.count(),
        target: TARGET.load(Ordering::Relaxed),
        low: RESERVE.low(),
        hold: HOLD.load(Ordering::Relaxed),
        distinct: RESERVE.all_distinct(),
    }
}

/// The lock-free store itself, for the interleaving scenario (`reserve-race`).
pub fn store() -> &'static FrameReserve {
    &RESERVE
}
