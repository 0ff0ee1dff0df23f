//! The double-fault hazard catalogue: the one list of the stack policies a hazard is run under
//! ([`POLICIES`]), of the hazards ([`HAZARDS`], `hazard!` rows), how to run each, and what
//! each policy does with it. A cell of the matrix is one boot running
//! `<policy setup>; <hazard run>`; the host runs the cells (the matrix engine) and compares
//! what happened with `expect`, parsed by `stacklab_core::catalogue`, the same code this
//! command checks its own table with. Every expectation was established by running the cell.

use alloc::vec::Vec;
use stacklab_core::catalogue::{self as vocab, expect_all};
use stacklab_core::cmdline::{self, ArgError};

use super::fail;
use crate::commands::{self, Call, Command, command};
use crate::report;

/// The commands of this file.
pub const COMMANDS: &[Command] = &[command!(
    "catalogue",
    "",
    "the hazard catalogue: one record per stack policy, one per hazard (how to run it, its story, what each policy does with it)",
    "catalogue",
    catalogue_cmd
)];

/// One stack policy of the matrix.
pub struct PolicyRow {
    /// Its name (one of `stacklab_core::catalogue::POLICIES`, in that order).
    pub name: &'static str,
    /// The command line that sets it up, run first in the cell's boot.
    pub setup: &'static str,
    /// One line for people.
    pub title: &'static str,
}

/// One hazard.
pub struct Hazard {
    /// Its name.
    pub name: &'static str,
    /// The command line that provokes it, run after the policy's setup.
    pub run: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// What the CPU does, step by step (for a live talk).
    pub story: &'static str,
    /// `POLICY=OUTCOME` for every policy (`stacklab_core::catalogue` vocabulary).
    pub expect: &'static [&'static str],
}

/// Defines a [`Hazard`] row: `hazard!(name, run, title, story, [expect, ...])`, all string
/// literals.
macro_rules! hazard {
    ($name:literal, $run:literal, $title:literal, $story:literal, [$($e:literal),* $(,)?] $(,)?) => {
        Hazard { name: $name, run: $run, title: $title, story: $story, expect: &[$($e),*] }
    };
}

/// The stack policies, in `stacklab_core::catalogue::POLICIES` order. Growable policies start
/// with one page and may grow to 32 KiB, the size of `fixed-32k`.
pub const POLICIES: &[PolicyRow] = &[
    PolicyRow {
        name: "fixed-16k",
        setup: "policy fixed 16K; growth abort",
        title: "mainline: fixed 16 KiB, #DF reports and stops",
    },
    PolicyRow {
        name: "fixed-32k",
        setup: "policy fixed 32K; growth abort",
        title: "the Asahi fix (2024 thread): fixed 32 KiB, #DF reports and stops",
    },
    PolicyRow {
        name: "pf-ist",
        setup: "policy grow 4K 32K; growth pf-ist",
        title: "grow 4K..32K by #PF on its own IST stack",
    },
    PolicyRow {
        name: "df-recover",
        setup: "policy grow 4K 32K; growth df-recover",
        title: "grow 4K..32K by returning from #DF (outside the SDM)",
    },
    PolicyRow {
        name: "ensure",
        setup: "policy grow 4K 32K; growth ensure",
        title: "grow 4K..32K only by ensure_stack() before a known-deep path; no fault-driven growth",
    },
    PolicyRow {
        name: "fred-l1",
        setup: "policy grow 4K 32K; growth fred-sim; fred-levels default",
        title: "simulated FRED, #PF at stack level 1: an overflow is an ordinary fault",
    },
    PolicyRow {
        name: "fred-l0",
        setup: "policy grow 4K 32K; growth fred-sim; fred-levels pf=0",
        title: "simulated FRED, #PF at stack level 0 (Linux's choice): an overflow still ends in #DF",
    },
];

/// The hazards. Stories say what the CPU does; docs/hazards.md has the sources.
pub const HAZARDS: &[Hazard] = &[
    hazard!(
        "deep-recursion",
        "recurse 60 256",
        "a thread recurses 60 levels with 256-byte frames (about 20 KiB of stack)",
        "Each call pushes a return address and moves RSP down by its frame. At about 16 KiB the \
         next push or store lands on the first unmapped page below the stack. The CPU raises #PF \
         and tries to push the #PF frame on the same stack, which fails too: a #PF during #PF \
         delivery is a #DF, delivered on its own IST stack. Fixed stacks report the guard hit \
         and stop. Growable stacks turn the first #PF into growth: on an IST stack (pf-ist), on \
         FRED stack level 1, or from the #DF handler (df-recover); under ensure the thread asks \
         ensure_stack for the bytes first. FRED with #PF at level 0 delivers the #PF on the \
         overflowing stack itself, so it still ends in #DF.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=ok",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "reclaim-chain",
        "reclaim 6 plain",
        "the zram-like reclaim chain: an allocation enters reclaim, a driver compresses with a 2.5 KiB frame, and allocates again, 6 deep",
        "The 2024 Asahi report: a GPU driver's large Rust frame sat on a path where an \
         allocation entered direct reclaim, zram compressed a page, and compression allocated \
         again. Each level adds about 3.5 KiB. Nothing on the path is recursion the author can \
         see, so the 16 KiB stack overflows into its guard: #PF, the #PF frame cannot be pushed, \
         #DF, report. Doubling the stack (the fix that was merged for that machine) makes room \
         for this depth. A growable stack maps pages as the chain goes down; under ensure the \
         chain asks for its bytes first.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=ok",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "edge-irq",
        "edge-irq",
        "a timer interrupt arrives while RSP sits exactly at the stack's mapped edge",
        "The thread parks RSP on the lowest mapped byte and waits with interrupts on. The timer \
         fires; the CPU acknowledges it at the PIC and starts pushing the interrupt frame below \
         RSP, onto the unmapped page: the delivery itself takes a #PF, whose frame does not fit \
         either, so a gate escalates to #DF. No instruction of the thread faulted, so nothing \
         could have prepared: ensure_stack cannot help an interrupt. Fixed stacks report an \
         overflow. A growth path maps the page and resumes, but the interrupt whose delivery \
         failed was already acknowledged: the kernel replays it from the PIC's in-service \
         register, or the timer would be blocked for good.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=abort:stack-overflow",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=abort:stack-overflow",
            "fred-l1=ok",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "nested-pf-ist",
        "demand-nested",
        "a #PF whose handler takes a second #PF (a demand-paged area)",
        "A write to a demand-paged address faults. While its handler runs, it touches a second \
         unmapped address and faults again. On a normal gate the second frame goes below the \
         first on the same stack. On an IST stack the CPU reloads RSP from the TSS for every \
         #PF, so the second frame is written exactly over the first, and the first handler later \
         returns through garbage (the pf-ist-naive mode shows it). pf-ist therefore moves every \
         #PF that is not growth back onto the interrupted stack before handling it; FRED \
         delivers a nested event at the same level below the running handler instead of \
         rewinding.",
        [
            "fixed-16k=ok",
            "fixed-32k=ok",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=ok",
        ]
    ),
    hazard!(
        "reserve-exhaustion",
        "reserve 1 hold; recurse 30 256",
        "growth needs more pages than the frame reserve holds (one frame, refills held)",
        "A growth fault may not allocate: it runs with an unknown lock state, possibly on an IST \
         stack, so it pops frames from a reserve filled in advance. Here the reserve holds one \
         frame and is not refilled, and the recursion needs about 10 KiB. The first growth fault \
         maps one page; the next finds the reserve empty and must stop the machine, reporting \
         why, instead of mapping garbage. Fixed stacks need no growth; ensure_stack maps from \
         the general allocator in process context, where it may sleep or fail cleanly.",
        [
            "fixed-16k=ok",
            "fixed-32k=ok",
            "pf-ist=abort:stack-reserve-empty",
            "df-recover=abort:stack-reserve-empty",
            "ensure=ok",
            "fred-l1=abort:stack-reserve-empty",
            "fred-l0=abort:stack-overflow",
        ]
    ),
];

/// Every command of `line` exists and its arguments bind to its specification.
fn line_runs(line: &str) -> Result<(), &str> {
    for c in cmdline::commands(line) {
        let cmd = commands::find(c.name).ok_or(c.name)?;
        cmd.args.bind(c.args()).map_err(|_| c.text)?;
    }
    Ok(())
}

/// What is wrong with the tables, if anything: policies not those of the vocabulary, a line
/// that would not run, an `expect` list that is not one outcome per policy.
fn problems() -> Vec<alloc::string::String> {
    use alloc::format;
    let mut out = Vec::new();
    let names: Vec<&str> = POLICIES.iter().map(|p| p.name).collect();
    if names != vocab::POLICIES {
        out.push(format!("policies {names:?} are not {:?}", vocab::POLICIES));
    }
    for p in POLICIES {
        if let Err(bad) = line_runs(p.setup) {
            out.push(format!("policy {}: '{bad}' does not run", p.name));
        }
    }
    for (i, h) in HAZARDS.iter().enumerate() {
        if let Err(bad) = line_runs(h.run) {
            out.push(format!("hazard {}: '{bad}' does not run", h.name));
        }
        if let Err(e) = expect_all(h.expect.iter().copied()) {
            out.push(format!("hazard {}: {e}", h.name));
        }
        if HAZARDS[..i].iter().any(|o| o.name == h.name) {
            out.push(format!("hazard {} listed twice", h.name));
        }
    }
    out
}

fn catalogue_cmd(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    for p in POLICIES {
        report::emit("policy", |r| {
            r.str("name", p.name)
                .str("setup", p.setup)
                .str("title", p.title)
        });
    }
    for h in HAZARDS {
        log::info!("hazard {:<18} {}", h.name, h.title);
        report::emit("hazard", |r| {
            r.str("name", h.name)
                .str("run", h.run)
                .str("title", h.title)
                .str("story", h.story)
                .str_list("expect", h.expect)
        });
    }
    let problems = problems();
    for p in &problems {
        log::error!("catalogue: {p}");
    }
    let ok = problems.is_empty();
    report::result(|r| {
        let list: Vec<&str> = problems.iter().map(|s| s.as_str()).collect();
        r.bool("ok", ok)
            .u64("policies", POLICIES.len() as u64)
            .u64("hazards", HAZARDS.len() as u64)
            .str_list("problems", &list)
    });
    if !ok {
        fail();
    }
    Ok(())
}
