//! Page-table work for the kernel's own stack and demand areas, at the level of single
//! entries.
//!
//! Intermediate tables for a slot are created when the slot is set up (process context, with
//! the mapper lock). After that, mapping or unmapping a page of the slot only writes that
//! page's level-1 entry, which belongs to the slot's owner alone: no lock, no allocation.
//! That is what lets a fault handler grow a stack (dynamic-stacks RFC: the fault path must
//! never allocate nor take a lock a thread can hold).

use x86_64::structures::paging::PageTable;
use x86_64::structures::paging::page_table::{PageTableEntry, PageTableFlags as F};
use x86_64::{PhysAddr, VirtAddr};

use super::frame::{self, Frame};
use crate::arch::x86_64::space::{AddressSpace, OwnedStack};

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
        // to the kernel's own area, whose upper tables only this module edits, under the
        // mapper lock when `create` is set.
        let entry = unsafe { &mut (&mut *table)[index] };
        if entry.is_unused() {
            if !create {
                return None;
            }
            let f = frame::alloc_zeroed()?;
            entry.set_frame(f.into_phys(), F::PRESENT | F::WRITABLE);
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

/// Maps `frame` at `va` (writable, no-execute). Tables must exist (`prepare_tables`) and the
/// page must be unmapped; otherwise the frame comes back unused.
pub fn map_page(va: u64, frame: Frame) -> Result<(), Frame> {
    let Some(e) = l1_entry(va, false) else {
        return Err(frame);
    };
    // SAFETY: `e` is the level-1 entry of `va` in the kernel's own area; the caller owns the
    // slot containing `va`, so no other code writes this entry concurrently. A not-present
    // entry has no TLB entry to flush.
    unsafe {
        if !(*e).is_unused() {
            return Err(frame);
        }
        (*e).set_frame(frame.into_phys(), F::PRESENT | F::WRITABLE | F::NO_EXECUTE);
    }
    Ok(())
}

/// Unmaps `va`, returning its frame.
fn unmap_page(va: u64) -> Option<Frame> {
    let e = l1_entry(va, false)?;
    // SAFETY: as in `map_page`; the caller owns the slot and nothing runs on this page any
    // more. The TLB entry is flushed before the frame is handed back, so the returned `Frame`
    // is the only name of that memory.
    unsafe {
        if (*e).is_unused() {
            return None;
        }
        let addr = (*e).addr().as_u64();
        (*e).set_unused();
        x86_64::instructions::tlb::flush(VirtAddr::new(va));
        Some(Frame::from_addr(addr))
    }
}

/// Whether `va` is mapped (a present level-1 entry; huge pages are not used here).
pub fn is_mapped(va: u64) -> bool {
    // SAFETY: reads one entry of a live table (see `l1_entry`).
    l1_entry(va, false).is_some_and(|e| unsafe { !(*e).is_unused() })
}

/// Whether any mapping (4 KiB, 2 MiB or 1 GiB page) covers `va` in the active tables.
pub(super) fn is_present(va: u64) -> bool {
    let (l4_frame, _) = x86_64::registers::control::Cr3::read();
    let mut table = table_at(l4_frame.start_address());
    for level in [4u32, 3, 2, 1] {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        // SAFETY: a read of one entry of a live table reached through present entries and
        // the physical-memory window; nothing is written.
        let entry = unsafe { &(&*table)[index] };
        if !entry.flags().contains(F::PRESENT) {
            return false;
        }
        if level == 1 || entry.flags().contains(F::HUGE_PAGE) {
            return true;
        }
        table = table_at(entry.addr());
    }
    true
}

/// The kernel's page tables as the arch layer may query them: only the kernel's own area
/// ([`super::KVA_BASE`] onwards: heap, guarded stacks, demand area, thread stacks), all of it
/// ordinary RAM, answers "mapped". The walk takes no lock, so a fault handler may ask.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelSpace;

// SAFETY: `is_mapped` is true only for a present 4 KiB page of the kernel's own area, which
// maps nothing but RAM frames from the frame allocator, writable. Every stack in that area
// has an unmapped page below it: guarded areas (`kva`) leave one below each, and the lowest
// page of a thread-stack slot is never mapped (`stacklab_core::stack_layout`).
unsafe impl AddressSpace for KernelSpace {
    fn is_mapped(&self, va: VirtAddr) -> bool {
        va.as_u64() >= super::KVA_BASE && is_mapped(va.as_u64())
    }
}

/// High-water mark of the zero-filled stack whose mapped part is `[lo, hi)`: the first
/// non-zero word from the bottom, as Linux's CONFIG_DEBUG_STACK_USAGE measures it. Reads
/// only pages that are mapped (a hole ends the measurement at its top).
pub fn high_water(lo: u64, hi: u64) -> u64 {
    debug_assert!(lo.is_multiple_of(8) && hi > lo);
    let mut lo = lo;
    while lo < hi && !KernelSpace.is_range_mapped(VirtAddr::new(lo), VirtAddr::new(hi)) {
        lo = (lo | (PAGE - 1)) + 1;
    }
    let words = (0..((hi - lo) / 8) as usize).map(|i| {
        // SAFETY: `[lo, hi)` is mapped ordinary memory (checked above), and `lo + 8 * i` is an
        // 8-byte aligned word inside it; a volatile read of a plain integer is valid whatever
        // its owner does.
        unsafe { core::ptr::read_volatile((lo + 8 * i as u64) as *const u64) }
    });
    stacklab_core::stack_layout::high_water(words)
}

/// Maps `[lo, hi)` (page aligned, inside prepared tables) with fresh zeroed frames and returns
/// the token for the stack it makes. `None` (having mapped nothing) if memory runs out or any
/// page was already mapped.
pub fn map_fresh_stack(lo: u64, hi: u64) -> Option<OwnedStack> {
    let mut va = lo;
    while va < hi {
        let ok = frame::alloc_zeroed().is_some_and(|f| match map_page(va, f) {
            Ok(()) => true,
            Err(f) => {
                frame::give_back(f);
                false
            }
        });
        if !ok {
            unmap_range(lo, va);
            return None;
        }
        va += PAGE;
    }
    // SAFETY: every page of `[lo, hi)` was unmapped before this call and now holds a fresh
    // frame that nothing else names, so no reference into the range exists and only the
    // token's holder can use it; `hi` is page aligned.
    Some(unsafe { OwnedStack::new(VirtAddr::new(hi), hi - lo) })
}

/// Unmaps `[lo, hi)` and frees its frames; returns how many pages were mapped. Only for the
/// thread-stack region and the demand area, whose pages no Rust object outlives (panics
/// otherwise); a stack's [`OwnedStack`] must be gone first.
pub fn unmap_range(lo: u64, hi: u64) -> u64 {
    assert!(
        super::contains(&super::STACK_REGION, lo, hi)
            || super::contains(&super::lazy::AREA, lo, hi),
        "unmap_range({lo:#x}, {hi:#x}) outside the stack region and the demand area"
    );
    let mut n = 0;
    let mut va = lo;
    while va < hi {
        if let Some(f) = unmap_page(va) {
            frame::give_back(f);
            n += 1;
        }
        va += PAGE;
    }
    n
}
