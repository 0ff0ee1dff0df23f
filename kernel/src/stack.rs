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
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::{Mutex, Once};
use stacklab_core::growth::LiveSlot;
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
        StackInfo {
            kind,
            lo: a.bottom,
            hi: a.top,
            guard: a.guard(),
            name: [0; NAME_LEN],
        }
    }
}

/// Size of the boot stack.
pub const BOOT_STACK_PAGES: u64 = 16;

static BOOT_STACK: Once<GuardedArea> = Once::new();

/// Allocates the boot stack, records where it is (for `find`) and moves onto it for good,
/// running `f`. Called once, from the entry point.
pub fn enter_boot_stack(f: extern "sysv64" fn(u64) -> !) -> ! {
    assert!(BOOT_STACK.get().is_none(), "the boot stack is entered once");
    let owned = kva::alloc_owned(BOOT_STACK_PAGES);
    BOOT_STACK.call_once(|| owned.area());
    crate::arch::x86_64::stackswitch::run_on_owned_stack(owned, f, 0)
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
            name: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
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
}

impl ThreadStack {
    pub fn top(&self) -> u64 {
        self.slot.top
    }

    /// Lowest mapped address right now.
    pub fn mapped_lo(&self) -> u64 {
        SLOTS[self.slot.index as usize]
            .mapped_lo
            .load(Ordering::Relaxed)
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
    let ok =
        stackmap::prepare_tables(slot.base, slot.top) && stackmap::map_range(mapped_lo, slot.top);
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
    meta.grow_events.store(0, Ordering::Relaxed);
    meta.grow_pages.store(0, Ordering::Relaxed);
    meta.floor
        .store(slot.floor(policy.max_bytes()), Ordering::Relaxed);
    meta.tid.store(tid, Ordering::Release);
    Ok(ThreadStack { slot })
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
    /// Growth events of the stack's life, and pages they mapped.
    pub grow_events: u64,
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
    crate::arch::x86_64::context::retire(index);
    meta.tid.store(0, Ordering::Release);
    let pages = stackmap::unmap_range(stack.slot.base, stack.slot.top);
    crate::arch::x86_64::cpu::without_interrupts(|| {
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
        kind: StackKind::Thread {
            slot: slot.index as usize,
            tid,
        },
        lo,
        hi: slot.top,
        guard: (slot.base, lo),
        name,
    })
}

/// Pages of the stack that are mapped right now.
pub fn mapped_pages(stack: &ThreadStack) -> u64 {
    (stack.slot.top - stack.mapped_lo()) / PAGE
}

/// High-water mark of a live stack (its thread should be blocked or be the caller).
pub fn live_high_water(stack: &ThreadStack) -> u64 {
    stackmap::high_water(stack.mapped_lo(), stack.slot.top)
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

// ---- the frame reserve for growth ----

/// Most frames the reserve can hold.
pub const RESERVE_CAPACITY: usize = 256;
/// Default refill target.
pub const DEFAULT_RESERVE: usize = 16;

/// Frames set aside for stack growth, so the fault path never calls the allocator (one CPU:
/// this is the per-CPU reserve of the dynamic-stacks RFC). `pop` runs in fault handlers,
/// `refill` in process context at context switches; a fault can interrupt a refill but not
/// the other way round, and both use compare-and-swap on the count, so a pop nested in a push
/// sees a consistent stack.
static RESERVE: [AtomicU64; RESERVE_CAPACITY] = [const { AtomicU64::new(0) }; RESERVE_CAPACITY];
static RESERVE_COUNT: AtomicU64 = AtomicU64::new(0);
static RESERVE_TARGET: AtomicU64 = AtomicU64::new(DEFAULT_RESERVE as u64);
static RESERVE_LOW: AtomicU64 = AtomicU64::new(u64::MAX);
/// When set, context switches and spawns leave the reserve alone (`reserve N hold`), so a
/// test can exhaust it deterministically whatever the timer does.
static RESERVE_HOLD: AtomicBool = AtomicBool::new(false);

fn reserve_pop() -> Option<u64> {
    loop {
        let c = RESERVE_COUNT.load(Ordering::Acquire);
        if c == 0 {
            RESERVE_LOW.store(0, Ordering::Relaxed);
            return None;
        }
        if RESERVE_COUNT
            .compare_exchange(c, c - 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            RESERVE_LOW.fetch_min(c - 1, Ordering::Relaxed);
            return Some(RESERVE[(c - 1) as usize].load(Ordering::Relaxed));
        }
    }
}

/// Tops the reserve up to its target from the frame allocator, unless it is held. Process
/// context only.
pub fn reserve_refill() {
    if RESERVE_HOLD.load(Ordering::Relaxed) {
        return;
    }
    let target = RESERVE_TARGET.load(Ordering::Relaxed);
    while RESERVE_COUNT.load(Ordering::Acquire) < target {
        let Some(f) = crate::mem::frame::alloc_zeroed() else {
            return;
        };
        let addr = f.start_address().as_u64();
        loop {
            let c = RESERVE_COUNT.load(Ordering::Acquire);
            RESERVE[c as usize].store(addr, Ordering::Relaxed);
            if RESERVE_COUNT
                .compare_exchange(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
    }
}

/// Gives frames above `n` back to the allocator (process context).
fn reserve_drain_to(n: u64) {
    crate::arch::x86_64::cpu::without_interrupts(|| {
        while RESERVE_COUNT.load(Ordering::Acquire) > n {
            match reserve_pop() {
                Some(f) => crate::mem::frame::give_back(
                    x86_64::structures::paging::PhysFrame::containing_address(
                        x86_64::PhysAddr::new(f),
                    ),
                ),
                None => break,
            }
        }
        RESERVE_LOW.store(u64::MAX, Ordering::Relaxed);
    });
}

/// Fills (or drains) the reserve to exactly `n` frames now. With `hold`, it is not refilled
/// again until the next call: a run can then see what growth does when refill falls behind.
pub fn reserve_set(n: usize, hold: bool) {
    RESERVE_HOLD.store(false, Ordering::Relaxed);
    set_reserve_target(n);
    reserve_drain_to(n as u64);
    reserve_refill();
    RESERVE_HOLD.store(hold, Ordering::Relaxed);
}

/// Whether refill is held (see [`reserve_set`]).
pub fn reserve_held() -> bool {
    RESERVE_HOLD.load(Ordering::Relaxed)
}

/// Sets the reserve's target size (frames above it stay until used).
fn set_reserve_target(n: usize) {
    RESERVE_TARGET.store(n.min(RESERVE_CAPACITY) as u64, Ordering::Relaxed);
    RESERVE_LOW.store(u64::MAX, Ordering::Relaxed);
}

/// (frames now, target, lowest count seen since the target was set).
pub fn reserve_stats() -> (u64, u64, u64) {
    let low = RESERVE_LOW.load(Ordering::Relaxed);
    let now = RESERVE_COUNT.load(Ordering::Relaxed);
    (now, RESERVE_TARGET.load(Ordering::Relaxed), low.min(now))
}

/// Why growth failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrowError {
    /// The reserve had no frame: treated like hitting the guard page.
    ReserveEmpty,
    /// The page table entry was not as expected (a kernel bug).
    MapFailed,
}

/// Maps `[page, mapped_lo)` of the slot containing `page`, top-down, with frames from the
/// reserve, so the stack never has holes. Fault path: no allocation, no lock.
pub fn grow(page: u64) -> Result<u64, GrowError> {
    let range = layout().slot_of(page).ok_or(GrowError::MapFailed)?;
    let meta = &SLOTS[range.index as usize];
    let mut n = 0;
    loop {
        let lo = meta.mapped_lo.load(Ordering::Relaxed);
        if lo <= page {
            break;
        }
        let frame = reserve_pop().ok_or(GrowError::ReserveEmpty)?;
        let f =
            x86_64::structures::paging::PhysFrame::containing_address(x86_64::PhysAddr::new(frame));
        if !stackmap::map_page(lo - PAGE, f) {
            return Err(GrowError::MapFailed);
        }
        meta.mapped_lo.store(lo - PAGE, Ordering::Relaxed);
        n += 1;
    }
    meta.grow_events.fetch_add(1, Ordering::Relaxed);
    meta.grow_pages.fetch_add(n, Ordering::Relaxed);
    Ok(n)
}

/// Why `ensure` could not provide the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnsureError {
    /// Not running on a thread stack slot.
    NotAThreadStack,
    /// The policy's maximum is too small.
    TooDeep { available: u64 },
    /// The frame allocator is empty.
    NoMemory,
}

/// Makes sure `bytes` below `rsp` are mapped, mapping pages from the general allocator
/// (process context, no fault). Returns how many pages were mapped.
pub fn ensure(rsp: u64, bytes: u64) -> Result<u64, EnsureError> {
    let s = live_slot(rsp).ok_or(EnsureError::NotAThreadStack)?;
    let need = rsp.saturating_sub(bytes);
    if need < s.floor {
        return Err(EnsureError::TooDeep {
            available: rsp - s.floor,
        });
    }
    let meta = &SLOTS[s.range.index as usize];
    let page = need & !(PAGE - 1);
    let mut n = 0;
    crate::arch::x86_64::cpu::without_interrupts(|| {
        loop {
            let lo = meta.mapped_lo.load(Ordering::Relaxed);
            if lo <= page {
                return Ok(n);
            }
            let f = crate::mem::frame::alloc_zeroed().ok_or(EnsureError::NoMemory)?;
            if !stackmap::map_page(lo - PAGE, f) {
                crate::mem::frame::give_back(f);
                return Err(EnsureError::NoMemory);
            }
            meta.mapped_lo.store(lo - PAGE, Ordering::Relaxed);
            n += 1;
        }
    })
}

// ---- extra stacks (Owens 2007: a pool of stacks for known-deep paths) ----

/// Stacks in the extra-stack pool, and the size of each.
pub const EXTRA_STACKS: usize = 2;
pub const EXTRA_STACK_BYTES: u64 = 32 * 1024;

static EXTRA_POOL: Mutex<Vec<ThreadStack>> = Mutex::new(Vec::new());
static EXTRA_READY: spin::Once<()> = spin::Once::new();

fn extra_pool_init() {
    EXTRA_READY.call_once(|| {
        for i in 0..EXTRA_STACKS {
            // Pool stacks carry a tid from the top of the range so reports can name them.
            let s = create(
                Policy::Fixed {
                    bytes: EXTRA_STACK_BYTES,
                },
                u64::MAX - i as u64,
                "extra-stack",
            )
            .expect("memory for the extra-stack pool at first use");
            crate::arch::x86_64::cpu::without_interrupts(|| EXTRA_POOL.lock().push(s));
        }
    });
}

/// Why `with_extra_stack` could not run its closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraError {
    /// The current stack could not provide the bytes and the pool is empty.
    PoolEmpty,
}

/// Runs `f` on the current stack if `bytes` more can be mapped there (`ensure`), otherwise on a
/// stack from the pool; returns an error instead of overflowing when the pool is empty.
pub fn with_extra_stack<R>(bytes: u64, f: impl FnOnce() -> R) -> Result<R, ExtraError> {
    let rsp = crate::arch::x86_64::cpu::rsp();
    if ensure(rsp, bytes).is_ok() {
        return Ok(f());
    }
    extra_pool_init();
    let s = crate::arch::x86_64::cpu::without_interrupts(|| EXTRA_POOL.lock().pop())
        .ok_or(ExtraError::PoolEmpty)?;
    EXTRA_USED.fetch_add(1, Ordering::Relaxed);
    let mut f = Some(f);
    let mut out = None;
    crate::arch::x86_64::call_on_stack_returning(s.top(), &mut || out = f.take().map(|f| f()));
    crate::arch::x86_64::cpu::without_interrupts(|| EXTRA_POOL.lock().push(s));
    Ok(out.expect("the closure ran"))
}

/// Times a pool stack was used.
pub static EXTRA_USED: AtomicU64 = AtomicU64::new(0);
