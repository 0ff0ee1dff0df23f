//! Kernel threads on guard-paged stack slots: checked deep recursion, preemption,
//! high-water marks and their histogram, overflow reports that name the thread, stack
//! policies and the slot span.
//!
//! Thread ids are handed out in spawn order from 2 (the boot path is thread 1), and a
//! `fixed` stack of B bytes is mapped at the top of its slot with everything below it in the
//! slot counting as guard.

use stacklab_tests::*;

const K: u64 = 1024;

/// Threads with known stack use, the histogram of them, then an overflow on fixed(16K).
static SEQ: Shared =
    Shared::new("recurse 20 256; hwm 5000; hwm 10000; recurse 30 256; stacks; recurse 100 256");

/// A `recurse` result that must be correct: the recursion's value equals the value computed
/// without recursion, and it is not a trivial 0.
fn assert_recurse_ok(out: &Outcome, r: &Record, depth: u64, frame: u64, policy: &str, pages: u64) {
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(
        (num(r, "depth"), num(r, "frame")),
        (depth, frame),
        "{}",
        r.to_json_line()
    );
    let (got, want) = (hex(r, "result"), hex(r, "expected"));
    assert_eq!(got, want, "{}", r.to_json_line());
    assert_ne!(got, 0);
    assert_eq!(r.str("policy"), Some(policy));
    assert_eq!(num(r, "pages"), pages, "pages mapped for {policy}");
    // Every level holds its `frame`-byte buffer, and the stack held it all.
    let hw = num(r, "high_water");
    assert!(
        hw > (depth + 1) * frame && hw <= pages * 4096,
        "high-water {hw}: {}",
        r.to_json_line()
    );
}

/// The overflow report of a `recurse` thread on a fixed stack of `bytes`.
fn assert_recurse_overflow(out: &Outcome, tid: u64, bytes: u64) {
    let a = the_abort(out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!(a.str("thread"), Some("recurse"));
    assert_eq!(num(a, "tid"), tid);
    assert!(
        a.get("slot")
            .and_then(|v| v.as_i64())
            .is_some_and(|s| s >= 0),
        "{out:?}"
    );
    // The push of the #PF frame faults too: #DF on its IST stack (SDM Table 6-5).
    assert_eq!(a.str("via"), Some("#DF"));
    assert_eq!(num(a, "vector"), 8);
    assert_eq!(a.str("name"), Some("#DF"));
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, bytes, "mapped stack size");
    assert_eq!(hi % (64 * K), 0, "the stack is at the top of its 64K slot");
    let guard = hex(a, "guard_addr");
    assert_eq!(hex(a, "cr2"), guard);
    assert!(
        guard < lo && lo - guard <= 4096,
        "guard hit {guard:#x} not just below {lo:#x}"
    );
    let rsp = hex(a, "rsp");
    assert!(
        rsp.abs_diff(lo) <= 4096,
        "rsp {rsp:#x} is not at the stack's bottom {lo:#x}"
    );
    let hw = num(a, "high_water");
    assert!(
        hw <= bytes && hw > bytes - 1024,
        "high-water {hw} of {bytes}"
    );
    assert_backtrace_starts_in(out, a, "stacklab_kernel::scenarios::recursion::rec");
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn recurse_20_and_30_with_256_byte_frames_complete_on_fixed_16k() {
    let out = SEQ.get();
    let r = results_for(out, "recurse");
    assert_eq!(r.len(), 2, "{out:?}");
    assert_recurse_ok(out, r[0], 20, 256, "fixed(16K)", 4);
    assert_recurse_ok(out, r[1], 30, 256, "fixed(16K)", 4);
    assert_eq!((num(r[0], "tid"), num(r[1], "tid")), (2, 5));
    assert_ne!(hex(r[0], "result"), hex(r[1], "result"));
}

#[test]
fn hwm_measures_the_calibrated_mark_exactly() {
    let out = SEQ.get();
    let r = results_for(out, "hwm");
    assert_eq!(r.len(), 2, "{out:?}");
    for (rec, bytes) in r.iter().zip([5000, 10000]) {
        assert_eq!(rec.bool("ok"), Some(true), "{out:?}");
        assert_eq!(num(rec, "true_use"), bytes);
        let hw = num(rec, "high_water");
        assert!(
            hw >= bytes && hw < bytes + 64,
            "high-water {hw} for a mark at {bytes}"
        );
    }
}

#[test]
fn stacks_histogram_counts_the_threads_that_ran_before_it() {
    let out = SEQ.get();
    let s = out.result_for("stacks").expect("stacks result");
    assert_eq!(s.bool("ok"), Some(true), "{out:?}");
    // Four threads ended: recurse 20x256 (~7K) and hwm 5000 in (4K, 8K]; hwm 10000 and
    // recurse 30x256 (~10K) in (8K, 16K]. The overflow comes after `stacks`.
    assert_eq!(num(s, "threads"), 4, "{out:?}");
    let h = num_list(s, "histogram");
    assert_eq!(
        h,
        [0, 0, 0, 2, 2, 0, 0, 0],
        "buckets 1k 2k 4k 8k 16k 32k 64k rest"
    );
    assert_eq!(num(s, "span"), 64 * K);
}

#[test]
fn recurse_100_with_256_byte_frames_overflows_fixed_16k() {
    let out = SEQ.get();
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:recurse",
            "result:hwm",
            "result:hwm",
            "result:recurse",
            "result:stacks",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    // The fifth thread spawned (ids 2..=5 joined before it).
    assert_recurse_overflow(out, 6, 16 * K);
}

#[test]
fn threads_200_are_all_correct_under_timer_preemption() {
    let out = boot("threads 200; stacks");
    assert_eq!(
        sequence(&out),
        ["ready", "result:threads", "result:stacks", "exit"],
        "{out:?}"
    );
    let r = out.result_for("threads").unwrap();
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(r.str("policy"), Some("fixed(16K)"));
    assert_eq!(num(r, "threads"), 200);
    assert_eq!(num(r, "correct"), 200);
    // Each thread spins 3 ms (more than the 2-tick quantum) at its deepest point.
    assert!(num(r, "preemptions") > 0, "{out:?}");
    assert!(
        num(r, "switches") >= 200,
        "every thread was switched to at least once: {out:?}"
    );
    assert!(num(r, "max_high_water") <= 16 * K);
    assert_eq!(
        num(r, "live_threads_after"),
        1,
        "only the boot thread is left"
    );
    let s = out.result_for("stacks").unwrap();
    assert_eq!(num(s, "threads"), 200);
    let h = num_list(s, "histogram");
    assert_eq!(h.iter().sum::<u64>(), 200);
    assert_eq!(h[5..], [0, 0, 0], "no thread used more than its 16K");
    assert_exit(&out, ExitCode::Success);
}

#[test]
fn guard_touch_is_reported_from_the_df_stack_after_a_page_fault() {
    let out = boot("guard-touch");
    assert_eq!(sequence(&out), ["ready", "abort", "exit"], "{out:?}");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    // The #PF frame fitted on the thread's stack; the report then moved to the #DF stack.
    assert_eq!(a.str("via"), Some("#PF"));
    assert_eq!(num(a, "vector"), 14);
    assert_eq!(a.str("name"), Some("#PF"));
    assert_eq!(
        a.str("error_code"),
        Some("0x0"),
        "not present, read, kernel"
    );
    assert_eq!(a.str("thread"), Some("guard-touch"));
    assert_eq!(
        (num(a, "tid"), a.get("slot").and_then(|v| v.as_i64())),
        (2, Some(0))
    );
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, 16 * K);
    // The thread reads 8 bytes into its slot's lowest page (the guard page).
    assert_eq!(hex(a, "guard_addr"), hi - 64 * K + 8);
    assert_eq!(hex(a, "cr2"), hex(a, "guard_addr"));
    let rsp = hex(a, "rsp");
    assert!(
        rsp >= lo && rsp < hi,
        "the thread was running on its own mapped stack"
    );
    let bt = a.hex_list("backtrace");
    assert!(
        bt.iter()
            .any(|&x| function_at(&out, x - 1) == "stacklab_kernel::thread::thread_main"),
        "{out:?}"
    );
    assert_exit(&out, ExitCode::Abort);
}

#[test]
fn policy_fixed_8k_fits_recurse_20_but_overflows_on_recurse_30() {
    let out = boot("policy fixed 8K; recurse 20 256; recurse 30 256");
    assert_eq!(
        sequence(&out),
        ["ready", "result:policy", "result:recurse", "abort", "exit"],
        "{out:?}"
    );
    let p = out.result_for("policy").unwrap();
    assert_eq!(
        (p.bool("ok"), p.str("policy")),
        (Some(true), Some("fixed(8K)"))
    );
    // ~7K of stack fits in two pages.
    assert_recurse_ok(
        &out,
        out.result_for("recurse").unwrap(),
        20,
        256,
        "fixed(8K)",
        2,
    );
    // ~10K does not.
    assert_recurse_overflow(&out, 3, 8 * K);
}

/// A refused policy size, then the default (16K) and 32K on the same recursion.
static POLICIES: Shared =
    Shared::new("policy fixed 12K; recurse 30 256; policy fixed 32K; recurse 30 256");

/// The start of the error for a policy size other than 8K, 16K or 32K.
const POLICY_SIZE_ERROR: &str = "policy: BYTES must be one of 8K, 16K, 32K; got '";

#[test]
fn policy_fixed_16k_and_32k_fit_recurse_30_and_other_sizes_are_refused() {
    let out = POLICIES.get();
    assert_eq!(
        sequence(out),
        [
            "ready",
            "error:policy fixed 12K",
            "result:recurse",
            "result:policy",
            "result:recurse",
            "exit"
        ],
        "{out:?}"
    );
    let e = out.find("error").unwrap();
    // The exact text is checked by `refused_policy_size_error_names_the_size`.
    assert!(text(e, "msg").starts_with(POLICY_SIZE_ERROR), "{out:?}");
    let r = results_for(out, "recurse");
    // The refused policy left the default in place.
    assert_recurse_ok(out, r[0], 30, 256, "fixed(16K)", 4);
    assert_recurse_ok(out, r[1], 30, 256, "fixed(32K)", 8);
    assert_eq!(hex(r[0], "result"), hex(r[1], "result"));
    assert_exit(out, ExitCode::BadCommand);
}

#[test]
fn refused_policy_size_error_names_the_size() {
    let out = POLICIES.get();
    let e = out.find("error").expect("error record");
    assert_eq!(
        e.str("msg"),
        Some(format!("{POLICY_SIZE_ERROR}12K'").as_str()),
        "{out:?}"
    );
}

#[test]
fn stack_span_takes_powers_of_two_before_the_first_thread_only() {
    let out = boot(
        "stack-span 100K; stack-span 128K; recurse 20 256; stack-span 64K; stacks; guard-touch",
    );
    assert_eq!(
        sequence(&out),
        [
            "ready",
            "error:stack-span 100K",
            "result:stack-span",
            "result:recurse",
            "error:stack-span 64K",
            "result:stacks",
            "abort",
            "exit"
        ],
        "{out:?}"
    );
    let errs: Vec<&str> = out
        .find_all("error")
        .iter()
        .map(|r| text(r, "msg"))
        .collect();
    assert_eq!(
        errs,
        [
            "span must be a power of two from 16K to 1M",
            "the span cannot change after threads have run"
        ]
    );
    let s = out.result_for("stack-span").unwrap();
    assert_eq!((s.bool("ok"), s.u64("span")), (Some(true), Some(128 * K)));
    assert_recurse_ok(
        &out,
        out.result_for("recurse").unwrap(),
        20,
        256,
        "fixed(16K)",
        4,
    );
    let st = out.result_for("stacks").unwrap();
    assert_eq!((num(st, "threads"), num(st, "span")), (1, 128 * K));
    // The guard hit shows the 128K slot geometry: the slot base is 128K below the top.
    let a = the_abort(&out);
    assert_eq!(
        (a.str("reason"), a.str("via")),
        (Some("stack-overflow"), Some("#PF")),
        "{out:?}"
    );
    let hi = hex(a, "stack_hi");
    assert_eq!(hi % (128 * K), 0);
    assert_eq!(hi - hex(a, "stack_lo"), 16 * K);
    assert_eq!(hex(a, "guard_addr"), hi - 128 * K + 8);
    // Exit is Abort: worse than the bad commands before it.
    assert_exit(&out, ExitCode::Abort);
}
