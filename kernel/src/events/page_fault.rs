//! #PF. In order:
//! 1. stack growth (`stacklab_core::growth_rules::judge_pf`): map the pages from the reserve
//!    and resume;
//! 2. an overflow (CR2 below what the stack may use): report from a stack with room, stop;
//! 3. anything else is an ordinary fault. Arriving on the IST stack (`pf-ist`), it is first
//!    moved back onto the interrupted stack, so a nested #PF in its handler cannot rewind the
//!    IST stack over this frame; then the demand area maps a page, or the fault is fatal.
//!
//! CR2 is the event data the entry stub captured at delivery (`Event::data`), not the CR2
//! register now: a nested fault may have overwritten the register since.

use core::sync::atomic::AtomicBool;
use core::sync::atomic::Ordering::Relaxed;
use stacklab_core::event::{Arrival, Event};
use stacklab_core::growth_rules::{Fault, Verdict, judge_pf, moved_frame_at, room_to_move};

use super::inject::{self, Injection};
use super::report;
use crate::arch::x86_64::entry::{self, TRAP_FRAME_SIZE, TrapFrame};
use crate::arch::x86_64::gdt::{self, Ist};
use crate::arch::x86_64::{cpu, stackswitch};
use crate::growth::{self, Mode, Path};
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::stacks;

pub(super) fn handle(event: &Event, frame: &mut TrapFrame) {
    let t0 = cpu::rdtsc();
    let cr2 = event.data;
    let on_ist = matches!(event.stack, Arrival::Ist(_));
    // While a #PF is handled on the IST stack, another #PF on it rewinds the stack to its top
    // and writes its frame over the outer one: from code running on that stack, or from an
    // NMI handler (its own IST stack) that interrupted the handler. (`pf-ist-naive` lets this
    // happen on purpose, and its scenario detects the damage itself.)
    let _busy = if on_ist && growth::mode() != Mode::PfIstNaive {
        if gdt::ist_area(Ist::PageFault).contains(&frame.rsp) || PF_IST_BUSY.swap(true, Relaxed) {
            report::ist_reentered(frame, cr2);
        }
        Some(IstBusy)
    } else {
        None
    };
    inject::at_pf_entry(cr2);
    let verdict = if !growth::mode().grows_on_fault() {
        Verdict::Overflow
    } else {
        judge_pf(
            stacks::live_slot(cr2),
            Fault {
                cr2,
                rsp: frame.rsp,
                rip: frame.rip,
                error_code: frame.error_code,
                reach: super::frame_reach(event.stack),
            },
        )
    };
    if verdict == Verdict::WildAccess {
        report::wild_access(frame, cr2, "#PF");
    }
    if let Verdict::Grow { page, .. } = verdict {
        if on_ist && inject::take(Injection::FaultOnPfIst) {
            inject::fault_on_pf_ist();
        }
        let path = match event.stack {
            Arrival::Ist(_) => Path::PfIst,
            Arrival::FredLevel(_) => Path::FredSim,
            Arrival::Interrupted => Path::PfGate,
        };
        match growth::grow(path, page, t0, frame.rip, cr2) {
            Ok(()) => return,
            Err(e) => report::grow_failed(frame, cr2, e, "#PF"),
        }
    }
    if stacks::find(cr2).is_some_and(|s| s.in_guard(cr2)) {
        // On an IST stack or a FRED level above 0 the report has a stack of its own.
        if on_ist || matches!(event.stack, Arrival::FredLevel(1..)) {
            overflow(frame, cr2);
        }
        stackswitch::call_on_df_stack(frame, cr2, overflow);
    }
    if on_ist && growth::mode() == Mode::PfIst {
        make_room_to_move(frame, t0);
        // From here the fault is handled on the interrupted stack (the move does not return).
        drop(_busy);
        if !entry::continue_on_interrupted_stack(frame, &KernelSpace, ordinary_moved) {
            report::fatal(frame, cr2);
        }
    }
    ordinary(frame, cr2)
}

/// Whether a #PF is being handled on the #PF IST stack.
static PF_IST_BUSY: AtomicBool = AtomicBool::new(false);

/// Marks the #PF IST stack in use until dropped (every way out of the handler that returns
/// through the IST frame; a move to the interrupted stack drops it first).
struct IstBusy;

impl Drop for IstBusy {
    fn drop(&mut self) {
        PF_IST_BUSY.store(false, Relaxed);
    }
}

/// Before an ordinary #PF moves off the IST stack onto the interrupted one: if the copy would
/// land below a growable stack's mapped edge, grow the stack down to it first, as a growth
/// fault there would. (Refusing the move would make a valid fault fatal just because RSP was
/// close to the edge.)
fn make_room_to_move(frame: &TrapFrame, t0: u64) {
    let Some(to) = moved_frame_at(frame.rsp, TRAP_FRAME_SIZE as u64) else {
        return;
    };
    if let Some(page) = room_to_move(stacks::live_slot(frame.rsp), frame.rsp, to)
        && let Err(e) = growth::grow(Path::PfIst, page, t0, frame.rip, to)
    {
        report::grow_failed(frame, to, e, "#PF");
    }
}

fn overflow(frame: &TrapFrame, cr2: u64) -> ! {
    match stacks::find(cr2) {
        Some(s) => report::stack_overflow(frame, cr2, &s, "#PF"),
        None => report::fatal(frame, cr2),
    }
}

extern "sysv64" fn ordinary_moved(frame: &mut TrapFrame) {
    // The copy carries the event data the stub captured.
    ordinary(frame, frame.data)
}

/// A #PF that is not about a stack: the demand area maps a page, anything else is fatal.
fn ordinary(frame: &mut TrapFrame, cr2: u64) {
    if !lazy::contains(cr2) {
        report::fatal(frame, cr2);
    }
    let t0 = cpu::rdtsc();
    if cr2 < lazy::BASE + lazy::SIZE / 2 && inject::take(Injection::NestedDemandFault) {
        inject::nested_demand_fault(frame, cr2);
    }
    if !lazy::fault_in(cr2) {
        report::fatal(frame, cr2);
    }
    growth::stats::record(Path::Demand, cpu::rdtsc() - t0, frame.rip, 0, 1);
}
