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
    hazard!(
        "cr2-overwritten",
        "cr2-nested",
        "a nested #PF overwrites CR2 before the first #PF handler has used it",
        "A write to a demand-paged address faults and the CPU puts the address in CR2. Before \
         the handler uses it, the handler itself touches another unmapped address: the nested \
         #PF writes its own address into CR2 (the SDM: a later page fault replaces the earlier \
         address). A handler that read CR2 late would map the wrong page and fault forever. \
         The entry stubs copy CR2 before pushing anything and clear it (FRED's event data does \
         the same in hardware), so the outer handler maps the right page. On the #PF IST stack \
         (pf-ist) the nested #PF rewinds the stack over the handler that is still running: the \
         kernel detects the re-entry and stops, because the outer frame is already gone.",
        [
            "fixed-16k=ok",
            "fixed-32k=ok",
            "pf-ist=abort:ist-reentered",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=ok",
        ]
    ),
    hazard!(
        "df-not-overflow",
        "df-contributory",
        "a #DF caused by a stack-segment fault during the delivery of another (non-canonical RSP)",
        "RSP is loaded with a non-canonical address and the next push raises #SS, a \
         contributory exception. Delivering #SS on its gate pushes through the same RSP and \
         raises #SS again; a contributory exception during the delivery of another is a #DF \
         (SDM Table 6-5). #DF has its own IST stack, so it is delivered. Its handler finds no \
         page fault behind it (CR2 was cleared at the last capture) and an RSP on no stack: this \
         is not an overflow, and even df-recover must not map anything and return, since \
         the saved RIP of a #DF is undefined. Every policy stops with the exception report. \
         Under fred-sim the delivery model knows only #PF (a frame write) and #GP as delivery \
         faults, so the failed frame write is reported as a #PF at the frame's address (level \
         1) or, with #PF at level 0, as the #DF that #PF escalates to.",
        [
            "fixed-16k=abort:exception",
            "fixed-32k=abort:exception",
            "pf-ist=abort:exception",
            "df-recover=abort:exception",
            "ensure=abort:exception",
            "fred-l1=abort:exception",
            "fred-l0=abort:exception",
        ]
    ),
    hazard!(
        "stale-cr2",
        "stale-cr2",
        "the #DF of df-not-overflow with CR2 planted to name the thread's guard page",
        "CR2 keeps the address of the last page fault until another one replaces it, so a #DF \
         with another cause can find a guard-page address there. Here the thread writes its own \
         guard address into CR2, then causes the #SS double fault. A handler that looks only at \
         CR2 (Linux's exc_double_fault, whose comment accepts the misdiagnosis because it \
         panics anyway) reports a stack overflow that never happened, and df-recover would be \
         tempted to map the page and resume at an undefined RIP. The kernel also requires the \
         saved RSP to sit at that stack's edge, as that comment proposes, so it reports the \
         #DF as what it is. Under fred-sim the simulated delivery's own fault replaces the \
         planted CR2 before any handler runs.",
        [
            "fixed-16k=abort:exception",
            "fixed-32k=abort:exception",
            "pf-ist=abort:exception",
            "df-recover=abort:exception",
            "ensure=abort:exception",
            "fred-l1=abort:exception",
            "fred-l0=abort:exception",
        ]
    ),
    hazard!(
        "rep-stos-edge",
        "rep-stos 8K",
        "one rep stosq fills an 8 KiB frame from 64 bytes above the mapped edge downwards",
        "The thread moves RSP down by 8 KiB (a new frame) and fills it with one rep stosq, \
         direction flag set, from the top. The first eight stores hit mapped memory; the ninth \
         is below the edge and faults in the middle of the instruction. The CPU saves RCX and \
         RDI as they are at that iteration, so resuming re-executes rep stosq from there. RSP is \
         already below the edge, so a #PF on a gate cannot push its frame: #DF. pf-ist and FRED \
         level 1 take one fault per new page; df-recover maps both pages from the #DF. The scenario \
         checks RCX = 0, RDI one quadword below the frame and every quadword.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=abort:stack-overflow",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "big-frame",
        "big-frame",
        "a function with a 12 KiB frame is called 256 bytes above the mapped edge",
        "A frame larger than a page could jump over a one-page guard and write into whatever \
         lies below. The compiler therefore probes: it moves RSP down one page at a time and \
         touches each page before going further, so the first access below the edge is always \
         the page right below it. Each probe is a fault with RSP already in the unmapped page: \
         a gate cannot push the #PF frame, so fixed stacks report an overflow. Growth paths see \
         one fault per page (three faults, three pages), never a hole.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=abort:stack-overflow",
            "pf-ist=ok",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "span-limit",
        "span-limit",
        "a thread grows its stack to the policy's maximum, uses the lowest word, and pushes once more",
        "The thread parks RSP at its mapped edge and pushes, page after page, until the stack \
         reaches the policy's maximum; it then writes the lowest word, which must work, and \
         reports. The next push is one word beyond the limit: a growth path must refuse it (the \
         page is guard, not growable) and report the overflow exactly there. Under ensure the \
         thread asks ensure_stack for the whole stack, then for one word more, which is refused \
         with an error instead of a crash. FRED level 0 overflows at the first page already.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=abort:stack-overflow",
            "pf-ist=abort:stack-overflow",
            "df-recover=abort:stack-overflow",
            "ensure=refused",
            "fred-l1=abort:stack-overflow",
            "fred-l0=abort:stack-overflow",
        ]
    ),
    hazard!(
        "wild-write",
        "wild-edge",
        "a stray write 2 KiB below the stack's mapped edge, far below RSP",
        "A bad pointer lands in the thread's own unmapped stack range, kilobytes below RSP. For \
         the page-table walk it is the same kind of fault as growth: not present, in the slot. \
         But nothing grows a stack that way; pushes, calls and frames write right below RSP, and \
         probes move RSP first. Growth paths therefore refuse any fault more than a frame below \
         RSP and report a wild access; mapping the page would hide the bug. Without fault-driven \
         growth the address is guard, and the report is a guard hit.",
        [
            "fixed-16k=abort:stack-overflow",
            "fixed-32k=abort:stack-overflow",
            "pf-ist=abort:wild-stack-access",
            "df-recover=abort:wild-stack-access",
            "ensure=abort:stack-overflow",
            "fred-l1=abort:wild-stack-access",
            "fred-l0=abort:wild-stack-access",
        ]
    ),
    hazard!(
        "nmi-in-pf",
        "nmi-in-pf",
        "an NMI-like event arrives as a #PF handler starts, and the NMI handler takes a #PF",
        "A demand #PF starts; before its handler does anything, an NMI arrives (int 2 here, \
         through the NMI gate and its own IST stack). The NMI handler reads an unmapped \
         address, as a profiler's NMI may: #PF. On a gate that #PF goes below the NMI handler \
         on the NMI stack, and all unwinds in order. With #PF on an IST stack (pf-ist) the CPU \
         reloads the #PF IST stack from its top and writes the new frame over the first #PF's, \
         which is still being handled: a busy flag makes the kernel stop with the re-entry \
         report (without it, the first handler resumed on the nested fault's frame and died \
         with a misleading report). FRED levels nest instead of rewinding.",
        [
            "fixed-16k=ok",
            "fixed-32k=ok",
            "pf-ist=abort:ist-reentered",
            "df-recover=ok",
            "ensure=ok",
            "fred-l1=ok",
            "fred-l0=ok",
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
