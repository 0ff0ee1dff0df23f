//! Running code on another stack.

use core::arch::asm;

use super::entry::TrapFrame;
use crate::mem::kva::OwnedArea;

/// Switches RSP to `top` and calls `f(arg)` there; `f` never returns.
///
/// # Safety
/// `[top - size, top)` must be mapped, writable memory used by nothing else for as long as
/// `f` runs (forever), and `top` must be 16-byte aligned.
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

/// Switches for good to a fresh guarded area and calls `f(arg)` there (the boot stack).
pub fn run_on_owned_stack(area: OwnedArea, f: extern "sysv64" fn(u64) -> !, arg: u64) -> ! {
    // Consumed here and never given back: the stack is in use for as long as `f` runs,
    // which is forever.
    let top = area.area().top;
    // SAFETY: an `OwnedArea` is a freshly mapped guarded area that only its holder uses, and
    // this function consumed it; its top is page aligned.
    unsafe { run_on_stack(top, f, arg) }
}

/// Calls `f(frame, cr2)` on the #DF IST stack and never returns. For reporting a fault whose
/// own stack is exhausted (Linux's `call_on_stack` route in `handle_stack_overflow`).
pub fn call_on_df_stack(frame: &TrapFrame, cr2: u64, f: fn(&TrapFrame, u64) -> !) -> ! {
    let args = ReportArgs { frame, cr2, f };
    let top = super::gdt::ist_areas()[super::gdt::Ist::DoubleFault as usize].top;
    // SAFETY: `top` is the top of the #DF IST stack, a mapped guarded area. Reusing it is safe
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

/// Runs `f` on the stack whose top is `top`, then switches back and returns. The stack must
/// be mapped from `top` down as far as `f` goes (its guard page catches the rest).
pub fn call_on_stack(top: u64, f: &mut dyn FnMut()) {
    assert!(
        top.is_multiple_of(16) && crate::mem::stackmap::is_mapped(top - 8),
        "stack top {top:#x} is not mapped"
    );
    extern "sysv64" fn tramp(f: &mut &mut dyn FnMut()) {
        (*f)()
    }
    let mut f = f;
    // SAFETY: `top` is the top of a mapped stack (checked) that the caller owns for the call.
    // r12 is callee-saved, so it still holds the old RSP when `tramp` returns; the call is
    // 16-byte aligned; every caller-saved register is declared clobbered.
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
