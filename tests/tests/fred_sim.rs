//! `growth fred-sim`: every event delivered FRED-style in software, by the rules of
//! `stacklab_fred`, with the same policy as the IDT paths.
//!
//! One boot runs the growth scenarios under `fred-sim` and a second the same command line
//! under `pf-ist`; their checked values must agree and both grow exactly. Then, each in a boot
//! of its own (every one ends in the machine stopping): the overflow with #PF on level 0
//! (Linux's choice: #DF), on a growable and on a fixed stack; #PF and #DF both on level 0 (a
//! fault while delivering #DF: shutdown); a nested #PF at the same level beside the
//! `pf-ist-naive` IST rewind; `bench fred`; and the `fred-levels` command's checks.

use stacklab_tests::*;

const K: u64 = 1024;
const PAGE: u64 = 4096;
/// Thread stack slots are 64K by default, each aligned to its size.
const SLOT: u64 = 64 * K;
/// `mem::lazy::BASE`, the demand-paged area.
const LAZY_BASE: u64 = 0xffff_e000_8000_0000;
/// `fredsim::LEVEL_PAGES`: the level-1, -2 and -3 stacks.
const LEVEL_PAGES: [u64; 3] = [4, 2, 4];

/// The growth scenarios of one path, then growth past the maximum (fatal, last).
macro_rules! same_boot {
    ($path:literal) => {
        concat!(
            "policy grow 4K 32K; growth ",
            $path,
            "; fred-levels; recurse 40 256; edge-irq; ticks 20; ensure 40 256; reclaim 6 plain; ",
            "threads 20; demand-nested; stats; fred-state; recurse 200 256"
        )
    };
}

static FRED: Shared = Shared::new(same_boot!("fred-sim"));
static IDT: Shared = Shared::new(same_boot!("pf-ist"));

static PF0_GROW: Shared =
    Shared::new("policy grow 4K 32K; growth fred-sim; fred-levels pf=0; recurse 200 256");
static PF0_FIXED: Shared =
    Shared::new("policy fixed 16K; growth fred-sim; fred-levels pf=0; recurse 200 256");
static SHUTDOWN: Shared =
    Shared::new("policy grow 4K 32K; growth fred-sim; fred-levels pf=0 df=0; recurse 200 256");
static NAIVE: Shared = Shared::new("growth pf-ist-naive; demand-nested");
static BENCH: Shared = Shared::new("bench fred 60");
static LEVELS: Shared = Shared::new(
    "fred-levels pf=4; fred-levels gp=1; fred-levels pf; fred-levels pf=0 irq=2; fred-levels; \
     fred-levels default; fred-state",
);

/// The `stats` record of `path` (the boots have one `stats` command).
fn stats_of<'a>(out: &'a Outcome, path: &str) -> &'a Record {
    let all: Vec<&Record> = out
        .find_all("stats")
        .into_iter()
        .filter(|r| r.str("path") == Some(path))
        .collect();
    assert_eq!(all.len(), 1, "one stats record for {path}: {out:?}");
    all[0]
}

/// The #PF frame a level-0 delivery would write for an RSP: its top quadword, where the first
/// write faults (the model's `stack-stay` rule with a 64-byte red zone, written top down).
fn level0_frame_top_word(rsp: u64) -> u64 {
    ((rsp - 64) & !63) - 8
}

// ---- the growth scenarios, fred-sim against pf-ist ----

#[test]
fn both_paths_run_the_same_commands() {
    for (out, path) in [(FRED.get(), "fred-sim"), (IDT.get(), "pf-ist")] {
        let seq: Vec<String> = sequence(out).into_iter().filter(|k| k != "stats").collect();
        assert_eq!(
            seq,
            [
                "ready",
                "result:policy",
                "result:growth",
                "result:fred-levels",
                "result:recurse",
                "result:edge-irq",
                "result:ticks",
                "result:ensure",
                "result:reclaim",
                "result:threads",
                "result:demand-nested",
                "result:stats",
                "result:fred-state",
                "abort",
                "exit"
            ],
            "{out:?}"
        );
        assert_eq!(out.result_for("growth").unwrap().str("growth"), Some(path));
        for cmd in ["recurse", "edge-irq", "ensure", "reclaim", "demand-nested"] {
            let r = out.result_for(cmd).unwrap();
            assert_eq!(r.str("growth"), Some(path), "{}", r.to_json_line());
        }
    }
}

#[test]
fn checked_values_are_those_of_the_idt_path() {
    let (f, i) = (FRED.get(), IDT.get());
    for cmd in ["recurse", "ensure", "reclaim"] {
        let (a, b) = (f.result_for(cmd).unwrap(), i.result_for(cmd).unwrap());
        assert_eq!(assert_checked_result(a), assert_checked_result(b), "{cmd}");
    }
    let (a, b) = (
        f.result_for("ensure").unwrap(),
        i.result_for("ensure").unwrap(),
    );
    for r in [a, b] {
        // 41 x (256 + 64) + 1K fits in 32K: mapped ahead, no growth fault.
        assert_eq!(r.bool("refused"), Some(false), "{}", r.to_json_line());
        assert_eq!(num(r, "bytes"), 41 * (256 + 64) + 1024);
        assert_eq!((num(r, "grow_events"), num(r, "grow_pages")), (0, 0));
    }
    assert_eq!(num(a, "pages"), num(b, "pages"));
    for out in [f, i] {
        let t = out.result_for("threads").unwrap();
        assert_eq!(t.bool("ok"), Some(true), "{out:?}");
        assert_eq!((num(t, "threads"), num(t, "correct")), (20, 20));
        assert!(num(t, "preemptions") > 0, "{}", t.to_json_line());
        assert_eq!(num(t, "live_threads_after"), 1);
        let hw = num(t, "max_high_water");
        assert!(hw > PAGE && hw <= 32 * K, "{}", t.to_json_line());
        let c = out.result_for("reclaim").unwrap();
        assert_eq!(c.str("outcome"), Some("completed"), "{}", c.to_json_line());
        assert_eq!((num(c, "levels"), num(c, "extra_stacks")), (6, 0));
        assert!(num(c, "high_water") > 16 * K, "{}", c.to_json_line());
    }
}

#[test]
fn recursion_and_reclaim_grow_exactly_on_both_paths() {
    for out in [FRED.get(), IDT.get()] {
        for cmd in ["recurse", "reclaim"] {
            assert_grown_exactly(out.result_for(cmd).unwrap());
        }
        let r = out.result_for("recurse").unwrap();
        assert_eq!((num(r, "depth"), num(r, "frame")), (40, 256));
        let hw = num(r, "high_water");
        assert!(hw > 41 * 256 && hw <= 32 * K, "{}", r.to_json_line());
    }
}

#[test]
fn growth_events_are_counted_on_their_own_path() {
    for (out, path, other) in [
        (FRED.get(), "fred-sim", "pf-ist"),
        (IDT.get(), "pf-ist", "fred-sim"),
    ] {
        let s = stats_of(out, path);
        let own: u64 = ["recurse", "edge-irq", "reclaim"]
            .iter()
            .map(|c| num(out.result_for(c).unwrap(), "grow_events"))
            .sum();
        // The threads grew too, and a tick may land at a mapped edge: at least these.
        assert!(num(s, "events") >= own, "{}", s.to_json_line());
        assert!(num(s, "pages") >= num(s, "events"));
        assert_eq!(num(stats_of(out, other), "events"), 0, "{out:?}");
        for p in ["pf-gate", "df-recover"] {
            assert_eq!(num(stats_of(out, p), "events"), 0, "{p}: {out:?}");
        }
        assert_eq!(
            num(stats_of(out, "demand"), "events"),
            2,
            "outer and nested"
        );
    }
}

#[test]
fn timer_interrupt_at_the_edge_is_a_nested_pf_on_level_1_then_replayed() {
    let out = FRED.get();
    let e = out.result_for("edge-irq").unwrap();
    assert_eq!(e.bool("ok"), Some(true), "{out:?}");
    assert!(num(e, "grow_events") >= 1, "{}", e.to_json_line());
    // The interrupt whose frame could not be written is replayed, exactly once.
    assert_eq!(num(e, "lost_irqs_recovered"), 1, "{}", e.to_json_line());
    assert_eq!(hex(e, "edge") % SLOT, SLOT - PAGE);
    assert!(
        num(out.result_for("ticks").unwrap(), "ticks") > 0,
        "{out:?}"
    );
    // Every interrupt the simulation could not deliver became a nested #PF (never #DF), and
    // is exactly one the growth path replayed.
    let st = out.result_for("fred-state").unwrap();
    let stats = out.result_for("stats").unwrap();
    assert!(num(st, "nested") >= 1, "{}", st.to_json_line());
    assert_eq!(
        num(st, "nested"),
        num(stats, "lost_irqs_recovered"),
        "{out:?}"
    );
    assert_eq!(num(st, "double_fault"), 0);
}

#[test]
fn every_delivery_returned_through_erets_and_the_csl_is_back_at_0() {
    let st = FRED.get().result_for("fred-state").unwrap();
    assert_eq!(st.bool("installed"), Some(true));
    assert_eq!(st.str("growth"), Some("fred-sim"));
    let delivered = num(st, "delivered") + num(st, "nested") + num(st, "double_fault");
    assert!(delivered > 20, "{}", st.to_json_line());
    assert_eq!(num(st, "erets"), delivered, "{}", st.to_json_line());
    assert_eq!(num(st, "csl"), 0);
    // #PF went to level 1; nothing reached 2 or 3 (no NMI, #MC or #DF).
    assert_eq!(num(st, "max_csl"), 1, "{}", st.to_json_line());
    // The level stacks: guarded areas of 4, 2 and 4 pages, allocated in order after boot.
    let tops = st.hex_list("level_stacks");
    assert_eq!(tops.len(), 3, "{}", st.to_json_line());
    assert_eq!(tops[1] - tops[0], (LEVEL_PAGES[1] + 1) * PAGE);
    assert_eq!(tops[2] - tops[1], (LEVEL_PAGES[2] + 1) * PAGE);
    assert!(tops.iter().all(|t| t % 64 == 0));
    // Under pf-ist the simulation was never set up and delivered nothing.
    let idt = IDT.get().result_for("fred-state").unwrap();
    assert_eq!(idt.bool("installed"), Some(false));
    assert_eq!((num(idt, "delivered"), num(idt, "erets")), (0, 0));
    assert_eq!(idt.hex_list("level_stacks"), [0, 0, 0]);
}

#[test]
fn growth_past_the_maximum_is_the_overflow_report_from_pf_on_level_1() {
    // #PF on level 1: the frame goes to the level-1 stack and carries the exact RIP, RSP and
    // CR2; the handler finds CR2 below the maximum and reports from there, naming #PF.
    for out in [FRED.get(), IDT.get()] {
        let a = the_abort(out);
        assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
        assert_eq!(a.str("via"), Some("#PF"));
        assert_eq!((num(a, "vector"), a.str("name")), (14, Some("#PF")));
        assert_eq!(a.str("error_code"), Some("0x2"), "write, not present");
        assert_eq!(a.str("thread"), Some("recurse"));
        let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
        assert_eq!(hi - lo, 32 * K, "fully grown: {}", a.to_json_line());
        assert_eq!(hi % SLOT, 0);
        let cr2 = hex(a, "cr2");
        assert_eq!(hex(a, "guard_addr"), cr2);
        assert!(cr2 < lo && lo - cr2 <= PAGE, "{}", a.to_json_line());
        let rsp = hex(a, "rsp");
        assert!(rsp.abs_diff(lo) <= PAGE, "{}", a.to_json_line());
        assert_backtrace_starts_in(out, a, "stacklab_kernel::scenarios::recursion::rec");
        assert_exit(out, ExitCode::Abort);
    }
}

// ---- #PF on level 0 (Linux's choice) ----

/// The overflow with #PF on level 0: the #PF frame would go below RSP, into the guard page;
/// its first write faults, #PF during #PF is #DF, delivered on level 3; the #DF handler finds
/// the simulated CR2 (the frame slot) in the guard page and reports the overflow.
fn check_level0_overflow(out: &Outcome, policy: &str, stack_bytes: u64) {
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:policy",
            "result:growth",
            "result:fred-levels",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    let l = out.result_for("fred-levels").unwrap();
    assert_eq!((num(l, "pf"), num(l, "df")), (0, 3));
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(a.str("via"), Some("#DF"));
    assert_eq!((num(a, "vector"), a.str("name")), (8, Some("#DF")));
    assert_eq!(a.str("error_code"), Some("0x0"));
    assert_eq!(a.str("thread"), Some("recurse"));
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, stack_bytes, "{policy}: {}", a.to_json_line());
    // The #DF frame saves the context of the instruction whose #PF could not be delivered
    // (Bochs's choice, the model's): RSP is the recursion's, at most a frame below the stack.
    let (rsp, cr2) = (hex(a, "rsp"), hex(a, "cr2"));
    assert!(
        rsp < lo + PAGE && lo - rsp.min(lo) < 512,
        "{}",
        a.to_json_line()
    );
    // CR2 names the failed frame slot, not the instruction's access.
    assert_eq!(cr2, level0_frame_top_word(rsp), "{}", a.to_json_line());
    assert_eq!(hex(a, "guard_addr"), cr2);
    assert!(cr2 < lo && lo - cr2 <= PAGE);
    assert_backtrace_starts_in(out, a, "stacklab_kernel::scenarios::recursion::rec");
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn pf_on_level_0_turns_the_overflow_of_a_growable_stack_into_a_double_fault() {
    // Nothing grows: every overflow #PF at level 0 has nowhere to put its frame.
    check_level0_overflow(PF0_GROW.get(), "grow(4K,32K)", PAGE);
}

#[test]
fn pf_on_level_0_turns_the_overflow_of_a_fixed_stack_into_a_double_fault() {
    check_level0_overflow(PF0_FIXED.get(), "fixed(16K)", 16 * K);
}

#[test]
fn a_fault_while_delivering_df_on_the_same_stack_is_a_shutdown() {
    let out = SHUTDOWN.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("fred-shutdown"), "{out:?}");
    assert_eq!(a.str("rule"), Some("shutdown"));
    assert_eq!((num(a, "vector"), a.str("name")), (14, Some("#PF")));
    // Two deliveries faulted: the #PF's, then the #DF's (same place, same context).
    assert_eq!((num(a, "attempts"), num(a, "csl")), (2, 0));
    let (rsp, cr2) = (hex(a, "rsp"), hex(a, "cr2"));
    assert_eq!(cr2, level0_frame_top_word(rsp), "{}", a.to_json_line());
    assert_exit(out, ExitCode::Abort);
}

// ---- a nested #PF at the same level ----

#[test]
fn nested_pf_at_the_same_level_keeps_the_outer_frame_where_an_ist_rewinds_it() {
    // fred-sim: the nested #PF stays on level 1, below the live outer frame.
    let out = FRED.get();
    let r = out.result_for("demand-nested").unwrap();
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!((num(r, "nested"), num(r, "value")), (1, 0x5a));
    assert_eq!(num(out.result_for("stats").unwrap(), "demand_faults"), 2);
    // pf-ist-naive: the nested #PF rewinds the IST stack and writes its frame over the
    // outer one, which the outer handler's snapshot check finds.
    let out = NAIVE.get();
    assert_eq!(
        sequence(out),
        ["ready", "result:growth", "abort", "exit"],
        "{out:?}"
    );
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("ist-frame-clobbered"), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (14, Some("#PF")));
    assert_eq!(
        hex(a, "cr2"),
        LAZY_BASE + 0x1234,
        "the outer fault's address"
    );
    assert_ne!(
        (hex(a, "outer_rip"), hex(a, "outer_rsp")),
        (hex(a, "found_rip"), hex(a, "found_rsp"))
    );
    assert_exit(out, ExitCode::Abort);
}

// ---- bench fred ----

#[test]
fn bench_fred_prints_idt_and_fred_sim_figures_with_their_ratio() {
    let out = BENCH.get();
    assert_eq!(
        sequence(out).first().map(String::as_str),
        Some("ready"),
        "{out:?}"
    );
    let rows: Vec<&Record> = out
        .find_all("bench")
        .into_iter()
        .filter(|r| r.str("name") == Some("fred"))
        .collect();
    let events: Vec<&str> = rows.iter().map(|r| text(r, "event")).collect();
    assert_eq!(events, ["int3", "timer", "growth-pf"], "{out:?}");
    for r in rows {
        // 60 of each: 60 int3s, 60 ticks, 5 threads of 12 growth steps.
        assert_eq!((num(r, "idt_samples"), num(r, "fred_samples")), (60, 60));
        let (i, f) = (num(r, "idt_median_cycles"), num(r, "fred_median_cycles"));
        assert!(i > 0 && f > 0, "{}", r.to_json_line());
        assert!(num(r, "idt_p99_cycles") >= i && num(r, "fred_p99_cycles") >= f);
        let r100 = f * 100 / i;
        assert_eq!(
            text(r, "ratio"),
            format!("{}.{:02}", r100 / 100, r100 % 100),
            "{}",
            r.to_json_line()
        );
    }
    assert_exit(out, ExitCode::Success);
}

// ---- the level table and the ready record ----

#[test]
fn fred_levels_checks_its_assignments() {
    let out = LEVELS.get();
    assert_eq!(
        sequence(out),
        [
            "ready",
            "error:fred-levels pf=4",
            "error:fred-levels gp=1",
            "error:fred-levels pf",
            "result:fred-levels",
            "result:fred-levels",
            "result:fred-levels",
            "result:fred-state",
            "exit"
        ],
        "{out:?}"
    );
    let msgs: Vec<&str> = out
        .find_all("error")
        .iter()
        .map(|e| text(e, "msg"))
        .collect();
    assert_eq!(
        msgs,
        [
            "'pf=4': LEVEL is 0, 1, 2 or 3",
            "'gp=1': NAME is one of pf, db, nmi, mc, df, irq",
            "'pf': expected NAME=LEVEL"
        ]
    );
    let r = results_for(out, "fred-levels");
    let levels = |r: &Record| ["pf", "db", "nmi", "mc", "df", "irq"].map(|k| num(r, k));
    assert_eq!(levels(r[0]), [0, 1, 2, 2, 3, 2]);
    assert_eq!(levels(r[1]), [0, 1, 2, 2, 3, 2], "no assignment: shown");
    assert_eq!(levels(r[2]), [1, 1, 2, 2, 3, 0], "the default");
    // IA32_FRED_STKLVLS: 2 bits per vector, #DB (1) 1, NMI (2) 2, #DF (8) 3, #PF (14) 1,
    // #MC (18) 2.
    let stklvls = (1 << 2) | (2 << 4) | (3 << 16) | (1 << 28) | (2u64 << 36);
    assert_eq!(hex(r[2], "stklvls"), stklvls);
    assert_eq!(hex(r[0], "stklvls"), stklvls & !(3 << 28));
    let st = out.result_for("fred-state").unwrap();
    assert_eq!(
        st.bool("installed"),
        Some(false),
        "levels alone set nothing up"
    );
    assert_exit(out, ExitCode::BadCommand);
}

#[test]
fn ready_says_whether_the_cpu_has_fred() {
    let out = LEVELS.get();
    let ready = out.find("ready").unwrap();
    let fred = text(ready, "fred");
    assert!(
        fred == "absent" || fred == "available",
        "{}",
        ready.to_json_line()
    );
    if out.accel.name() == "tcg" {
        // QEMU's translator does not implement FRED.
        assert_eq!(fred, "absent");
    }
}
