//! #DF. An abort (SDM Vol. 3A, Interrupt 8): the saved RIP is undefined and the program
//! cannot be resumed. The event data holds the CR2 that a #PF escalating to this #DF left
//! behind (the entry stubs clear CR2 after every capture, so 0 means no #PF escalated), and
//! an overflow is recognised from it, as Linux's `handle_stack_overflow` does, and from the
//! saved RSP being at that stack's edge (a stale CR2 alone is not an overflow). Under
//! `df-recover`, a #DF that passes every check of `stacklab_core::growth_rules::judge_df` is
//! resumed after mapping the pages: experimental, outside the architecture.

use core::fmt::Write;
use stacklab_core::event::Event;
use stacklab_core::growth_rules::{Fault, Verdict, judge_df};

use super::report;
use crate::arch::x86_64::cpu;
use crate::arch::x86_64::entry::TrapFrame;
use crate::arch::x86_64::serial;
use crate::growth::{self, Mode, Path};
use crate::stacks;

pub(super) fn handle(event: &Event, frame: &mut TrapFrame) {
    let t0 = cpu::rdtsc();
    let cr2 = event.data;
    let mut refused = None;
    if growth::mode() == Mode::DfRecover {
        let f = Fault {
            cr2,
            rsp: frame.rsp,
            rip: frame.rip,
            error_code: frame.error_code,
            reach: super::frame_reach(event.stack),
        };
        match judge_df(stacks::live_slot(cr2), f, cpu::kernel_text()) {
            Verdict::Grow { page, .. } => {
                match growth::grow(Path::DfRecover, page, t0, frame.rip, cr2) {
                    Ok(()) => return,
                    Err(e) => report::grow_failed(frame, cr2, e, "#DF"),
                }
            }
            Verdict::NotGrowth { why } => refused = Some(why),
            Verdict::WildAccess => report::wild_access(frame, cr2, "#DF"),
            Verdict::Overflow => {}
        }
    }
    // CR2 in a guard page is an overflow only if the saved RSP is where an overflowing stack
    // leaves it: in that guard, or so close above it that the delivery's own frame does not
    // fit. A stale CR2 (a page fault's address left behind, or one written on purpose)
    // naming a guard page would otherwise turn any other #DF into an "overflow" report; the
    // check is the one Linux's exc_double_fault comment proposes and does not make.
    let reach = super::frame_reach(event.stack);
    let hit = stacks::find(cr2)
        .filter(|s| s.in_guard(cr2) && at_edge(s, frame.rsp, reach))
        .or_else(|| stacks::find(frame.rsp).filter(|s| s.in_guard(frame.rsp)));
    if let Some(s) = hit {
        report::stack_overflow(frame, cr2, &s, "#DF");
    }
    if let Some(why) = refused {
        let _ = writeln!(serial::emergency(), "df-recover refused: {why}");
    }
    if hit.is_none() && stacks::find(cr2).is_some_and(|s| s.in_guard(cr2)) {
        let _ = writeln!(
            serial::emergency(),
            "#DF: CR2 {cr2:#x} names a guard page but the saved RSP {:#x} is not at that stack's edge: stale CR2, not an overflow",
            frame.rsp
        );
    }
    report::fatal(frame, cr2)
}

/// Whether `rsp` is in `s`'s guard or less than `reach` bytes above its mapped edge.
fn at_edge(s: &stacks::StackInfo, rsp: u64, reach: u64) -> bool {
    s.in_guard(rsp) || (s.in_mapped(rsp) && rsp - s.lo() < reach)
}
