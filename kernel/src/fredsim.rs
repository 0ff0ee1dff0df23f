//! The kernel's `fred-sim` mode: FRED-style delivery in software (`growth fred-sim`).
//!
//! The mechanism is `arch::x86_64::fredsim` (trampoline, simulated delivery and ERETS by the
//! rules of `stacklab_fred`); this module gives it what it needs from above: the level stacks
//! (guarded areas, allocated on first use so the boot-time layout does not change), the page
//! tables to probe (`KernelSpace`), the policy (`events::handle`, the same function the IDT
//! paths call), the level table the `fred-levels` command edits, and the report when the
//! simulation stops the machine (a fault while delivering #DF, or an ERETS fault).

use spin::Mutex;
use stacklab_core::exception;
use stacklab_core::proto::ExitCode;
use stacklab_fred::sim::LevelTable;

use crate::arch::x86_64::fredsim::{self, Hooks, Stop, StopKind};
use crate::arch::x86_64::{cpu, serial};
use crate::mem::stackmap::KernelSpace;
use crate::{events, mem, report};

/// Pages of the level-1, -2 and -3 stacks. Level 1 holds #PF (growth, and the overflow
/// report with its backtrace), level 3 #DF and its report: as large as the IST stacks of the
/// same handlers.
pub const LEVEL_PAGES: [u64; 3] = [4, 2, 4];

static TABLE: Mutex<LevelTable> = Mutex::new(LevelTable::DEFAULT);

/// Makes every event arrive through the simulation: sets it up on first use, applies the
/// level table and loads the fred-sim IDT.
pub fn enable() {
    install();
    fredsim::set_levels(levels());
    fredsim::load();
}

/// Sets the simulation up (its level stacks, which real FRED shares) unless done already.
pub fn install() {
    if !fredsim::installed() {
        let stacks = LEVEL_PAGES.map(|pages| mem::kva::alloc_stack(pages).1);
        fredsim::install(
            Hooks {
                handler: events::handle,
                space: &KernelSpace,
                stop,
            },
            stacks,
        );
    }
}

/// The level table in force.
pub fn levels() -> LevelTable {
    cpu::without_interrupts(|| *TABLE.lock())
}

/// Replaces the level table; it takes effect at once (the simulated MSRs are read at every
/// delivery; under real FRED the MSRs are rewritten).
pub fn set_levels(t: LevelTable) {
    cpu::without_interrupts(|| *TABLE.lock() = t);
    fredsim::set_levels(t);
    if crate::arch::x86_64::fred::enabled() {
        crate::fred::apply_levels(t);
    }
}

/// The simulation's `stop` hook: one `abort` record, then the machine stops.
fn stop(s: &Stop) -> ! {
    use core::fmt::Write;
    let (reason, rule) = match s.kind {
        StopKind::Shutdown => ("fred-shutdown", "shutdown"),
        StopKind::EretsFault(rule) => ("fred-erets-fault", rule),
    };
    let name = exception::name(s.vector).0;
    let _ = writeln!(
        serial::emergency(),
        "!!! fred-sim: {reason} {rule} on {name} (vector {}): RIP {:#x} RSP {:#x} CR2 {:#x} CSL {}",
        s.vector,
        s.rip,
        s.rsp,
        s.cr2,
        s.csl
    );
    report::emit_fatal("abort", |r| {
        r.str("reason", reason)
            .str("rule", rule)
            .u64("vector", s.vector as u64)
            .str("name", name)
            .hex("rip", s.rip)
            .hex("rsp", s.rsp)
            .hex("cr2", s.cr2)
            .u64("csl", s.csl as u64)
            .u64("attempts", s.attempts as u64)
    });
    report::exit_fatal(ExitCode::Abort)
}
