//! Whether a supervisor write faults: the one question delivery asks of memory.

/// Answers "does a supervisor write of 8 bytes at this linear address fault?".
///
/// The host implements it with a list of unmapped ranges ([`Unmapped`]); the kernel will
/// implement it by walking its page tables. A fault is reported as a not-present #PF.
pub trait FaultProbe {
    /// `None` if the 8-byte supervisor write at `addr` succeeds; otherwise the linear address
    /// the #PF reports in CR2 (the first byte of the write that is not mapped).
    fn supervisor_write_fault(&self, addr: u64) -> Option<u64>;
}

/// Memory in which every write succeeds.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFaults;

impl FaultProbe for NoFaults {
    fn supervisor_write_fault(&self, _addr: u64) -> Option<u64> {
        None
    }
}

/// Memory mapped everywhere except the given half-open ranges `[lo, hi)`.
#[derive(Clone, Copy, Debug)]
pub struct Unmapped<'a>(pub &'a [(u64, u64)]);

impl FaultProbe for Unmapped<'_> {
    fn supervisor_write_fault(&self, addr: u64) -> Option<u64> {
        let mut first: Option<u64> = None;
        for &(lo, hi) in self.0 {
            // Bytes addr..addr+8 (wrapping at the top of the address space).
            let mut i = 0u64;
            while i < 8 {
                let b = addr.wrapping_add(i);
                if b >= lo && b < hi {
                    first = Some(match first {
                        Some(f) if b.wrapping_sub(addr) >= f.wrapping_sub(addr) => f,
                        _ => b,
                    });
                    break;
                }
                i += 1;
            }
        }
        first
    }
}
