//! A demand-paged area: the first touch of a page faults and the #PF handler maps a zeroed
//! frame there. It is the "plain demand-paging #PF" that stack growth is measured against, and
//! the ordinary, non-stack fault that the `pf-ist` path must move off its IST stack.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{frame, stackmap};
use crate::arch::x86_64::entry::TrapFrame;
use crate::arch::x86_64::provoke;

/// Start of the area (2 GiB into the kernel's virtual area).
pub const BASE: u64 = super::KVA_BASE + (2 << 30);
/// Size of the area.
pub const SIZE: u64 = 8 << 20;
/// The area's range.
pub const AREA: Range<u64> = BASE..BASE + SIZE;
const PAGE: u64 = 4096;

static FAULTS: AtomicU64 = AtomicU64::new(0);

/// Creates the page tables of the area (at boot), so that mapping a page later is one entry.
pub fn init() {
    assert!(
        stackmap::prepare_tables(BASE, BASE + SIZE),
        "out of memory for the lazy area's tables"
    );
}

/// Whether `addr` is in the area.
pub fn contains(addr: u64) -> bool {
    (BASE..BASE + SIZE).contains(&addr)
}

/// Maps a zeroed frame at the page containing `addr`. False if out of memory or mapped.
pub fn fault_in(addr: u64) -> bool {
    let Some(f) = frame::alloc_zeroed() else {
        return false;
    };
    match stackmap::map_page(addr & !(PAGE - 1), f) {
        Ok(()) => {
            FAULTS.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(f) => {
            frame::give_back(f);
            false
        }
    }
}

/// Reads the byte at `addr` of the area (the first touch of its page faults it in). `None`
/// outside the area.
pub fn read(addr: u64) -> Option<u8> {
    // SAFETY: the area belongs to no Rust object; its pages are mapped only by the demand
    // fault path, which a load here may trigger.
    contains(addr).then(|| unsafe { provoke::read_byte(addr) })
}

/// Reads the byte at `addr` of the area (faulting its page in) and then `frame`'s saved RIP and
/// RSP, with nothing kept on the stack across the fault (see `provoke::read_byte_then_words`).
/// `None` outside the area. Always inlined: a return across the fault would go through a
/// frame the nested handler may have overwritten.
#[inline(always)]
pub fn read_then_reread(addr: u64, frame: &TrapFrame) -> Option<(u64, u64)> {
    // SAFETY: as in `read` for the byte; the two words are fields of a live TrapFrame.
    contains(addr).then(|| unsafe { provoke::read_byte_then_words(addr, &frame.rip, &frame.rsp) })
}

/// Writes `v` at `addr` of the area with RSP parked at `at` (see
/// `provoke::write_byte_at`). False outside the area or if the stack check refuses.
pub fn write_with_rsp_at(at: u64, addr: u64, v: u8) -> bool {
    if !contains(addr) {
        return false;
    }
    // SAFETY: as in `write`: no Rust object owns this memory.
    unsafe { provoke::write_byte_at(at, addr, v, &super::stackmap::KernelSpace) }.is_ok()
}

/// Like [`write_with_rsp_at`], with the arithmetic flags in a fixed state, returning the RSP
/// right after the store (`arch::x86_64::parked`). `None` outside the area or if the stack
/// check refuses.
pub fn write_parked(at: u64, addr: u64, v: u8) -> Option<u64> {
    if !contains(addr) {
        return None;
    }
    // SAFETY: as in `write`: no Rust object owns this memory.
    unsafe { crate::arch::x86_64::parked::write_byte(at, addr, v, &super::stackmap::KernelSpace) }
        .ok()
}

/// Writes `v` at `addr` of the area (the first touch of its page faults it in). False outside
/// the area.
pub fn write(addr: u64, v: u8) -> bool {
    if !contains(addr) {
        return false;
    }
    // SAFETY: as in `read`: no Rust object owns this memory, so the store aliases nothing.
    unsafe { provoke::write_byte(addr, v) };
    true
}

/// Unmaps every page of the area (for repeated measurements); returns how many were mapped.
pub fn reset() -> u64 {
    stackmap::unmap_range(BASE, BASE + SIZE)
}

/// Demand faults served so far.
pub fn faults() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}
