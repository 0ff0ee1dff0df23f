//! The kernel on Bochs (the emulator with FRED, `cargo lab run --emulator bochs`): it boots to
//! `ready` with `"fred": "available"`, gets its command line over COM1, runs a command, and
//! its exit status reaches the host through port 0xE9 and the shutdown port. Also what QEMU's
//! translator reports instead (no FRED).
//!
//! Bochs is built by `cargo lab setup --with-bochs SRC`. Without it these tests print that
//! they were skipped and how to enable them, and pass, unless `STACKLAB_REQUIRE_BOCHS=1`
//! (set by `.ci/run` when it built Bochs): then a missing Bochs fails them.

use boot_image::bochs;
use boot_image::qemu::AccelChoice;
use stacklab_tests::*;

#[test]
fn bochs_boots_to_ready_with_fred_and_runs_int3() {
    let Some(out) = boot_on_bochs("int3") else {
        return;
    };
    assert_eq!(sequence(&out), ["ready", "result:int3", "exit"], "{out:?}");
    let ready = &out.records[0];
    assert_eq!(text(ready, "fred"), "available", "{out:?}");
    assert_eq!(text(ready, "emulator"), "bochs", "{out:?}");
    // The command line came over COM1, not fw_cfg.
    assert_eq!(text(ready, "cmdline"), "int3", "{out:?}");
    // Bochs's TSC counts instructions, IPS per emulated second, whatever CPUID leaf 0x15
    // says (2.496 GHz for wildcat_lake): the kernel measures it against the PIT.
    assert_eq!(text(ready, "tsc_source"), "pit-poll", "{out:?}");
    let ips = bochs::config::IPS;
    assert!(
        num(ready, "tsc_hz").abs_diff(ips) < ips / 1000,
        "TSC {} Hz, expected {ips}: {out:?}",
        num(ready, "tsc_hz")
    );
    let r = out.result_for("int3").unwrap();
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert_eq!(text(r, "handler"), "breakpoint");
    assert_eq!(num(r, "vector"), 3);
    assert_eq!(num(r, "hits"), 1);
    assert_eq!(kernel_byte(&out, hex(r, "rip") - 1), Some(0xcc), "{out:?}");
    assert_exit(&out, ExitCode::Success);
    assert_eq!(out.host_status(), 0);
}

#[test]
fn bochs_passes_the_kernels_exit_status_on() {
    // A bad command after a good one: the run goes on, then exits `bad-command` (status 3),
    // which only the status line on port 0xE9 can tell from `success`.
    let Some(out) = boot_on_bochs("info; bogus-command") else {
        return;
    };
    assert_eq!(
        sequence(&out),
        ["ready", "result:info", "error:bogus-command", "exit"],
        "{out:?}"
    );
    let info = out.result_for("info").unwrap();
    assert_eq!(text(info, "fred"), "available", "{out:?}");
    assert_eq!(text(info, "emulator"), "bochs", "{out:?}");
    assert_exit(&out, ExitCode::BadCommand);
    assert_eq!(out.host_status(), 3);
}

#[test]
fn qemus_translator_has_no_fred() {
    let opts = RunOptions::new("info")
        .timeout_secs(TIMEOUT_SECS)
        .accel(AccelChoice::Tcg);
    let out = Harness::get().run(opts).unwrap();
    let ready = out.find("ready").unwrap();
    assert_eq!(text(ready, "fred"), "absent", "{out:?}");
    assert_eq!(text(ready, "emulator"), "qemu", "{out:?}");
    let info = out.result_for("info").unwrap();
    assert_eq!(text(info, "fred"), "absent", "{out:?}");
    assert_exit(&out, ExitCode::Success);
}
