//! Running code on another stack.

use core::arch::asm;

/// Switches RSP to `top` and calls `f(arg)` there; `f` never returns.
///
/// # Safety
/// `[top - size, top)` must be mapped, writable memory used by nothing else for as long as
/// `f` runs (forever), and `top` must be 16-byte aligned.
pub unsafe fn run_on_stack(top: u64, f: extern "sysv64" fn(u64) -> !, arg: u64) -> ! {
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
