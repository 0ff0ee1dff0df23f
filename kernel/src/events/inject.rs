//! Fault injection: the one named interface through which tests reach into production fault
//! paths. A scenario arms an injection; the fault path checks [`take`] at one fixed point and
//! runs the injected behaviour only then. Disarmed, each check is a single atomic swap.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::x86_64::entry::TrapFrame;
use crate::mem::lazy;

/// What can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// The next demand fault in the first half of the demand area takes a second demand
    /// fault from inside its handler, and checks its own saved frame afterwards.
    NestedDemandFault,
    /// The next stack-growth #PF handled on the #PF IST stack touches an unmapped address
    /// before growing, so a #PF arrives on that IST stack from code running on it.
    FaultOnPfIst,
    /// The next #DF is judged as under `df-recover` (grow and resume when every check of
    /// `judge_df` passes) whatever the growth mode: `fred-compare` takes the overflow with #PF
    /// on level 0 under real FRED and under fred-sim, and must survive the first to take the
    /// second.
    RecoverDoubleFault,
}

static NESTED_DEMAND_FAULT: AtomicBool = AtomicBool::new(false);
static FAULT_ON_PF_IST: AtomicBool = AtomicBool::new(false);
static RECOVER_DOUBLE_FAULT: AtomicBool = AtomicBool::new(false);

fn flag(i: Injection) -> &'static AtomicBool {
    match i {
        Injection::NestedDemandFault => &NESTED_DEMAND_FAULT,
        Injection::FaultOnPfIst => &FAULT_ON_PF_IST,
        Injection::RecoverDoubleFault => &RECOVER_DOUBLE_FAULT,
    }
}

/// [`Injection::FaultOnPfIst`]: reads a page that is never mapped (the first page of the
/// address space), from the #PF handler on its IST stack.
pub fn fault_on_pf_ist() {
    let _ = crate::mem::probe_read(0x1000);
}

/// Arms `i` for its next occasion.
pub fn arm(i: Injection) {
    flag(i).store(true, Ordering::Relaxed);
}

/// Whether `i` is armed, disarming it.
pub fn take(i: Injection) -> bool {
    flag(i).swap(false, Ordering::Relaxed)
}

/// The outer frame's RIP and RSP, and its CR2.
static OUTER_SNAPSHOT: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// Nested demand faults whose outer frame survived.
static NESTED_OK: AtomicU64 = AtomicU64::new(0);

/// Nested demand faults whose outer frame survived, since boot.
pub fn nested_ok() -> u64 {
    NESTED_OK.load(Ordering::Relaxed)
}

/// What the outer frame held before the nested fault, and what it holds after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clobbered {
    /// Saved RIP and RSP before.
    pub before: (u64, u64),
    /// The same words after.
    pub after: (u64, u64),
}

/// [`Injection::NestedDemandFault`], run by the demand-fault path for a fault at `cr2`:
/// remembers the frame in statics, touches a second demand page so a #PF nests inside this
/// handler, and compares. Where the nested #PF rewound this handler's IST stack, it also wrote
/// over this code's own stack frames, so nothing is kept there across the fault (statics and
/// registers only; the touch is inlined, so no return crosses it), and a clobbered frame goes
/// straight to its report, which never returns, instead of returning through frames that may
/// be gone.
#[inline(never)]
pub fn nested_demand_fault(frame: &TrapFrame, cr2: u64) {
    OUTER_SNAPSHOT[0].store(frame.rip, Ordering::Relaxed);
    OUTER_SNAPSHOT[1].store(frame.rsp, Ordering::Relaxed);
    OUTER_SNAPSHOT[2].store(cr2, Ordering::Relaxed);
    let Some(after) = lazy::read_then_reread(cr2 + lazy::SIZE / 2, frame) else {
        return;
    };
    let before = (
        OUTER_SNAPSHOT[0].load(Ordering::Relaxed),
        OUTER_SNAPSHOT[1].load(Ordering::Relaxed),
    );
    if after != before {
        super::report::clobbered_frame(
            OUTER_SNAPSHOT[2].load(Ordering::Relaxed),
            Clobbered { before, after },
        );
    }
    NESTED_OK.fetch_add(1, Ordering::Relaxed);
}
