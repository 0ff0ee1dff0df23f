//! Page-table work for the thread-stack region, at the level of single entries.
//!
//! Intermediate tables for a slot are created when the slot is set up (process context, with
//! the mapper lock). After that, mapping or unmapping a page of the slot only writes that
//! page's level-1 entry, which belongs to the slot's owner alone: no lock, no allocation.
//! That is what lets a fault handler grow a stack (dynamic-stacks RFC: the fault path must
//! never allocate nor take a lock a thread can hold).

use x86_64::PhysAddr;
use x86_64::structures::paging::page_table::{PageTableEntry, PageTableFlags as F};
use x86_64::structures::paging::{PageTable, PhysFrame};

use super::frame;

const PAGE: u64 = 4096;

fn table_at(phys: PhysAddr) -> *mut PageTable {
    (super::phys_offset() + phys.as_u64()) as *mut PageTable
}

/// The level-1 entry for `va`, creating missing tables if `create`. `None` if a table is
/// missing and `create` is false, or a huge page is in the way.
fn l1_entry(va: u64, create: bool) -> Option<*mut PageTableEntry> {
    let (l4_frame, _) = x86_64::registers::control::Cr3::read();
    let mut table = table_at(l4_frame.start_address());
    for level in [4u32, 3, 2] {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        // SAFETY: `table` points at a live page table (the active L4, or a table reached
        // through a present entry), mapped through the physical-memory window. Callers keep
        // to the stack region, whose upper tables only this module edits, under the mapper
        // lock when `create` is set.
        let entry = unsafe { &mut (&mut *table)[index] };
        if entry.is_unused() {
            if !create {
                return None;
            }
            let f = frame::alloc_zeroed()?;
            entry.set_frame(f, F::PRESENT | F::WRITABLE);
        } else if entry.flags().contains(F::HUGE_PAGE) {
            return None;
        }
        table = table_at(entry.addr());
    }
    let index = ((va >> 12) & 511) as usize;
    // SAFETY: as above; `table` is now the level-1 table covering `va`.
    Some(unsafe { &mut (&mut *table)[index] as *mut PageTableEntry })
}

/// Creates the page tables for `[lo, hi)` without mapping any page.
pub fn prepare_tables(lo: u64, hi: u64) -> bool {
    super::with_mapper(|_| {
        let mut va = lo;
        while va < hi {
            if l1_entry(va, true).is_none() {
                return false;
            }
            va = (va | (PAGE * 512 - 1)) + 1;
        }
        true
    })
}

/// Maps `frame` at `va` (writable, no-execute). Tables must exist (`prepare_tables`).
/// Returns false if they do not or the page is already mapped.
pub fn map_page(va: u64, frame: PhysFrame) -> bool {
    let Some(e) = l1_entry(va, false) else {
        return false;
    };
    // SAFETY: `e` is the level-1 entry of `va` in the stack region; the caller owns the slot
    // containing `va`, so no other code writes this entry concurrently. A not-present entry
    // has no TLB entry to flush.
    unsafe {
        if !(*e).is_unused() {
            return false;
        }
        (*e).set_frame(frame, F::PRESENT | F::WRITABLE | F::NO_EXECUTE);
    }
    true
}

/// Unmaps `va`, returning its frame (the caller frees it).
pub fn unmap_page(va: u64) -> Option<PhysFrame> {
    let e = l1_entry(va, false)?;
    // SAFETY: as in `map_page`; the caller owns the slot and nothing runs on this page any
    // more, and the TLB entry is flushed before the frame can be reused.
    unsafe {
        if (*e).is_unused() {
            return None;
        }
        let f = PhysFrame::containing_address((*e).addr());
        (*e).set_unused();
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
        Some(f)
    }
}

/// Whether `va` is mapped.
pub fn is_mapped(va: u64) -> bool {
    // SAFETY: reads one entry of a live table (see `l1_entry`).
    l1_entry(va, false).is_some_and(|e| unsafe { !(*e).is_unused() })
}

/// High-water mark of the zero-filled stack whose mapped part is `[lo, hi)`.
pub fn high_water(lo: u64, hi: u64) -> u64 {
    debug_assert!(lo.is_multiple_of(8) && hi > lo);
    // SAFETY: the caller names the mapped part of a stack it owns and that nothing writes
    // right now (its thread has exited); it is readable memory of (hi - lo) bytes.
    let words = unsafe { core::slice::from_raw_parts(lo as *const u64, ((hi - lo) / 8) as usize) };
    stacklab_core::stack::high_water(words)
}

/// Maps `[lo, hi)` with fresh zeroed frames. Returns false (having mapped nothing) if memory
/// runs out.
pub fn map_range(lo: u64, hi: u64) -> bool {
    let mut va = lo;
    while va < hi {
        let ok = frame::alloc_zeroed().is_some_and(|f| {
            map_page(va, f) || {
                // SAFETY: the frame was just allocated and never mapped.
                unsafe { frame::free_frame(f) };
                false
            }
        });
        if !ok {
            unmap_range(lo, va);
            return false;
        }
        va += PAGE;
    }
    true
}

/// Unmaps `[lo, hi)` and frees its frames; returns how many pages were mapped.
pub fn unmap_range(lo: u64, hi: u64) -> u64 {
    let mut n = 0;
    let mut va = lo;
    while va < hi {
        if let Some(f) = unmap_page(va) {
            // SAFETY: the page was just unmapped (and flushed); its frame is referenced nowhere.
            unsafe { frame::free_frame(f) };
            n += 1;
        }
        va += PAGE;
    }
    n
}
