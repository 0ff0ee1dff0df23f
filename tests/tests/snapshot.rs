//! Snapshot starts (`boot_image::snapshot`): a run resumed from the saved, waiting machine
//! reports what a cold boot of the same program reports (records, results, exit status),
//! time goes on sanely after the resume, and a damaged, stale or unloadable state is found,
//! rebuilt or fallen back from, with a note saying so.

use boot_image::snapshot::{BootChoice, BootKind};
use stacklab_tests::*;

fn run(h: &Harness, cmdline: &str, boot: BootChoice) -> Outcome {
    h.run(RunOptions::new(cmdline).timeout_secs(120).boot(boot))
        .unwrap_or_else(|e| panic!("{cmdline}: {e}"))
}

/// What must agree between two runs of one program: the kinds of records in order, each
/// result's command and verdict, the abort reason, and the exit.
fn shape(out: &Outcome) -> Vec<String> {
    out.records
        .iter()
        .map(|r| match r.kind.as_str() {
            "result" => format!(
                "result {} ok={:?}",
                r.str("cmd").unwrap_or("?"),
                r.bool("ok")
            ),
            "abort" => format!("abort {}", r.str("reason").unwrap_or("?")),
            "exit" => format!("exit {}", r.str("code").unwrap_or("?")),
            "error" => format!("error {}", r.str("cmd").unwrap_or("?")),
            "ready" => format!("ready {:?}", r.str("cmdline")),
            k => k.to_string(),
        })
        .collect()
}

#[test]
fn a_snapshot_start_reports_what_a_cold_boot_reports() {
    let h = Harness::get();
    let programs = [
        (
            "policy grow 4K 32K; growth pf-ist; recurse 40 256; threads 3; stats",
            ExitCode::Success,
        ),
        ("int3; nosuch 1; int3", ExitCode::BadCommand),
        (
            "policy fixed 16K; growth abort; recurse 400 256",
            ExitCode::Abort,
        ),
        ("gp", ExitCode::Abort),
    ];
    for (cmdline, code) in programs {
        let cold = run(h, cmdline, BootChoice::Cold);
        let warm = run(h, cmdline, BootChoice::Snapshot);
        assert_eq!(cold.boot, BootKind::Cold);
        assert_eq!(warm.boot, BootKind::Snapshot, "{warm:?}");
        assert_exit(&cold, code);
        assert_exit(&warm, code);
        assert_eq!(warm.host_status(), cold.host_status());
        assert_eq!(shape(&warm), shape(&cold), "{cold:?}\n{warm:?}");
        let start = |o: &Outcome| {
            o.find("ready")
                .and_then(|r| r.str("start"))
                .map(String::from)
        };
        assert_eq!(start(&cold).as_deref(), Some("cold"));
        assert_eq!(start(&warm).as_deref(), Some("resumed"));
        // The firmware's output belongs to the saving boot, not to a resumed run.
        assert!(cold.serial.contains("BdsDxe"), "{cold:?}");
        assert!(!warm.serial.contains("BdsDxe"), "{warm:?}");
        // Deterministic results are equal field by field.
        if let (Some(a), Some(b)) = (cold.result_for("recurse"), warm.result_for("recurse")) {
            assert_eq!(a.str("result"), b.str("result"));
            assert_eq!(a.u64("pages"), b.u64("pages"));
        }
    }
}

#[test]
fn time_goes_on_sanely_after_a_resume() {
    let out = run(
        Harness::get(),
        "ticks 200; jitter 9 50; threads 2; jitter off",
        BootChoice::Snapshot,
    );
    assert_eq!(out.boot, BootKind::Snapshot);
    assert_exit(&out, ExitCode::Success);
    // `ticks` counts timer interrupts against 200 ms of TSC time: the TSC rate the kernel
    // calibrated before the save and the PIT both still hold (at most the expected count
    // plus its slack, which `ok` checks; at least a tenth of it, as TCG on a loaded host
    // delivers late ticks but not none).
    let t = out.result_for("ticks").unwrap();
    assert_eq!(t.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(t, "expected"), 200);
    assert!(num(t, "ticks") >= 20, "{out:?}");
    let j = results_for(&out, "jitter");
    assert!(num(j[1], "periods") >= 2, "{out:?}");
}

#[test]
fn damaged_and_stale_states_are_rebuilt_and_an_unloadable_one_falls_back() {
    let base = Harness::get();
    let dir = tempfile::tempdir().unwrap();
    let fresh = || {
        Harness::new(base.elf.clone(), base.image.clone())
            .unwrap()
            .with_snapshot_dir(dir.path().to_path_buf())
    };
    let h = fresh();
    let out = run(&h, "int3", BootChoice::Snapshot);
    assert_eq!(out.boot, BootKind::Snapshot);
    let notes = h.snapshots().take_notes();
    assert!(
        notes.len() == 1 && notes[0].contains(" made in "),
        "{notes:?}"
    );
    let state = dir.path().join("tcg-512M.state");
    let meta = dir.path().join("tcg-512M.json");
    assert!(state.is_file() && meta.is_file());

    // One flipped byte in the middle: corrupt, rebuilt.
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&state, &bytes).unwrap();
    let h = fresh();
    let out = run(&h, "int3", BootChoice::Auto);
    assert_eq!(out.boot, BootKind::Snapshot, "{out:?}");
    assert_exit(&out, ExitCode::Success);
    let notes = h.snapshots().take_notes();
    assert_eq!(
        notes.first().map_or("(no note)", String::as_str),
        format!(
            "snapshot {}: it is corrupt (its checksum differs from the one recorded); rebuilding",
            state.display()
        )
    );

    // A different kernel image recorded: stale, rebuilt.
    let mut text = std::fs::read_to_string(&meta).unwrap();
    let at = text.find("\"kernel image\": \"").unwrap() + "\"kernel image\": \"".len();
    text.replace_range(at..at + 16, "0123456789abcdef");
    std::fs::write(&meta, text).unwrap();
    let h = fresh();
    assert_eq!(run(&h, "int3", BootChoice::Auto).boot, BootKind::Snapshot);
    assert_eq!(
        h.snapshots()
            .take_notes()
            .first()
            .map_or("(no note)", String::as_str),
        format!(
            "snapshot {}: it is stale (the kernel image changed); rebuilding",
            state.display()
        )
    );

    // Garbage after the check passed (this process trusts it now): QEMU cannot load it;
    // `auto` boots cold and says why, `snapshot` is an environment error (exit 7).
    std::fs::write(&state, b"not a migration stream").unwrap();
    let out = run(&h, "int3", BootChoice::Auto);
    assert_eq!(out.boot, BootKind::Cold, "{out:?}");
    assert_exit(&out, ExitCode::Success);
    let note = out.boot_note.clone().unwrap();
    assert!(
        note.starts_with("resuming the snapshot failed (")
            && note.contains("load of migration failed")
            && note.ends_with("; cold boot"),
        "{note}"
    );
    assert!(
        !state.exists() && !meta.exists(),
        "the bad state is removed"
    );
    // For the rest of this process the state stays unusable: cold with a note, or an error.
    let out = run(&h, "int3", BootChoice::Auto);
    assert_eq!(out.boot, BootKind::Cold);
    assert!(out.boot_note.unwrap().contains("removed it"));
    let e = h
        .run(RunOptions::new("int3").boot(BootChoice::Snapshot))
        .unwrap_err();
    assert_eq!(e.exit_status(), 7, "{e}");
}
