//! Fatal reports: what the kernel prints and records when it stops. All of it runs in fault
//! context, so it uses no heap and no lock the interrupted code may hold
//! (`serial::emergency`, `report::emit_fatal`).

use core::fmt::Write;
use stacklab_core::event::Vector;
use stacklab_core::exception::{self, ErrorCode};
use stacklab_core::proto::ExitCode;
use stacklab_core::runs::runs;

use super::inject::Clobbered;
use crate::arch::x86_64::backtrace;
use crate::arch::x86_64::cpu;
use crate::arch::x86_64::entry::TrapFrame;
use crate::arch::x86_64::serial;
use crate::mem::stackmap::{self, KernelSpace};
use crate::report;
use crate::stacks::{self, GrowError, StackInfo, StackKind};

/// A nested #PF rewound the #PF IST stack over the outer frame (the `pf-ist-naive` hazard).
pub(super) fn clobbered_frame(cr2: u64, c: Clobbered) -> ! {
    let ((rip, rsp), (found_rip, found_rsp)) = (c.before, c.after);
    let _ = writeln!(
        serial::emergency(),
        "BUG: a nested #PF rewound the #PF IST stack and overwrote the outer frame: RIP {rip:#x} -> {found_rip:#x}, RSP {rsp:#x} -> {found_rsp:#x}"
    );
    report::emit_fatal("abort", |r| {
        r.str("reason", "ist-frame-clobbered")
            .u64("vector", Vector::PAGE_FAULT.0 as u64)
            .str("name", Vector::PAGE_FAULT.mnemonic())
            .hex("cr2", cr2)
            .hex("outer_rip", rip)
            .hex("outer_rsp", rsp)
            .hex("found_rip", found_rip)
            .hex("found_rsp", found_rsp)
    });
    report::exit_fatal(ExitCode::Abort)
}

/// A #PF arrived on the #PF IST stack while a #PF was being handled there (from code running
/// on it, or from an NMI handler that interrupted it): the outer frame is gone (the CPU
/// rewound the stack to its top).
pub(super) fn ist_reentered(frame: &TrapFrame, cr2: u64) -> ! {
    let _ = writeln!(
        serial::emergency(),
        "BUG: #PF at {cr2:#x} taken while the #PF IST stack was in use (interrupted RSP {:#x}): the outer frame was overwritten",
        frame.rsp
    );
    report::emit_fatal("abort", |r| {
        r.str("reason", "ist-reentered")
            .u64("vector", Vector::PAGE_FAULT.0 as u64)
            .str("name", Vector::PAGE_FAULT.mnemonic())
            .hex("cr2", cr2)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("rflags", frame.rflags)
    });
    report::exit_fatal(ExitCode::Abort)
}

/// A fault in the growable part of a thread's stack, far below its RSP: a stray pointer.
pub(super) fn wild_access(frame: &TrapFrame, cr2: u64, via: &str) -> ! {
    let s = stacks::find(cr2);
    let name = s.as_ref().map_or("?", |s| s.name());
    let _ = writeln!(
        serial::emergency(),
        "BUG: wild access at {cr2:#x}, {} bytes below RSP {:#x}, in the unmapped part of thread '{name}''s stack: not growth, caught by {via}",
        frame.rsp.saturating_sub(cr2),
        frame.rsp
    );
    report::emit_fatal("abort", |r| {
        r.str("reason", "wild-stack-access")
            .str("via", via)
            .str("thread", name)
            .hex("cr2", cr2)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("rflags", frame.rflags)
            .u64("below_rsp", frame.rsp.saturating_sub(cr2))
    });
    report::exit_fatal(ExitCode::Abort)
}

/// Growth was due but could not be done.
pub(super) fn grow_failed(frame: &TrapFrame, cr2: u64, e: GrowError, via: &str) -> ! {
    let (reason, what) = match e {
        GrowError::ReserveEmpty => ("stack-reserve-empty", "the growth reserve is empty"),
        GrowError::OutOfMemory => ("stack-map-failed", "no frame for a stack page"),
        GrowError::MapFailed => ("stack-map-failed", "mapping a stack page failed"),
    };
    let s = stacks::find(cr2);
    let name = s.as_ref().map_or("?", |s| s.name());
    let mut w = serial::emergency();
    let _ = writeln!(
        w,
        "BUG: stack growth at {cr2:#x} failed: {what} (thread '{name}'), caught by {via}"
    );
    let res = stacks::reserve_stats();
    report::emit_fatal("abort", |r| {
        r.str("reason", reason)
            .str("via", via)
            .str("thread", name)
            .hex("cr2", cr2)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("rflags", frame.rflags)
            .u64("reserve_now", res.now)
            .u64("reserve_target", res.target)
            .u64("reserve_low", res.low)
            .bool("reserve_hold", res.hold)
    });
    report::exit_fatal(ExitCode::Abort)
}

/// The overflow report: "stack guard page was hit", as Linux's `handle_stack_overflow`.
pub(super) fn stack_overflow(frame: &TrapFrame, cr2: u64, s: &StackInfo, via: &str) -> ! {
    let mut w = serial::emergency();
    let (tid, slot) = match s.kind {
        StackKind::Thread { slot, tid } => (tid, slot as i64),
        StackKind::Boot => (crate::thread::MAIN_TID, -1),
        StackKind::Ist(_) | StackKind::Extra => (0, -1),
    };
    let high_water = stackmap::high_water(s.lo(), s.hi());
    let _ = writeln!(
        w,
        "BUG: stack guard page was hit at {cr2:#x} (stack is {:#x}..{:#x}), thread '{}' (tid {tid}), caught by {via}",
        s.lo(),
        s.hi(),
        s.name(),
    );
    let _ = writeln!(
        w,
        "    high-water mark {high_water} bytes of {} mapped",
        s.hi() - s.lo()
    );
    let mut bt = [0u64; backtrace::MAX_FRAMES];
    let n = backtrace::walk(frame.rbp, s.mapped.clone(), &KernelSpace, &mut bt);
    write_registers(&mut w, frame, cr2, &bt[..n]);
    report::emit_fatal("abort", |r| {
        r.str("reason", "stack-overflow")
            .str("via", via)
            .str("thread", s.name())
            .u64("tid", tid)
            .i64("slot", slot)
            .u64("high_water", high_water)
            .hex("guard_addr", cr2)
            .hex("stack_lo", s.lo())
            .hex("stack_hi", s.hi())
            .u64("vector", frame.vector)
            .str("name", exception::name(frame.vector as u8).0)
            .hex("error_code", frame.error_code)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .hex("rflags", frame.rflags)
            .hex("cr2", cr2)
            .hex_list("backtrace", &bt[..n])
    });
    report::exit_fatal(ExitCode::Abort)
}

/// Reports an exception nobody handles, and stops. `cr2` is the event data of a #PF or #DF;
/// for other vectors the record shows the CR2 register as it is now.
pub fn fatal(frame: &TrapFrame, cr2: u64) -> ! {
    let v = frame.vector as u8;
    let (mnemonic, long) = exception::name(v);
    let code = ErrorCode::decode(v, frame.error_code);
    let mut w = serial::emergency();
    let _ = writeln!(
        w,
        "!!! FATAL: {mnemonic} {long} (vector {v}), error code {code}"
    );
    // The trace may only read a stack we know to be mapped.
    let mut bt = [0u64; backtrace::MAX_FRAMES];
    let n = stacks::find(frame.rsp)
        .filter(|s| s.in_mapped(frame.rsp))
        .map_or(0, |s| {
            backtrace::walk(frame.rbp, s.mapped, &KernelSpace, &mut bt)
        });
    let cr2 = if [Vector::PAGE_FAULT, Vector::DOUBLE_FAULT].contains(&Vector(v)) {
        cr2
    } else {
        cpu::cr2()
    };
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
        r.hex("cr2", cr2).hex_list("backtrace", &bt[..n])
    });
    report::exit_fatal(ExitCode::Abort)
}

fn write_registers(w: &mut impl Write, f: &TrapFrame, cr2: u64, bt: &[u64]) {
    let _ = writeln!(
        w,
        "    RIP {:#018x}  RSP {:#018x}  RFLAGS {:#010x}  CR2 {cr2:#018x}",
        f.rip, f.rsp, f.rflags
    );
    let regs = [
        ("RAX", f.rax),
        ("RBX", f.rbx),
        ("RCX", f.rcx),
        ("RDX", f.rdx),
        ("RSI", f.rsi),
        ("RDI", f.rdi),
        ("RBP", f.rbp),
        ("R8 ", f.r8),
        ("R9 ", f.r9),
        ("R10", f.r10),
        ("R11", f.r11),
        ("R12", f.r12),
        ("R13", f.r13),
        ("R14", f.r14),
        ("R15", f.r15),
        ("CS ", f.cs),
    ];
    for row in regs.chunks(4) {
        let _ = write!(w, "   ");
        for (n, v) in row {
            let _ = write!(w, " {n} {v:#018x}");
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "    backtrace ({} frames):", bt.len());
    for run in runs(bt) {
        let (i, a) = (run.first, run.value);
        let _ = writeln!(w, "      #{i} {a:#x}");
        if run.folds() {
            let last = i + run.len - 1;
            let _ = writeln!(w, "      #{}..#{last} same as #{i}", i + 1);
        } else {
            for j in i + 1..i + run.len {
                let _ = writeln!(w, "      #{j} {a:#x}");
            }
        }
    }
}
