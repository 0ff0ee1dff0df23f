//! Trap entry: one naked stub per vector, and the common path that saves a full register
//! frame, calls [`super::trap::dispatch`] and returns with `iretq`.
//!
//! Stack layout at the call (lowest address first) is exactly [`TrapFrame`]:
//! 15 general registers pushed by `trap_common`, then the vector and error code pushed by the
//! stub (a zero error code for vectors where the CPU pushes none), then the frame the CPU
//! pushed (RIP, CS, RFLAGS, RSP, SS; SDM Vol. 3A §6.14.1, 64-bit mode always pushes SS:RSP).
//! The CPU aligns RSP to 16 bytes before pushing its frame; the 22 quadwords above keep the
//! call to `dispatch` 16-byte aligned as the System V ABI requires.

use core::arch::naked_asm;

/// Registers saved on trap entry, in memory order. `dispatch` may modify it; the exit path
/// restores every field, so a handler can resume the interrupted code anywhere it likes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Size of a [`TrapFrame`] in bytes (the assembly below depends on it).
pub const TRAP_FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(TRAP_FRAME_SIZE == 22 * 8);

/// The shared tail of every stub.
#[unsafe(naked)]
unsafe extern "sysv64" fn trap_common() {
    // Preconditions: the stub pushed the error code (or 0) and the vector.
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "cld",
        "mov rdi, rsp",
        "call {dispatch}",
        "jmp {ret}",
        dispatch = sym super::trap::dispatch,
        ret = sym trap_return,
    );
}

/// Restores a [`TrapFrame`] at RSP and returns from the trap.
#[unsafe(naked)]
unsafe extern "sysv64" fn trap_return() {
    naked_asm!(
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        // Drop vector and error code.
        "add rsp, 16",
        "iretq",
    );
}

/// Continues handling a trap on the interrupted stack instead of the IST stack it arrived on:
/// copies `frame` just below the interrupted RSP, switches there, calls `handler` on the copy
/// and returns to the interrupted code from it. The IST stack is left behind, so a nested
/// trap of the same vector (which rewinds the IST stack to its top) can no longer overwrite
/// this frame. This is how the 2026 dynamic-stacks series treats #PFs that are not stack
/// growth. Returns `false` (doing nothing) if the interrupted stack has no mapped room.
pub fn continue_on_interrupted_stack(
    frame: &TrapFrame,
    handler: extern "sysv64" fn(&mut TrapFrame),
) -> bool {
    // 128 bytes of margin below the interrupted RSP (no red zone in this kernel, but cheap).
    let new = (frame.rsp - 128 - TRAP_FRAME_SIZE as u64) & !15;
    let room =
        crate::stack::find(new).is_some_and(|s| s.in_mapped(new) && s.in_mapped(frame.rsp - 1));
    if !room {
        return false;
    }
    // SAFETY: [new, new + TRAP_FRAME_SIZE) lies in the mapped part of the interrupted stack
    // below its saved RSP, which is free memory (nothing lives below RSP); the copy is then
    // the frame that `trap_return` restores, ending with iretq to the interrupted code with
    // its own RSP. The IST frame `frame` points at is abandoned, never used again.
    unsafe {
        core::ptr::copy_nonoverlapping(frame as *const TrapFrame, new as *mut TrapFrame, 1);
        core::arch::asm!(
            "mov rsp, rax",
            "mov rdi, rsp",
            "call rcx",
            "jmp {ret}",
            in("rax") new,
            in("rcx") handler,
            ret = sym trap_return,
            options(noreturn),
        )
    }
}

/// Defines an entry stub for a vector without a CPU-pushed error code.
macro_rules! stub_no_code {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "sysv64" fn $name() {
            naked_asm!("push 0", "push {v}", "jmp {common}", v = const $vector, common = sym trap_common);
        }
    };
}

/// Defines an entry stub for a vector where the CPU pushes an error code.
macro_rules! stub_with_code {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "sysv64" fn $name() {
            naked_asm!("push {v}", "jmp {common}", v = const $vector, common = sym trap_common);
        }
    };
}

macro_rules! stubs {
    ($( $kind:ident $name:ident $vector:literal ),* $(,)?) => {
        $( $kind!($name, $vector); )*
        /// Entry addresses by vector, for the IDT.
        pub fn stub_addresses() -> [(u8, u64); STUB_COUNT] {
            [ $( ($vector, $name as *const () as u64) ),* ]
        }
    };
}

/// Vectors that have a stub: the 32 exceptions and the 16 remapped legacy PIC lines.
pub const STUB_COUNT: usize = 48;

// SDM Vol. 3A Table 6-1: vectors 8, 10-14, 17, 21, 29 and 30 push an error code.
stubs! {
    stub_no_code v0 0, stub_no_code v1 1, stub_no_code v2 2, stub_no_code v3 3,
    stub_no_code v4 4, stub_no_code v5 5, stub_no_code v6 6, stub_no_code v7 7,
    stub_with_code v8 8, stub_no_code v9 9, stub_with_code v10 10, stub_with_code v11 11,
    stub_with_code v12 12, stub_with_code v13 13, stub_with_code v14 14, stub_no_code v15 15,
    stub_no_code v16 16, stub_with_code v17 17, stub_no_code v18 18, stub_no_code v19 19,
    stub_no_code v20 20, stub_with_code v21 21, stub_no_code v22 22, stub_no_code v23 23,
    stub_no_code v24 24, stub_no_code v25 25, stub_no_code v26 26, stub_no_code v27 27,
    stub_no_code v28 28, stub_with_code v29 29, stub_with_code v30 30, stub_no_code v31 31,
    stub_no_code v32 32, stub_no_code v33 33, stub_no_code v34 34, stub_no_code v35 35,
    stub_no_code v36 36, stub_no_code v37 37, stub_no_code v38 38, stub_no_code v39 39,
    stub_no_code v40 40, stub_no_code v41 41, stub_no_code v42 42, stub_no_code v43 43,
    stub_no_code v44 44, stub_no_code v45 45, stub_no_code v46 46, stub_no_code v47 47,
}

/// Reads the saved RIP and RSP of `frame` from memory, bypassing anything the compiler cached.
/// For the nested-#PF check: with #PF on an IST stack, a nested #PF writes its own hardware
/// frame over this one behind the compiler's back.
pub fn reread_rip_rsp(frame: &TrapFrame) -> (u64, u64) {
    // SAFETY: both fields are plain u64s inside a live, aligned TrapFrame; volatile reads of
    // them are always valid.
    unsafe {
        (
            core::ptr::read_volatile(&frame.rip),
            core::ptr::read_volatile(&frame.rsp),
        )
    }
}
