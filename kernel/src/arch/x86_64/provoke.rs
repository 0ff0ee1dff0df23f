//! Deliberate CPU events for scenarios and tests. Each function documents what the CPU does.

use core::arch::asm;

/// Selector loaded by [`general_protection`]: GDT index 10, past the end of the kernel's
/// 5-entry GDT, so `mov ds` raises #GP with this selector as the error code
/// (SDM Vol. 3A §6.13: the error code is the segment selector index with TI and EXT).
pub const BAD_SELECTOR: u16 = 10 << 3;

/// Executes `int3`. The #BP handler counts the hit and returns past the instruction.
#[inline(never)]
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
    unsafe {
        asm!("mov {0}, byte ptr [{1}]", out(reg_byte) v, in(reg) addr, options(nostack, preserves_flags))
    };
    v
}

/// Writes a non-zero marker word at `addr`, which must lie in the running thread's mapped
/// stack below the current stack pointer (checked; panics otherwise). Used to calibrate the
/// high-water mark: the deepest word the thread ever wrote is then exactly known.
pub fn mark_stack_word(addr: u64, stack_lo: u64) {
    let rsp = super::cpu::rsp();
    assert!(
        addr.is_multiple_of(8) && addr >= stack_lo && addr + 8 <= rsp - 64,
        "marker {addr:#x} is not free stack below RSP {rsp:#x}"
    );
    // SAFETY: checked above: the word is inside the running thread's own mapped stack, below
    // the live part (RSP minus a margin); nothing there is in use, and the kernel has no red
    // zone (x86_64-unknown-none), so the compiler keeps no data below RSP.
    unsafe {
        asm!("mov qword ptr [{0}], {1}", in(reg) addr, in(reg) 0x5354_4b4c_4142_u64, options(nostack, preserves_flags))
    };
}

/// Moves RSP to `edge` (the lowest mapped address of the running thread's stack) and pushes
/// one word, so that the push itself is the access below the mapped edge: on a normal #PF gate
/// the CPU then cannot push the #PF frame either, and the fault becomes #DF. Returns the TSC
/// cycles the push took (fault handling included). `edge` must be 16-byte aligned, in the
/// running thread's growable stack (checked by the caller), with RSP above it.
pub fn push_below(edge: u64) -> u64 {
    let cycles: u64;
    // SAFETY: only RSP moves, to `edge`, and back; the pushed word lands below the mapped
    // part, where the fault handler maps the page (or stops the machine). Nothing between the
    // two RSP moves touches memory through RSP but the push, and interrupts that arrive
    // meanwhile push their frames below `edge`, which the same growth paths handle. r12/r13
    // are declared clobbered.
    unsafe {
        asm!(
            "mov r12, rsp",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r13, rax",
            "mov rsp, {edge}",
            "push rax",
            "mov rsp, r12",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "sub rax, r13",
            edge = in(reg) edge,
            out("rax") cycles,
            out("rdx") _,
            out("r12") _,
            out("r13") _,
        )
    };
    cycles
}

/// Moves RSP to `edge` and spins with interrupts enabled until the timer tick counter at
/// `ticks` changes, so that the next interrupt frame is pushed right below the mapped edge
/// (the interrupt delivery itself is the growth fault). Same contract as [`push_below`].
pub fn spin_at_edge(edge: u64, ticks: &core::sync::atomic::AtomicU64) {
    let start = ticks.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: as in `push_below`: RSP sits at the mapped edge while the loop reads one memory
    // word through a pointer (not through RSP); only interrupt delivery pushes below it.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {edge}",
            "sti",
            "2:",
            "pause",
            "cmp [{t}], {start}",
            "je 2b",
            "mov rsp, r12",
            edge = in(reg) edge,
            t = in(reg) ticks.as_ptr(),
            start = in(reg) start,
            out("r12") _,
        )
    };
}

/// Touches `addr` with a one-byte write (the demand area faults it in).
pub fn write_byte(addr: u64, v: u8) {
    // SAFETY: a plain one-byte store; the caller names a page of the demand area, which the
    // #PF handler maps on first touch, or the fault ends the machine with a report.
    unsafe {
        asm!("mov byte ptr [{0}], {1}", in(reg) addr, in(reg_byte) v, options(nostack, preserves_flags))
    };
}
