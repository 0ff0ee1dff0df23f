//! The boot path, exceptions that return (#BP) and exceptions that end the machine
//! (#GP, #PF, the boot stack's overflow into its guard page, caught by #DF), the timer, and the
//! command line's error handling.

use stacklab_tests::*;

/// Non-fatal commands that can share one boot.
const CLEAN_CMDLINE: &str = "int3; ticks 200; info; int3";
static CLEAN: Shared = Shared::new(CLEAN_CMDLINE);

#[test]
fn boot_reaches_ready_echoes_cmdline_and_exits_success() {
    let out = CLEAN.get();
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:int3",
            "result:ticks",
            "result:info",
            "result:int3",
            "exit"
        ],
        "{out:?}"
    );
    let ready = &out.records[0];
    // The kernel and this crate share the workspace version.
    assert_eq!(
        ready.str("version"),
        Some(env!("CARGO_PKG_VERSION")),
        "{out:?}"
    );
    assert!(num(ready, "tsc_hz") > 0, "{out:?}");
    // QEMU's `-cpu max` under TCG has no CPUID leaf 0x15, so the TSC is timed by polling the
    // PIT; its error bound comes from the reads at the two ends, and the best of up to six
    // runs is kept: 12 to 22 ppm over ten boots with both host cores busy.
    assert_eq!(ready.str("tsc_source"), Some("pit-poll"), "{out:?}");
    let ppm = num(ready, "tsc_error_ppm");
    assert!(ppm <= 1000, "TSC error bound {ppm} ppm: {out:?}");
    let offset = hex(ready, "kernel_offset");
    assert_eq!(offset, out.kernel_offset);
    assert_eq!(
        offset % 4096,
        0,
        "the load offset is page aligned: {offset:#x}"
    );
    assert_eq!(ready.str("cmdline"), Some(CLEAN_CMDLINE), "{out:?}");
    // `info` reports the same calibrated TSC frequency as `ready`.
    let info = out.result_for("info").expect("info result");
    assert_eq!(info.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(info, "tsc_hz"), num(ready, "tsc_hz"));
    assert!(
        num(info, "frames_total") > num(info, "frames_in_use"),
        "{out:?}"
    );
    assert!(
        out.find("abort").is_none() && out.find("error").is_none(),
        "{out:?}"
    );
    assert_exit(out, ExitCode::Success);
}

#[test]
fn int3_returns_to_the_caller_after_the_breakpoint_handler() {
    let out = CLEAN.get();
    let hits = results_for(out, "int3");
    assert_eq!(hits.len(), 2, "{out:?}");
    for r in &hits {
        assert_eq!(r.bool("ok"), Some(true), "{out:?}");
        assert_eq!(r.str("handler"), Some("breakpoint"));
        assert_eq!(num(r, "vector"), 3);
        assert_eq!(num(r, "hits"), 1, "each int3 runs the handler exactly once");
    }
    // Both commands execute the same int3 instruction, so the handler saw the same RIP.
    let rip = hex(hits[0], "rip");
    assert_eq!(hex(hits[1], "rip"), rip);
    // #BP is a trap (SDM Vol. 3A §6.5): the saved RIP is the instruction after `int3` (0xCC).
    assert_eq!(
        kernel_byte(out, rip - 1),
        Some(0xcc),
        "the byte before rip {rip:#x} is not int3"
    );
    // It lies in the int3 path: `provoke::breakpoint` or the `int3` command's function
    // (`scenarios::basic::int3`), whichever the compiler kept.
    let f = function_at(out, rip);
    assert!(
        f.contains("int3")
            || f.contains("breakpoint")
            || f.starts_with("stacklab_kernel::scenarios::basic::int3"),
        "int3 rip {rip:#x} is in {f}"
    );
    // It returned: the commands after it ran and the run succeeded.
    assert_exit(out, ExitCode::Success);
}

#[test]
fn ticks_200_counts_timer_interrupts_inside_the_window() {
    let out = CLEAN.get();
    let r = out.result_for("ticks").expect("ticks result");
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(r, "ms"), 200);
    // `expected` is the timer periods in the TSC time the wait took: at least the 200 ms asked
    // for, more only if the host took the CPU away around the wait's ends.
    let expected = num(r, "expected");
    assert!((200..=260).contains(&expected), "{out:?}");
    // A fifth of them less 10 at least (QEMU merges late timer edges under load, see
    // `stacklab_core::tsc::tick_window`), and at most one more than fit, widened by the TSC's
    // error bound (<= 1000 ppm: +1 at most here).
    let min = num(r, "min");
    assert_eq!(min, expected / 5 - 10, "{out:?}");
    let max = num(r, "max");
    assert!(max == expected + 1 || max == expected + 2, "{out:?}");
    let n = num(r, "ticks");
    assert!((min..=max).contains(&n), "{n} ticks: {out:?}");
}

/// q35 with more than 2.75 GiB puts 2 GiB below 4 GiB and the rest from 4 GiB up (QEMU
/// `hw/i386/pc_q35.c`); with 4 GiB that is 0x1_0000_0000..0x1_8000_0000, all usable. Below
/// 2 GiB the firmware and the boot loader keep about 10 MiB (the boot log lists the usable
/// regions), and 0xa0000..0x100000 and frame 0 are never usable.
#[test]
fn memory_above_4_gib_is_counted() {
    let out = Harness::get()
        .run(
            RunOptions::new("info")
                .memory_mib(4096)
                .timeout_secs(TIMEOUT_SECS),
        )
        .unwrap_or_else(|e| panic!("booting with 4 GiB: {e}"));
    assert_eq!(sequence(&out), ["ready", "result:info", "exit"], "{out:?}");
    assert!(
        out.serial
            .contains("memory:   usable 0x0100000000..0x0180000000 (2097152 KiB)"),
        "the region above 4 GiB is not in the table: {}",
        out.serial
    );
    assert!(!out.serial.contains("memory: skipped"), "{}", out.serial);
    let total = num(out.result_for("info").unwrap(), "frames_total");
    let mib = |m: u64| m << 8;
    // At most 4 GiB less frame 0 and the 96 frames of 0xa0000..0x100000; at least all but
    // 32 MiB (the firmware's and the boot loader's share, about 10 MiB, with room to spare).
    assert!(total <= mib(4096) - 97, "{total} frames: {out:?}");
    assert!(total >= mib(4096 - 32), "{total} frames: {out:?}");
    assert_exit(&out, ExitCode::Success);
}

#[test]
fn gp_is_a_fatal_report_with_the_selector_error_code() {
    let out = boot("gp");
    assert_eq!(sequence(&out), ["ready", "abort", "exit"], "{out:?}");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("exception"), "{out:?}");
    assert_eq!(num(a, "vector"), 13);
    assert_eq!(a.str("name"), Some("#GP"));
    assert_eq!(a.str("error_code"), Some("0x50"));
    assert_eq!(a.str("error"), Some("0x50 (GDT index 10)"));
    assert_eq!(a.str("cs"), Some("0x8"), "kernel code selector");
    // Every fatal report carries CR2 (for #GP the register as it is, not a #PF's address).
    assert!(a.hex("cr2").is_some(), "no cr2: {out:?}");
    assert!(a.hex("rflags").is_some(), "no rflags: {out:?}");
    // #GP is a fault: the saved RIP is the `mov ds` itself.
    let rip = hex(a, "rip");
    assert_eq!(
        function_at(&out, rip),
        "stacklab_kernel::arch::x86_64::provoke::general_protection"
    );
    // A frame-pointer backtrace from the boot stack, every frame in the kernel, through the
    // command loop down to the function the boot path switched stacks into.
    let bt = a.hex_list("backtrace");
    assert!(!bt.is_empty(), "{out:?}");
    let names: Vec<String> = bt.iter().map(|&x| function_at(&out, x - 1)).collect();
    assert!(
        names.iter().all(|n| n.starts_with("stacklab_kernel::")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "stacklab_kernel::on_boot_stack"),
        "{names:?}"
    );
    assert_exit(&out, ExitCode::Abort);
}

#[test]
fn boot_overflow_hits_the_boot_stack_guard_and_is_caught_by_df() {
    let out = boot("boot-overflow");
    assert_eq!(sequence(&out), ["ready", "abort", "exit"], "{out:?}");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("stack-overflow"), "{out:?}");
    // The #PF cannot push its frame on the exhausted stack: #DF on its IST stack.
    assert_eq!(a.str("via"), Some("#DF"));
    assert_eq!(num(a, "vector"), 8);
    assert_eq!(a.str("name"), Some("#DF"));
    assert_eq!(
        a.str("error_code"),
        Some("0x0"),
        "#DF pushes an error code of 0"
    );
    assert_eq!(a.str("thread"), Some("boot"));
    assert_eq!(num(a, "tid"), 1, "the boot path is thread 1");
    assert_eq!(
        a.get("slot").and_then(|v| v.as_i64()),
        Some(-1),
        "the boot stack is no slot"
    );
    let (lo, hi) = (hex(a, "stack_lo"), hex(a, "stack_hi"));
    assert_eq!(hi - lo, 16 * 4096, "the boot stack is 16 pages");
    let guard = hex(a, "guard_addr");
    assert_eq!(
        hex(a, "cr2"),
        guard,
        "guard_addr is CR2 of the #PF that escalated"
    );
    assert!(
        guard >= lo - 4096 && guard < lo,
        "guard {guard:#x} not in the page below {lo:#x}"
    );
    let rsp = hex(a, "rsp");
    assert!(
        rsp.abs_diff(guard) < 4096,
        "rsp {rsp:#x} far from the guard hit {guard:#x}"
    );
    assert!(
        rsp < lo + 4096,
        "rsp {rsp:#x} is not at the bottom of the stack {lo:#x}"
    );
    // Recursion filled the stack: the high-water mark is within one 512-byte frame of full
    // (the deepest frame's buffer is mostly zeros, which the mark cannot see).
    let hw = num(a, "high_water");
    assert!(hw <= hi - lo && hw > hi - lo - 1024, "high-water {hw}");
    // The backtrace walks the recursion.
    let bt = a.hex_list("backtrace");
    assert!(!bt.is_empty(), "{out:?}");
    assert_eq!(
        function_at(&out, bt[0] - 1),
        "stacklab_kernel::scenarios::basic::overflow"
    );
    assert_exit(&out, ExitCode::Abort);
}

#[test]
fn read_of_an_unmapped_low_address_is_a_fatal_page_fault() {
    let out = boot("read 0x1000");
    assert_eq!(sequence(&out), ["ready", "abort", "exit"], "{out:?}");
    let a = the_abort(&out);
    assert_eq!(a.str("reason"), Some("exception"), "{out:?}");
    assert_eq!(num(a, "vector"), 14);
    assert_eq!(a.str("name"), Some("#PF"));
    assert_eq!(a.str("cr2"), Some("0x1000"));
    assert_eq!(a.str("error_code"), Some("0x0"));
    assert_eq!(a.str("error"), Some("0x0 (not present, read, kernel)"));
    assert!(
        function_at(&out, hex(a, "rip")).starts_with("stacklab_kernel::"),
        "{out:?}"
    );
    assert!(!a.hex_list("backtrace").is_empty(), "{out:?}");
    assert_exit(&out, ExitCode::Abort);
}

#[test]
fn malformed_commands_are_reported_one_by_one_and_the_kernel_goes_on() {
    let cmdline = "bogus; recurse ten 64; recurse 20 100; ticks; ticks 0; int3 now; int3";
    let out = boot(cmdline);
    assert_eq!(
        sequence(&out),
        [
            "ready",
            "error:bogus",
            "error:recurse ten 64",
            "error:recurse 20 100",
            "error:ticks",
            "error:ticks 0",
            "error:int3 now",
            "result:int3",
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
            "unknown command 'bogus' (try 'help')",
            "recurse: DEPTH must be a number (like 42, 0x2a or 16K), got 'ten'",
            "FRAME must be one of [32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 8192]",
            "ticks: missing argument MS",
            "ticks: MS must be between 1 and 60000, got 0",
            "int3: unexpected argument 'now'",
        ]
    );
    let r = out.result_for("int3").expect("int3 after the bad commands");
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(r, "hits"), 1);
    assert_exit(&out, ExitCode::BadCommand);
}
