//! `fred-compare`: each event of a list taken once under real FRED (`growth fred`) and once
//! under fred-sim, from the same state, and the two deliveries compared: the 64-byte frames
//! word by word, RSP and CSL right after delivery, and RSP and CSL after the return. The pure
//! model (`stacklab_fred::deliver`, with the unmapped page below the stack's edge as its only
//! memory) is fed what the real frame records (`stacklab_fred::real::recorded_input`) and
//! compared with it too; each case's model input is printed as a line of `cargo lab fred`.
//!
//! Same state: every case runs on a fresh thread of the same policy, which gets the same stack
//! slot (the slot table reuses the one just released), parks RSP at the same address with the
//! arithmetic flags fixed (`arch::x86_64::parked`) and interrupts off, and touches the same
//! demand-area page (unmapped again before each run). The timer interrupt is taken in `hlt`, so
//! its saved RIP does not depend on when it fires. The level stacks are shared by the two
//! mechanisms, so a frame that goes to a level stack lands at the same address.
//!
//! Masked, and only there: the interrupted RSP of the nested #PF, which is the RSP of the
//! outer #PF's handler, whose depth depends on each mechanism's entry code (the fred-sim
//! trampoline's register view and Rust frames differ from the real entry's pushes); its frame's
//! place is checked against the `stack-stay` rule instead. And, between real FRED and fred-sim
//! only, the nested bit of the #PF raised while delivering the timer at the stack's edge:
//! fred-sim's model follows Linux's wording, Bochs does not set it (the model run here is asked
//! for Bochs's behaviour and must agree with it). `docs/fred.md` ("Real FRED") has the table of
//! one run.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use stacklab_core::cmdline::ArgError;
use stacklab_core::event::Vector;
use stacklab_core::stack_layout::{PAGE, Policy};
use stacklab_fred::deliver::Frame;
use stacklab_fred::real::{self, Mask, Setup, WORD_RSP, WORD_SS};
use stacklab_fred::sim::LevelTable;
use stacklab_fred::state::RFLAGS_RF;
use stacklab_fred::{Event as ModelEvent, NestedPolicy, NoTrace, Options, Unmapped, deliver_with};

use super::{fail, run_thread};
use crate::arch::x86_64::fredcap::{self, Captured, SLOTS};
use crate::arch::x86_64::{cpu, fred, fredsim, parked, pic};
use crate::commands::{Call, Command, command};
use crate::events::inject::{self, Injection};
use crate::growth::{self, Mode};
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks, time};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[command!(
    "fred-compare",
    "",
    "int3, a demand #PF, a growth #PF on level 1, the overflow with #PF on level 0 (#DF), a timer interrupt (inside the stack, at its edge) and a nested #PF, each under real FRED and fred-sim: frames, RSP and CSL compared (needs FRED)",
    "fred-compare",
    fred_compare
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Int3,
    Demand,
    Growth,
    Overflow,
    Timer,
    /// The timer with RSP at the mapped edge: its own delivery faults, the #PF is delivered
    /// instead (a growth fault), and the lost interrupt is replayed.
    TimerAtEdge,
    Nested,
}

impl Case {
    const ALL: [Case; 7] = [
        Case::Int3,
        Case::Demand,
        Case::Growth,
        Case::Overflow,
        Case::Timer,
        Case::TimerAtEdge,
        Case::Nested,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Int3 => "int3",
            Case::Demand => "demand-pf",
            Case::Growth => "growth-pf-level1",
            Case::Overflow => "overflow-pf-level0-df",
            Case::Timer => "timer",
            Case::TimerAtEdge => "timer-at-edge",
            Case::Nested => "nested-pf-same-level",
        }
    }

    /// Deliveries the case makes: the nested case an outer and an inner #PF.
    fn deliveries(self) -> usize {
        if self == Case::Nested { 2 } else { 1 }
    }

    /// The level table the case runs with: the overflow with Linux's #PF level 0.
    fn levels(self, base: LevelTable) -> LevelTable {
        if self == Case::Overflow {
            LevelTable { pf: 0, ..base }
        } else {
            base
        }
    }
}

const POLICY: Policy = Policy::Grow {
    initial: 4096,
    max: 32 * 1024,
};
/// Where the cases that do not need the edge park RSP: inside the mapped page.
const INSIDE: u64 = 2048;
/// The demand-area page the demand cases write (in the first half, where the nested
/// injection acts).
const DEMAND_PAGE: u64 = 3;
const PUSHED: u64 = 0x4652_4544_4652_4544;
/// SS word bit 58: the event is an exception nested in another's delivery.
const NESTED_BIT: u64 = 1 << 58;

/// What the thread body leaves besides its result: the CSL after the return, the stack's edge.
static AFTER_CSL: AtomicU8 = AtomicU8::new(0);
static EDGE: AtomicU64 = AtomicU64::new(0);

/// One case under one mechanism.
struct Observed {
    count: usize,
    caps: [Captured; SLOTS],
    /// RSP right after the event instruction (after the return), or an error sentinel.
    rsp_after: u64,
    csl_after: u8,
    /// The mapped edge of the thread's stack.
    edge: u64,
}

fn csl_now() -> u8 {
    if fred::enabled() {
        fred::csl()
    } else {
        fredsim::csl()
    }
}

fn arm_one_shot() {
    pic::one_shot(300);
}

/// The thread body of `case`: parks RSP, captures the deliveries, returns the RSP after.
fn body(case: Case) -> u64 {
    let Some(s) = stacks::find(cpu::rsp()) else {
        return u64::MAX;
    };
    let (edge, inside) = (s.lo(), s.lo() + INSIDE);
    EDGE.store(edge, Ordering::Relaxed);
    let addr = lazy::BASE + DEMAND_PAGE * PAGE + 0x120;
    let timer = matches!(case, Case::Timer | Case::TimerAtEdge);
    if timer {
        // No periodic tick from here on; one the PIC latched before is taken now.
        pic::quiet();
        time::spin_ms(1);
    }
    let r = cpu::without_interrupts(|| {
        fredcap::arm();
        let r = match case {
            Case::Int3 => parked::int3(inside, &KernelSpace).ok(),
            Case::Growth | Case::Overflow => parked::push(edge, PUSHED, &KernelSpace)
                .ok()
                .filter(|&(_, v)| v == PUSHED)
                .map(|(rsp, _)| rsp),
            Case::Demand | Case::Nested => lazy::write_parked(inside, addr, 0xa5),
            Case::Timer => parked::halt(inside, arm_one_shot, &KernelSpace).ok(),
            Case::TimerAtEdge => parked::halt(edge, arm_one_shot, &KernelSpace).ok(),
        };
        fredcap::disarm();
        AFTER_CSL.store(csl_now(), Ordering::Relaxed);
        r
    });
    if timer {
        pic::periodic();
    }
    r.unwrap_or(u64::MAX - 1)
}

fn observe(case: Case, mode: Mode, base: LevelTable) -> Option<Observed> {
    growth::set_mode(mode);
    crate::fredsim::set_levels(case.levels(base));
    lazy::reset();
    match case {
        Case::Overflow => inject::arm(Injection::RecoverDoubleFault),
        Case::Nested => inject::arm(Injection::NestedDemandFault),
        _ => {}
    }
    let j = run_thread("fred-compare", POLICY, move || body(case));
    // Disarm what did not fire (it would act on a later event).
    inject::take(Injection::RecoverDoubleFault);
    inject::take(Injection::NestedDemandFault);
    crate::fredsim::set_levels(base);
    let (j, _) = j?;
    let (count, caps) = fredcap::read();
    Some(Observed {
        count,
        caps,
        rsp_after: j.result,
        csl_after: AFTER_CSL.load(Ordering::Relaxed),
        edge: EDGE.load(Ordering::Relaxed),
    })
}

/// The pure model's delivery for what the real frame `i` records: frame, new RSP, new CSL.
/// The overflow's #DF frame records the context of the #PF whose delivery failed; the model is
/// given that #PF (a write of the push at RSP - 8) and must itself end in #DF. The timer at the
/// edge: the model is given the interrupt, must find its frame write faulting and deliver the
/// #PF instead, and is asked for Bochs's nested bit (see `docs/fred.md`, "Where the sources
/// disagree", 1).
fn model(case: Case, real: &Observed, i: usize, setup: &Setup) -> (Option<Captured>, String) {
    let frame = Frame {
        words: real.caps[i].frame,
    };
    let (mut state, mut event) = real::recorded_input(&frame, setup.msrs());
    let mut nested = NestedPolicy::AnyEvent;
    match case {
        Case::Overflow => {
            event = ModelEvent::page_fault(frame.rsp() - 8, 2);
            state.rflags &= !RFLAGS_RF;
        }
        Case::TimerAtEdge => {
            event = ModelEvent::external_interrupt(Vector::TIMER.0);
            state.rflags &= !RFLAGS_RF;
            nested = NestedPolicy::HardwareExceptionsOnly;
        }
        _ => {}
    }
    let unmapped = [(real.edge - PAGE, real.edge)];
    let mut line = String::new();
    let _ = real::write_json_input(&mut line, &state, &event, &unmapped, nested);
    let got = deliver_with(
        &state,
        &event,
        &Unmapped(&unmapped),
        &Options { nested },
        &mut NoTrace,
    )
    .delivered
    .map(|d| Captured {
        frame: d.frame.words,
        rsp: d.new_rsp,
        csl: d.new_csl,
    });
    (got, line)
}

/// Where a same-level delivery puts the frame for an interrupted RSP (red zone 64).
fn stay_rule(rsp: u64) -> u64 {
    ((rsp - 64) & !63) - 64
}

/// Compares `b` (fred-sim or the model, called `what`) with the real delivery `a`.
fn compare(
    name: &str,
    what: &str,
    i: usize,
    a: &Captured,
    b: &Captured,
    mask: Mask,
    out: &mut Vec<String>,
) {
    for m in real::compare(&a.frame, &b.frame, mask) {
        out.push(format!(
            "{name}/{i}: word {} real {:#x} {what} {:#x}",
            m.word, m.a, m.b
        ));
    }
    let same_place = if mask.0[WORD_RSP] != 0 {
        a.rsp == stay_rule(a.frame[WORD_RSP]) && b.rsp == stay_rule(b.frame[WORD_RSP])
    } else {
        a.rsp == b.rsp
    };
    if !same_place || a.csl != b.csl {
        out.push(format!(
            "{name}/{i}: after delivery real RSP {:#x} CSL {} {what} RSP {:#x} CSL {}",
            a.rsp, a.csl, b.rsp, b.csl
        ));
    }
}

/// Runs one case under both mechanisms and the model; adds what differs to `out`.
fn run_case(case: Case, base: LevelTable, out: &mut Vec<String>) {
    let name = case.name();
    let (Some(r), Some(s)) = (
        observe(case, Mode::Fred, base),
        observe(case, Mode::FredSim, base),
    ) else {
        out.push(format!("{name}: cannot spawn"));
        return;
    };
    let want = case.deliveries();
    if r.count != want || s.count != want {
        out.push(format!(
            "{name}: deliveries real {} fred-sim {} (expected {want})",
            r.count, s.count
        ));
    }
    if r.rsp_after != s.rsp_after || r.csl_after != s.csl_after || r.rsp_after >= u64::MAX - 1 {
        out.push(format!(
            "{name}: after the return real RSP {:#x} CSL {} fred-sim RSP {:#x} CSL {}",
            r.rsp_after, r.csl_after, s.rsp_after, s.csl_after
        ));
    }
    let setup = Setup {
        entry_page: fred::entry_page(),
        level_tops: fredsim::level_stack_tops(),
        levels: case.levels(base),
        red_zone_units: 1,
    };
    let n = r.count.min(s.count).min(want);
    let mut words: [Vec<u64>; 3] = Default::default();
    let mut model_at: (Vec<u64>, Vec<u64>) = Default::default();
    for i in 0..n {
        let mask = match case {
            Case::Nested if i == 1 => Mask::NONE.ignore(WORD_RSP, !0),
            // fred-sim's model sets the nested bit by Linux's wording, Bochs does not.
            Case::TimerAtEdge => Mask::NONE.ignore(WORD_SS, NESTED_BIT),
            _ => Mask::NONE,
        };
        compare(name, "fred-sim", i, &r.caps[i], &s.caps[i], mask, out);
        let (m, line) = model(case, &r, i, &setup);
        match m {
            Some(m) => compare(name, "model", i, &r.caps[i], &m, Mask::NONE, out),
            None => out.push(format!("{name}/{i}: the model delivered nothing")),
        }
        report::emit("fred-model-input", |rec| {
            rec.str("case", name)
                .u64("delivery", i as u64)
                .str("line", &line)
        });
        model_at.0.push(m.map_or(0, |m| m.rsp));
        model_at.1.push(m.map_or(0, |m| m.csl as u64));
        for (w, c) in words.iter_mut().zip([Some(r.caps[i]), Some(s.caps[i]), m]) {
            w.extend(c.map_or([0; 8], |c| c.frame));
        }
    }
    report::emit("fred-case", |rec| {
        rec.str("case", name)
            .hex_list("real", &words[0])
            .hex_list("sim", &words[1])
            .hex_list("model", &words[2])
            .hex_list(
                "real_rsp",
                &r.caps[..n].iter().map(|c| c.rsp).collect::<Vec<_>>(),
            )
            .hex_list(
                "sim_rsp",
                &s.caps[..n].iter().map(|c| c.rsp).collect::<Vec<_>>(),
            )
            .u64_list(
                "real_csl",
                &r.caps[..n].iter().map(|c| c.csl as u64).collect::<Vec<_>>(),
            )
            .u64_list(
                "sim_csl",
                &s.caps[..n].iter().map(|c| c.csl as u64).collect::<Vec<_>>(),
            )
            .hex_list("model_rsp", &model_at.0)
            .u64_list("model_csl", &model_at.1)
            .hex("real_rsp_after", r.rsp_after)
            .hex("sim_rsp_after", s.rsp_after)
            .u64("real_csl_after", r.csl_after as u64)
            .u64("sim_csl_after", s.csl_after as u64)
    });
}

fn fred_compare(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    if !fred::available() {
        c.refuse(format_args!(
            "{}",
            crate::fred::refusal(fred::Refused::Absent)
        ));
        return Ok(());
    }
    let saved = growth::mode();
    let base = crate::fredsim::levels();
    let mut mismatches = Vec::new();
    for case in Case::ALL {
        run_case(case, base, &mut mismatches);
    }
    growth::set_mode(saved);
    lazy::reset();
    let ok = mismatches.is_empty();
    for m in &mismatches {
        log::error!("fred-compare: {m}");
    }
    log::info!(
        "fred-compare: {} cases, {} mismatches",
        Case::ALL.len(),
        mismatches.len()
    );
    report::result(|r| {
        let list: Vec<&str> = mismatches.iter().map(String::as_str).collect();
        r.bool("ok", ok)
            .u64("cases", Case::ALL.len() as u64)
            .str_list("mismatches", &list)
    });
    if !ok {
        fail();
    }
    Ok(())
}
