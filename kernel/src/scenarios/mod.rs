//! Scenarios the command line runs, one file per theme, each with its `COMMANDS` rows:
//! [`basic`] CPU events and the boot stack, [`threads`] stacks of threads and the recursion
//! kit, [`hazards`] the growth paths' hazards, [`bench`] the benchmarks,
//! [`fred_sim`] the `fred-sim` mode's commands, [`catalogue`] the hazard catalogue and
//! [`df_hazards`] the catalogue's own hazard scenarios.
//!
//! Every scenario computes a result that a closed form or an independent count checks, and
//! writes it with `report::result`; a wrong result marks the run failed.

pub mod basic;
pub mod bench;
pub mod catalogue;
pub mod df_hazards;
pub mod edge;
pub mod fred_compare;
pub mod fred_sim;
pub mod hazards;
pub mod races;
pub mod recursion;
pub mod threads;

use alloc::string::String;
use spin::Mutex;
use stacklab_core::proto::{ExitCode, Record};
use stacklab_core::stack_layout::Policy;

use crate::arch::x86_64::cpu;
use crate::{report, thread};

static POLICY: Mutex<Policy> = Mutex::new(Policy::Fixed { bytes: 16 * 1024 });

/// The stack policy scenarios give the threads they spawn (`policy`).
pub fn policy() -> Policy {
    cpu::without_interrupts(|| *POLICY.lock())
}

/// Sets the policy for threads spawned from now on.
pub fn set_policy(p: Policy) {
    cpu::without_interrupts(|| *POLICY.lock() = p);
}

/// Under growth mode `ensure` (no fault-driven growth), a scenario calls this at the start of
/// its deep part with the bytes that part needs below the caller's RSP: `ensure_stack` maps
/// them ahead. `false` if it refused (the policy's maximum is too small), in which case the
/// scenario reports `refused` instead of running the deep part. In other modes it does nothing.
fn ensure_ahead(bytes: u64) -> bool {
    !crate::growth::mode().ensures() || crate::growth::ensure(cpu::rsp(), bytes).is_ok()
}

/// What a scenario's thread returns when [`ensure_ahead`] refused.
const ENSURE_REFUSED: u64 = u64::MAX - 1;

/// Adds `refused: true` to a record when the scenario refused cleanly.
fn refused_field<'a>(r: Record<'a, String>, refused: bool) -> Record<'a, String> {
    if refused { r.bool("refused", true) } else { r }
}

/// Marks the run failed (a wrong result).
fn fail() {
    report::note_outcome(ExitCode::Failure);
}

/// A spawn failed: a `result` record that says why, and the run is failed.
fn spawn_error(e: thread::SpawnError) {
    log::error!("cannot spawn: {e}");
    report::result(|r| r.bool("ok", false).fmt("error", format_args!("{e}")));
    fail();
}

/// Runs `f` on a new thread of `policy` and waits for it: what `join` learned and the thread
/// id, or `None` after reporting why the spawn failed.
fn run_thread<F>(name: &str, policy: Policy, f: F) -> Option<(thread::Joined, thread::Tid)>
where
    F: FnOnce() -> u64 + Send + 'static,
{
    match thread::spawn(name, policy, f) {
        Ok(tid) => Some((
            thread::join(tid).expect("a spawned thread can be joined"),
            tid,
        )),
        Err(e) => {
            spawn_error(e);
            None
        }
    }
}

/// The growth fields a grow-policy scenario adds to its record.
fn growth_fields<'a>(r: Record<'a, String>, j: &thread::Joined) -> Record<'a, String> {
    r.str("growth", crate::growth::mode().name())
        .u64("grow_events", j.grow_events)
        .u64("grow_pages", j.grow_pages)
}
