//! Deliberate CPU events for scenarios and tests. Each function documents what the CPU does.

use core::arch::asm;

/// Selector loaded by [`general_protection`]: GDT index 10, past the end of the kernel's
/// 5-entry GDT, so `mov ds` raises #GP with this selector as the error code
/// (SDM Vol. 3A §6.13: the error code is the segment selector index with TI and EXT).
pub const BAD_SELECTOR: u16 = 10 << 3;

/// Executes `int3`. The #BP handler counts the hit and returns past the instruction.
pub fn breakpoint() {
    x86_64::instructions::interrupts::int3();
}

/// Loads [`BAD_SELECTOR`] into DS: #GP(0x50), which the kernel treats as fatal.
pub fn general_protection() -> ! {
    // SAFETY: the load faults before DS changes; the #GP handler reports and stops the
    // machine, so execution never continues past this instruction with a broken DS.
    unsafe { asm!("mov ds, {0:x}", in(reg) BAD_SELECTOR, options(nostack, preserves_flags)) };
    unreachable!("loading a selector past the GDT limit must raise #GP")
}

/// Reads a byte at `addr`, which the caller expects to be unmapped: the #PF handler decides
/// what happens (a report and stop for addresses nobody owns).
pub fn read_byte(addr: u64) -> u8 {
    let v: u8;
    // SAFETY: a plain one-byte load. If `addr` is unmapped the resulting #PF is handled by the
    // kernel's fault path, which either maps memory there and retries or stops the machine;
    // the loaded value is an integer, valid for any bit pattern.
    unsafe { asm!("mov {0}, byte ptr [{1}]", out(reg_byte) v, in(reg) addr, options(nostack, readonly, preserves_flags)) };
    v
}
