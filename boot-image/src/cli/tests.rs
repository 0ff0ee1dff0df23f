//! Unit tests of the command line and of the demo's verdict.

use super::*;
use crate::bochs::Emulator;
use crate::qemu::AccelChoice;
use clap::error::ErrorKind as ClapKind;

fn p(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("cargo lab").chain(args.iter().copied())).map(|c| c.command)
}

/// A refused command line: exit status 2 and clap's error kind; returns the message.
fn err(args: &[&str], kind: ClapKind) -> String {
    let e = p(args).unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), (kind, 2), "{args:?}: {e}");
    e.to_string()
}

#[test]
fn parses_every_command() {
    assert_eq!(
        p(&["setup"]).unwrap(),
        Command::Setup {
            with_bochs: None,
            with_chromium: false
        }
    );
    assert_eq!(
        p(&["setup", "--with-chromium"]).unwrap(),
        Command::Setup {
            with_bochs: None,
            with_chromium: true
        }
    );
    assert_eq!(
        p(&["setup", "--with-bochs", "b.tar.xz"]).unwrap(),
        Command::Setup {
            with_bochs: Some("b.tar.xz".into()),
            with_chromium: false
        }
    );
    assert_eq!(p(&["demo"]).unwrap(), Command::Demo(DemoArgs::default()));
    let all = [
        "demo",
        "--only",
        "a,b",
        "--policy",
        "pf-ist",
        "--narrate",
        "--json",
        "f.json",
        "--no-build",
        "--jobs",
        "3",
        "--accel",
        "tcg",
        "--timeout",
        "9",
    ];
    assert_eq!(
        p(&all).unwrap(),
        Command::Demo(DemoArgs {
            only: Some(vec!["a".into(), "b".into()]),
            policy: Some(vec!["pf-ist".into()]),
            narrate: true,
            json: Some("f.json".into()),
            no_build: true,
            jobs: Some(3),
            accel: crate::qemu::AccelChoice::Tcg,
            timeout: 9,
            boot: crate::snapshot::BootChoice::Auto,
            plant: None,
        })
    );
    assert_eq!(p(&["doctor"]).unwrap(), Command::Doctor);
    assert_eq!(
        p(&["build", "--debug"]).unwrap(),
        Command::Build {
            debug: true,
            kernel: None
        }
    );
    assert_eq!(
        p(&["build", "--kernel", "k.elf"]).unwrap(),
        Command::Build {
            debug: false,
            kernel: Some("k.elf".into())
        }
    );
    let r = p(&[
        "run",
        "--cmdline",
        "int3; exit",
        "--json",
        "o.jsonl",
        "--timeout",
        "9",
        "--accel",
        "tcg",
        "--raw",
        "--no-build",
        "--memory",
        "4G",
    ])
    .unwrap();
    assert_eq!(
        r,
        Command::Run(RunArgs {
            cmdline: "int3; exit".into(),
            json: Some("o.jsonl".into()),
            timeout: 9,
            accel: AccelChoice::Tcg,
            memory_mib: 4096,
            emulator: Emulator::Qemu,
            no_build: true,
            raw: true,
            image: None,
            debug: false,
            repro: None,
            boot: None,
            ..RunArgs::default()
        })
    );
    assert_eq!(p(&["run"]).unwrap(), Command::Run(RunArgs::default()));
    assert_eq!(
        p(&["run", "--gdb", "--gdb-port", "4000", "--cmdline", "int3"]).unwrap(),
        Command::Run(RunArgs {
            cmdline: "int3".into(),
            gdb: true,
            gdb_port: 4000,
            ..RunArgs::default()
        })
    );
    assert_eq!(
        p(&["run", "--emulator", "bochs"]).unwrap(),
        Command::Run(RunArgs {
            emulator: Emulator::Bochs,
            ..RunArgs::default()
        })
    );
    assert_eq!(
        p(&["run", "--shell"]).unwrap(),
        Command::Run(RunArgs {
            shell: true,
            ..RunArgs::default()
        })
    );
    err(
        &["run", "--gdb-port", "4000"],
        ClapKind::MissingRequiredArgument,
    );
    err(&["run", "--shell", "--gdb"], ClapKind::ArgumentConflict);
    err(
        &["run", "--shell", "--emulator", "bochs"],
        ClapKind::ArgumentConflict,
    );
    assert_eq!(
        p(&["run", "--image", "x.img", "--debug"]).unwrap(),
        Command::Run(RunArgs {
            image: Some("x.img".into()),
            debug: true,
            ..RunArgs::default()
        })
    );
    assert_eq!(p(&["test"]).unwrap(), Command::Test { extra: vec![] });
    assert_eq!(
        p(&["test", "--", "--nocapture", "x"]).unwrap(),
        Command::Test {
            extra: vec!["--nocapture".into(), "x".into()]
        }
    );
    assert_eq!(
        p(&["symbolize", "0x10", "32", "--offset", "0x8"]).unwrap(),
        Command::Symbolize {
            addrs: vec![16, 32],
            offset: 8,
            kernel: None
        }
    );
}

#[test]
fn parses_stress_and_repro() {
    let Command::Stress(a) = p(&[
        "stress",
        "--runs",
        "5",
        "--jobs",
        "3",
        "--seed",
        "9",
        "--minutes",
        "2",
        "--policies",
        "grow,fixed16k",
        "--modes",
        "abort,fred-sim",
        "--accel",
        "tcg",
        "--plant",
        "1",
    ])
    .unwrap() else {
        panic!("not stress")
    };
    assert_eq!(
        (a.runs, a.jobs, a.seed, a.minutes),
        (5, Some(3), Some(9), Some(2))
    );
    assert_eq!(a.policies.as_deref(), Some("grow 4K 32K,fixed 16K"));
    assert_eq!(a.modes.as_deref(), Some("abort,fred-sim"));
    assert_eq!(
        (a.accel, a.plant, a.timeout),
        (AccelChoice::Tcg, Some(1), 60)
    );
    let Command::Stress(d) = p(&["stress"]).unwrap() else {
        panic!("not stress")
    };
    assert_eq!((d.runs, d.jobs, d.seed, d.json), (20, None, None, None));
    let m = err(&["stress", "--policies", "huge"], ClapKind::ValueValidation);
    assert!(m.contains("unknown policy 'huge'"), "{m}");
    let m = err(
        &["stress", "--modes", "pf-ist,x"],
        ClapKind::ValueValidation,
    );
    assert!(m.contains("unknown growth mode 'x'"), "{m}");
    assert_eq!(
        p(&["run", "--repro", "r.json", "--no-build"]).unwrap(),
        Command::Run(RunArgs {
            repro: Some("r.json".into()),
            no_build: true,
            ..RunArgs::default()
        })
    );
    err(
        &["run", "--repro", "r.json", "--cmdline", "int3"],
        ClapKind::ArgumentConflict,
    );
    err(
        &["run", "--repro", "r.json", "--emulator", "bochs"],
        ClapKind::ArgumentConflict,
    );
    err(&["run", "--emulator", "bosch"], ClapKind::InvalidValue);
}

#[test]
fn refused_command_lines_are_usage_errors() {
    err(&["frobnicate"], ClapKind::InvalidSubcommand);
    err(&[], ClapKind::DisplayHelpOnMissingArgumentOrSubcommand);
    let m = err(&["run", "--bogus"], ClapKind::UnknownArgument);
    assert!(m.contains("unexpected argument '--bogus'"), "{m}");
    err(&["run", "--timeout"], ClapKind::InvalidValue);
    let m = err(&["run", "--timeout", "0"], ClapKind::ValueValidation);
    assert!(
        m.contains("needs a positive number of seconds, got '0'"),
        "{m}"
    );
    let m = err(&["run", "--accel", "hvf"], ClapKind::InvalidValue);
    assert!(m.contains("'hvf'") && m.contains("auto, kvm, tcg"), "{m}");
    let m = err(&["run", "--memory", "lots"], ClapKind::ValueValidation);
    assert!(
        m.contains("'lots' is not a memory size (use a whole number of MiB or GiB: 512M, 4G)"),
        "{m}"
    );
    let m = err(&["run", "--memory", "16M"], ClapKind::ValueValidation);
    assert!(m.contains("at least 64M"), "{m}");
    err(&["setup", "now"], ClapKind::UnknownArgument);
    err(&["test", "--nocapture"], ClapKind::UnknownArgument);
    err(&["symbolize"], ClapKind::MissingRequiredArgument);
    let m = err(&["symbolize", "main"], ClapKind::ValueValidation);
    assert!(
        m.contains("not an address: 'main' (use 0x… or decimal)"),
        "{m}"
    );
    err(
        &["symbolize", "0x1", "--offset", "x"],
        ClapKind::ValueValidation,
    );
}

#[test]
fn mistyped_flags_and_commands_get_suggestions() {
    let m = err(&["run", "--cmdlin", "x"], ClapKind::UnknownArgument);
    assert!(m.contains("similar argument exists: '--cmdline'"), "{m}");
    let m = err(&["dcotor"], ClapKind::InvalidSubcommand);
    assert!(m.contains("similar subcommand exists: 'doctor'"), "{m}");
}

#[test]
fn help_and_version_exit_0_on_every_command() {
    for args in [
        &["--help"][..],
        &["help"],
        &["help", "run"],
        &["-V"],
        &["--version"],
        &["setup", "--help"],
        &["build", "--help"],
        &["run", "--help"],
        &["run", "-h"],
        &["demo", "--help"],
        &["stress", "--help"],
        &["test", "--help"],
        &["doctor", "--help"],
        &["symbolize", "--help"],
    ] {
        let e = p(args).unwrap_err();
        assert_eq!(e.exit_code(), 0, "{args:?}");
        assert!(
            matches!(e.kind(), ClapKind::DisplayHelp | ClapKind::DisplayVersion),
            "{args:?}: {:?}",
            e.kind()
        );
    }
    let help = p(&["run", "--help"]).unwrap_err().to_string();
    for opt in [
        "--cmdline",
        "--json",
        "--timeout",
        "--accel",
        "--memory",
        "--no-build",
        "--image",
        "--raw",
        "--debug",
    ] {
        assert!(help.contains(opt), "{opt} missing from:\n{help}");
    }
}

#[test]
fn the_parser_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn main_maps_usage_errors_to_exit_2() {
    assert_eq!(main(["nope"].map(OsString::from)), 2);
    assert_eq!(main([]), 2);
    assert_eq!(main(["run", "--memory", "1T"].map(OsString::from)), 2);
}
