//! What exceptions mean: the policy behind `arch::x86_64::trap::dispatch`.
//!
//! Breakpoints return. A stack overflow into a guard page ends in the SDM-abort baseline: a
//! report in the spirit of Linux's `stack guard page was hit` (arch/x86/kernel/traps.c), an
//! `abort` record, and a stop. Any other exception is fatal with a full register report.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use stacklab_core::exception::{self, ErrorCode};
use stacklab_core::proto::ExitCode;

use crate::arch::x86_64::backtrace;
use crate::arch::x86_64::entry::TrapFrame;
use crate::arch::x86_64::{serial, stackswitch};
use crate::mem::stackmap;
use crate::report;
use crate::stack::{self, StackInfo, StackKind};

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
static LAST_BREAKPOINT_RIP: AtomicU64 = AtomicU64::new(0);

/// #BP: count it and return to the instruction after `int3`.
pub fn breakpoint(frame: &mut TrapFrame) {
    LAST_BREAKPOINT_RIP.store(frame.rip, Ordering::Relaxed);
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
}

/// (hits, saved RIP of the last hit).
pub fn breakpoint_stats() -> (u64, u64) {
    (BREAKPOINTS.load(Ordering::Relaxed), LAST_BREAKPOINT_RIP.load(Ordering::Relaxed))
}

/// Timer tick (already counted and acknowledged).
pub fn timer(_frame: &mut TrapFrame) {
    crate::thread::on_tick();
}

/// #PF. A fault in a stack's guard is an overflow whose #PF frame still fit on the stack: the
/// report moves to the #DF IST stack first (Linux's `call_on_stack` route), so reporting never
/// pushes deeper into the overflowing stack. Anything else is fatal.
pub fn page_fault(frame: &mut TrapFrame, cr2: u64) {
    if stack::find(cr2).is_some_and(|s| s.in_guard(cr2)) {
        stackswitch::call_on_df_stack(frame, cr2, overflow_from_pf);
    }
    fatal(frame, cr2)
}

fn overflow_from_pf(frame: &TrapFrame, cr2: u64) -> ! {
    match stack::find(cr2) {
        Some(s) => stack_overflow(frame, cr2, &s, "#PF"),
        None => fatal(frame, cr2),
    }
}

/// #DF. An abort (SDM Vol. 3A, Interrupt 8): the saved RIP is undefined and the program
/// cannot be resumed. CR2 (read first by the caller) still holds the address of the #PF that
/// escalated, so an overflow can be recognised from it, as Linux's `handle_stack_overflow`.
pub fn double_fault(frame: &mut TrapFrame, cr2: u64) -> ! {
    let hit = stack::find(cr2)
        .filter(|s| s.in_guard(cr2))
        .or_else(|| stack::find(frame.rsp).filter(|s| s.in_guard(frame.rsp)));
    if let Some(s) = hit {
        stack_overflow(frame, cr2, &s, "#DF");
    }
    fatal(frame, cr2)
}

fn stack_overflow(frame: &TrapFrame, cr2: u64, s: &StackInfo, via: &str) -> ! {
    let mut w = serial::emergency();
    let (tid, slot) = match s.kind {
        StackKind::Thread { slot, tid } => (tid, slot as i64),
        StackKind::Boot => (crate::thread::MAIN_TID, -1),
        StackKind::Ist(_) => (0, -1),
    };
    let high_water = stackmap::high_water(s.lo, s.hi);
    let _ = writeln!(
        w,
        "BUG: stack guard page was hit at {cr2:#x} (stack is {:#x}..{:#x}), thread '{}' (tid {tid}), caught by {via}",
        s.lo,
        s.hi,
        s.name(),
    );
    let _ = writeln!(w, "    high-water mark {high_water} bytes of {} mapped", s.hi - s.lo);
    let mut bt = [0u64; backtrace::MAX_FRAMES];
    let n = backtrace::walk(frame.rbp, s.lo, s.hi, &mut bt);
    write_registers(&mut w, frame, cr2, &bt[..n]);
    report::emit_fatal("abort", |r| {
        r.str("reason", "stack-overflow")
            .str("via", via)
            .str("thread", s.name())
            .u64("tid", tid)
            .i64("slot", slot)
            .u64("high_water", high_water)
            .hex("guard_addr", cr2)
            .hex("stack_lo", s.lo)
            .hex("stack_hi", s.hi)
            .u64("vector", frame.vector)
            .str("name", exception::name(frame.vector as u8).0)
            .hex("error_code", frame.error_code)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("cr2", cr2)
            .hex_list("backtrace", &bt[..n])
    });
    report::exit_fatal(ExitCode::Abort)
}

/// Reports an exception nobody handles, and stops.
pub fn fatal(frame: &TrapFrame, cr2: u64) -> ! {
    let v = frame.vector as u8;
    let (mnemonic, long) = exception::name(v);
    let code = ErrorCode::decode(v, frame.error_code);
    let mut w = serial::emergency();
    let _ = writeln!(w, "!!! FATAL: {mnemonic} {long} (vector {v}), error code {code}");
    // The trace may only read a stack we know to be mapped.
    let mut bt = [0u64; backtrace::MAX_FRAMES];
    let n = stack::find(frame.rsp)
        .filter(|s| s.in_mapped(frame.rsp))
        .map_or(0, |s| backtrace::walk(frame.rbp, s.lo, s.hi, &mut bt));
    write_registers(&mut w, frame, cr2, &bt[..n]);
    report::emit_fatal("abort", |r| {
        let r = r
            .str("reason", "exception")
            .u64("vector", v as u64)
            .str("name", mnemonic)
            .hex("error_code", frame.error_code)
            .fmt("error", format_args!("{code}"))
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("rflags", frame.rflags)
            .hex("cs", frame.cs);
        let r = if v == 14 { r.hex("cr2", cr2) } else { r };
        r.hex_list("backtrace", &bt[..n])
    });
    report::exit_fatal(ExitCode::Abort)
}

fn write_registers(w: &mut impl Write, f: &TrapFrame, cr2: u64, bt: &[u64]) {
    let _ = writeln!(w, "    RIP {:#018x}  RSP {:#018x}  RFLAGS {:#010x}  CR2 {cr2:#018x}", f.rip, f.rsp, f.rflags);
    let regs = [
        ("RAX", f.rax), ("RBX", f.rbx), ("RCX", f.rcx), ("RDX", f.rdx),
        ("RSI", f.rsi), ("RDI", f.rdi), ("RBP", f.rbp), ("R8 ", f.r8),
        ("R9 ", f.r9), ("R10", f.r10), ("R11", f.r11), ("R12", f.r12),
        ("R13", f.r13), ("R14", f.r14), ("R15", f.r15), ("CS ", f.cs),
    ];
    for row in regs.chunks(4) {
        let _ = write!(w, "   ");
        for (n, v) in row {
            let _ = write!(w, " {n} {v:#018x}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "    backtrace ({} frames):", bt.len());
    for (i, a) in bt.iter().enumerate() {
        let _ = writeln!(w, "      #{i} {a:#x}");
    }
}
