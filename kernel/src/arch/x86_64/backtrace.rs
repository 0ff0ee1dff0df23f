//! Frame-pointer backtraces (the kernel is built with `-C force-frame-pointers=yes`).
//!
//! Each frame is `[rbp] = caller's rbp`, `[rbp + 8] = return address`. The walk reads only
//! inside the stack range the caller names and only pages the [`AddressSpace`] says are
//! mapped, and stops at the first link that leaves the range or does not move up the stack,
//! so a corrupt chain ends the trace instead of faulting.

use core::ops::Range;
use x86_64::VirtAddr;

use super::space::AddressSpace;

/// Most frames a report shows.
pub const MAX_FRAMES: usize = 24;

/// Fills `out` with return addresses, starting from frame pointer `rbp`, reading only within
/// `stack`. Returns how many were written.
pub fn walk(mut rbp: u64, stack: Range<u64>, space: &impl AddressSpace, out: &mut [u64]) -> usize {
    let mut n = 0;
    while n < out.len() {
        if !rbp.is_multiple_of(8) || rbp < stack.start || rbp.saturating_add(16) > stack.end {
            break;
        }
        if !space.is_range_mapped(
            VirtAddr::new_truncate(rbp),
            VirtAddr::new_truncate(rbp + 16),
        ) {
            break;
        }
        // SAFETY: [rbp, rbp + 16) is 8-byte aligned and mapped, ordinary memory (checked just
        // above through the AddressSpace contract); both reads are u64 loads of plain integers
        // that no one can be writing (a report runs with interrupts off on one CPU).
        let (next, ret) = unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    n
}
