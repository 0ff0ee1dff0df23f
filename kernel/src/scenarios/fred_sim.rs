//! Commands of the `fred-sim` mode (`growth fred-sim`): the stack-level table, the
//! simulation's counters, and `bench fred` (cycles per delivery and return, simulated FRED
//! against the hardware IDT path, for the same events).

use alloc::vec::Vec;
use stacklab_core::cmdline::ArgError;
use stacklab_core::stack_layout::median_p99;
use stacklab_fred::sim::LevelTable;

use crate::arch::x86_64::{cpu, fred, fredsim, pic, provoke};
use crate::commands::{Call, Command, command};
use crate::growth::{self, Mode};
use crate::report;

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "fred-levels",
        "...",
        "fred-sim stack levels: 'default' or NAME=LEVEL (pf db nmi mc df irq, 0-3); none: show",
        "fred-levels pf=0 irq=0",
        fred_levels
    ),
    command!(
        "fred-state",
        "",
        "fred-sim counters: deliveries by outcome, ERETS, CSL, level stack tops; real FRED's",
        "fred-state",
        fred_state
    ),
];

fn fred_levels<'a>(c: &mut Call<'a>) -> Result<(), ArgError<'a>> {
    let mut t = crate::fredsim::levels();
    while let Some(w) = c.args.rest.optional_word() {
        if w == "default" {
            t = LevelTable::DEFAULT;
        } else if let Err(e) = t.assign(w) {
            c.refuse(format_args!("'{w}': {}", e.message()));
            return Ok(());
        }
    }
    crate::fredsim::set_levels(t);
    log::info!(
        "fred-levels: #PF {} #DB {} NMI {} #MC {} #DF {} interrupts {}",
        t.pf,
        t.db,
        t.nmi,
        t.mc,
        t.df,
        t.irq
    );
    report::result(|r| {
        r.bool("ok", true)
            .u64("pf", t.pf as u64)
            .u64("db", t.db as u64)
            .u64("nmi", t.nmi as u64)
            .u64("mc", t.mc as u64)
            .u64("df", t.df as u64)
            .u64("irq", t.irq as u64)
            .hex("stklvls", t.stklvls().0)
    });
    Ok(())
}

fn fred_state(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let n = fredsim::counts();
    let tops = fredsim::level_stack_tops();
    log::info!(
        "fred-state: {} delivered, {} nested, {} double fault, {} erets; CSL {}",
        n.delivered,
        n.nested,
        n.double_fault,
        n.erets,
        fredsim::csl()
    );
    report::result(|r| {
        r.bool("ok", true)
            .bool("installed", fredsim::installed())
            .str("growth", growth::mode().name())
            .u64("delivered", n.delivered)
            .u64("nested", n.nested)
            .u64("double_fault", n.double_fault)
            .u64("erets", n.erets)
            .u64("csl", fredsim::csl() as u64)
            .u64("max_csl", n.max_csl as u64)
            .hex_list("level_stacks", &tops)
            .str("fred", fred::status())
            .u64("fred_delivered", fred::counts().0)
            .u64("fred_returns", fred::counts().1)
            .u64("fred_csl", fred::csl() as u64)
    });
    Ok(())
}

/// Cycles of `n` `int3` round trips from the caller's view (delivery, the #BP policy, return).
fn int3_round_trips(n: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let t0 = cpu::rdtsc();
            provoke::breakpoint();
            cpu::rdtsc() - t0
        })
        .collect()
}

/// Cycles each of `n` timer interrupts took away from a loop that reads the TSC back to back
/// (delivery, the tick policy, return): the largest gap between two reads while the tick
/// counter moved by one.
fn timer_round_trips(n: u64) -> Vec<u64> {
    let ticks = pic::ticks_counter();
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = ticks.load(core::sync::atomic::Ordering::Relaxed);
        let mut prev = cpu::rdtsc();
        let mut gap = 0;
        loop {
            let now = cpu::rdtsc();
            gap = gap.max(now - prev);
            prev = now;
            if ticks.load(core::sync::atomic::Ordering::Relaxed) != start {
                break;
            }
        }
        out.push(gap);
    }
    out
}

/// `bench fred N`: for `int3`, the timer interrupt and a growth #PF, the median cycles per
/// delivery and return through the hardware IDT (`pf-ist`: #PF on its IST stack, the others on
/// normal gates), through `fred-sim`, and, on a CPU with FRED, through real FRED (`fred`),
/// with their ratios to the IDT, from one run.
pub(super) fn bench_fred(n: u64) {
    let saved = growth::mode();
    let mut modes = alloc::vec![Mode::PfIst, Mode::FredSim];
    if fred::available() {
        modes.push(Mode::Fred);
    }
    // Per mode: int3, timer, growth samples.
    let mut by_mode: Vec<[Vec<u64>; 3]> = Vec::new();
    for &mode in &modes {
        growth::set_mode(mode);
        by_mode.push([
            int3_round_trips(n),
            timer_round_trips(n.min(200)),
            super::bench::growth_round_trips(mode, n.min(240)),
        ]);
    }
    growth::set_mode(saved);
    let names = ["int3", "timer", "growth-pf"];
    for (e, name) in names.into_iter().enumerate() {
        let stats: Vec<(u64, u64, usize)> = by_mode
            .iter_mut()
            .map(|m| {
                let (med, p99) = median_p99(&mut m[e]);
                (med, p99, m[e].len())
            })
            .collect();
        let ratio = |i: usize| stats[i].0 * 100 / stats[0].0.max(1);
        let (im, fm) = (stats[0].0, stats[1].0);
        log::info!(
            "bench fred: {name:<9} idt median {im}, fred-sim median {fm} cycles = {}.{:02} x{}",
            ratio(1) / 100,
            ratio(1) % 100,
            match stats.get(2) {
                Some(r) => alloc::format!(
                    "; real FRED median {} = {}.{:02} x",
                    r.0,
                    ratio(2) / 100,
                    ratio(2) % 100
                ),
                None => alloc::string::String::new(),
            }
        );
        report::emit("bench", |mut r| {
            r = r.str("name", "fred").str("event", name);
            for ((label, (med, p99, len)), i) in ["idt", "fred", "real"].iter().zip(&stats).zip(0..)
            {
                r = r
                    .u64(&alloc::format!("{label}_median_cycles"), *med)
                    .u64(&alloc::format!("{label}_p99_cycles"), *p99)
                    .u64(&alloc::format!("{label}_samples"), *len as u64);
                if i > 0 {
                    let key = if i == 1 { "ratio" } else { "real_ratio" };
                    r = r.fmt(
                        key,
                        format_args!("{}.{:02}", ratio(i) / 100, ratio(i) % 100),
                    );
                }
            }
            r
        });
    }
}
