//! `edge-sweep`: every event kind taken with RSP parked at each offset from 0 to 512 bytes
//! above a growable stack's mapped edge, under each growth path, with the outcome checked
//! exactly: the computation completes with the right value, one timer interrupt (the PIT in
//! one-shot mode raises exactly one) is counted once, replayed only when its own delivery was
//! the fault, which happens exactly when the CPU's 5-word frame, pushed from RSP aligned down
//! to 16, crosses the edge (offsets below 48); one breakpoint is one handler run; a demand
//! fault maps its page once; and the stack ends with exactly the pages its high-water mark
//! needs (plus the page a lost interrupt's delivery grew and never wrote).
//!
//! Under `abort` every case whose event needs the page below the edge stops the machine with
//! the overflow report, so the sweep runs the growth paths (`pf-ist`, `df-recover` and
//! `fred-sim`); `edge-sweep abort EVENT OFF OFF` runs one such case on purpose.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use stacklab_core::cmdline::ArgError;
use stacklab_core::cmdspec::Value;
use stacklab_core::stack_layout::{PAGE, Policy};

use super::{fail, run_thread};
use crate::arch::x86_64::{cpu, fredsim, pic, provoke};
use crate::commands::{Call, Command, command};
use crate::events;
use crate::growth::{self, Mode};
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks, time};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[command!(
    "edge-sweep",
    "[MODE:all|pf-ist|df-recover|fred-sim|abort=all] [EVENT:all|timer|demand|int3|push|ensure=all] [FROM:0..512=0] [TO:0..512=512]",
    "park RSP 0..512 bytes above a growable stack's mapped edge (8-byte steps) and take a timer interrupt, a demand #PF, int3, a push or an ensure() there; checks each outcome",
    "edge-sweep pf-ist push 0 64",
    edge_sweep
)];

/// The event taken at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Timer,
    Demand,
    Int3,
    Push,
    /// `stacks::ensure` of [`ENSURE_BYTES`], called with RSP at the offset: its own frames
    /// take a growth fault in the middle of its mapping loop.
    Ensure,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Timer,
        Kind::Demand,
        Kind::Int3,
        Kind::Push,
        Kind::Ensure,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Timer => "timer",
            Kind::Demand => "demand",
            Kind::Int3 => "int3",
            Kind::Push => "push",
            Kind::Ensure => "ensure",
        }
    }
}

/// What the `ensure` case asks for below its own RSP.
const ENSURE_BYTES: u64 = 8192;

/// The policy every case runs on: one page mapped, room to grow.
const POLICY: Policy = Policy::Grow {
    initial: 4096,
    max: 32 * 1024,
};
/// Offsets below which the interrupt's own delivery writes below the edge. IDT: the CPU's
/// 5-word frame from RSP aligned down to 16 (`(off & !15) - 40 < 0`). fred-sim: the 64-byte
/// frame below the red zone, 64-byte aligned, and the register view below it
/// (`((off - red zone) & !63) - 64 - view < 0`); real FRED, without the view, would stop at
/// red zone + 64.
fn crosses_below(mode: Mode) -> u64 {
    match mode {
        Mode::FredSim => fredsim::RED_ZONE + 64 + fredsim::SAVE_AREA,
        _ => 48,
    }
}
const PUSHED: u64 = 0x5354_4143_4b4c_4142;

/// The timer case's one interrupt: the PIT in one-shot mode raises exactly one IRQ 0, so a
/// count other than 1 is the kernel's doing, never a second tick.
fn arm_one_shot() {
    pic::one_shot(300);
}

/// One case. Returns why it failed, if it did.
fn case(kind: Kind, off: u64, demand_page: u64) -> Result<(), String> {
    let bp0 = events::breakpoints().hits;
    let lost0 = pic::lost_recovered();
    let demand0 = lazy::faults();
    let addr = lazy::BASE + demand_page * PAGE + (off & 0xff8);
    let (j, _) = run_thread("edge", POLICY, move || {
        let Some(s) = stacks::find(cpu::rsp()) else {
            return u64::MAX;
        };
        let at = s.lo() + off;
        // Every kind but the timer runs with interrupts off, so that no timer tick lands at
        // the edge in the middle of the case and is counted against it.
        let r = match kind {
            Kind::Push => cpu::without_interrupts(|| provoke::push_at(at, PUSHED, &KernelSpace)),
            Kind::Int3 => {
                cpu::without_interrupts(|| provoke::int3_at(at, &KernelSpace)).map(|()| 0)
            }
            Kind::Timer => {
                // No periodic tick from here on; one the PIC latched before is taken now, on
                // this stack, so that the one-shot is the only interrupt of the case.
                pic::quiet();
                time::spin_ms(1);
                let r = provoke::spin_at(at, pic::ticks_counter(), arm_one_shot, &KernelSpace);
                pic::periodic();
                r
            }
            Kind::Demand => {
                Ok(cpu::without_interrupts(|| lazy::write_with_rsp_at(at, addr, 0xa5)) as u64)
            }
            Kind::Ensure => {
                // The lowest address ensure had to map, or 0 if it refused.
                let mut lowest = 0;
                cpu::without_interrupts(|| {
                    provoke::call_at(
                        at,
                        &mut || {
                            let rsp = cpu::rsp();
                            if stacks::ensure(rsp, ENSURE_BYTES).is_ok() {
                                lowest = rsp - ENSURE_BYTES;
                            }
                        },
                        &KernelSpace,
                    )
                })
                .map(|()| lowest)
            }
        };
        r.unwrap_or(u64::MAX - 1)
    })
    .ok_or_else(|| String::from("cannot spawn"))?;
    let got = j.result;
    match kind {
        Kind::Push if got != PUSHED => return Err(format!("popped {got:#x}")),
        Kind::Int3 if events::breakpoints().hits - bp0 != 1 => {
            return Err(format!(
                "{} breakpoint hits",
                events::breakpoints().hits - bp0
            ));
        }
        Kind::Timer if got != 1 => return Err(format!("one interrupt counted {got} times")),
        Kind::Demand if got != 1 => return Err(String::from("the write was refused")),
        Kind::Ensure if got == 0 => return Err(String::from("ensure refused")),
        Kind::Demand if lazy::read(addr) != Some(0xa5) || lazy::faults() - demand0 != 1 => {
            return Err(format!(
                "demand page: read {:?}, {} faults",
                lazy::read(addr),
                lazy::faults() - demand0
            ));
        }
        _ if got >= u64::MAX - 1 => return Err(String::from("the probe refused the stack")),
        _ => {}
    }
    let lost = pic::lost_recovered() - lost0;
    let want_lost = u64::from(kind == Kind::Timer && off < crosses_below(growth::mode()));
    if lost != want_lost {
        return Err(format!("{lost} interrupts replayed, expected {want_lost}"));
    }
    // A lost interrupt's delivery grew the stack by a page it then never wrote (the CPU gave
    // up the delivery), so that page counts even though the high-water mark stays above it;
    // `ensure` maps down to what it was asked for, written or not.
    let mut need = j
        .high_water
        .div_ceil(PAGE)
        .max(if want_lost == 1 { 2 } else { 0 });
    if kind == Kind::Ensure {
        let top = stacks::layout().slot_of(got).map_or(0, |s| s.top);
        need = need.max((top - (got & !(PAGE - 1))) / PAGE);
    }
    if j.pages != need {
        return Err(format!(
            "{} pages mapped for a high-water mark of {} bytes",
            j.pages, j.high_water
        ));
    }
    Ok(())
}

fn edge_sweep(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let modes: Vec<Mode> = match c.word(0) {
        "all" => [Mode::PfIst, Mode::DfRecover, Mode::FredSim].into(),
        m => [Mode::from_name(m).expect("the spec lists mode names")].into(),
    };
    let kinds: Vec<Kind> = match c.word(1) {
        "all" => Kind::ALL.into(),
        k => Kind::ALL.into_iter().filter(|x| x.name() == k).collect(),
    };
    let (from, to) = match (c.args.value(2), c.args.value(3)) {
        (Value::Number(a), Value::Number(b)) => (a, b),
        _ => (0, 512),
    };
    if from > to || !from.is_multiple_of(8) {
        c.refuse(format_args!("FROM must be a multiple of 8, at most TO"));
        return Ok(());
    }
    let saved = growth::mode();
    lazy::reset();
    let (mut cases, mut failures) = (0u64, Vec::new());
    'sweep: for &mode in &modes {
        growth::set_mode(mode);
        for &kind in &kinds {
            for off in (from..=to).step_by(8) {
                if crate::commands::shell::interrupted() {
                    break 'sweep;
                }
                if let Err(why) = case(kind, off, cases % (lazy::SIZE / PAGE)) {
                    let f = format!("{}/{}/+{off}: {why}", mode.name(), kind.name());
                    log::error!("edge-sweep: {f}");
                    failures.push(f);
                }
                cases += 1;
            }
        }
    }
    growth::set_mode(saved);
    lazy::reset();
    if crate::commands::shell::interrupted() {
        log::info!("edge-sweep: stopped after {cases} cases");
        crate::commands::shell::report_interrupted(false);
        return Ok(());
    }
    let ok = failures.is_empty();
    log::info!(
        "edge-sweep: {cases} cases, {} failures (RSP at {from}..={to} bytes above the edge)",
        failures.len()
    );
    report::result(|r| {
        let list: Vec<&str> = failures.iter().map(String::as_str).collect();
        r.bool("ok", ok)
            .u64("cases", cases)
            .str_list("failures", &list)
    });
    if !ok {
        fail();
    }
    Ok(())
}
