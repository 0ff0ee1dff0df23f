//! Deliberate CPU events for scenarios and tests. Each function documents what the CPU does,
//! and checks the promise about memory it rests on, or is `unsafe` and says what it is.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;

use super::space::AddressSpace;

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

/// Reads the byte at `addr` with one load instruction.
///
/// # Safety
/// Either `addr` is unmapped (the load faults and the #PF handler decides: it maps memory
/// there and the load is retried, or it stops the machine), or it is mapped ordinary memory
/// that no one writes concurrently. The value is an integer, valid for any bit pattern.
pub unsafe fn read_byte(addr: u64) -> u8 {
    let v: u8;
    // SAFETY: a plain one-byte load, allowed by the caller's promise.
    unsafe {
        asm!("mov {0}, byte ptr [{1}]", out(reg_byte) v, in(reg) addr, options(nostack, preserves_flags))
    };
    v
}

/// Reads the byte at `addr`, which faults, and then, in the same instruction sequence with no
/// stack use in between, the two words at `first` and `second`. For watching a saved frame
/// across a nested fault: the nested handler restores every register, but may have written
/// over this code's stack frames (the `pf-ist-naive` hazard), so nothing may be kept there.
///
/// # Safety
/// `addr` must satisfy [`read_byte`]'s contract; `first` and `second` must be mapped and
/// 8-byte aligned.
#[inline(always)]
pub unsafe fn read_byte_then_words(addr: u64, first: *const u64, second: *const u64) -> (u64, u64) {
    let (a, b): (u64, u64);
    // SAFETY: the byte load is allowed by the caller's promise, the two word loads read
    // mapped, aligned memory the caller names; only registers carry values across the fault.
    unsafe {
        asm!(
            "mov {t}, byte ptr [{addr}]",
            "mov {a}, [{p}]",
            "mov {b}, [{q}]",
            addr = in(reg) addr,
            p = in(reg) first,
            q = in(reg) second,
            // `a` is written while `q` is still to be read: it must not share its register.
            t = out(reg_byte) _,
            a = out(reg) a,
            b = lateout(reg) b,
            options(nostack, preserves_flags, readonly)
        )
    };
    (a, b)
}

/// Writes the byte `v` at `addr` with one store instruction.
///
/// # Safety
/// `addr` must be memory that no Rust object owns and no one else accesses concurrently
/// (a demand-paged area, say); if it is unmapped the #PF handler maps it or stops the machine.
pub unsafe fn write_byte(addr: u64, v: u8) {
    // SAFETY: a plain one-byte store, allowed by the caller's promise.
    unsafe {
        asm!("mov byte ptr [{0}], {1}", in(reg) addr, in(reg_byte) v, options(nostack, preserves_flags))
    };
}

/// Why a stack probe refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeError {
    /// The address is not 8-byte aligned.
    Misaligned,
    /// It is not below the current stack pointer.
    NotBelowRsp,
    /// The memory between it and the stack pointer is not mapped without a hole, so it may
    /// not be this stack's own.
    NotOwnStack,
}

/// Checks that `[addr, RSP)` (RSP being the caller's, minus a margin for this check's own
/// frame) is mapped without a hole: by the [`AddressSpace`] contract it is then free memory of
/// the running stack, below everything live.
fn own_free_stack(addr: u64, space: &impl AddressSpace) -> Result<(), EdgeError> {
    if !addr.is_multiple_of(8) {
        return Err(EdgeError::Misaligned);
    }
    let rsp = super::cpu::rsp();
    if addr + 64 > rsp {
        return Err(EdgeError::NotBelowRsp);
    }
    if !space.is_range_mapped(VirtAddr::new_truncate(addr), VirtAddr::new_truncate(rsp)) {
        return Err(EdgeError::NotOwnStack);
    }
    Ok(())
}

/// Writes a non-zero marker word at `addr`, which must be free memory of the running stack
/// below the stack pointer (checked). Used to calibrate the high-water mark: the deepest word
/// the thread ever wrote is then exactly known.
pub fn mark_stack_word(addr: u64, space: &impl AddressSpace) -> Result<(), EdgeError> {
    own_free_stack(addr, space)?;
    // SAFETY: checked above: the word lies in the running stack's own mapped memory below the
    // live part; the kernel has no red zone (x86_64-unknown-none), so the compiler keeps no
    // data below RSP.
    unsafe {
        asm!("mov qword ptr [{0}], {1}", in(reg) addr, in(reg) 0x5354_4b4c_4142_u64, options(nostack, preserves_flags))
    };
    Ok(())
}

/// Moves RSP to `edge` and pushes one word, so that the push itself is the access below the
/// mapped edge: on a normal #PF gate the CPU then cannot push the #PF frame either, and the
/// fault becomes #DF. Returns the TSC cycles the push took, fault handling included. `edge`
/// must be 16-byte aligned and `[edge, RSP)` the running stack's own mapped memory (checked);
/// the page below it is normally unmapped, and the growth path maps it.
pub fn push_below(edge: u64, space: &impl AddressSpace) -> Result<u64, EdgeError> {
    own_free_stack(edge, space)?;
    let cycles: u64;
    // SAFETY: `[edge, RSP)` is the running stack's own free memory (checked), and the pushed
    // word lands right below it: on this stack's unmapped page (the fault handler maps it or
    // stops the machine) or, if already mapped, on the same stack's free memory. Only RSP
    // moves, to `edge` and back; interrupts that arrive meanwhile push their frames below
    // `edge` the same way. r12/r13 are declared clobbered.
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
    Ok(cycles)
}

/// Moves RSP to `at` and spins with interrupts enabled until the counter `ticks` changes, so
/// that the next interrupt frame is pushed right below `at` (with `at` the mapped edge, the
/// interrupt's delivery is the growth fault). Interrupts are disabled the moment the change is
/// seen, and the counter is read again then: the returned difference is exactly what the one
/// delivery that ended the wait added (2 would mean it was counted twice). Interrupts are
/// enabled on return. Same contract as [`push_below`].
pub fn spin_at(
    at: u64,
    ticks: &AtomicU64,
    arm: fn(),
    space: &impl AddressSpace,
) -> Result<u64, EdgeError> {
    own_free_stack(at, space)?;
    // Interrupts stay off from here until RSP is parked (the `sti` below), so the interrupt
    // cannot arrive early, on the unparked stack, however slowly the machine runs; whatever
    // makes it come (a one-shot timer, say) starts after `start` is read, so the loop cannot
    // miss it either.
    super::cpu::disable_interrupts();
    let start = ticks.load(Ordering::Relaxed);
    arm();
    let end: u64;
    // SAFETY: as in `push_below`: RSP sits at `at`, above which is this stack's own live
    // data, while the loop reads one word through a pointer (not through RSP); only interrupt
    // delivery pushes below `at`.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {at}",
            "sti",
            "2:",
            "pause",
            "cmp [{t}], {start}",
            "je 2b",
            "cli",
            "mov {end}, [{t}]",
            "mov rsp, r12",
            "sti",
            at = in(reg) at,
            t = in(reg) ticks.as_ptr(),
            start = in(reg) start,
            end = out(reg) end,
            out("r12") _,
        )
    };
    Ok(end - start)
}

/// Moves RSP to `at`, pushes `value` and pops it again, and returns what was popped: with
/// `at` the mapped edge, the push is the growth fault and must be re-run exactly. Same
/// contract as [`push_below`].
pub fn push_at(at: u64, value: u64, space: &impl AddressSpace) -> Result<u64, EdgeError> {
    own_free_stack(at, space)?;
    let popped: u64;
    // SAFETY: as in `push_below`: only the pushed word goes below `at`, onto this stack's own
    // unmapped page (the fault path maps it) or its own free memory.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {at}",
            "push {v}",
            "pop {out}",
            "mov rsp, r12",
            at = in(reg) at,
            v = in(reg) value,
            out = lateout(reg) popped,
            out("r12") _,
        )
    };
    Ok(popped)
}

/// Moves RSP to `at` and calls `f` there, so that everything `f` does uses the stack from
/// `at` down, then moves RSP back. Same contract as [`push_below`].
pub fn call_at(at: u64, f: &mut dyn FnMut(), space: &impl AddressSpace) -> Result<(), EdgeError> {
    own_free_stack(at, space)?;
    // SAFETY: `[at, RSP)` is the running stack's own free memory (checked), rounded down to 16
    // bytes for the call, and `f` uses the stack from there down: this stack's own unmapped
    // pages (the fault path maps them or stops the machine) or its own free memory.
    unsafe { super::stackswitch::call_with_rsp(at & !15, f) };
    Ok(())
}

/// Moves RSP to `at` and executes `int3`, so the #BP frame (and its handler) go right below
/// `at`. Same contract as [`push_below`].
pub fn int3_at(at: u64, space: &impl AddressSpace) -> Result<(), EdgeError> {
    own_free_stack(at, space)?;
    // SAFETY: as in `push_below`: only the CPU's #BP frame and the handler go below `at`.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {at}",
            "int3",
            "mov rsp, r12",
            at = in(reg) at,
            out("r12") _,
        )
    };
    Ok(())
}

/// Writes one byte `distance` bytes below the stack pointer, where nothing is mapped (checked):
/// the write must fault, and the #PF handler decides what it is. A stray pointer into the
/// thread's own unmapped stack range looks like this; growing the stack for it would hide it.
pub fn poke_unmapped_below_rsp(distance: u64, space: &impl AddressSpace) -> Result<u64, EdgeError> {
    let addr = super::cpu::rsp()
        .checked_sub(distance)
        .ok_or(EdgeError::NotBelowRsp)?;
    if distance < 64 {
        return Err(EdgeError::NotBelowRsp);
    }
    if space.is_mapped(VirtAddr::new_truncate(addr)) {
        return Err(EdgeError::NotOwnStack);
    }
    // SAFETY: no page is mapped at `addr` (checked), so the store cannot touch any object:
    // it faults, and whatever the fault path maps there is fresh memory no one references.
    unsafe { write_byte(addr, 0x77) };
    Ok(addr)
}

/// Moves RSP to `at` and writes `v` at `addr`, so that a page fault on `addr` is taken with
/// RSP right above the stack's edge.
///
/// # Safety
/// `addr` must satisfy [`write_byte`]'s contract; the stack side is checked as for
/// [`push_below`].
pub unsafe fn write_byte_at(
    at: u64,
    addr: u64,
    v: u8,
    space: &impl AddressSpace,
) -> Result<(), EdgeError> {
    own_free_stack(at, space)?;
    // SAFETY: the store is allowed by the caller's promise; the stack side is as in
    // `push_below` (only the #PF frame and its handler go below `at`).
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {at}",
            "mov byte ptr [{a}], {v}",
            "mov rsp, r12",
            at = in(reg) at,
            a = in(reg) addr,
            v = in(reg_byte) v,
            out("r12") _,
        )
    };
    Ok(())
}

/// A non-canonical address (bit 47 clear, bits 63..48 set): any stack access through it is a
/// stack-segment fault (SDM Vol. 3A, Interrupt 12: "a memory address referencing the SS
/// segment is in a non-canonical form").
pub const NON_CANONICAL_RSP: u64 = 0xffff_0000_0000_1000;

/// Writes `value` into CR2. CR2 only reports page-fault addresses to software; writing it
/// changes no translation and no memory, so this is safe. Used to plant a stale value.
pub fn plant_cr2(value: u64) {
    // SAFETY: a write to CR2 has no effect on memory or on address translation.
    unsafe { asm!("mov cr2, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}

/// Loads a non-canonical RSP and pushes: #SS, a contributory exception; its delivery on the
/// #SS gate (no IST) pushes the frame through the same RSP and faults again with #SS, and a
/// contributory exception during the delivery of another is a #DF (SDM Vol. 3A, Table 6-5).
/// #DF has its own IST stack, so it is delivered; its handler finds no page fault behind it
/// and stops the machine. Never returns.
pub fn double_fault_by_stack_segment() -> ! {
    // SAFETY: the push faults before writing anything (the address is not canonical), and so
    // does the delivery of that fault; the #DF that follows runs on its IST stack and stops the
    // machine (#DF is an abort: nothing resumes here). Interrupts are off so that no interrupt
    // is delivered through the broken RSP first.
    unsafe {
        asm!(
            "cli",
            "mov rsp, {bad}",
            "push rax",
            "ud2",
            bad = in(reg) NON_CANONICAL_RSP,
            options(noreturn)
        )
    }
}

/// What [`rep_stos_down`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepStos {
    /// RCX after `rep stosq` (0 when every iteration ran).
    pub rcx: u64,
    /// RDI after `rep stosq` (the address below the last quadword written, as DF = 1).
    pub rdi: u64,
    /// Quadwords `repe scasq` had left when it stopped (0 if it reached the end).
    pub left: u64,
    /// Whether the last quadword `repe scasq` compared held the value.
    pub equal: bool,
}

/// Moves RSP to `at - bytes` (a frame of `bytes` bytes), fills it from the top down with one
/// `rep stosq` of `value` (DF = 1, RDI from `at - 8`), then checks every quadword with
/// `repe scasq`, and moves RSP back. With `at` just above the mapped edge, the string store
/// crosses into the unmapped page part way through: the fault handler must resume it exactly
/// where it stopped. `bytes` must be a non-zero multiple of 8; same stack contract as
/// [`push_below`].
pub fn rep_stos_down(
    at: u64,
    bytes: u64,
    value: u64,
    space: &impl AddressSpace,
) -> Result<RepStos, EdgeError> {
    own_free_stack(at, space)?;
    if bytes == 0 || !bytes.is_multiple_of(8) || bytes > at {
        return Err(EdgeError::Misaligned);
    }
    let (rcx, rdi, left, equal): (u64, u64, u64, u8);
    // SAFETY: `[at, RSP)` is the running stack's own free memory (checked); the stores go to
    // `[at - bytes, at)`, below it: this stack's own free memory or its unmapped pages, which
    // the fault path maps or stops the machine for. RSP sits at the frame's bottom, so every
    // store is above RSP, as a function filling its own frame. The entry stubs clear DF
    // before any handler runs, and `iretq` restores it. r12 is declared clobbered.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {frame}",
            "std",
            "mov rdi, {top}",
            "mov rcx, {n}",
            "rep stosq",
            "mov {rcx_out}, rcx",
            "mov {rdi_out}, rdi",
            "mov rdi, {top}",
            "mov rcx, {n}",
            "repe scasq",
            "sete {eq}",
            "cld",
            "mov rsp, r12",
            frame = in(reg) at - bytes,
            top = in(reg) at - 8,
            n = in(reg) bytes / 8,
            rcx_out = out(reg) rcx,
            rdi_out = out(reg) rdi,
            eq = out(reg_byte) equal,
            in("rax") value,
            out("rcx") left,
            out("rdi") _,
            out("r12") _,
        )
    };
    Ok(RepStos {
        rcx,
        rdi,
        left,
        equal: equal != 0,
    })
}

/// Executes `int 2`: the NMI handler runs as if an NMI had arrived here (through the NMI
/// gate and its IST stack), without the hardware's NMI blocking.
pub fn nmi_like() {
    // SAFETY: a software interrupt through the NMI gate; the handler returns with `iretq`.
    unsafe { asm!("int 2") };
}
