//! The benchmark commands, checked for what they must get right whatever the machine's
//! speed: which records they print, sample counts, and the memory figures, which are page
//! counts and therefore exact. Cycle figures are only checked for consistency (p99 ≥ median,
//! ratios computed from the medians printed beside them); how fast is a question for the
//! figures, not for a test.

use stacklab_tests::*;

const K: u64 = 1024;
const PAGE: u64 = 4096;

static BENCH: Shared = Shared::new("bench threads; bench memory 100; bench growth 12");

fn benches<'a>(out: &'a Outcome, name: &str) -> Vec<&'a Record> {
    out.records
        .iter()
        .filter(|r| r.kind == "bench" && r.str("name") == Some(name))
        .collect()
}

fn one<'a>(out: &'a Outcome, name: &str) -> &'a Record {
    let b = benches(out, name);
    assert_eq!(b.len(), 1, "one '{name}' record: {out:?}");
    b[0]
}

fn assert_cycles(r: &Record, samples: u64) {
    let (median, p99) = (num(r, "median_cycles"), num(r, "p99_cycles"));
    assert!(median > 0 && p99 >= median, "{}", r.to_json_line());
    assert_eq!(num(r, "samples"), samples, "{}", r.to_json_line());
}

/// `a / b` printed with two decimals, truncated, as the kernel prints ratios.
fn ratio_text(a: u64, b: u64) -> String {
    let r = a * 100 / b;
    format!("{}.{:02}", r / 100, r % 100)
}

#[test]
fn bench_boot_exits_cleanly() {
    let out = BENCH.get();
    assert_eq!(sequence(out).first().map(String::as_str), Some("ready"));
    assert!(
        out.records.iter().all(|r| r.kind != "error"),
        "no errors: {out:?}"
    );
    assert_exit(out, ExitCode::Success);
}

#[test]
fn switch_and_spawn_report_their_samples() {
    let out = BENCH.get();
    assert_cycles(one(out, "switch"), 2000);
    assert_cycles(one(out, "spawn-join"), 500);
}

#[test]
fn idle_fixed_stacks_hold_exactly_their_size_per_thread() {
    let out = BENCH.get();
    let idle = benches(out, "idle-memory");
    let policies: Vec<&str> = idle.iter().map(|r| text(r, "policy")).collect();
    assert_eq!(policies, ["fixed(8K)", "fixed(16K)", "fixed(32K)"]);
    for (r, size) in idle.iter().zip([8 * K, 16 * K, 32 * K]) {
        assert_eq!(num(r, "threads"), 1000);
        assert_eq!(num(r, "stack_bytes"), 1000 * size, "{}", r.to_json_line());
        // Frames taken include page tables made for new slots, never fewer than the stacks.
        assert!(num(r, "bytes") >= num(r, "stack_bytes"));
    }
}

fn check_memory(r: &Record, threads: u64) -> (u64, u64) {
    assert_eq!(num(r, "threads"), threads);
    assert_eq!(
        num(r, "fixed16k_bytes"),
        threads * 16 * K,
        "{}",
        r.to_json_line()
    );
    let (grow, lower) = (num(r, "grow_bytes"), num(r, "lower_bound_bytes"));
    // Growth maps exactly down to the deepest page touched: the bound is met, not approached.
    assert_eq!(grow, lower, "{}", r.to_json_line());
    assert_eq!(r.str("grow_over_bound"), Some("1.00"));
    let fixed = threads * 16 * K;
    assert_eq!(
        r.str("saved_pct"),
        Some(ratio_text((fixed - grow) * 100, fixed).as_str()),
        "{}",
        r.to_json_line()
    );
    (grow, lower)
}

#[test]
fn idle_grow_stacks_hold_one_page_each_and_save_three_quarters() {
    let r = one(BENCH.get(), "memory-idle");
    assert_eq!(r.str("workload"), Some("idle"));
    let (grow, _) = check_memory(r, 100);
    assert_eq!(grow, 100 * PAGE, "{}", r.to_json_line());
    assert_eq!(r.str("saved_pct"), Some("75.00"));
}

#[test]
fn mixed_grow_stacks_meet_the_lower_bound() {
    let r = one(BENCH.get(), "memory");
    assert_eq!(r.str("workload"), Some("mixed"));
    let (grow, _) = check_memory(r, 100);
    // Every thread keeps its first page; the 5 deep ones (36 x 256 B) need at least 3 each.
    assert!(grow >= (100 + 5 * 2) * PAGE, "{}", r.to_json_line());
    assert!(grow < 100 * 16 * K, "{}", r.to_json_line());
}

#[test]
fn growth_bench_measures_every_path_against_the_plain_fault() {
    let out = BENCH.get();
    let g = benches(out, "growth");
    let paths: Vec<&str> = g.iter().map(|r| text(r, "path")).collect();
    assert_eq!(
        paths,
        ["demand", "pf-ist", "df-recover", "ensure"],
        "{out:?}"
    );
    let plain = num(g[0], "median_cycles");
    assert_eq!(g[0].str("ratio"), Some("1.00"));
    for r in &g {
        // 12 is one thread's worth of growth steps, so every path takes exactly 12.
        assert_cycles(r, 12);
        assert_eq!(
            r.str("ratio"),
            Some(ratio_text(num(r, "median_cycles"), plain).as_str()),
            "{}",
            r.to_json_line()
        );
    }
}
