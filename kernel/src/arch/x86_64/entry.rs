//! Trap entry: one naked stub per vector, and the common path that saves a full register
//! frame, calls [`super::trap::dispatch`] and returns with `iretq`.
//!
//! Stack layout at the call (lowest address first) is exactly [`TrapFrame`]: 15 general
//! registers and one pad word pushed by `trap_common`; the vector, the event data and (for
//! vectors where the CPU pushes none, [`Vector::pushes_error_code`]) a zero error code pushed by
//! the stub; then the frame the CPU pushed (RIP, CS, RFLAGS, RSP, SS; SDM Vol. 3A §6.14.1:
//! 64-bit mode always pushes SS:RSP, after aligning RSP to 16 bytes). The 24 quadwords keep the
//! call to `dispatch` 16-byte aligned as the System V ABI requires.
//!
//! **Event data.** CR2 is one register, and a second page fault overwrites it before a single
//! instruction of the first handler runs. The #PF stub therefore copies CR2 into a static with
//! instructions that touch no stack, and only then pushes anything: if one of its pushes
//! crosses an unmapped stack edge, the fault escalates to #DF (on a gate, the nested #PF
//! cannot push its frame either), whose stub has its own static, and the push is retried
//! after #DF returns with the outer CR2 still in the static. The value lands in the frame as
//! `data`, the way a FRED frame carries event data (Linux `arch/x86/include/asm/fred.h`,
//! `struct fred_ss` and the event-data word). Both the #PF and the #DF stub then clear CR2, so
//! a #DF that finds CR2 zero knows no page fault escalated to it (a stale CR2 would otherwise
//! misdiagnose it, as Linux's `exc_double_fault` comments).

use core::arch::naked_asm;
use core::sync::atomic::AtomicU64;
use stacklab_core::event::Vector;
use x86_64::VirtAddr;

use super::space::AddressSpace;

/// Registers saved on trap entry, in memory order. `dispatch` may modify it; the exit path
/// restores every field, so a handler can resume the interrupted code anywhere it likes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)] // register names
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
    /// Keeps the frame an even number of quadwords.
    pub pad: u64,
    /// The vector the stub was entered for.
    pub vector: u64,
    /// Event data captured by the stub at delivery: CR2 for #PF and #DF, else 0.
    pub data: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Size of a [`TrapFrame`] in bytes (the assembly below depends on it).
pub const TRAP_FRAME_SIZE: usize = core::mem::size_of::<TrapFrame>();
const _: () = assert!(TRAP_FRAME_SIZE == 24 * 8 && TRAP_FRAME_SIZE.is_multiple_of(16));

/// Words 0-1: CR2 as the #PF stub captured it, and the stub's scratch for RAX; words 2-3: the
/// same for the #DF stub, which can interrupt the #PF stub between its capture and its push.
static CAPTURE: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Byte offset of a vector's capture words in [`CAPTURE`].
const fn capture_offset(vector: u8) -> u64 {
    if vector == Vector::DOUBLE_FAULT.0 {
        16
    } else {
        0
    }
}

/// The instructions that save a [`TrapFrame`]'s pad word and 15 general registers, below the
/// three words a stub pushed (error code, event data, vector). Shared by the IDT entry path and
/// the fred-sim trampoline, so the two frames cannot drift apart.
macro_rules! save_registers {
    () => {
        "push 0\n push rax\n push rbx\n push rcx\n push rdx\n push rsi\n push rdi\n push rbp\n
         push r8\n push r9\n push r10\n push r11\n push r12\n push r13\n push r14\n push r15"
    };
}

/// The instructions that restore the 15 general registers [`save_registers`] saved, leaving
/// RSP at the pad word.
macro_rules! restore_registers {
    () => {
        "pop r15\n pop r14\n pop r13\n pop r12\n pop r11\n pop r10\n pop r9\n pop r8\n
         pop rbp\n pop rdi\n pop rsi\n pop rdx\n pop rcx\n pop rbx\n pop rax"
    };
}
pub(super) use {restore_registers, save_registers};

/// The shared tail of every stub.
#[unsafe(naked)]
unsafe extern "sysv64" fn trap_common() {
    // Preconditions: the stub pushed the error code (or 0), the event data and the vector.
    naked_asm!(
        save_registers!(),
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
        restore_registers!(),
        // Drop the pad, vector, event data and error code.
        "add rsp, 32",
        "iretq",
    );
}

/// Defines the entry stub of one vector. The error-code push comes from
/// [`Vector::pushes_error_code`]; #PF and #DF capture CR2 first (see the module docs); a PIC
/// line counts itself as entered before it touches the stack, so a stack fault taken by one
/// of its pushes is not mistaken for a lost interrupt (see `pic::recover_lost_irq`).
macro_rules! stub {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        unsafe extern "sysv64" fn $name() {
            naked_asm!(
                ".if {irq}",
                "lock inc qword ptr [rip + {irq_entered}]",
                ".endif",
                ".if {no_code}",
                "push 0",
                ".endif",
                ".if {capture}",
                "mov [rip + {cap} + {off} + 8], rax",
                "mov rax, cr2",
                "mov [rip + {cap} + {off}], rax",
                "xor eax, eax",
                "mov cr2, rax",
                "mov rax, [rip + {cap} + {off} + 8]",
                "push qword ptr [rip + {cap} + {off}]",
                ".else",
                "push 0",
                ".endif",
                "push {v}",
                "jmp {common}",
                irq = const Vector($vector).is_pic_line() as u8,
                irq_entered = sym super::pic::IRQ_ENTERED,
                no_code = const !Vector($vector).pushes_error_code() as u8,
                capture = const ($vector == Vector::PAGE_FAULT.0 || $vector == Vector::DOUBLE_FAULT.0) as u8,
                cap = sym CAPTURE,
                off = const capture_offset($vector),
                v = const $vector,
                common = sym trap_common,
            );
        }
    };
}

macro_rules! stubs {
    ($( $name:ident $vector:literal ),* $(,)?) => {
        $( stub!($name, $vector); )*
        /// Entry addresses by vector, for the IDT.
        pub fn stub_addresses() -> [(Vector, u64); STUB_COUNT] {
            [ $( (Vector($vector), $name as *const () as u64) ),* ]
        }
    };
}

/// Vectors that have a stub: the 32 exceptions and the 16 remapped legacy PIC lines.
pub const STUB_COUNT: usize = 48;

stubs! {
    v0 0, v1 1, v2 2, v3 3, v4 4, v5 5, v6 6, v7 7, v8 8, v9 9, v10 10, v11 11, v12 12,
    v13 13, v14 14, v15 15, v16 16, v17 17, v18 18, v19 19, v20 20, v21 21, v22 22, v23 23,
    v24 24, v25 25, v26 26, v27 27, v28 28, v29 29, v30 30, v31 31, v32 32, v33 33, v34 34,
    v35 35, v36 36, v37 37, v38 38, v39 39, v40 40, v41 41, v42 42, v43 43, v44 44, v45 45,
    v46 46, v47 47,
}

/// Continues handling a trap on the interrupted stack instead of the IST stack it arrived on:
/// copies `frame` just below the interrupted RSP, switches there, calls `handler` on the copy
/// and returns to the interrupted code from it. The IST stack is left behind, so a nested
/// trap of the same vector (which rewinds the IST stack to its top) can no longer overwrite
/// this frame. This is how the 2026 dynamic-stacks series treats #PFs that are not stack
/// growth. Returns `false` (doing nothing) unless the room for the copy, from the interrupted
/// RSP down, is mapped without a hole (by the [`AddressSpace`] contract it is then that
/// stack's own free memory).
pub fn continue_on_interrupted_stack(
    frame: &TrapFrame,
    space: &impl AddressSpace,
    handler: extern "sysv64" fn(&mut TrapFrame),
) -> bool {
    // 128 bytes of margin below the interrupted RSP (no red zone in this kernel, but cheap).
    let Some(new) = frame
        .rsp
        .checked_sub(128 + TRAP_FRAME_SIZE as u64)
        .map(|a| a & !15)
    else {
        return false;
    };
    if !space.is_range_mapped(
        VirtAddr::new_truncate(new),
        VirtAddr::new_truncate(frame.rsp),
    ) {
        return false;
    }
    // SAFETY: [new, frame.rsp) is mapped without a hole from the interrupted RSP down, so by
    // the AddressSpace contract it is free memory of the interrupted stack (nothing lives
    // below RSP, and the kernel has no red zone); the copy is then the frame that
    // `trap_return` restores, ending with iretq to the interrupted code with its own RSP. The
    // IST frame `frame` points at is abandoned, never used again.
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
