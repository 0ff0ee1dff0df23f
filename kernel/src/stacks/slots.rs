//! Thread-stack slots: a dedicated virtual region carved into slots of `span` bytes (default
//! 64 KiB), each aligned to its size, so the slot of any address is one division
//! (`stacklab_core::stack_layout::Layout`). Per-slot metadata sits in a fixed table of atomics
//! that fault handlers read without locks.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use stacklab_core::growth_rules::LiveSlot;
use stacklab_core::stack_layout::{Histogram, Layout, PAGE, Policy, PolicyError, SlotRange};

use super::{NAME_LEN, StackInfo, StackKind, reserve};
use crate::arch::x86_64::context::{self, MAX_THREAD_CONTEXTS};
use crate::arch::x86_64::cpu;
use crate::arch::x86_64::space::OwnedStack;
use crate::mem::{self, stackmap};

/// Most slots (the table size): one per thread context the arch layer keeps.
pub const MAX_SLOTS: usize = MAX_THREAD_CONTEXTS;
/// Default span of a slot.
pub const DEFAULT_SPAN: u64 = 64 * 1024;

struct SlotMeta {
    /// 0: free; otherwise owner thread id.
    tid: AtomicU64,
    /// Lowest mapped address (the stack is mapped on `[mapped_lo, top)`).
    mapped_lo: AtomicU64,
    /// Lowest address the policy allows to be mapped.
    floor: AtomicU64,
    name: [AtomicU64; NAME_LEN / 8],
    /// Growth events and pages added by them.
    grow_events: AtomicU64,
    grow_pages: AtomicU64,
}

impl SlotMeta {
    const fn new() -> SlotMeta {
        SlotMeta {
            tid: AtomicU64::new(0),
            mapped_lo: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            name: [const { AtomicU64::new(0) }; NAME_LEN / 8],
            grow_events: AtomicU64::new(0),
            grow_pages: AtomicU64::new(0),
        }
    }
}

static SLOTS: [SlotMeta; MAX_SLOTS] = [const { SlotMeta::new() }; MAX_SLOTS];
static SPAN: AtomicU64 = AtomicU64::new(DEFAULT_SPAN);

struct SlotPool {
    free: Vec<u32>,
    /// Slots handed out so far (the span is fixed once this is non-zero).
    ever_used: u64,
    histogram: Histogram,
}

static POOL: Mutex<SlotPool> = Mutex::new(SlotPool {
    free: Vec::new(),
    ever_used: 0,
    histogram: Histogram { buckets: [0; 8] },
});

/// The region's current geometry.
pub fn layout() -> Layout {
    let span = SPAN.load(Ordering::Relaxed);
    let size = mem::STACK_REGION.end - mem::STACK_REGION.start;
    let count = (size / span).min(MAX_SLOTS as u64);
    Layout::new(mem::STACK_REGION.start, span, count).expect("span is validated by set_span")
}

/// Why a slot span cannot be changed.
#[derive(Debug)]
pub enum SpanError {
    /// Threads have run: slots exist with the old span.
    InUse,
    /// Not a power of two from 16 KiB to 1 MiB.
    Bad,
}

/// Sets the slot span (a power of two from 16 KiB to 1 MiB), before any thread is spawned.
pub fn set_span(bytes: u64) -> Result<(), SpanError> {
    if !bytes.is_power_of_two() || !(16 * 1024..=1 << 20).contains(&bytes) {
        return Err(SpanError::Bad);
    }
    cpu::without_interrupts(|| {
        let p = POOL.lock();
        if p.ever_used != 0 {
            return Err(SpanError::InUse);
        }
        SPAN.store(bytes, Ordering::Relaxed);
        Ok(())
    })
}

/// A live thread stack, owned by one thread: the slot and the token that lets the arch layer
/// run code on it. Dropping it without [`release`] leaks the slot.
#[derive(Debug)]
pub struct ThreadStack {
    /// The slot's addresses.
    pub slot: SlotRange,
    /// The mapped stack's token (see `arch::x86_64::space::OwnedStack`).
    pub owned: OwnedStack,
}

impl ThreadStack {
    /// Lowest mapped address right now.
    pub fn mapped_lo(&self) -> u64 {
        SLOTS[self.slot.index as usize]
            .mapped_lo
            .load(Ordering::Relaxed)
    }

    /// Pages mapped right now.
    pub fn mapped_pages(&self) -> u64 {
        (self.slot.top - self.mapped_lo()) / PAGE
    }

    /// High-water mark of the live stack (its thread should be blocked or be the caller).
    pub fn live_high_water(&self) -> u64 {
        stackmap::high_water(self.mapped_lo(), self.slot.top)
    }

    /// The arch layer's context id of the thread on this stack.
    pub fn context(&self) -> usize {
        self.slot.index as usize
    }
}

/// Why a stack could not be created.
#[derive(Debug)]
pub enum StackError {
    /// The policy does not fit the slot span.
    Policy(PolicyError),
    /// Every slot is in use.
    NoSlot,
    /// The frame allocator ran dry.
    NoMemory,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StackError::Policy(e) => write!(f, "{e}"),
            StackError::NoSlot => write!(f, "all {} stack slots are in use", layout().count),
            StackError::NoMemory => f.write_str("out of physical memory for the stack"),
        }
    }
}

/// Takes a free slot and maps the policy's initial pages at its top (zero-filled).
pub fn create(policy: Policy, tid: u64, name: &str) -> Result<ThreadStack, StackError> {
    let l = layout();
    policy.validate(l.span).map_err(StackError::Policy)?;
    let index = cpu::without_interrupts(|| {
        let mut p = POOL.lock();
        if p.ever_used == 0 {
            p.free = (0..l.count as u32).rev().collect();
        }
        let i = p.free.pop()?;
        p.ever_used += 1;
        Some(i as usize)
    })
    .ok_or(StackError::NoSlot)?;
    let slot = l.slot(index);
    let mapped_lo = slot.top - policy.initial_bytes();
    let owned = stackmap::prepare_tables(slot.base, slot.top)
        .then(|| stackmap::map_fresh_stack(mapped_lo, slot.top))
        .flatten();
    let Some(owned) = owned else {
        give_back(index);
        return Err(StackError::NoMemory);
    };
    let meta = &SLOTS[index];
    let mut raw = [0u8; NAME_LEN];
    let n = name.len().min(NAME_LEN);
    raw[..n].copy_from_slice(&name.as_bytes()[..n]);
    for (i, w) in meta.name.iter().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
    meta.mapped_lo.store(mapped_lo, Ordering::Relaxed);
    meta.grow_events.store(0, Ordering::Relaxed);
    meta.grow_pages.store(0, Ordering::Relaxed);
    meta.floor
        .store(slot.floor(policy.max_bytes()), Ordering::Relaxed);
    meta.tid.store(tid, Ordering::Release);
    Ok(ThreadStack { slot, owned })
}

fn give_back(index: usize) {
    cpu::without_interrupts(|| POOL.lock().free.push(index as u32));
}

/// What releasing a stack found.
#[derive(Clone, Copy, Debug)]
pub struct Released {
    /// High-water mark in bytes.
    pub high_water: u64,
    /// Pages that were mapped.
    pub pages: u64,
    /// Growth events of the stack's life.
    pub grow_events: u64,
    /// Pages those growth events mapped.
    pub grow_pages: u64,
}

/// Measures the high-water mark, unmaps every page and returns the slot. The owning thread
/// must have exited.
pub fn release(stack: ThreadStack) -> Released {
    let index = stack.slot.index as usize;
    let meta = &SLOTS[index];
    let lo = meta.mapped_lo.load(Ordering::Relaxed);
    let high_water = stackmap::high_water(lo, stack.slot.top);
    let grow_events = meta.grow_events.load(Ordering::Relaxed);
    let grow_pages = meta.grow_pages.load(Ordering::Relaxed);
    context::retire(index);
    meta.tid.store(0, Ordering::Release);
    // The token goes first: nothing may run on the stack once its pages are unmapped.
    let ThreadStack { slot, .. } = stack;
    let pages = stackmap::unmap_range(slot.base, slot.top);
    cpu::without_interrupts(|| {
        let mut p = POOL.lock();
        p.histogram.add(high_water);
        p.free.push(index as u32);
    });
    Released {
        high_water,
        pages,
        grow_events,
        grow_pages,
    }
}

/// Histogram of per-thread maximum stack use over all released stacks.
pub fn histogram() -> Histogram {
    cpu::without_interrupts(|| POOL.lock().histogram)
}

/// Thread stack containing `addr` (including its unmapped part), from the slot table alone.
pub(super) fn find(addr: u64) -> Option<StackInfo> {
    let slot = layout().slot_of(addr)?;
    let meta = SLOTS.get(slot.index as usize)?;
    let tid = meta.tid.load(Ordering::Acquire);
    if tid == 0 {
        return None;
    }
    let lo = meta.mapped_lo.load(Ordering::Relaxed);
    let mut name = [0u8; NAME_LEN];
    for (i, w) in meta.name.iter().enumerate() {
        name[i * 8..i * 8 + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    Some(StackInfo {
        kind: StackKind::Thread {
            slot: slot.index as usize,
            tid,
        },
        mapped: lo..slot.top,
        guard: slot.base..lo,
        name,
    })
}

/// The live slot containing `addr`, as the growth decision needs it. Lock-free.
pub fn live_slot(addr: u64) -> Option<LiveSlot> {
    let range = layout().slot_of(addr)?;
    let meta = SLOTS.get(range.index as usize)?;
    if meta.tid.load(Ordering::Acquire) == 0 {
        return None;
    }
    Some(LiveSlot {
        range,
        mapped_lo: meta.mapped_lo.load(Ordering::Relaxed),
        floor: meta.floor.load(Ordering::Relaxed),
    })
}

/// Why growth failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrowError {
    /// The reserve had no frame: treated like hitting the guard page.
    ReserveEmpty,
    /// The general allocator had no frame (`ensure`).
    OutOfMemory,
    /// The page table entry was not as expected (a kernel bug).
    MapFailed,
}

/// Where the frames for [`grow_down_to`] come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSource {
    /// The growth reserve (fault path: no lock, no allocation).
    Reserve,
    /// The general allocator (process context: `ensure`).
    Allocator,
}

/// Maps `[page, mapped_lo)` of the live slot containing `page`, top-down, so the stack never
/// has holes. Returns how many pages were mapped. A frame that cannot be mapped goes back
/// where it came from; if that is because a growth fault nested in this call (the caller's
/// own stack use, under `ensure`) mapped the page first, the loop simply goes on below it.
pub fn grow_down_to(page: u64, source: FrameSource) -> Result<u64, GrowError> {
    let range = layout().slot_of(page).ok_or(GrowError::MapFailed)?;
    let meta = &SLOTS[range.index as usize];
    let mut n = 0;
    loop {
        let lo = meta.mapped_lo.load(Ordering::Relaxed);
        if lo <= page {
            break;
        }
        let frame = match source {
            FrameSource::Reserve => reserve::pop(),
            FrameSource::Allocator => mem::frame::alloc_zeroed(),
        }
        .ok_or(match source {
            FrameSource::Reserve => GrowError::ReserveEmpty,
            FrameSource::Allocator => GrowError::OutOfMemory,
        })?;
        if let Err(f) = stackmap::map_page(lo - PAGE, frame) {
            match source {
                FrameSource::Reserve => reserve::put_back(f),
                FrameSource::Allocator => mem::frame::give_back(f),
            }
            if meta.mapped_lo.load(Ordering::Relaxed) != lo {
                continue;
            }
            return Err(GrowError::MapFailed);
        }
        meta.mapped_lo.store(lo - PAGE, Ordering::Relaxed);
        n += 1;
    }
    if source == FrameSource::Reserve {
        meta.grow_events.fetch_add(1, Ordering::Relaxed);
        meta.grow_pages.fetch_add(n, Ordering::Relaxed);
    }
    Ok(n)
}
