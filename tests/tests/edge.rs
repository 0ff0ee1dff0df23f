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

/// The whole sweep: the three growth paths (`pf-ist`, `df-recover`, `fred-sim`), five event
/// kinds (timer, demand #PF, int3, push, ensure), RSP at 0..=512 bytes above the edge in
/// 8-byte steps (975 cases), every outcome exact (see `kernel/src/scenarios/edge.rs`).
#[test]
fn edge_sweep_is_exact_for_every_growth_path_and_event() {
    let out = boot("edge-sweep");
    let r = out.result_for("edge-sweep").expect("edge-sweep result");
    let failures = r
        .get("failures")
        .and_then(|f| f.as_array())
        .expect("failures list");
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.bool("ok"), Some(true));
    assert_eq!(num(r, "cases"), 3 * 5 * 65);
    assert_exit(&out, ExitCode::Success);
}

/// Under `abort` the first case that needs the page below the edge is the documented abort:
/// the overflow report from #DF, naming the thread, with the guard address right below the
/// mapped edge and every register field.
#[test]
fn at_the_edge_the_abort_path_stops_with_the_overflow_report() {
    let out = boot("policy grow 4K 32K; edge-sweep abort push 0 0");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    assert_eq!((a.str("via"), a.str("thread")), (Some("#DF"), Some("edge")));
    assert_eq!(
        hex(a, "guard_addr"),
        hex(a, "stack_lo") - 8,
        "the push below the edge"
    );
    assert_eq!(hex(a, "stack_hi") - hex(a, "stack_lo"), 4096);
    for field in ["rip", "rsp", "rflags", "cr2"] {
        assert!(a.hex(field).is_some(), "no {field}: {out:?}");
    }
    assert_exit(&out, ExitCode::Abort);
}

/// A stray write 8 KiB below RSP into the thread's own unmapped stack range is refused by
/// every growth path: never growth, its own report.
#[test]
fn a_wild_write_below_rsp_is_never_growth() {
    for path in ["pf-ist", "df-recover", "fred-sim"] {
        let out = boot(&format!("policy grow 4K 32K; growth {path}; wild-write 8K"));
        let a = the_abort(&out);
        assert_eq!(a.str("reason"), Some("wild-stack-access"), "{out:?}");
        assert_eq!(
            a.str("via"),
            Some("#PF"),
            "the #PF frame fits far above: {path}"
        );
        // 8 KiB below the RSP the command read; the faulting instruction's RSP may be a few
        // words lower (a call in between), never more than one frame.
        let below = num(a, "below_rsp");
        assert!((8192 - 64..=8192).contains(&below), "{below}: {out:?}");
        assert_eq!(hex(a, "rsp") - hex(a, "cr2"), below);
        assert_exit(&out, ExitCode::Abort);
    }
}

/// A #PF taken by code running on the #PF IST stack (injected into the growth handler) is
/// reported as such instead of silently rewinding the stack over the outer frame.
#[test]
fn a_page_fault_on_the_page_fault_ist_stack_is_reported() {
    let out = boot("policy grow 4K 32K; growth pf-ist; ist-reenter");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("ist-reentered"), "{out:?}");
    assert_eq!(hex(a, "cr2"), 0x1000);
    assert_exit(&out, ExitCode::Abort);
}

/// Smaller ones: `stack-span` refuses a span the current policy cannot fit, and `bench`
/// rejects extra arguments like every other command.
#[test]
fn stack_span_and_bench_refuse_what_does_not_fit() {
    let out = boot("stack-span 16K; bench switch 10 extra; stack-span 32K");
    assert_eq!(
        sequence(&out),
        [
            "ready",
            "error:stack-span 16K",
            "error:bench switch 10 extra",
            "result:stack-span",
            "exit"
        ],
        "{out:?}"
    );
    let msgs: Vec<&str> = out
        .find_all("error")
        .iter()
        .map(|r| text(r, "msg"))
        .collect();
    assert_eq!(
        msgs,
        [
            "the current policy fixed(16K) does not fit a 16K slot: maximum 16K leaves no guard page in a 16K slot",
            "bench: unexpected argument 'extra'",
        ]
    );
    assert_exit(&out, ExitCode::BadCommand);
}
