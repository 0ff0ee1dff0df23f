//! Exactness at the edges the adversarial review found: the growth reserve under every
//! interleaving of a nested pop or refill, a thread command that fails half-way, and (in
//! `edge_sweep`) faults and interrupts that land at each offset above a stack's mapped edge.

use stacklab_tests::*;

#[test]
fn reserve_interleavings_never_list_a_frame_twice_nor_lose_one() {
    let out = boot("reserve-race; stats");
    let r = out.result_for("reserve-race").expect("reserve-race result");
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(r, "cases"), 7);
    assert_eq!(r.str("failures"), Some(""));
    let s = out.result_for("stats").unwrap();
    assert_eq!(s.bool("reserve_distinct"), Some(true), "{out:?}");
    assert_eq!(
        num(s, "reserve_now"),
        16,
        "the scenario restores the default reserve"
    );
    assert_exit(&out, ExitCode::Success);
}

/// 1 MiB slots leave 1024 of them: `threads 2000` fails at the 1025th spawn, joins the 1024
/// it started, and the next command finds every slot free again.
#[test]
fn a_failed_threads_command_joins_what_it_started() {
    let out = boot("stack-span 1M; info; threads 2000; threads 1; info");
    let r = results_for(&out, "threads");
    assert_eq!(r.len(), 2, "{out:?}");
    assert_eq!(r[0].bool("ok"), Some(false));
    assert_eq!(num(r[0], "started"), 1024);
    assert_eq!(
        num(r[0], "correct"),
        1024,
        "every started thread still ran to its result"
    );
    assert_eq!(text(r[0], "error"), "all 1024 stack slots are in use");
    assert_eq!(r[1].bool("ok"), Some(true), "{out:?}");
    assert_eq!(
        num(r[1], "live_threads_after"),
        1,
        "only the boot thread is left"
    );
    let info = results_for(&out, "info");
    // Every stack frame came back. What stays: the page tables made for the 1 GiB of slots
    // (512 level-1 tables, one per 2 MiB, and one level-2 table) and the growth reserve that
    // the first spawn filled (16 frames).
    let (before, after) = (num(info[0], "frames_in_use"), num(info[1], "frames_in_use"));
    assert_eq!(after - before, 512 + 1 + 16, "{before} -> {after}");
    assert_exit(&out, ExitCode::Failure);
}
