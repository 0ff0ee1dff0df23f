//! What exceptions mean: the policy behind `arch::x86_64::trap::dispatch`.
//!
//! Breakpoints return. A stack overflow into a guard page ends in the SDM-abort baseline: a
//! report in the spirit of Linux's `stack guard page was hit` (arch/x86/kernel/traps.c), an
//! `abort` record, and a stop. Any other exception is fatal with a full register report.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use stacklab_core::exception::{self, ErrorCode};
use stacklab_core::growth::{Fault, Verdict, judge_df, judge_pf};
use stacklab_core::proto::ExitCode;
use stacklab_core::runs::runs;

use crate::arch::x86_64::backtrace;
use crate::arch::x86_64::entry::TrapFrame;
use crate::arch::x86_64::idt::{self, PfDelivery};
use crate::arch::x86_64::{cpu, entry, pic, provoke, serial, stackswitch};
use crate::growth::{self, Mode, Path};
use crate::mem::lazy;
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
    (
        BREAKPOINTS.load(Ordering::Relaxed),
        LAST_BREAKPOINT_RIP.load(Ordering::Relaxed),
    )
}

/// Timer tick (already counted and acknowledged).
pub fn timer(_frame: &mut TrapFrame) {
    crate::thread::on_tick();
}

/// #PF. In order:
/// 1. stack growth (`stacklab_core::growth::judge_pf`): map the pages from the reserve and
///    resume;
/// 2. an overflow (CR2 below what the stack may use): report from a stack with room, stop;
/// 3. anything else is an ordinary fault. Arriving on the IST stack (`pf-ist`), it is first
///    moved back onto the interrupted stack, so a nested #PF in its handler cannot rewind the
///    IST stack over this frame; then the demand area maps a page, or the fault is fatal.
pub fn page_fault(frame: &mut TrapFrame, cr2: u64) {
    let t0 = cpu::rdtsc();
    let on_ist = idt::pf_delivery() == PfDelivery::Ist;
    let f = Fault {
        cr2,
        rsp: frame.rsp,
        rip: frame.rip,
        error_code: frame.error_code,
    };
    let verdict = if growth::mode() == Mode::Abort {
        Verdict::Overflow
    } else {
        judge_pf(stack::live_slot(cr2), f)
    };
    if let Verdict::Grow { page, .. } = verdict {
        match stack::grow(page) {
            Ok(pages) => {
                let path = if on_ist { Path::PfIst } else { Path::PfGate };
                growth::record(path, cpu::rdtsc() - t0, frame.rip, depth_of(cr2), pages);
                pic::recover_lost_irq();
                return;
            }
            Err(e) => grow_failed(frame, cr2, e, "#PF"),
        }
    }
    if stack::find(cr2).is_some_and(|s| s.in_guard(cr2)) {
        if on_ist {
            overflow_from_pf(frame, cr2);
        }
        stackswitch::call_on_df_stack(frame, cr2, overflow_from_pf);
    }
    if on_ist
        && growth::mode() == Mode::PfIst
        && !entry::continue_on_interrupted_stack(frame, ordinary_page_fault_moved)
    {
        fatal(frame, cr2);
    }
    ordinary_page_fault(frame, cr2)
}

extern "sysv64" fn ordinary_page_fault_moved(frame: &mut TrapFrame) {
    // Nothing has faulted since the original #PF (the move only touched mapped memory with
    // interrupts off), so CR2 still names its address.
    ordinary_page_fault(frame, cpu::cr2())
}

/// Stack depth a fault at `addr` reaches in its slot.
fn depth_of(addr: u64) -> u64 {
    stack::live_slot(addr).map_or(0, |s| s.range.top - addr)
}

/// Whether the next demand fault in the first half of the area runs the nested-#PF
/// demonstration: its handler first touches a second demand page, so a #PF nests inside it.
static NESTED_DEMO: AtomicBool = AtomicBool::new(false);
static OUTER_SNAPSHOT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Nested demonstrations whose outer frame survived.
pub static NESTED_OK: AtomicU64 = AtomicU64::new(0);

/// Arms the nested-#PF demonstration.
pub fn arm_nested_demo() {
    NESTED_DEMO.store(true, Ordering::Relaxed);
}

fn ordinary_page_fault(frame: &mut TrapFrame, cr2: u64) {
    if !lazy::contains(cr2) {
        fatal(frame, cr2);
    }
    let t0 = cpu::rdtsc();
    if cr2 < lazy::BASE + lazy::SIZE / 2 && NESTED_DEMO.swap(false, Ordering::Relaxed) {
        // Remember the frame in statics (a nested handler on the same stack would overwrite
        // locals), then fault again from inside this handler.
        OUTER_SNAPSHOT[0].store(frame.rip, Ordering::Relaxed);
        OUTER_SNAPSHOT[1].store(frame.rsp, Ordering::Relaxed);
        provoke::read_byte(cr2 + lazy::SIZE / 2);
        let rip = OUTER_SNAPSHOT[0].load(Ordering::Relaxed);
        let rsp = OUTER_SNAPSHOT[1].load(Ordering::Relaxed);
        let (now_rip, now_rsp) = entry::reread_rip_rsp(frame);
        if now_rip != rip || now_rsp != rsp {
            clobbered_frame(frame, cr2, rip, rsp);
        }
        NESTED_OK.fetch_add(1, Ordering::Relaxed);
    }
    if !lazy::fault_in(cr2) {
        fatal(frame, cr2);
    }
    growth::record(Path::Demand, cpu::rdtsc() - t0, frame.rip, 0, 1);
}

fn clobbered_frame(frame: &TrapFrame, cr2: u64, rip: u64, rsp: u64) -> ! {
    let (found_rip, found_rsp) = entry::reread_rip_rsp(frame);
    let mut w = serial::emergency();
    let _ = writeln!(
        w,
        "BUG: a nested #PF rewound the #PF IST stack and overwrote the outer frame: RIP {rip:#x} -> {:#x}, RSP {rsp:#x} -> {:#x}",
        found_rip, found_rsp
    );
    report::emit_fatal("abort", |r| {
        r.str("reason", "ist-frame-clobbered")
            .u64("vector", 14)
            .str("name", "#PF")
            .hex("cr2", cr2)
            .hex("outer_rip", rip)
            .hex("outer_rsp", rsp)
            .hex("found_rip", found_rip)
            .hex("found_rsp", found_rsp)
    });
    report::exit_fatal(ExitCode::Abort)
}

fn grow_failed(frame: &TrapFrame, cr2: u64, e: stack::GrowError, via: &str) -> ! {
    let (reason, what) = match e {
        stack::GrowError::ReserveEmpty => ("stack-reserve-empty", "the growth reserve is empty"),
        stack::GrowError::MapFailed => ("stack-map-failed", "mapping a stack page failed"),
    };
    let s = stack::find(cr2);
    let name = s.as_ref().map_or("?", |s| s.name());
    let mut w = serial::emergency();
    let _ = writeln!(
        w,
        "BUG: stack growth at {cr2:#x} failed: {what} (thread '{name}'), caught by {via}"
    );
    let (now, target, low) = stack::reserve_stats();
    report::emit_fatal("abort", |r| {
        r.str("reason", reason)
            .str("via", via)
            .str("thread", name)
            .hex("cr2", cr2)
            .hex("rip", frame.rip)
            .hex("rsp", frame.rsp)
            .u64("reserve_now", now)
            .u64("reserve_target", target)
            .u64("reserve_low", low)
            .bool("reserve_hold", stack::reserve_held())
    });
    report::exit_fatal(ExitCode::Abort)
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
/// Under `df-recover`, a #DF that passes every check of `stacklab_core::growth::judge_df` is
/// resumed after mapping the pages: experimental, outside the architecture.
pub fn double_fault(frame: &mut TrapFrame, cr2: u64) {
    let t0 = cpu::rdtsc();
    let mut refused = None;
    if growth::mode() == Mode::DfRecover {
        let f = Fault {
            cr2,
            rsp: frame.rsp,
            rip: frame.rip,
            error_code: frame.error_code,
        };
        match judge_df(stack::live_slot(cr2), f, crate::kernel_image()) {
            Verdict::Grow { page, .. } => match stack::grow(page) {
                Ok(pages) => {
                    growth::record(
                        Path::DfRecover,
                        cpu::rdtsc() - t0,
                        frame.rip,
                        depth_of(cr2),
                        pages,
                    );
                    pic::recover_lost_irq();
                    return;
                }
                Err(e) => grow_failed(frame, cr2, e, "#DF"),
            },
            Verdict::NotGrowth { why } => refused = Some(why),
            Verdict::Overflow => {}
        }
    }
    let hit = stack::find(cr2)
        .filter(|s| s.in_guard(cr2))
        .or_else(|| stack::find(frame.rsp).filter(|s| s.in_guard(frame.rsp)));
    if let Some(s) = hit {
        stack_overflow(frame, cr2, &s, "#DF");
    }
    if let Some(why) = refused {
        let mut w = serial::emergency();
        let _ = writeln!(w, "df-recover refused: {why}");
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
    let _ = writeln!(
        w,
        "    high-water mark {high_water} bytes of {} mapped",
        s.hi - s.lo
    );
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
    let _ = writeln!(
        w,
        "!!! FATAL: {mnemonic} {long} (vector {v}), error code {code}"
    );
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
