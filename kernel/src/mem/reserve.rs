//! A lock-free stack of owned frames for the stack-growth fault path: filled in process
//! context, popped by a fault handler, so the fault path never calls the allocator
//! (Tatashin's dynamic-stacks RFC: a per-CPU array filled in advance).
//!
//! One CPU, two kinds of access. A fill can be interrupted by a growth fault (a page fault
//! taken on the filler's own stack, even with interrupts off), which pops; a fill runs with
//! maskable interrupts disabled, so the timer cannot start a second fill in the middle of the
//! first. Both sides publish with a compare-and-swap on the count and read or write a slot
//! only at an index the count makes theirs, so a pop nested in a push sees a consistent stack,
//! and a frame is never listed twice.

use core::sync::atomic::{AtomicU64, Ordering};

use super::frame::{self, Frame};
use crate::arch::x86_64::cpu;

/// Most frames a reserve can hold.
pub const CAPACITY: usize = 256;

/// A point between two steps of [`FrameReserve::push`] or [`FrameReserve::pop`], where a test
/// may run code as if an event had arrived there (see [`FrameReserve::set_hook`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A push has read the count.
    PushLoaded,
    /// A push has written its slot, before publishing it.
    PushStored,
    /// A pop has read the count and its slot, before taking it.
    PopLoaded,
}

/// The reserve itself.
pub struct FrameReserve {
    slots: [AtomicU64; CAPACITY],
    count: AtomicU64,
    /// Lowest count seen since [`FrameReserve::reset_low`].
    low: AtomicU64,
    hook: spin::Mutex<Option<fn(Step)>>,
}

/// Why a frame could not be pushed.
#[derive(Debug)]
pub struct Full(pub Frame);

impl FrameReserve {
    /// An empty reserve.
    pub const fn new() -> FrameReserve {
        FrameReserve {
            slots: [const { AtomicU64::new(0) }; CAPACITY],
            count: AtomicU64::new(0),
            low: AtomicU64::new(u64::MAX),
            hook: spin::Mutex::new(None),
        }
    }

    /// Frames held now.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// The lowest count since the last [`FrameReserve::reset_low`] (capped by the count now).
    pub fn low(&self) -> u64 {
        self.low.load(Ordering::Relaxed).min(self.count())
    }

    /// Starts a new low-water measurement.
    pub fn reset_low(&self) {
        self.low.store(u64::MAX, Ordering::Relaxed);
    }

    /// Installs (or removes) a fault-injection hook called at every [`Step`]: a test uses it
    /// to run a nested pop or push at an exact point of another one.
    pub fn set_hook(&self, hook: Option<fn(Step)>) {
        cpu::without_interrupts(|| *self.hook.lock() = hook);
    }

    fn at(&self, step: Step) {
        // `try_lock`: the hook is only changed with interrupts off, from process context.
        let hook = self.hook.try_lock().and_then(|h| *h);
        if let Some(h) = hook {
            h(step);
        }
    }

    /// Adds a frame; gives it back if the reserve is full. Maskable interrupts are off
    /// meanwhile, so only a fault-context pop can come between its steps.
    pub fn push(&self, f: Frame) -> Result<(), Full> {
        cpu::without_interrupts(|| {
            loop {
                let c = self.count.load(Ordering::Acquire);
                self.at(Step::PushLoaded);
                if c as usize >= CAPACITY {
                    return Err(Full(f));
                }
                // Slot `c` is above the count, so no pop reads it until the CAS below
                // publishes it; a pop that comes in between lowers the count and the CAS
                // fails, and the next round writes the slot the pop freed.
                self.slots[c as usize].store(f.addr(), Ordering::Relaxed);
                self.at(Step::PushStored);
                if self
                    .count
                    .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    // The slot now names the frame; `f` (a plain value) is consumed here.
                    let _ = f;
                    return Ok(());
                }
            }
        })
    }

    /// Takes a frame. Fault path: no lock, no allocation.
    pub fn pop(&self) -> Option<Frame> {
        loop {
            let c = self.count.load(Ordering::Acquire);
            if c == 0 {
                self.low.store(0, Ordering::Relaxed);
                return None;
            }
            let addr = self.slots[(c - 1) as usize].load(Ordering::Relaxed);
            self.at(Step::PopLoaded);
            if self
                .count
                .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.low.fetch_min(c - 1, Ordering::Relaxed);
                // SAFETY: slot `c - 1` was published by a push of an owned frame (the count
                // covered it), and the successful CAS took it off the reserve before anyone
                // else could: this is its only owner now.
                return Some(unsafe { Frame::from_addr(addr) });
            }
        }
    }

    /// Whether every listed frame is distinct (a test's check: two listings of one frame
    /// would map one frame under two stack pages).
    pub fn all_distinct(&self) -> bool {
        cpu::without_interrupts(|| {
            let n = self.count() as usize;
            (0..n).all(|i| {
                let a = self.slots[i].load(Ordering::Relaxed);
                (i + 1..n).all(|j| self.slots[j].load(Ordering::Relaxed) != a)
            })
        })
    }

    /// Fills up to `target` frames from the allocator (process context). Returns false if the
    /// allocator ran dry first.
    pub fn fill_to(&self, target: u64) -> bool {
        while self.count() < target {
            let Some(f) = frame::alloc_zeroed() else {
                return false;
            };
            if let Err(Full(f)) = self.push(f) {
                frame::give_back(f);
                return true;
            }
        }
        true
    }

    /// Gives frames above `n` back to the allocator (process context).
    pub fn drain_to(&self, n: u64) {
        while self.count() > n {
            match self.pop() {
                Some(f) => frame::give_back(f),
                None => break,
            }
        }
    }
}

impl Default for FrameReserve {
    fn default() -> Self {
        FrameReserve::new()
    }
}
