//! The kernel's own virtual areas: mapping page ranges with an unmapped guard page below.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, Size4KiB};

use super::frame::{self, TableFrames};
use crate::arch::x86_64::space::OwnedStack;

const PAGE: u64 = 4096;
/// Base of the guarded-area allocator (IST and other fixed stacks).
const GUARDED_BASE: u64 = super::KVA_BASE + (1 << 30);
const GUARDED_END: u64 = super::KVA_BASE + (64 << 30);

static GUARDED_NEXT: AtomicU64 = AtomicU64::new(GUARDED_BASE);

/// Level-4 index of [`super::KVA_BASE`].
pub const fn l4_index() -> usize {
    ((super::KVA_BASE >> 39) & 511) as usize
}

/// A mapped range `[bottom, top)` with an unmapped guard page at `[bottom - 4K, bottom)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardedArea {
    /// Lowest mapped address.
    pub bottom: u64,
    /// One past the highest mapped address.
    pub top: u64,
}

/// Maps `pages` fresh zeroed pages, writable and not executable, at `[start, start + pages*4K)`.
///
/// Panics if memory runs out or the range is already mapped: both are kernel bugs at the
/// points where this is called (boot-time set-up).
pub(super) fn map_range(start: u64, pages: u64) {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    super::with_mapper(|m| {
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + i * PAGE));
            let frame = frame::alloc_zeroed()
                .expect("out of physical memory")
                .into_phys();
            // SAFETY: `page` lies in the kernel's own virtual area, which nothing else maps,
            // and `frame` is a fresh frame owned by nobody else: no existing reference can
            // observe the new mapping.
            let flush = unsafe { m.map_to(page, frame, flags, &mut TableFrames) }
                .expect("kernel virtual page already mapped");
            flush.flush();
        }
    });
}

/// Reserves and maps a fresh guarded area of `pages` pages for a stack: where it is, and the
/// token to run code on it.
pub fn alloc_stack(pages: u64) -> (GuardedArea, OwnedStack) {
    let span = (pages + 1) * PAGE;
    let start = GUARDED_NEXT.fetch_add(span, Ordering::Relaxed);
    assert!(start + span <= GUARDED_END, "guarded kernel area exhausted");
    let bottom = start + PAGE;
    map_range(bottom, pages);
    let area = GuardedArea {
        bottom,
        top: bottom + pages * PAGE,
    };
    // SAFETY: the bump pointer hands out each range once, and `map_range` just mapped it with
    // fresh frames, so nothing else references `[bottom, top)`; `top` is page aligned. The
    // page below `bottom` is never mapped (the next area starts one page higher).
    let token = unsafe { OwnedStack::new(VirtAddr::new(area.top), pages * PAGE) };
    (area, token)
}
