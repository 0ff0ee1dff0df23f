//! Frame capture for `fred-compare`: the real FRED entry (`fred.rs`) and the fred-sim
//! trampoline (`fredsim.rs`) record each frame they deliver while a capture is armed, so one
//! scenario can take the same event under both and compare the 64-byte frames word by word,
//! with the stack pointer and CSL right after delivery. Lock-free: delivery paths write it.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Deliveries kept per capture (an event and the ones that nest in its handler).
pub const SLOTS: usize = 4;

/// One delivery as it happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The 8 frame words, lowest address first (error code ... the zero word).
    pub frame: [u64; 8],
    /// RSP after delivery: the frame's address.
    pub rsp: u64,
    /// CSL after delivery.
    pub csl: u8,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Per slot: 8 frame words, RSP, CSL.
static DATA: [[AtomicU64; 10]; SLOTS] = [const { [const { AtomicU64::new(0) }; 10] }; SLOTS];

/// Starts a capture: the next [`SLOTS`] deliveries are kept.
pub fn arm() {
    COUNT.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Release);
}

/// Ends the capture (what was kept stays readable).
pub fn disarm() {
    ARMED.store(false, Ordering::Release);
}

/// The last capture: how many deliveries it saw (possibly more than [`SLOTS`]) and the first
/// ones.
pub fn read() -> (usize, [Captured; SLOTS]) {
    let mut out = [Captured::default(); SLOTS];
    for (o, d) in out.iter_mut().zip(&DATA) {
        let w = |i: usize| d[i].load(Ordering::Relaxed);
        *o = Captured {
            frame: core::array::from_fn(w),
            rsp: w(8),
            csl: w(9) as u8,
        };
    }
    (COUNT.load(Ordering::Relaxed), out)
}

/// Called by a delivery path with the frame it delivered, where, and the new CSL.
pub(super) fn record(frame: &[u64; 8], rsp: u64, csl: u8) {
    if !ARMED.load(Ordering::Acquire) {
        return;
    }
    let i = COUNT.fetch_add(1, Ordering::Relaxed);
    if let Some(d) = DATA.get(i) {
        for (slot, &w) in d.iter().zip(frame) {
            slot.store(w, Ordering::Relaxed);
        }
        d[8].store(rsp, Ordering::Relaxed);
        d[9].store(csl as u64, Ordering::Relaxed);
    }
}
