//! Scenarios the command line runs, one file per theme, each with its `COMMANDS` rows:
//! [`basic`] CPU events and the boot stack, [`threads`] stacks of threads and the recursion
//! kit, [`hazards`] the growth paths' hazards, [`bench`] the benchmarks,
//! [`fred_sim`] the `fred-sim` mode's commands.
//!
//! Every scenario computes a result that a closed form or an independent count checks, and
//! writes it with `report::result`; a wrong result marks the run failed.

pub mod basic;
pub mod bench;
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
