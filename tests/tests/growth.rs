//! Stacks that grow on demand. For each growth path (`pf-ist`: #PF on its own IST
//! stack; `df-recover`: the overflowing #PF escalates to #DF, whose handler maps and returns):
//! checked deep recursion with the exact page count, the overflow report at the policy's
//! maximum, a timer interrupt whose delivery is the growth fault, 100 threads growing under
//! preemption, and an empty frame reserve. Then: the default `abort` path never grows; a
//! non-stack #PF under `pf-ist` is reported from the interrupted stack; a nested #PF with and
//! without moving off the IST stack; `ensure_stack`; and the reclaim chain with extra stacks.
//!
//! Eight boots in all; every boot that ends in an abort has the fatal command last.

use stacklab_tests::*;

const K: u64 = 1024;
const PAGE: u64 = 4096;
/// Thread stack slots are 64K by default, each aligned to its size.
const SLOT: u64 = 64 * K;
/// `policy grow 4K 32K`, as the kernel prints it.
const GROW: &str = "grow(4K,32K)";

/// The non-fatal growth scenarios of one path, then growth past the maximum (fatal, last).
macro_rules! grow_boot {
    ($path:literal) => {
        concat!(
            "policy grow 4K 32K; growth ",
            $path,
            "; recurse 40 256; edge-irq; ticks 20; stats; threads 100; stats; ",
            "ensure 20 256; ensure 200 256; reclaim 6 plain; recurse 200 256"
        )
    };
}

static PF_IST: Shared = Shared::new(grow_boot!("pf-ist"));
static DF_RECOVER: Shared = Shared::new(grow_boot!("df-recover"));

/// One growable frame in the reserve, then a recursion that needs ~21K without a switch.
static PF_IST_RESERVE: Shared =
    Shared::new("policy grow 4K 32K; growth pf-ist; reserve 1 hold; recurse 20 1024");
static DF_RECOVER_RESERVE: Shared =
    Shared::new("policy grow 4K 32K; growth df-recover; reserve 1 hold; recurse 20 1024");

/// `growth` is `abort` unless told otherwise.
static ABORT_DEFAULT: Shared = Shared::new("policy grow 4K 32K; recurse 40 256");

/// A nested demand fault with the fault moved off the IST stack, then a wild read.
static PF_IST_NON_STACK: Shared = Shared::new("growth pf-ist; demand-nested; stats; read 0x1000");

/// A nested demand fault that stays on the #PF IST stack.
static PF_IST_NAIVE: Shared = Shared::new("growth pf-ist-naive; demand-nested");

/// The reclaim chain on a fixed 16K stack: with extra stacks, past the pool, then plain.
static RECLAIM_FIXED: Shared =
    Shared::new("policy fixed 16K; reclaim 6 extra; reclaim 40 extra; reclaim 6 plain");

// ---- the kernel's guarded areas (kernel/src/mem/kva.rs, gdt.rs, stack.rs) ----

/// `KVA_BASE + 1 GiB`: where the guarded-area allocator starts.
const GUARDED_BASE: u64 = 0xffff_e000_4000_0000;
/// `mem::lazy::BASE` (the demand-paged area, `KVA_BASE + 2 GiB`).
const LAZY_BASE: u64 = 0xffff_e000_8000_0000;

/// The guarded areas `[bottom, top)` in allocation order: the IST stacks of #DF (4 pages),
/// #PF (4), NMI (2) and #MC (2) from `gdt::init`, then the 16-page boot stack. Each takes
/// its pages plus the unmapped guard page below them.
fn guarded_areas() -> [(u64, u64); 5] {
    let mut next = GUARDED_BASE;
    [4, 4, 2, 2, 16].map(|pages| {
        let bottom = next + PAGE;
        next += (pages + 1) * PAGE;
        (bottom, bottom + pages * PAGE)
    })
}

fn pf_ist_stack() -> (u64, u64) {
    guarded_areas()[1]
}

fn boot_stack() -> (u64, u64) {
    guarded_areas()[4]
}

fn inside((lo, hi): (u64, u64), addr: u64) -> bool {
    addr >= lo && addr < hi
}

#[test]
fn guarded_area_ranges_follow_the_allocator() {
    assert_eq!(
        pf_ist_stack(),
        (0xffff_e000_4000_6000, 0xffff_e000_4000_a000)
    );
    assert_eq!(boot_stack(), (0xffff_e000_4001_1000, 0xffff_e000_4002_1000));
}

// ---- shared checks ----

/// The growth paths every `stats` command reports on (one `stats` record each).
const STATS_PATHS: [&str; 4] = ["pf-ist", "pf-gate", "df-recover", "demand"];

/// The `stats` records (one per path) written by the `n`-th `stats` command: those between
/// its predecessor's `result` record and its own.
fn stats_round(out: &Outcome, n: usize) -> Vec<&Record> {
    let mut rounds: Vec<Vec<&Record>> = vec![Vec::new()];
    for r in &out.records {
        match (r.kind.as_str(), r.str("cmd")) {
            ("stats", _) => rounds.last_mut().unwrap().push(r),
            ("result", Some("stats")) => rounds.push(Vec::new()),
            _ => {}
        }
    }
    let round = rounds.swap_remove(n);
    let paths: Vec<&str> = round.iter().map(|r| text(r, "path")).collect();
    for p in STATS_PATHS {
        assert_eq!(
            paths.iter().filter(|q| **q == p).count(),
            1,
            "stats round {n} names {p} once: {out:?}"
        );
    }
    round
}

fn stats_of<'a>(round: &[&'a Record], path: &str) -> &'a Record {
    round
        .iter()
        .find(|r| r.str("path") == Some(path))
        .copied()
        .unwrap_or_else(|| panic!("no stats for {path}"))
}

/// The records of a growth boot in order (leaving out the per-path `stats` records, which
/// `stats_round` checks).
fn assert_grow_sequence(out: &Outcome) {
    let seq: Vec<String> = sequence(out).into_iter().filter(|k| k != "stats").collect();
    assert_eq!(
        seq,
        [
            "ready",
            "result:policy",
            "result:growth",
            "result:recurse",
            "result:edge-irq",
            "result:ticks",
            "result:stats",
            "result:threads",
            "result:stats",
            "result:ensure",
            "result:ensure",
            "result:reclaim",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
}

fn check_deep_recursion(out: &Outcome, path: &str) {
    assert_grow_sequence(out);
    let g = out.result_for("growth").unwrap();
    assert_eq!(g.str("growth"), Some(path));
    let r = results_for(out, "recurse");
    assert_eq!(r.len(), 1, "the second recursion overflows: {out:?}");
    let r = r[0];
    assert_checked_result(r);
    assert_eq!((num(r, "depth"), num(r, "frame")), (40, 256));
    assert_eq!(r.str("policy"), Some(GROW));
    assert_eq!(r.str("growth"), Some(path), "{}", r.to_json_line());
    // 41 levels of 256-byte buffers: more than the initial page, less than the maximum.
    let hw = num(r, "high_water");
    assert!(hw > 41 * 256 && hw <= 32 * K, "{}", r.to_json_line());
    assert_grown_exactly(r);
}

/// The first `stats` (after `recurse` and `edge-irq`) counts exactly their growth events;
/// the second also counts the 100 threads'.
fn check_stats(out: &Outcome, path: &str) {
    let rec = out.result_for("recurse").unwrap();
    let edge = out.result_for("edge-irq").unwrap();
    let events = num(rec, "grow_events") + num(edge, "grow_events");
    let pages = num(rec, "grow_pages") + num(edge, "grow_pages");
    let first = stats_round(out, 0);
    let s = stats_of(&first, path);
    assert_eq!(num(s, "events"), events, "{out:?}");
    assert_eq!(num(s, "pages"), pages, "{out:?}");
    assert!(num(s, "deepest") >= num(rec, "high_water") - PAGE);
    for r in &first {
        if text(r, "path") != path {
            assert_eq!(num(r, "events"), 0, "only {path} ran: {}", r.to_json_line());
        }
    }
    let second = stats_round(out, 1);
    let s2 = stats_of(&second, path);
    assert!(
        num(s2, "events") > events,
        "the 100 threads grew their stacks through {path}: {out:?}"
    );
    assert!(num(s2, "pages") >= num(s2, "events"));
    for r in &second {
        if text(r, "path") != path {
            assert_eq!(num(r, "events"), 0, "only {path} ran: {}", r.to_json_line());
        }
    }
    let st = results_for(out, "stats");
    assert_eq!(st.len(), 2);
    for r in st {
        assert_eq!(r.bool("ok"), Some(true));
        assert_eq!(num(r, "reserve_target"), 16, "the default reserve");
        assert_eq!(r.bool("reserve_hold"), Some(false));
        assert_eq!(num(r, "demand_faults"), 0);
        // At least the edge-irq interrupt; a tick that lands as `recurse` pushes at its
        // mapped edge is lost and replayed too, so more is possible.
        assert!(num(r, "lost_irqs_recovered") >= 1, "{}", r.to_json_line());
    }
}

fn check_edge_irq(out: &Outcome, path: &str) {
    let e = out.result_for("edge-irq").unwrap();
    assert_eq!(e.bool("ok"), Some(true), "{out:?}");
    assert_eq!(e.str("growth"), Some(path));
    assert!(num(e, "grow_events") >= 1, "{}", e.to_json_line());
    assert!(num(e, "grow_pages") >= 1, "{}", e.to_json_line());
    // The interrupt whose delivery was the growth fault is replayed, exactly once.
    assert_eq!(num(e, "lost_irqs_recovered"), 1, "{}", e.to_json_line());
    // The edge is the bottom of the initial page: one page below the slot's top.
    let edge = hex(e, "edge");
    assert_eq!(edge % SLOT, SLOT - PAGE, "edge {edge:#x}");
    // The boot goes on, and the timer still interrupts (the PIC was acknowledged). Only a
    // count above 0 is asserted: with several QEMUs sharing the host, TCG can drop ticks.
    let t = out.result_for("ticks").expect("ticks ran after edge-irq");
    assert_eq!(num(t, "ms"), 20);
    assert!(
        num(t, "ticks") > 0,
        "no timer interrupt after edge-irq: {out:?}"
    );
    let th = out
        .result_for("threads")
        .expect("threads ran after edge-irq");
    assert!(num(th, "preemptions") > 0, "{out:?}");
}

fn check_threads(out: &Outcome) {
    let r = out.result_for("threads").unwrap();
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(r.str("policy"), Some(GROW));
    assert_eq!((num(r, "threads"), num(r, "correct")), (100, 100));
    assert!(num(r, "preemptions") > 0, "{out:?}");
    assert!(num(r, "switches") >= 100, "{out:?}");
    let hw = num(r, "max_high_water");
    // The deepest worker (43 levels of 128 bytes) needed more than the initial page.
    assert!(hw > PAGE && hw <= 32 * K, "{}", r.to_json_line());
    assert_eq!(num(r, "live_threads_after"), 1);
}

fn check_ensure(out: &Outcome, path: &str) {
    let r = results_for(out, "ensure");
    assert_eq!(r.len(), 2, "{out:?}");
    let (fits, too_deep) = (r[0], r[1]);
    // 20 x 256 fits in 32K: mapped ahead, so the recursion takes no growth fault.
    assert_checked_result(fits);
    assert_eq!(fits.bool("refused"), Some(false));
    assert_eq!(fits.str("growth"), Some(path));
    assert_eq!(num(fits, "grow_events"), 0, "{}", fits.to_json_line());
    assert_eq!(num(fits, "grow_pages"), 0);
    let (bytes, pages) = (num(fits, "bytes"), num(fits, "pages"));
    assert_eq!(bytes, 21 * (256 + 64) + 1024);
    assert!(
        pages * PAGE >= bytes && pages <= bytes.div_ceil(PAGE) + 1,
        "{}",
        fits.to_json_line()
    );
    // 200 x 256 does not: refused up front (no fault, no abort), nothing mapped.
    assert_eq!(too_deep.bool("ok"), Some(true), "{out:?}");
    assert_eq!(
        too_deep.bool("refused"),
        Some(true),
        "{}",
        too_deep.to_json_line()
    );
    assert!(num(too_deep, "bytes") > 32 * K);
    assert_eq!(hex(too_deep, "result"), u64::MAX);
    assert_eq!(num(too_deep, "grow_events"), 0);
    assert_eq!(num(too_deep, "pages"), 1, "only the initial page");
}

fn check_reclaim_grows(out: &Outcome, path: &str) {
    let r = out.result_for("reclaim").unwrap();
    assert_checked_result(r);
    assert_eq!(num(r, "levels"), 6);
    assert_eq!(r.str("outcome"), Some("completed"), "{}", r.to_json_line());
    assert_eq!(num(r, "extra_stacks"), 0);
    assert_eq!(r.str("growth"), Some(path));
    // Six levels of ~3.5K need more than 16K: the chain grew the stack instead.
    assert!(num(r, "high_water") > 16 * K, "{}", r.to_json_line());
    assert_grown_exactly(r);
}

/// `recurse 200 256` (~55K) on grow(4K,32K): grown to the maximum, then the overflow report.
fn check_overflow_at_max(out: &Outcome, via: &str, vector: u64) {
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(a.str("via"), Some(via), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (vector, Some(via)));
    assert_eq!(a.str("thread"), Some("recurse"));
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, 32 * K, "fully grown: {}", a.to_json_line());
    assert_eq!(hi % SLOT, 0, "the stack is at the top of its slot");
    let guard = hex(a, "guard_addr");
    assert_eq!(hex(a, "cr2"), guard);
    assert!(
        guard < lo && lo - guard <= PAGE,
        "guard hit {guard:#x} not just below {lo:#x}"
    );
    let hw = num(a, "high_water");
    assert!(hw > 31 * K && hw <= 32 * K, "high-water {hw}");
    let rsp = hex(a, "rsp");
    assert!(
        rsp.abs_diff(lo) <= PAGE,
        "rsp {rsp:#x} not at the bottom {lo:#x}"
    );
    assert_backtrace_starts_in(out, a, "stacklab_kernel::scenarios::recursion::rec");
    assert_exit(out, ExitCode::Abort);
}

/// `reserve 1 hold`, then `recurse 20 1024`: the one frame maps the second page, the next
/// growth finds the reserve empty. `hold` stops the refill at context switches, which would
/// otherwise make the outcome depend on whether the timer preempted the thread in between.
fn check_reserve_empty(out: &Outcome, via: &str) {
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:policy",
            "result:growth",
            "result:reserve",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    let rs = out.result_for("reserve").unwrap();
    assert_eq!(
        (
            rs.bool("ok"),
            rs.u64("target"),
            rs.u64("frames"),
            rs.bool("hold")
        ),
        (Some(true), Some(1), Some(1), Some(true)),
        "{out:?}"
    );
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-reserve-empty"), "{out:?}");
    assert_eq!(a.str("via"), Some(via), "{out:?}");
    assert_eq!(a.str("thread"), Some("recurse"));
    assert_eq!(num(a, "reserve_now"), 0);
    assert_eq!(num(a, "reserve_target"), 1);
    assert_eq!(num(a, "reserve_low"), 0);
    assert_eq!(a.bool("reserve_hold"), Some(true));
    let (cr2, rsp) = (hex(a, "cr2"), hex(a, "rsp"));
    assert!(cr2 < rsp && rsp - cr2 <= PAGE, "{}", a.to_json_line());
    // The fault is in the slot's third page from the top: page 1 initial, page 2 the reserve's.
    let top = (cr2 | (SLOT - 1)) + 1;
    let depth = top - cr2;
    assert!(
        depth > 2 * PAGE && depth <= 3 * PAGE,
        "fault {depth} bytes below the top"
    );
    assert_exit(out, ExitCode::Abort);
}

// ---- pf-ist ----

#[test]
fn pf_ist_deep_recursion_grows_page_by_page_with_a_checked_result() {
    check_deep_recursion(PF_IST.get(), "pf-ist");
}

#[test]
fn pf_ist_stats_count_exactly_the_growth_events_seen() {
    check_stats(PF_IST.get(), "pf-ist");
}

#[test]
fn pf_ist_timer_interrupt_at_the_mapped_edge_is_survived_and_replayed() {
    check_edge_irq(PF_IST.get(), "pf-ist");
}

#[test]
fn pf_ist_100_threads_grow_concurrently_under_preemption() {
    check_threads(PF_IST.get());
}

#[test]
fn pf_ist_ensure_maps_ahead_or_refuses_past_the_maximum() {
    check_ensure(PF_IST.get(), "pf-ist");
}

#[test]
fn pf_ist_reclaim_chain_completes_by_growing() {
    check_reclaim_grows(PF_IST.get(), "pf-ist");
}

#[test]
fn pf_ist_growth_past_the_maximum_is_an_overflow_report_from_pf() {
    // The guard hit is a #PF on the IST stack, which always has room to report.
    let out = PF_IST.get();
    check_overflow_at_max(out, "#PF", 14);
    assert_eq!(
        the_abort(out).str("error_code"),
        Some("0x2"),
        "write, not present"
    );
}

#[test]
fn pf_ist_reserve_exhaustion_aborts_with_its_report() {
    check_reserve_empty(PF_IST_RESERVE.get(), "#PF");
}

// ---- df-recover ----

#[test]
fn df_recover_deep_recursion_grows_page_by_page_with_a_checked_result() {
    check_deep_recursion(DF_RECOVER.get(), "df-recover");
}

#[test]
fn df_recover_stats_count_exactly_the_growth_events_seen() {
    check_stats(DF_RECOVER.get(), "df-recover");
}

#[test]
fn df_recover_timer_interrupt_at_the_mapped_edge_is_survived_and_replayed() {
    check_edge_irq(DF_RECOVER.get(), "df-recover");
}

#[test]
fn df_recover_100_threads_grow_concurrently_under_preemption() {
    check_threads(DF_RECOVER.get());
}

#[test]
fn df_recover_ensure_maps_ahead_or_refuses_past_the_maximum() {
    check_ensure(DF_RECOVER.get(), "df-recover");
}

#[test]
fn df_recover_reclaim_chain_completes_by_growing() {
    check_reclaim_grows(DF_RECOVER.get(), "df-recover");
}

#[test]
fn df_recover_growth_past_the_maximum_is_an_overflow_report_from_df() {
    // The #PF frame cannot be pushed below the floor: #DF, which refuses to grow past it.
    let out = DF_RECOVER.get();
    check_overflow_at_max(out, "#DF", 8);
    assert_eq!(
        the_abort(out).str("error_code"),
        Some("0x0"),
        "#DF pushes 0"
    );
}

#[test]
fn df_recover_reserve_exhaustion_aborts_with_its_report() {
    check_reserve_empty(DF_RECOVER_RESERVE.get(), "#DF");
}

// ---- abort (the default) ----

#[test]
fn abort_path_never_grows_a_grow_policy() {
    let out = ABORT_DEFAULT.get();
    assert_eq!(
        sequence(out),
        ["ready", "result:policy", "abort", "exit"],
        "{out:?}"
    );
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(a.str("via"), Some("#DF"));
    assert_eq!((num(a, "vector"), a.str("name")), (8, Some("#DF")));
    assert_eq!(a.str("thread"), Some("recurse"));
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, PAGE, "only the initial page: {}", a.to_json_line());
    assert_eq!(hi % SLOT, 0);
    let guard = hex(a, "guard_addr");
    assert!(guard < lo && lo - guard <= PAGE, "{}", a.to_json_line());
    assert!(num(a, "high_water") <= PAGE);
    assert_exit(out, ExitCode::Abort);
}

// ---- non-stack faults under pf-ist ----

#[test]
fn pf_ist_nested_demand_fault_keeps_the_outer_frame() {
    let out = PF_IST_NON_STACK.get();
    let seq: Vec<String> = sequence(out).into_iter().filter(|k| k != "stats").collect();
    assert_eq!(
        seq,
        [
            "ready",
            "result:growth",
            "result:demand-nested",
            "result:stats",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    let r = out.result_for("demand-nested").unwrap();
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(r.str("growth"), Some("pf-ist"));
    assert_eq!((num(r, "nested"), num(r, "value")), (1, 0x5a));
    // Two demand faults (outer and nested), no growth.
    let round = stats_round(out, 0);
    assert_eq!(num(stats_of(&round, "demand"), "events"), 2, "{out:?}");
    assert_eq!(num(stats_of(&round, "pf-ist"), "events"), 0);
    assert_eq!(num(out.result_for("stats").unwrap(), "demand_faults"), 2);
}

#[test]
fn pf_ist_non_stack_fault_is_reported_from_the_interrupted_stack() {
    let out = PF_IST_NON_STACK.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("exception"), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (14, Some("#PF")));
    assert_eq!(a.str("cr2"), Some("0x1000"));
    assert_eq!(
        a.str("error_code"),
        Some("0x0"),
        "not present, read, kernel"
    );
    // Moved back onto the stack the read ran on (the boot stack), off the #PF IST stack.
    let rsp = hex(a, "rsp");
    assert!(
        inside(boot_stack(), rsp),
        "rsp {rsp:#x} not on the boot stack {:x?}",
        boot_stack()
    );
    assert!(
        !inside(pf_ist_stack(), rsp),
        "rsp {rsp:#x} on the #PF IST stack"
    );
    assert!(!a.hex_list("backtrace").is_empty(), "{out:?}");
    // RIP is the read's (in kernel text), not the handler's.
    let f = function_at(out, hex(a, "rip"));
    assert!(
        !f.contains("fault::") && !f.contains("entry::") && !f.contains("trap::"),
        "rip in {f}"
    );
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn pf_ist_naive_nested_demand_fault_aborts() {
    // What holds with or without the clobber being recognised (see the next test).
    let out = PF_IST_NAIVE.get();
    assert_eq!(
        sequence(out),
        ["ready", "result:growth", "abort", "exit"],
        "demand-nested must not complete: {out:?}"
    );
    let a = the_abort(out);
    assert_eq!(
        (num(a, "vector"), a.str("name")),
        (14, Some("#PF")),
        "{out:?}"
    );
    assert_eq!(
        hex(a, "cr2"),
        LAZY_BASE + 0x1234,
        "the outer fault's address"
    );
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn pf_ist_naive_nested_demand_fault_reports_the_clobbered_ist_frame() {
    let out = PF_IST_NAIVE.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("ist-frame-clobbered"), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (14, Some("#PF")));
    assert_eq!(hex(a, "cr2"), LAZY_BASE + 0x1234);
    // The outer fault came from the boot stack; the frame found in its place is the nested
    // fault's, taken on the #PF IST stack itself.
    let (outer, found) = (hex(a, "outer_rsp"), hex(a, "found_rsp"));
    assert!(inside(boot_stack(), outer), "outer rsp {outer:#x}");
    assert!(inside(pf_ist_stack(), found), "found rsp {found:#x}");
    assert_ne!(hex(a, "outer_rip"), hex(a, "found_rip"));
    assert_exit(out, ExitCode::Abort);
}

// ---- the reclaim chain on a fixed stack ----

#[test]
fn reclaim_with_extra_stacks_completes_on_fixed_16k() {
    let out = RECLAIM_FIXED.get();
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:policy",
            "result:reclaim",
            "result:reclaim",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    let r = results_for(out, "reclaim")[0];
    assert_checked_result(r);
    assert_eq!(num(r, "levels"), 6);
    assert_eq!(r.str("outcome"), Some("completed"), "{}", r.to_json_line());
    let extra = num(r, "extra_stacks");
    assert!((1..=2).contains(&extra), "{}", r.to_json_line());
    assert_eq!((r.str("growth"), num(r, "grow_events")), (Some("abort"), 0));
    assert_eq!(num(r, "pages"), 4, "fixed 16K");
    assert!(num(r, "high_water") <= 16 * K);
}

#[test]
fn reclaim_past_the_extra_stack_pool_is_an_error_not_a_crash() {
    let out = RECLAIM_FIXED.get();
    let r = results_for(out, "reclaim");
    assert_eq!(r.len(), 2, "{out:?}");
    let r = r[1];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!(num(r, "levels"), 40);
    assert_eq!(
        r.str("outcome"),
        Some("pool-empty-error"),
        "{}",
        r.to_json_line()
    );
    // Both pool stacks were taken before the pool ran out.
    assert_eq!(num(r, "extra_stacks"), 2, "{}", r.to_json_line());
    assert_eq!(hex(r, "result"), u64::MAX);
    assert_ne!(hex(r, "expected"), u64::MAX);
}

#[test]
fn reclaim_plain_overflows_fixed_16k() {
    let out = RECLAIM_FIXED.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(a.str("thread"), Some("reclaim"));
    assert_eq!(a.str("via"), Some("#DF"));
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, 16 * K);
    let guard = hex(a, "guard_addr");
    assert!(guard < lo && lo - guard <= PAGE, "{}", a.to_json_line());
    let bt = a.hex_list("backtrace");
    assert!(
        bt.iter()
            .any(|&x| function_at(out, x - 1).contains("direct_reclaim")),
        "{out:?}"
    );
    assert_exit(out, ExitCode::Abort);
}
