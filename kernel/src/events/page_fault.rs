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

use stacklab_core::event::{Arrival, Event};
use stacklab_core::growth_rules::{Fault, Verdict, judge_pf};

use super::inject::{self, Injection};
use super::report;
use crate::arch::x86_64::entry::{self, TrapFrame};
use crate::arch::x86_64::{cpu, stackswitch};
use crate::growth::{self, Mode, Path};
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::stacks;

pub(super) fn handle(event: &Event, frame: &mut TrapFrame) {
    let t0 = cpu::rdtsc();
    let cr2 = event.data;
    let on_ist = matches!(event.stack, Arrival::Ist(_));
    let verdict = if growth::mode() == Mode::Abort {
        Verdict::Overflow
    } else {
        judge_pf(
            stacks::live_slot(cr2),
            Fault {
                cr2,
                rsp: frame.rsp,
                rip: frame.rip,
                error_code: frame.error_code,
            },
        )
    };
    if let Verdict::Grow { page, .. } = verdict {
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
    if on_ist
        && growth::mode() == Mode::PfIst
        && !entry::continue_on_interrupted_stack(frame, &KernelSpace, ordinary_moved)
    {
        report::fatal(frame, cr2);
    }
    ordinary(frame, cr2)
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
    if cr2 < lazy::BASE + lazy::SIZE / 2
        && inject::take(Injection::NestedDemandFault)
        && let Err(c) = inject::nested_demand_fault(frame, cr2)
    {
        report::clobbered_frame(cr2, c);
    }
    if !lazy::fault_in(cr2) {
        report::fatal(frame, cr2);
    }
    growth::stats::record(Path::Demand, cpu::rdtsc() - t0, frame.rip, 0, 1);
}
