//! A demand-paged area: the first touch of a page faults and the #PF handler maps a zeroed
//! frame there. It is the "plain demand-paging #PF" that stack growth is measured against, and
//! the ordinary, non-stack fault that the `pf-ist` path must move off its IST stack.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{frame, stackmap};

/// Start of the area (2 GiB into the kernel's virtual area).
pub const BASE: u64 = super::KVA_BASE + (2 << 30);
/// Size of the area.
pub const SIZE: u64 = 8 << 20;
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
    if stackmap::map_page(addr & !(PAGE - 1), f) {
        FAULTS.fetch_add(1, Ordering::Relaxed);
        true
    } else {
        frame::give_back(f);
        false
    }
}

/// Unmaps every page of the area (for repeated measurements); returns how many were mapped.
pub fn reset() -> u64 {
    stackmap::unmap_range(BASE, BASE + SIZE)
}

/// Demand faults served so far.
pub fn faults() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}
