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
    /// The next #PF in the first half of the demand area, first thing in its handler (before
    /// the policy uses the event's address): a read of a second demand page, so a nested #PF
    /// overwrites CR2 (`cr2-nested`).
    FaultAtPfEntry,
    /// The same point: an NMI-like event (`int 2`) whose handler reads a second demand page,
    /// so a #PF arrives from the NMI handler while the first #PF is being handled
    /// (`nmi-in-pf`).
    NmiAtPfEntry,
}

static NESTED_DEMAND_FAULT: AtomicBool = AtomicBool::new(false);
static FAULT_ON_PF_IST: AtomicBool = AtomicBool::new(false);
static FAULT_AT_PF_ENTRY: AtomicBool = AtomicBool::new(false);
static NMI_AT_PF_ENTRY: AtomicBool = AtomicBool::new(false);

fn flag(i: Injection) -> &'static AtomicBool {
    match i {
        Injection::NestedDemandFault => &NESTED_DEMAND_FAULT,
        Injection::FaultOnPfIst => &FAULT_ON_PF_IST,
        Injection::FaultAtPfEntry => &FAULT_AT_PF_ENTRY,
        Injection::NmiAtPfEntry => &NMI_AT_PF_ENTRY,
    }
}

/// [`Injection::FaultOnPfIst`]: reads a page that is never mapped (the first page of the
/// address space), from the #PF handler on its IST stack.
pub fn fault_on_pf_ist() {
    let _ = crate::mem::probe_read(0x1000);
}

/// The event data of the #PF that ran [`Injection::FaultAtPfEntry`], and CR2 read right after
/// the nested fault.
static AT_ENTRY_CR2: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
/// The demand address the NMI handler reads under [`Injection::NmiAtPfEntry`] (0: none).
static NMI_TOUCH: AtomicU64 = AtomicU64::new(0);

/// What [`Injection::FaultAtPfEntry`] saw: the outer #PF's event data (CR2 captured at its
/// delivery) and the CR2 register right after the nested #PF.
pub fn at_entry_cr2() -> (u64, u64) {
    (
        AT_ENTRY_CR2[0].load(Ordering::Relaxed),
        AT_ENTRY_CR2[1].load(Ordering::Relaxed),
    )
}

/// The injection point at the entry of the #PF policy, for a fault at `cr2` (event data):
/// [`Injection::FaultAtPfEntry`] and [`Injection::NmiAtPfEntry`], for faults in the first half
/// of the demand area; each touches the same offset in the second half.
pub fn at_pf_entry(cr2: u64) {
    if !lazy::contains(cr2) || cr2 >= lazy::BASE + lazy::SIZE / 2 {
        return;
    }
    let shadow = cr2 + lazy::SIZE / 2;
    if take(Injection::FaultAtPfEntry) {
        AT_ENTRY_CR2[0].store(cr2, Ordering::Relaxed);
        let _ = lazy::read(shadow);
        AT_ENTRY_CR2[1].store(crate::arch::x86_64::cpu::cr2(), Ordering::Relaxed);
    }
    if take(Injection::NmiAtPfEntry) {
        NMI_TOUCH.store(shadow, Ordering::Relaxed);
        crate::arch::x86_64::provoke::nmi_like();
    }
}

/// Run by the NMI handler: the read [`Injection::NmiAtPfEntry`] asked for, if any.
pub fn in_nmi() {
    let addr = NMI_TOUCH.swap(0, Ordering::Relaxed);
    if addr != 0 {
        let _ = lazy::read(addr);
    }
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
