//! Races made deterministic: a fault-injection hook in the growth reserve
//! (`mem::reserve::FrameReserve::set_hook`) runs a nested pop or push at each step of another
//! push or pop, the interleavings a growth fault or a timer preemption can produce, and the
//! scenario checks that no frame is ever listed twice, none is lost, and the count is exact.
//!
//! A nested pop is what a growth fault does: exceptions arrive whatever IF says, so it is
//! injected at every step. A nested push is what the scheduler's refill does after a timer
//! preemption: the hook performs it only where the timer could really fire (interrupts
//! enabled at that step), so the test shows the interleaving exactly when it is possible.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use stacklab_core::cmdline::ArgError;

use super::fail;
use crate::arch::x86_64::cpu;
use crate::commands::{Call, Command, command};
use crate::mem::frame::{self, Frame};
use crate::mem::reserve::{CAPACITY, Full, Step};
use crate::{report, stacks};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[command!(
    "reserve-race",
    "",
    "nested pops and pushes injected at every step of the growth reserve's push and pop; checks no frame is listed twice or lost",
    "reserve-race",
    reserve_race
)];

/// What the hook does when its step comes: 0 nothing, 1 a nested pop, 2 a nested push (if a
/// timer could preempt there).
static ACTION: AtomicU8 = AtomicU8::new(0);
static AT: AtomicU8 = AtomicU8::new(0);
/// Frame taken by a nested pop (its address), for the scenario to give back.
static POPPED: AtomicU64 = AtomicU64::new(0);
/// Whether the nested action ran.
static RAN: AtomicU8 = AtomicU8::new(0);

fn step_id(s: Step) -> u8 {
    match s {
        Step::PushLoaded => 1,
        Step::PushStored => 2,
        Step::PopLoaded => 3,
    }
}

fn hook(step: Step) {
    if step_id(step) != AT.load(Ordering::Relaxed) || RAN.load(Ordering::Relaxed) != 0 {
        return;
    }
    RAN.store(1, Ordering::Relaxed);
    let r = stacks::reserve_store();
    match ACTION.load(Ordering::Relaxed) {
        1 => {
            if let Some(f) = r.pop() {
                POPPED.store(f.addr(), Ordering::Relaxed);
                frame::give_back(f);
            }
        }
        2 if cpu::interrupts_enabled() => {
            if let Some(f) = frame::alloc_zeroed()
                && let Err(Full(f)) = r.push(f)
            {
                frame::give_back(f);
            }
        }
        _ => RAN.store(2, Ordering::Relaxed),
    }
}

/// One interleaving: `outer` is a push (true) or a pop, `at` the step, `action` the nested
/// operation. Returns a failure description, if any.
fn case(outer_push: bool, at: Step, action: u8) -> Option<&'static str> {
    let r = stacks::reserve_store();
    stacks::reserve_set(8, true);
    let in_use0 = frame::stats().in_use;
    AT.store(step_id(at), Ordering::Relaxed);
    ACTION.store(action, Ordering::Relaxed);
    RAN.store(0, Ordering::Relaxed);
    POPPED.store(0, Ordering::Relaxed);
    r.set_hook(Some(hook));
    let mut taken: Option<Frame> = None;
    if outer_push {
        let Some(f) = frame::alloc_zeroed() else {
            return Some("out of memory");
        };
        if let Err(Full(f)) = r.push(f) {
            frame::give_back(f);
        }
    } else {
        taken = r.pop();
    }
    r.set_hook(None);
    let nested = match (RAN.load(Ordering::Relaxed), action) {
        (1, 1) => -1i64,
        (1, 2) => 1,
        _ => 0,
    };
    let want = 8 + if outer_push { 1 } else { -1 } + nested;
    let got = r.count() as i64;
    let popped = POPPED.load(Ordering::Relaxed);
    let outcome = if !r.all_distinct() {
        Some("a frame is listed twice")
    } else if got != want {
        Some("the count is not what the operations add up to")
    } else if taken.as_ref().is_some_and(|t| t.addr() == popped) {
        Some("the outer and the nested pop took the same frame")
    } else {
        None
    };
    if let Some(t) = taken {
        frame::give_back(t);
    }
    // Frames in use: the reserve's, plus nothing leaked.
    let leaked = frame::stats().in_use as i64 - in_use0 as i64 - (got - 8);
    outcome.or((leaked != 0).then_some("a frame leaked"))
}

fn reserve_race(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let cases: [(bool, Step, u8, &str); 6] = [
        (true, Step::PushLoaded, 1, "pop inside push after its load"),
        (true, Step::PushStored, 1, "pop inside push after its store"),
        (
            true,
            Step::PushLoaded,
            2,
            "refill inside push after its load",
        ),
        (
            true,
            Step::PushStored,
            2,
            "refill inside push after its store",
        ),
        (false, Step::PopLoaded, 1, "pop inside pop after its load"),
        (
            false,
            Step::PopLoaded,
            2,
            "refill inside pop after its load",
        ),
    ];
    let mut failures = Vec::new();
    for (push, at, action, what) in cases {
        if let Some(why) = case(push, at, action) {
            log::error!("reserve-race: {what}: {why}");
            failures.push((what, why));
        }
    }
    // A push at full capacity is refused, and the frame comes back to its owner.
    stacks::reserve_set(CAPACITY, true);
    let full_refused =
        frame::alloc_zeroed().is_some_and(|f| match stacks::reserve_store().push(f) {
            Err(Full(f)) => {
                frame::give_back(f);
                true
            }
            Ok(()) => false,
        });
    if !full_refused {
        failures.push(("push at capacity", "accepted past the end"));
    }
    stacks::reserve_set(stacks::DEFAULT_RESERVE as usize, false);
    let ok = failures.is_empty();
    log::info!(
        "reserve-race: {} interleavings and a full push, {} failures",
        cases.len(),
        failures.len()
    );
    report::result(|r| {
        let mut list = alloc::string::String::new();
        for (i, (what, why)) in failures.iter().enumerate() {
            use core::fmt::Write;
            let _ = write!(list, "{}{what}: {why}", if i == 0 { "" } else { "; " });
        }
        r.bool("ok", ok)
            .u64("cases", cases.len() as u64 + 1)
            .str("failures", &list)
    });
    if !ok {
        fail();
    }
    Ok(())
}
