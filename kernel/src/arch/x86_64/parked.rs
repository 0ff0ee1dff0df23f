//! One event taken with RSP parked at a chosen address and the arithmetic flags in a fixed
//! state, observing the RSP the next instruction sees: for `fred-compare`, which takes the
//! same event under two delivery mechanisms and needs the interrupted context (RIP, RSP,
//! RFLAGS) to be the same both times.
//!
//! Each helper moves RSP to `at`, executes `test r12, 0` (ZF and PF set; CF, OF and SF clear),
//! the event instruction, reads RSP, and moves RSP back. The stack side of the contract is
//! [`super::provoke::push_below`]'s, checked the same way.

use core::arch::asm;

use super::provoke::{EdgeError, own_free_stack};
use super::space::AddressSpace;

/// Parks RSP at `$at`, runs `$insn` (which may use the extra operands), reads RSP into the
/// returned value right after it, runs `$post`, and restores RSP.
macro_rules! parked {
    ($at:expr, $insn:literal, $post:literal $(, $($ops:tt)*)?) => {{
        let after: u64;
        // SAFETY: the caller checked `[at, RSP)` with `own_free_stack` and names what the
        // instruction touches; only RSP and r12 change, and both are restored or declared.
        unsafe {
            asm!(
                "mov r12, rsp",
                "mov rsp, {at}",
                "test r12, 0",
                $insn,
                "mov {after}, rsp",
                $post,
                "mov rsp, r12",
                at = in(reg) $at,
                after = lateout(reg) after,
                out("r12") _,
                $($($ops)*)?
            )
        };
        after
    }};
}

/// `int3` with RSP at `at`: the #BP frame (and its handler) go below `at`. Returns the RSP
/// after the return (`at` when the handler resumes the interrupted context unchanged).
pub fn int3(at: u64, space: &impl AddressSpace) -> Result<u64, EdgeError> {
    own_free_stack(at, space)?;
    Ok(parked!(at, "int3", ""))
}

/// `push value` with RSP at `at` (with `at` the mapped edge, the growth fault), then `pop`.
/// Returns the RSP after the push (`at - 8`) and the value popped.
pub fn push(at: u64, value: u64, space: &impl AddressSpace) -> Result<(u64, u64), EdgeError> {
    own_free_stack(at, space)?;
    let popped: u64;
    let after = parked!(at, "push {v}", "pop {p}", v = in(reg) value, p = lateout(reg) popped);
    Ok((after, popped))
}

/// With interrupts off on entry: calls `arm` (which makes one interrupt come, a one-shot
/// timer), then `sti; hlt` with RSP at `at`, so the interrupt is taken in the halt, at the
/// instruction after it, whenever it fires; `cli` after it. Interrupts are off on return.
/// Returns the RSP after the interrupt's return.
pub fn halt(at: u64, arm: fn(), space: &impl AddressSpace) -> Result<u64, EdgeError> {
    own_free_stack(at, space)?;
    super::cpu::disable_interrupts();
    arm();
    Ok(parked!(at, "sti\n hlt", "cli"))
}

/// A one-byte store of `v` at `addr` with RSP at `at`. Returns the RSP after it.
///
/// # Safety
/// `addr` must satisfy [`super::provoke::write_byte`]'s contract.
pub unsafe fn write_byte(
    at: u64,
    addr: u64,
    v: u8,
    space: &impl AddressSpace,
) -> Result<u64, EdgeError> {
    own_free_stack(at, space)?;
    Ok(parked!(at, "mov byte ptr [{a}], {v}", "", a = in(reg) addr, v = in(reg_byte) v))
}
