//! Kernel-thread context switch.
//!
//! A switched-out thread's callee-saved registers sit on its own stack; a table indexed by
//! context id (the thread's stack slot) holds only the stack pointer. The same instruction sequence that moves RSP to the next stack also
//! publishes the next thread's id as "current", with interrupts off, so no interrupt handler
//! can observe RSP on one thread's stack and "current" naming another (the race tglx pointed
//! out in the dynamic-stacks RFC, LKML 2024).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::space::OwnedStack;

/// Context ids `0..MAX_THREAD_CONTEXTS` are for thread stacks (the kernel uses its slot
/// index); [`BOOT_CONTEXT`] is the boot thread's.
pub const MAX_THREAD_CONTEXTS: usize = 4096;
/// The boot thread's context id.
pub const BOOT_CONTEXT: usize = MAX_THREAD_CONTEXTS;
const CONTEXTS_LEN: usize = MAX_THREAD_CONTEXTS + 1;

/// Saved stack pointer of every switched-out context; 0 means "running or unused".
/// Only `new_thread` and `switch_asm` write a non-zero value, always a pointer to a frame
/// they laid out; `retire` clears it before the slot's stack is unmapped.
static CONTEXTS: [AtomicU64; CONTEXTS_LEN] = [const { AtomicU64::new(0) }; CONTEXTS_LEN];

/// Callee-saved registers pushed by `switch_asm`, plus the return address.
const SAVED_WORDS: u64 = 7;

/// Prepares a new thread's stack so that switching to context `id` calls `entry(arg)` on it
/// with interrupts disabled. The caller keeps `stack` for as long as the thread lives.
pub fn new_thread(
    id: usize,
    stack: &mut OwnedStack,
    entry: extern "sysv64" fn(u64) -> !,
    arg: u64,
) {
    assert!(id < BOOT_CONTEXT);
    let top = stack.top().as_u64();
    let rsp = top - (SAVED_WORDS + 1) * 8;
    // Pop order in `switch_asm`: r15, r14, r13, r12, rbx, rbp, then `ret`.
    let frame: [u64; 8] = [
        0,
        entry as usize as u64,
        arg,
        0,
        0,
        0,
        thread_trampoline as *const () as u64,
        0,
    ];
    // SAFETY: [rsp, top) is the top 64 bytes of `stack`, which the exclusive borrow of its
    // token says is mapped and used by nothing else (its thread has not run yet); 16-byte
    // aligned by the token's contract.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
    CONTEXTS[id].store(rsp, Ordering::Release);
}

/// Forgets context `id` (its thread exited and will never run again).
pub fn retire(id: usize) {
    CONTEXTS[id].store(0, Ordering::Release);
}

/// Switches from the running context `from` to the saved context `to`, and sets `current`
/// to `next_tid` in the same instruction sequence that moves RSP. Returns when something
/// switches back to `from`. Must be called with interrupts disabled.
pub fn switch(from: usize, to: usize, current: &AtomicU64, next_tid: u64) {
    assert!(
        !super::cpu::interrupts_enabled(),
        "context switch with interrupts enabled"
    );
    let next_rsp = CONTEXTS[to].swap(0, Ordering::Acquire);
    assert!(
        next_rsp != 0,
        "switch to context {to}, which is not switched out"
    );
    // SAFETY: `next_rsp` was stored by `new_thread` or `switch_asm` and not retired, so it
    // points at a frame they laid out on a stack that is still mapped (a slot's stack is
    // unmapped only after `retire`). `CONTEXTS[from]` and `current` are valid atomic words.
    // Interrupts are off, so nothing runs between the two halves of the switch.
    unsafe {
        switch_asm(
            CONTEXTS[from].as_ptr(),
            next_rsp,
            current.as_ptr(),
            next_tid,
        )
    }
}

#[unsafe(naked)]
unsafe extern "sysv64" fn switch_asm(
    prev_rsp: *mut u64,
    next_rsp: u64,
    current: *mut u64,
    next_id: u64,
) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "mov [rdx], rcx",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    );
}

/// First code of a new thread: `r14` holds the entry, `r13` its argument.
#[unsafe(naked)]
unsafe extern "sysv64" fn thread_trampoline() {
    naked_asm!(
        "xor ebp, ebp",
        "mov rdi, r13",
        "and rsp, -16",
        "call r14",
        "ud2",
    );
}
