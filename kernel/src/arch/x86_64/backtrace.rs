//! Frame-pointer backtraces (the kernel is built with `-C force-frame-pointers=yes`).
//!
//! Each frame is `[rbp] = caller's rbp`, `[rbp + 8] = return address`. The walk only reads
//! inside the stack range the caller names, and stops at the first link that leaves it or does
//! not move up the stack, so a corrupt chain ends the trace instead of faulting.

/// Most frames a report shows.
pub const MAX_FRAMES: usize = 24;

/// Fills `out` with return addresses, starting from frame pointer `rbp`, reading only within
/// `[lo, hi)` (which must be mapped memory). Returns how many were written.
pub fn walk(mut rbp: u64, lo: u64, hi: u64, out: &mut [u64]) -> usize {
    let mut n = 0;
    while n < out.len() {
        if !rbp.is_multiple_of(8) || rbp < lo || rbp.saturating_add(16) > hi {
            break;
        }
        // SAFETY: [rbp, rbp + 16) lies inside [lo, hi), which the caller guarantees is mapped
        // stack memory; both reads are aligned u64 loads of plain integers.
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
