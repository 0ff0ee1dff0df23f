//! Stress runs through the library API (`boot_image::stress`), started from the snapshot: a
//! reduced run of 100 programs whose every program must pass, the same seed giving the same
//! programs and classifications again, a planted wrong expectation reported as a failure with
//! a reproducer that replays to the same classification (from the snapshot and cold), and the
//! kernel's timer jitter itself.

use boot_image::stress::classify::Class;
use boot_image::stress::program::GenConfig;
use boot_image::stress::repro::Repro;
use boot_image::stress::{self, StressConfig, Summary};
use boot_image::{BootChoice, BootKind};
use stacklab_tests::*;

/// A reduced configuration: short programs, two QEMUs at a time, snapshot starts (an error if
/// no snapshot can be made, rather than 100 slow cold boots), a generous timeout (the
/// machines are shared), reproducers in `dir`.
fn config(seed: u64, runs: u64, dir: &std::path::Path) -> StressConfig {
    StressConfig {
        runs,
        jobs: 2,
        seed,
        timeout_secs: 120,
        programs: GenConfig {
            max_body: 3,
            ..GenConfig::default()
        },
        out_dir: dir.to_path_buf(),
        boot: BootChoice::Snapshot,
        ..StressConfig::default()
    }
}

fn classes(s: &Summary) -> Vec<(String, Class)> {
    s.runs
        .iter()
        .map(|r| (r.program.cmdline(), r.judgement.class))
        .collect()
}

fn describe(s: &Summary) -> String {
    let mut t = s.table();
    for r in &s.runs {
        t += &format!(
            "run {}: {} ({}) {}\n",
            r.program.index,
            r.judgement.class.name(),
            r.judgement.detail,
            r.program.cmdline()
        );
    }
    t
}

#[test]
fn reduced_stress_run_passes_and_repeats_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(0x5eed_0001, 100, dir.path());
    let first = stress::stress(Harness::get(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(first.runs.len(), 100);
    for r in &first.runs {
        assert!(r.judgement.class.passed(), "{}", describe(&first));
        assert!(r.repro.is_none());
        assert!(r.program.commands[0].starts_with("jitter "));
        assert_eq!(r.boot, BootKind::Snapshot, "{:?}", r.boot_note);
    }
    // Both kinds of passing run are among them (the generator ends about 30% of programs in
    // the overflow).
    let aborts = first
        .runs
        .iter()
        .filter(|r| r.judgement.class == Class::DocumentedAbort)
        .count();
    assert!((10..=60).contains(&aborts), "{}", describe(&first));
    // The same seed: the same programs, and on a second run the same classifications.
    assert_eq!(stress::programs(&cfg), stress::programs(&cfg.clone()));
    let second = stress::stress(Harness::get(), &cfg, &mut |_| {}).unwrap();
    assert_eq!(
        second.runs.iter().map(|r| &r.program).collect::<Vec<_>>(),
        first.runs.iter().map(|r| &r.program).collect::<Vec<_>>()
    );
    assert_eq!(classes(&second), classes(&first), "{}", describe(&second));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no reproducers"
    );
}

#[test]
fn a_planted_wrong_expectation_fails_and_its_reproducer_replays() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StressConfig {
        plant: Some(0),
        ..config(0x5eed_0002, 1, dir.path())
    };
    let s = stress::stress(Harness::get(), &cfg, &mut |_| {}).unwrap();
    let failed = s.failures();
    assert_eq!(failed.len(), 1, "{}", describe(&s));
    let r = failed[0];
    assert!(r.planted);
    // The program itself is fine: the checker was told the opposite of what it does.
    assert!(
        matches!(
            r.judgement.class,
            Class::MissingAbort | Class::UnexpectedAbort
        ),
        "{}",
        describe(&s)
    );
    let path = r.repro.clone().expect("a reproducer for the failure");
    assert_eq!(
        path,
        dir.path().join(format!("repro-{}-0.json", 0x5eed_0002u64))
    );
    let repro = Repro::read(&path).unwrap();
    assert_eq!(repro.cmdline, r.program.cmdline());
    assert_eq!(repro.class, r.judgement.class);
    assert!(repro.serial.contains("@stacklab"), "{}", repro.serial);
    assert_eq!(repro.boot, BootKind::Snapshot);
    let replay = stress::replay(Harness::get(), repro.clone(), None).unwrap();
    assert!(replay.matched(), "{replay:?}");
    assert_eq!(replay.boot, BootKind::Snapshot);
    // A cold boot of the same program classifies the same.
    let cold = stress::replay(Harness::get(), repro, Some(BootChoice::Cold)).unwrap();
    assert!(cold.matched(), "{cold:?}");
    assert_eq!(cold.boot, BootKind::Cold);
}

#[test]
fn jitter_varies_the_timer_and_turns_off() {
    let out = boot("jitter 77 60; threads 4; jitter off; jitter 77; jitter off");
    assert_exit(&out, ExitCode::Success);
    let rs: Vec<&Record> = out
        .results()
        .into_iter()
        .filter(|r| r.str("cmd") == Some("jitter"))
        .collect();
    assert_eq!(rs.len(), 4, "{out:?}");
    assert_eq!(
        (rs[0].u64("spread"), rs[2].u64("spread")),
        (Some(60), Some(50))
    );
    assert_eq!(rs[0].hex("seed"), Some(77));
    // Every periodic tick while on chose a period: the four threads spin 3 ms each, so
    // at least 12 ms of periods of at most 1.6 ms passed.
    assert!(rs[1].u64("periods").unwrap() >= 5, "{out:?}");
    assert_eq!(rs[1].bool("jitter"), Some(false));
}
