//! What the arch layer needs to know about memory, passed in from the layer that owns it.
//!
//! The arch code sits at the bottom and imports nothing above it. Where a safe function here
//! would otherwise rest on a caller's promise about memory (is this stack mapped? does the
//! caller own it?), it asks an [`AddressSpace`] or takes an [`OwnedStack`] token instead; both
//! can only be made by code that states, in an `unsafe` block, why they hold.

use x86_64::VirtAddr;

const PAGE: u64 = 4096;

/// The page tables, as the arch code may query them.
///
/// # Safety
/// Implementors promise two things that safe code here relies on:
/// - `is_mapped(va)` is true only if the 4 KiB page containing `va` is mapped, writable,
///   ordinary memory (no device registers), at the time of the call;
/// - every kernel stack (boot, IST, thread) has an unmapped page right below its lowest
///   usable page, so a run of mapped pages that starts at a stack pointer and goes down
///   without a hole stays inside that one stack.
pub unsafe trait AddressSpace {
    /// Whether the page containing `va` is mapped.
    fn is_mapped(&self, va: VirtAddr) -> bool;

    /// Whether every page touching `[lo, hi)` is mapped (true for an empty range).
    fn is_range_mapped(&self, lo: VirtAddr, hi: VirtAddr) -> bool {
        let mut page = lo.as_u64() & !(PAGE - 1);
        while page < hi.as_u64() {
            if !self.is_mapped(VirtAddr::new(page)) {
                return false;
            }
            page += PAGE;
        }
        true
    }
}

/// Proof of exclusive use of a mapped stack: `[top - bytes, top)` is mapped, writable memory
/// that nothing else uses for as long as this value lives. It cannot be copied; the arch code
/// runs code on a stack only through one (`stackswitch::run_forever`, `stackswitch::call_on`,
/// `context::new_thread`).
#[derive(Debug)]
pub struct OwnedStack {
    top: VirtAddr,
    bytes: u64,
}

impl OwnedStack {
    /// Makes the token.
    ///
    /// # Safety
    /// `[top - bytes, top)` must be mapped, writable, ordinary memory, used by nothing else
    /// (no reference, no other token, no running code) for as long as the token lives; `top`
    /// must be 16-byte aligned and `bytes` at least one page.
    pub unsafe fn new(top: VirtAddr, bytes: u64) -> OwnedStack {
        debug_assert!(top.is_aligned(16u64) && bytes >= PAGE);
        OwnedStack { top, bytes }
    }

    /// One past the highest byte (the initial stack pointer).
    pub fn top(&self) -> VirtAddr {
        self.top
    }

    /// Lowest byte of the part the token covers.
    pub fn bottom(&self) -> VirtAddr {
        self.top - self.bytes
    }
}
