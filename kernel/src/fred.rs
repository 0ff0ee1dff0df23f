//! The kernel's `fred` mode: real FRED event delivery (`growth fred`), on a CPU that has it.
//!
//! The mechanism is `arch::x86_64::fred` (MSRs, entry page, ERETS); this module gives it the
//! level stacks (fred-sim's, allocated on first use by `fredsim::install`) and the level table
//! the `fred-levels` command edits. The policy is the same `events::handle` every other
//! delivery mechanism calls.

use stacklab_fred::sim::LevelTable;

use crate::arch::x86_64::fred::{self, Refused};

/// Turns real FRED on with the current level table.
pub fn enable() -> Result<(), Refused> {
    if !fred::available() {
        return Err(Refused::Absent);
    }
    crate::fredsim::install();
    fred::enable(crate::fredsim::levels())
}

/// Rewrites STKLVLS and the interrupt level while FRED is on.
pub fn apply_levels(t: LevelTable) {
    if let Err(e) = fred::enable(t) {
        // The table's levels are 0-3 by construction and the rest did not change.
        log::error!("fred-levels: real FRED refused the table: {e:?}");
    }
}

/// One line for a refusal.
pub fn refusal(r: Refused) -> &'static str {
    match r {
        Refused::Absent => {
            "this CPU has no FRED (CPUID.(EAX=7,ECX=1):EAX bit 17 is clear); 'growth fred-sim' simulates it"
        }
        Refused::NoLevelStacks => "the level stacks could not be set up",
        Refused::Setup(e) => e.message(),
    }
}
