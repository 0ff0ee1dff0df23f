//! Kernel stacks: the boot stack, IST stacks and thread-stack slots, and which of them an
//! address belongs to. Fault handlers find stacks from the faulting address, never from "the
//! current thread" alone (facts.md §3: during a context switch `current` and RSP disagree for
//! a moment).
//!
//! Thread stacks live in a dedicated region carved into slots of `span` bytes (default
//! 64 KiB), each aligned to its size, so the slot of any address is one division
//! (`stacklab_core::stack::Layout`). Per-slot metadata sits in a fixed table of atomics that
//! fault handlers read without locks.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, Once};
use stacklab_core::stack::{Histogram, Layout, PAGE, Policy, PolicyError, SlotRange};

use crate::arch::x86_64::gdt;
use crate::mem::kva::{self, GuardedArea};
use crate::mem::stackmap;

/// What kind of stack an address is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The stack the kernel's boot path (thread 0) runs on.
    Boot,
    /// An IST stack of the named vector.
    Ist(&'static str),
    /// A thread-stack slot.
    Thread { slot: usize, tid: u64 },
}

/// A stack and its guard, as found from an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    pub kind: StackKind,
    /// Lowest mapped address.
    pub lo: u64,
    /// One past the highest address (the initial RSP).
    pub hi: u64,
    /// The unmapped range below `lo` that counts as guard.
    pub guard: (u64, u64),
    /// Thread name (threads only), NUL-padded.
    pub name: [u8; NAME_LEN],
}

/// Bytes of a thread name kept in the slot table.
pub const NAME_LEN: usize = 24;

impl StackInfo {
    pub fn name(&self) -> &str {
        match self.kind {
            StackKind::Boot => "boot",
            StackKind::Ist(n) => n,
            StackKind::Thread { .. } => {
                let n = self.name.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
                core::str::from_utf8(&self.name[..n]).unwrap_or("?")
            }
        }
    }

    /// Whether `addr` is in this stack's guard range.
    pub fn in_guard(&self, addr: u64) -> bool {
        addr >= self.guard.0 && addr < self.guard.1
    }

    /// Whether `addr` is in the mapped part.
    pub fn in_mapped(&self, addr: u64) -> bool {
        addr >= self.lo && addr < self.hi
    }

    fn from_area(kind: StackKind, a: GuardedArea) -> StackInfo {
        StackInfo { kind, lo: a.bottom, hi: a.top, guard: a.guard(), name: [0; NAME_LEN] }
    }
}

/// Size of the boot stack.
pub const BOOT_STACK_PAGES: u64 = 16;

static BOOT_STACK: Once<GuardedArea> = Once::new();

/// Allocates the boot stack; returns its top.
pub fn alloc_boot_stack() -> u64 {
    BOOT_STACK.call_once(|| kva::alloc_guarded(BOOT_STACK_PAGES)).top
}

/// The stack (mapped part or guard) that contains `addr`.
pub fn find(addr: u64) -> Option<StackInfo> {
    if let Some(info) = find_thread_stack(addr) {
        return Some(info);
    }
    if let Some(b) = BOOT_STACK.get() {
        let info = StackInfo::from_area(StackKind::Boot, *b);
        if info.in_guard(addr) || info.in_mapped(addr) {
            return Some(info);
        }
    }
    gdt::ist_containing(addr).map(|(ist, a)| StackInfo::from_area(StackKind::Ist(ist.name()), a))
}

// ---- thread-stack slots ----

/// Base of the thread-stack region (64 GiB into the kernel's area, see `mem`).
pub const REGION_BASE: u64 = crate::mem::KVA_BASE + (64 << 30);
/// Bytes reserved for the region; the slot count is this divided by the span.
pub const REGION_SIZE: u64 = 1 << 30;
/// Most slots (the table size).
pub const MAX_SLOTS: usize = 4096;
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
}

impl SlotMeta {
    const fn new() -> SlotMeta {
        SlotMeta {
            tid: AtomicU64::new(0),
            mapped_lo: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            name: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
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

static POOL: Mutex<SlotPool> = Mutex::new(SlotPool { free: Vec::new(), ever_used: 0, histogram: Histogram { buckets: [0; 8] } });

/// The region's current geometry.
pub fn layout() -> Layout {
    let span = SPAN.load(Ordering::Relaxed);
    let count = (REGION_SIZE / span).min(MAX_SLOTS as u64);
    Layout::new(REGION_BASE, span, count).expect("span is validated by set_span")
}

/// Why a slot span cannot be changed.
#[derive(Debug)]
pub enum SpanError {
    InUse,
    Bad,
}

/// Sets the slot span (a power of two from 16 KiB to 1 MiB), before any thread is spawned.
pub fn set_span(bytes: u64) -> Result<(), SpanError> {
    if !bytes.is_power_of_two() || !(16 * 1024..=1 << 20).contains(&bytes) {
        return Err(SpanError::Bad);
    }
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let p = POOL.lock();
        if p.ever_used != 0 {
            return Err(SpanError::InUse);
        }
        SPAN.store(bytes, Ordering::Relaxed);
        Ok(())
    })
}

/// A live thread stack, owned by one thread. Dropping it without [`release`] leaks the slot.
#[derive(Debug)]
pub struct ThreadStack {
    pub slot: SlotRange,
    pub policy: Policy,
}

impl ThreadStack {
    pub fn top(&self) -> u64 {
        self.slot.top
    }

    /// Lowest mapped address right now.
    pub fn mapped_lo(&self) -> u64 {
        SLOTS[self.slot.index as usize].mapped_lo.load(Ordering::Relaxed)
    }
}

/// Why a stack could not be created.
#[derive(Debug)]
pub enum StackError {
    Policy(PolicyError),
    NoSlot,
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
    let index = crate::arch::x86_64::cpu::without_interrupts(|| {
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
    let ok = stackmap::prepare_tables(slot.base, slot.top) && stackmap::map_range(mapped_lo, slot.top);
    if !ok {
        give_back(index);
        return Err(StackError::NoMemory);
    }
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
    meta.floor.store(slot.floor(policy.max_bytes()), Ordering::Relaxed);
    meta.tid.store(tid, Ordering::Release);
    Ok(ThreadStack { slot, policy })
}

fn give_back(index: usize) {
    crate::arch::x86_64::cpu::without_interrupts(|| POOL.lock().free.push(index as u32));
}

/// What releasing a stack found.
#[derive(Clone, Copy, Debug)]
pub struct Released {
    /// High-water mark in bytes.
    pub high_water: u64,
    /// Pages that were mapped.
    pub pages: u64,
}

/// Measures the high-water mark, unmaps every page and returns the slot. The owning thread
/// must have exited.
pub fn release(stack: ThreadStack) -> Released {
    let index = stack.slot.index as usize;
    let meta = &SLOTS[index];
    let lo = meta.mapped_lo.load(Ordering::Relaxed);
    let high_water = stackmap::high_water(lo, stack.slot.top);
    crate::arch::x86_64::context::retire(index);
    meta.tid.store(0, Ordering::Release);
    let pages = stackmap::unmap_range(stack.slot.base, stack.slot.top);
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let mut p = POOL.lock();
        p.histogram.add(high_water);
        p.free.push(index as u32);
    });
    Released { high_water, pages }
}

/// Histogram of per-thread maximum stack use over all released stacks.
pub fn histogram() -> Histogram {
    crate::arch::x86_64::cpu::without_interrupts(|| POOL.lock().histogram)
}

/// Thread stack containing `addr` (including its unmapped part), from the slot table alone.
fn find_thread_stack(addr: u64) -> Option<StackInfo> {
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
        kind: StackKind::Thread { slot: slot.index as usize, tid },
        lo,
        hi: slot.top,
        guard: (slot.base, lo),
        name,
    })
}

/// Pages of the region that are mapped right now (for memory figures).
pub fn mapped_pages(stack: &ThreadStack) -> u64 {
    (stack.slot.top - stack.mapped_lo()) / PAGE
}
