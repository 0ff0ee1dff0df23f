//! The double-fault hazard catalogue: the `catalogue` command's tables (7 policies, one
//! expectation per policy for every hazard, every line runnable), and the catalogue's own
//! hazard scenarios with exact values: which report, which address, which stack, how many
//! growth faults for how many pages, and the registers a string store resumed with.
//!
//! The whole matrix (every hazard under every policy) is run by the host's matrix engine,
//! not here.

use std::collections::HashSet;

use stacklab_core::catalogue::{POLICIES, expect_all};
use stacklab_core::cmdline;
use stacklab_core::cmdspec::Spec;
use stacklab_tests::*;

const PAGE: u64 = 4096;
const K: u64 = 1024;
/// `mem::lazy::BASE`, and the address the injected scenarios fault on first.
const LAZY_BASE: u64 = 0xffff_e000_8000_0000;
const DEMAND_AT: u64 = LAZY_BASE + 0x3018;
/// Where the injection's own fault lands: the same offset in the area's second half (4 MiB).
const SHADOW: u64 = DEMAND_AT + 4 * K * K;
/// The #PF and NMI IST stacks `[bottom, top)` (the guarded-area allocator's second and
/// third areas, after the 4-page #DF stack; see growth.rs).
const PF_IST: (u64, u64) = (0xffff_e000_4000_6000, 0xffff_e000_4000_a000);
const NMI_IST: (u64, u64) = (0xffff_e000_4000_b000, 0xffff_e000_4000_d000);
/// `provoke::NON_CANONICAL_RSP`.
const NON_CANONICAL_RSP: u64 = 0xffff_0000_0000_1000;

fn inside((lo, hi): (u64, u64), addr: u64) -> bool {
    addr >= lo && addr < hi
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

// ---- the catalogue's tables ----

static CATALOGUE: Shared = Shared::new("help; catalogue");

fn strings(r: &Record, key: &str) -> Vec<String> {
    r.get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| panic!("field {key} missing in {}", r.to_json_line()))
}

/// Every command of `line` is a `help` row and its arguments bind to that row's specification.
fn assert_runs(line: &str, help: &[&Record]) {
    for c in cmdline::commands(leak(line)) {
        let row = help
            .iter()
            .find(|h| h.str("name") == Some(c.name))
            .unwrap_or_else(|| panic!("'{}' in '{line}' is not a command", c.name));
        if let Err(e) = Spec(leak(text(row, "args"))).bind(c.args()) {
            panic!("'{}' in '{line}': {e}", c.text);
        }
    }
}

#[test]
fn catalogue_lists_the_seven_policies_in_order_with_runnable_setups() {
    let out = CATALOGUE.get();
    assert_exit(out, ExitCode::Success);
    let help = out.find_all("command");
    let policies = out.find_all("policy");
    let names: Vec<&str> = policies.iter().map(|p| text(p, "name")).collect();
    assert_eq!(names, POLICIES, "{out:?}");
    for p in &policies {
        assert!(!text(p, "title").is_empty());
        assert_runs(text(p, "setup"), &help);
    }
    let setup = |n: &str| {
        text(
            policies.iter().find(|p| p.str("name") == Some(n)).unwrap(),
            "setup",
        )
    };
    assert_eq!(setup("fixed-16k"), "policy fixed 16K; growth abort");
    assert_eq!(setup("ensure"), "policy grow 4K 32K; growth ensure");
    assert!(setup("fred-l0").ends_with("fred-levels pf=0"));
}

#[test]
fn every_hazard_runs_and_expects_one_outcome_per_policy() {
    let out = CATALOGUE.get();
    let help = out.find_all("command");
    let hazards = out.find_all("hazard");
    let r = &results_for(out, "catalogue")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!(num(r, "policies"), 7);
    assert_eq!(num(r, "hazards"), hazards.len() as u64);
    assert!(hazards.len() >= 13, "{out:?}");
    let mut seen = HashSet::new();
    for h in &hazards {
        let name = text(h, "name");
        assert!(seen.insert(name.to_string()), "hazard {name} twice");
        assert_runs(text(h, "run"), &help);
        assert!(
            text(h, "story").len() > 200,
            "hazard {name}: a story, step by step"
        );
        assert!(!text(h, "title").is_empty());
        let expect = strings(h, "expect");
        assert_eq!(expect.len(), POLICIES.len(), "hazard {name}: {expect:?}");
        if let Err(e) = expect_all(expect.iter().map(String::as_str)) {
            panic!("hazard {name}: {e}");
        }
    }
    // The hazards the catalogue must have, by name.
    for n in [
        "deep-recursion",
        "reclaim-chain",
        "edge-irq",
        "nested-pf-ist",
        "cr2-overwritten",
        "df-not-overflow",
        "stale-cr2",
        "rep-stos-edge",
        "big-frame",
        "wild-write",
        "reserve-exhaustion",
        "span-limit",
        "nmi-in-pf",
    ] {
        assert!(seen.contains(n), "hazard {n} missing");
    }
}

// ---- a #DF that is not an overflow ----

static DF_CONTRIBUTORY: Shared =
    Shared::new("policy grow 4K 32K; growth df-recover; df-contributory");

#[test]
fn a_contributory_double_fault_is_reported_as_such_and_never_recovered() {
    let out = DF_CONTRIBUTORY.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("exception"), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (8, Some("#DF")));
    assert_eq!(hex(a, "error_code"), 0);
    assert_eq!(
        hex(a, "rsp"),
        NON_CANONICAL_RSP,
        "the #SS frame could not be pushed there"
    );
    assert_eq!(hex(a, "cr2"), 0, "no page fault escalated");
    // The saved RIP of a #DF is undefined (SDM, Interrupt 8): not checked.
    assert_exit(out, ExitCode::Abort);
}

static STALE_CR2: Shared = Shared::new("policy grow 4K 32K; growth df-recover; stale-cr2");

#[test]
fn a_stale_cr2_naming_the_guard_is_not_diagnosed_as_an_overflow() {
    let out = STALE_CR2.get();
    let planted = out
        .find("planted")
        .expect("the planted value is reported first");
    assert_eq!(hex(planted, "cr2"), hex(planted, "stack_lo") - 8);
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("exception"), "{out:?}");
    assert_eq!((num(a, "vector"), a.str("name")), (8, Some("#DF")));
    assert_eq!(
        hex(a, "cr2"),
        hex(planted, "cr2"),
        "the stale value is what #DF found"
    );
    assert_eq!(hex(a, "rsp"), NON_CANONICAL_RSP);
    assert_exit(out, ExitCode::Abort);
}

// ---- growth across a string store and a frame larger than a page ----

static PF_IST_GROWS: Shared =
    Shared::new("policy grow 4K 32K; growth pf-ist; rep-stos 8K; big-frame");
static DF_RECOVER_GROWS: Shared = Shared::new(
    "policy grow 4K 32K; growth df-recover; rep-stos 8K; big-frame; cr2-nested; nmi-in-pf",
);

/// `rep-stos 8K` resumed exactly: RCX 0, RDI one quadword below the frame, every quadword
/// written, the stack grown by exactly the two pages below the edge in `events` faults.
fn assert_rep_stos(out: &Outcome, events: u64) {
    let r = results_for(out, "rep-stos")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    let at = hex(r, "at");
    assert_eq!(at % PAGE, 64, "64 bytes above the one-page stack's edge");
    assert_eq!(num(r, "rcx"), 0);
    assert_eq!(hex(r, "rdi"), at - 8 - 8 * K);
    assert_eq!(num(r, "unequal_left"), 0);
    assert_eq!(r.bool("all_equal"), Some(true));
    assert_eq!((num(r, "grow_events"), num(r, "grow_pages")), (events, 2));
    assert_eq!(num(r, "pages"), 3);
}

/// `big-frame`: the right sum, one growth fault per page for the three pages below the edge.
fn assert_big_frame(out: &Outcome) {
    let r = results_for(out, "big-frame")[0];
    assert_checked_result(r);
    assert_eq!(r.bool("page_by_page"), Some(true));
    assert_eq!((num(r, "grow_events"), num(r, "grow_pages")), (3, 3));
    assert_grown_exactly(r);
}

#[test]
fn pf_ist_resumes_a_string_store_mid_instruction_once_per_page() {
    let out = PF_IST_GROWS.get();
    assert_exit(out, ExitCode::Success);
    assert_rep_stos(out, 2);
}

#[test]
fn df_recover_maps_both_pages_of_a_string_store_from_one_double_fault() {
    let out = DF_RECOVER_GROWS.get();
    assert_exit(out, ExitCode::Success);
    assert_rep_stos(out, 1);
}

#[test]
fn stack_probes_walk_a_big_frame_down_page_by_page() {
    assert_big_frame(PF_IST_GROWS.get());
    assert_big_frame(DF_RECOVER_GROWS.get());
}

// ---- the stack's limit ----

static SPAN_PF_IST: Shared = Shared::new("policy grow 4K 32K; growth pf-ist; span-limit");
static ENSURE: Shared =
    Shared::new("policy grow 4K 32K; growth ensure; rep-stos 8K; big-frame; span-limit");

#[test]
fn growth_reaches_the_maximum_exactly_and_the_next_push_is_an_overflow() {
    let out = SPAN_PF_IST.get();
    let limit = out
        .find("limit")
        .expect("the limit was reached and reported");
    assert_eq!(num(limit, "pages"), 8, "32 KiB");
    let floor = hex(limit, "floor");
    assert_eq!(hex(limit, "lowest_word"), floor);
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(hex(a, "cr2"), floor - 8, "one word below the limit");
    assert_eq!(hex(a, "guard_addr"), floor - 8);
    assert_eq!(hex(a, "rsp"), floor);
    assert_eq!(hex(a, "stack_lo"), floor);
    assert_eq!(hex(a, "stack_hi") - floor, 32 * K);
    assert_eq!(num(a, "high_water"), 32 * K);
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn under_ensure_nothing_faults_and_one_word_beyond_the_limit_is_refused() {
    let out = ENSURE.get();
    assert_exit(out, ExitCode::Success);
    let r = results_for(out, "rep-stos")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!((num(r, "rcx"), num(r, "unequal_left")), (0, 0));
    assert_eq!(hex(r, "rdi"), hex(r, "at") - 8 - 8 * K);
    for cmd in ["rep-stos", "big-frame"] {
        let r = results_for(out, cmd)[0];
        assert_eq!(r.str("growth"), Some("ensure"));
        assert_eq!(num(r, "grow_events"), 0, "{}", r.to_json_line());
        assert_eq!(r.bool("refused"), None);
    }
    assert_checked_result(results_for(out, "big-frame")[0]);
    let limit = out
        .find("limit")
        .expect("ensure_stack mapped the whole stack");
    assert_eq!(num(limit, "pages"), 8);
    let r = results_for(out, "span-limit")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!(r.bool("refused"), Some(true));
    assert_eq!(num(r, "pages"), 8);
}

static ENSURE_STATS: Shared =
    Shared::new("policy grow 4K 32K; growth ensure; recurse 60 256; stats");

/// `ensure_stack`'s mapping is growth too: `stats` counts it on its own path (one call, the
/// five pages below the first that the 60 x 256-byte recursion needs), and no fault path ran.
#[test]
fn ensure_stack_is_counted_on_its_own_path() {
    let out = ENSURE_STATS.get();
    assert_exit(out, ExitCode::Success);
    let r = results_for(out, "recurse")[0];
    assert_checked_result(r);
    assert_eq!(
        (num(r, "pages"), num(r, "grow_events")),
        (6, 0),
        "{}",
        r.to_json_line()
    );
    let path = |p: &str| {
        out.find_all("stats")
            .into_iter()
            .find(|s| s.str("path") == Some(p))
            .unwrap_or_else(|| panic!("no stats for {p}: {out:?}"))
    };
    let e = path("ensure");
    assert_eq!(
        (num(e, "events"), num(e, "pages")),
        (1, 5),
        "{}",
        e.to_json_line()
    );
    assert!(num(e, "avg_cycles") > 0, "{}", e.to_json_line());
    for p in ["pf-ist", "pf-gate", "df-recover", "fred-sim", "fred"] {
        assert_eq!(num(path(p), "events"), 0, "{p}: {out:?}");
    }
}

// ---- a wild write ----

static WILD: Shared = Shared::new("policy grow 4K 32K; growth pf-ist; wild-edge");

#[test]
fn a_write_below_the_mapped_edge_far_below_rsp_is_never_growth() {
    let out = WILD.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("wild-stack-access"), "{out:?}");
    assert_eq!(a.str("via"), Some("#PF"));
    assert_eq!(a.str("thread"), Some("wild-edge"));
    let (cr2, rsp) = (hex(a, "cr2"), hex(a, "rsp"));
    assert_eq!(num(a, "below_rsp"), rsp - cr2);
    // The one-page stack's edge is at the page boundary above CR2 + 2 KiB (RSP moved a few
    // words between reading it and the write).
    let edge = (cr2 + 2 * K).next_multiple_of(PAGE);
    assert!(edge - cr2 >= 2 * K && edge - cr2 < 2 * K + 256, "{cr2:#x}");
    assert!(
        rsp > edge && rsp - edge < PAGE,
        "RSP on the one mapped page: {rsp:#x}"
    );
    assert_exit(out, ExitCode::Abort);
}

// ---- nested faults in the #PF handler ----

static CR2_PF_IST: Shared = Shared::new("policy grow 4K 32K; growth pf-ist; cr2-nested");
static NMI_PF_IST: Shared = Shared::new("policy grow 4K 32K; growth pf-ist; nmi-in-pf");

#[test]
fn the_captured_address_survives_a_nested_fault_that_overwrites_cr2() {
    let out = DF_RECOVER_GROWS.get();
    let r = results_for(out, "cr2-nested")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!(hex(r, "event_data"), DEMAND_AT);
    // The nested #PF's stub captured its own address and cleared CR2.
    assert_eq!(hex(r, "cr2_after_nested"), 0);
    assert_eq!(num(r, "value"), 0xc2);
    assert_eq!(r.bool("nested_mapped"), Some(true));
}

#[test]
fn an_nmi_whose_handler_faults_inside_a_gate_pf_handler_unwinds_in_order() {
    let out = DF_RECOVER_GROWS.get();
    let r = results_for(out, "nmi-in-pf")[0];
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    assert_eq!(num(r, "nmis"), 1);
    assert_eq!(num(r, "value"), 0x4e);
    assert_eq!(r.bool("nmi_fault_mapped"), Some(true));
}

#[test]
fn a_fault_at_pf_ist_handler_entry_is_the_reentry_report() {
    let out = CR2_PF_IST.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("ist-reentered"), "{out:?}");
    assert_eq!(hex(a, "cr2"), SHADOW, "the nested fault's address");
    assert!(
        inside(PF_IST, hex(a, "rsp")),
        "from code on the #PF IST stack"
    );
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn a_pf_from_an_nmi_handler_while_the_pf_ist_stack_is_busy_is_the_reentry_report() {
    let out = NMI_PF_IST.get();
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("ist-reentered"), "{out:?}");
    assert_eq!(hex(a, "cr2"), SHADOW, "the NMI handler's fault");
    assert!(
        inside(NMI_IST, hex(a, "rsp")),
        "from the NMI stack, not the #PF stack"
    );
    assert_exit(out, ExitCode::Abort);
}
