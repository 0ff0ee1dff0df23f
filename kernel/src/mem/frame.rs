//! Physical frame allocator: a bump pointer over the boot memory map's usable regions, plus an
//! intrusive free list of returned frames (the link lives in the free frame itself, reached
//! through the physical-memory window), so allocation and release are O(1) and need no heap.
//!
//! The region table is `stacklab_core::phys_regions::Regions`: adjacent usable regions are
//! merged, and a region that does not fit is counted and logged by [`log_regions`] (the table
//! used to hold 64 unmerged regions, which dropped the memory q35 places above 4 GiB).

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use spin::Mutex;
use stacklab_core::phys_regions::{Added, Regions};
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};

const MAX_REGIONS: usize = 256;
const PAGE: u64 = 4096;

struct Frames {
    regions: Regions<MAX_REGIONS>,
    /// Usable regions in the boot memory map, before merging.
    usable_in_map: u64,
    /// Usable regions and bytes skipped because the table was full.
    skipped: (u64, u64),
    region: usize,
    next: u64,
    free_head: u64,
    phys_offset: u64,
    total: u64,
    in_use: u64,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    regions: Regions::new(),
    usable_in_map: 0,
    skipped: (0, 0),
    region: 0,
    next: 0,
    free_head: 0,
    phys_offset: 0,
    total: 0,
    in_use: 0,
});

/// Counters for reports.
#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    /// Usable frames the allocator manages.
    pub total: u64,
    /// Frames handed out and not given back.
    pub in_use: u64,
}

pub(super) fn init(regions: &MemoryRegions, phys_offset: u64) {
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let mut f = FRAMES.lock();
        f.phys_offset = phys_offset;
        for r in regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
        {
            f.usable_in_map += 1;
            if f.regions.add(r.start, r.end) == Added::TableFull {
                f.skipped.0 += 1;
                f.skipped.1 += r.end - r.start;
            }
        }
        f.total = f.regions.frames();
        f.next = f.regions.as_slice().first().map_or(0, |r| r.0);
    });
}

/// Logs the region table (once the logger exists): how many usable regions the boot memory
/// map had, what they became, and any that were skipped and why.
pub fn log_regions() {
    let f = crate::arch::x86_64::cpu::without_interrupts(|| {
        let f = FRAMES.lock();
        (f.usable_in_map, f.regions, f.skipped, f.total)
    });
    let (in_map, regions, (skipped, skipped_bytes), total) = f;
    log::info!(
        "memory: {in_map} usable regions in the boot memory map, {} after merging adjacent ones; {} frames ({} MiB)",
        regions.as_slice().len(),
        total,
        (total * PAGE) >> 20
    );
    for &(start, end) in regions.as_slice() {
        log::info!(
            "memory:   usable {start:#012x}..{end:#012x} ({} KiB)",
            (end - start) >> 10
        );
    }
    if skipped > 0 {
        log::warn!(
            "memory: skipped {skipped} usable regions ({} MiB): the frame allocator's table of {MAX_REGIONS} regions is full",
            skipped_bytes >> 20
        );
    }
}

impl Frames {
    fn alloc(&mut self) -> Option<u64> {
        if self.free_head != 0 {
            let frame = self.free_head;
            // SAFETY: every frame on the free list was given back through `free`, which wrote
            // the next link into its first word; the frame is mapped at phys_offset + frame.
            self.free_head = unsafe { ((self.phys_offset + frame) as *const u64).read() };
            self.in_use += 1;
            return Some(frame);
        }
        let regions = self.regions.as_slice();
        while self.region < regions.len() {
            let (_, end) = regions[self.region];
            if self.next < end {
                let frame = self.next;
                self.next += PAGE;
                self.in_use += 1;
                return Some(frame);
            }
            self.region += 1;
            if let Some(&(start, _)) = regions.get(self.region) {
                self.next = start;
            }
        }
        None
    }

    fn free(&mut self, frame: u64) {
        // SAFETY: the caller gave up the frame (a `Frame` was consumed by `give_back`); it is usable RAM mapped at
        // phys_offset + frame, and nothing else references it now.
        unsafe { ((self.phys_offset + frame) as *mut u64).write(self.free_head) };
        self.free_head = frame;
        self.in_use -= 1;
    }
}

/// A physical frame that its holder owns: allocated, and neither mapped nor referenced
/// anywhere else. Not `Copy`: mapping it consumes it ([`super::stackmap::map_page`]), and
/// [`give_back`] returns it to the allocator, so a frame cannot be freed or mapped twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame(PhysFrame);

impl Frame {
    /// The frame's physical address.
    pub fn addr(&self) -> u64 {
        self.0.start_address().as_u64()
    }

    /// Takes ownership of a frame again.
    ///
    /// # Safety
    /// `addr` must be a frame from [`alloc_zeroed`] that no mapping, reference or other
    /// `Frame` names any more (it was just unmapped and flushed, or kept as a raw address by
    /// its only owner).
    pub(super) unsafe fn from_addr(addr: u64) -> Frame {
        Frame(PhysFrame::containing_address(PhysAddr::new(addr)))
    }

    /// Gives up ownership, leaving the raw frame for a page-table entry.
    pub(super) fn into_phys(self) -> PhysFrame {
        self.0
    }
}

/// Allocates one 4 KiB frame, zero-filled.
pub fn alloc_zeroed() -> Option<Frame> {
    let f = crate::arch::x86_64::cpu::without_interrupts(|| FRAMES.lock().alloc())?;
    let virt = super::phys_offset() + f;
    // SAFETY: the frame was just taken from the allocator, so nothing else uses it, and it is
    // mapped writable through the physical-memory window.
    unsafe { core::ptr::write_bytes(virt as *mut u8, 0, PAGE as usize) };
    Some(Frame(PhysFrame::containing_address(PhysAddr::new(f))))
}

/// Returns a frame to the allocator.
pub fn give_back(frame: Frame) {
    let a = frame.addr();
    crate::arch::x86_64::cpu::without_interrupts(|| FRAMES.lock().free(a));
}

/// Frames in total and in use.
pub fn stats() -> FrameStats {
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let f = FRAMES.lock();
        FrameStats {
            total: f.total,
            in_use: f.in_use,
        }
    })
}

/// Hands frames to the page-table code of the `x86_64` crate (for intermediate tables).
pub(super) struct TableFrames;

// SAFETY: `alloc_zeroed` returns frames that are unused and zero-filled, as the trait requires;
// ownership passes to the page table that uses it.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_zeroed().map(Frame::into_phys)
    }
}
