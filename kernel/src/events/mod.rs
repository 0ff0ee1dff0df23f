//! What events mean: the policy every delivery mechanism hands its decoded events to.
//!
//! `arch::x86_64::trap` decodes what the CPU delivered into a `stacklab_core::event::Event`
//! and calls [`handle`], registered at boot. A second delivery mechanism (a simulated
//! FRED-style delivery) produces the same event and calls the same function, so the policy
//! below is written once: breakpoints return; the timer drives the scheduler; an NMI is
//! counted; #PF may be stack growth, an overflow, a demand fault or fatal; #DF is an overflow
//! report, or under `df-recover` experimental growth; anything else is fatal with a full
//! report.

mod double_fault;
pub mod inject;
mod page_fault;
mod report;

use core::sync::atomic::{AtomicU64, Ordering};
use stacklab_core::event::{Arrival, Event, EventKind, Vector};
use stacklab_core::growth_rules::IDT_FRAME_REACH;

use crate::arch::x86_64::entry::TrapFrame;

pub use report::fatal;

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
static LAST_BREAKPOINT_RIP: AtomicU64 = AtomicU64::new(0);
static NMIS: AtomicU64 = AtomicU64::new(0);

/// NMI (a real one, or `int 2`): counted; runs what an injection asked of an NMI handler.
fn nmi() {
    NMIS.fetch_add(1, Ordering::Relaxed);
    inject::in_nmi();
}

/// NMIs handled since boot.
pub fn nmis() -> u64 {
    NMIS.load(Ordering::Relaxed)
}

/// The kernel's one event handler (see the module docs).
pub fn handle(event: &Event, frame: &mut TrapFrame) {
    match (event.kind, event.vector) {
        (EventKind::SoftwareException, Vector::BREAKPOINT) => breakpoint(frame),
        (EventKind::HardwareException, Vector::PAGE_FAULT) => page_fault::handle(event, frame),
        (EventKind::HardwareException, Vector::DOUBLE_FAULT) => double_fault::handle(event, frame),
        (EventKind::ExternalInterrupt, Vector::TIMER) => crate::thread::on_tick(),
        (EventKind::Nmi, _) => nmi(),
        // Other PIC lines are masked; a stray one was acknowledged by the arch layer.
        (EventKind::ExternalInterrupt, _) => {}
        _ => fatal(frame, event.data),
    }
}

/// How far below the interrupted RSP the mechanism that delivered an event writes: the IDT's
/// frame, or under fred-sim the FRED frame below its red zone plus the register view.
fn frame_reach(arrival: Arrival) -> u64 {
    match arrival {
        Arrival::FredLevel(_) => crate::arch::x86_64::fredsim::FRAME_REACH,
        Arrival::Interrupted | Arrival::Ist(_) => IDT_FRAME_REACH,
    }
}

/// #BP: count it and return to the instruction after `int3`.
fn breakpoint(frame: &mut TrapFrame) {
    LAST_BREAKPOINT_RIP.store(frame.rip, Ordering::Relaxed);
    BREAKPOINTS.fetch_add(1, Ordering::Relaxed);
}

/// Breakpoints taken so far, and the saved RIP of the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoints {
    /// Hits since boot.
    pub hits: u64,
    /// The RIP the last hit returned to.
    pub last_rip: u64,
}

/// Breakpoint counters.
pub fn breakpoints() -> Breakpoints {
    Breakpoints {
        hits: BREAKPOINTS.load(Ordering::Relaxed),
        last_rip: LAST_BREAKPOINT_RIP.load(Ordering::Relaxed),
    }
}
