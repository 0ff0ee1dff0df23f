//! Running code on another stack. Every switch takes an [`OwnedStack`], the proof that the
//! stack is mapped and used by nothing else, except the switch to the #DF IST stack for a
//! report that never returns, whose stack this module's own caller owns (the TSS).

use core::arch::asm;

use super::entry::TrapFrame;
use super::gdt::{self, Ist};
use super::space::OwnedStack;

/// Switches RSP to `top` and calls `f(arg)` there; `f` never returns.
///
/// # Safety
/// `[top - size, top)` must be mapped, writable memory used by nothing else for as long as
/// `f` runs (forever), where `size` is whatever `f` needs, and `top` must be 16-byte aligned.
unsafe fn run_on_stack(top: u64, f: extern "sysv64" fn(u64) -> !, arg: u64) -> ! {
    // SAFETY: the caller guarantees the new stack; `f` never returns, so the old stack and
    // every register are abandoned. RBP is zeroed so backtraces end at `f`.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) top,
            f = in(reg) f,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// Switches for good to `stack` and calls `f(arg)` there (the boot stack).
pub fn run_forever(stack: OwnedStack, f: extern "sysv64" fn(u64) -> !, arg: u64) -> ! {
    // Consumed here: the stack is in use for as long as `f` runs, which is forever.
    let top = stack.top().as_u64();
    // SAFETY: an `OwnedStack` is mapped memory that only its holder uses, and this function
    // consumed it; its top is 16-byte aligned (the token's contract).
    unsafe { run_on_stack(top, f, arg) }
}

struct ReportArgs<'a> {
    frame: &'a TrapFrame,
    cr2: u64,
    f: fn(&TrapFrame, u64) -> !,
}

extern "sysv64" fn report_trampoline(args: u64) -> ! {
    // SAFETY: `args` is the address of the `ReportArgs` that `call_on_df_stack` built on the
    // stack it left; that stack stays mapped and untouched because nothing returns to it.
    let a = unsafe { &*(args as *const ReportArgs<'_>) };
    (a.f)(a.frame, a.cr2)
}

/// Calls `f(frame, cr2)` on the #DF IST stack and never returns. For reporting a fault whose
/// own stack is exhausted (Linux's `call_on_stack` route in `handle_stack_overflow`).
pub fn call_on_df_stack(frame: &TrapFrame, cr2: u64, f: fn(&TrapFrame, u64) -> !) -> ! {
    let args = ReportArgs { frame, cr2, f };
    let top = gdt::ist_area(Ist::DoubleFault).end;
    // SAFETY: `top` is the top of the #DF IST stack, which the TSS owns. Reusing it is safe
    // because this path never returns: if a #DF arrives meanwhile it rewinds the same stack,
    // and it ends the machine too.
    unsafe {
        run_on_stack(
            top,
            report_trampoline,
            &args as *const ReportArgs<'_> as u64,
        )
    }
}

/// Runs `f` on `stack`, then switches back and returns. `f` may use the stack as deep as it
/// is mapped; its guard page catches the rest.
pub fn call_on(stack: &mut OwnedStack, f: &mut dyn FnMut()) {
    // SAFETY: the exclusive borrow of an `OwnedStack` means `[bottom, top)` is mapped and
    // used by nothing else during the call, and its top is 16-byte aligned.
    unsafe { call_with_rsp(stack.top().as_u64(), f) }
}

/// Calls `f` with RSP at `top`, then restores RSP and returns.
///
/// # Safety
/// `top` must be 16-byte aligned, and the memory below it, as deep as `f` goes, must be free
/// stack memory that nothing else uses during the call (unmapped pages below it must be ones
/// the fault path maps or reports, as under a guarded stack).
pub(super) unsafe fn call_with_rsp(top: u64, f: &mut dyn FnMut()) {
    extern "sysv64" fn tramp(f: &mut &mut dyn FnMut()) {
        (*f)()
    }
    let mut f = f;
    // SAFETY: the caller guarantees the stack below `top`; the call is 16-byte aligned.
    // r12 is callee-saved, so it still holds the old RSP when `tramp` returns; every
    // caller-saved register is declared clobbered.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {tramp}",
            "mov rsp, r12",
            top = in(reg) top,
            tramp = sym tramp,
            in("rdi") &mut f,
            out("r12") _,
            clobber_abi("sysv64"),
        )
    }
}
