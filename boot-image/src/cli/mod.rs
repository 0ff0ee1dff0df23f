//! The `boot-image` binary (`cargo lab ...`): the command line, declared once with `clap`'s
//! derive (parser, `--help` of every command and the usage text all come from the types
//! below), and the commands.
//!
//! Adding a command is one variant of [`Command`] (its doc comment is its help, its fields
//! or an `Args` struct its options) and one function that runs it, called from
//! [`Command::run`]. Exit statuses are documented in docs/running.md; clap's own usage
//! errors exit 2, `--help` and `--version` exit 0.

mod fred;
mod run;
mod stress;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

pub use run::{RunArgs, run_cmd, run_outcome};
pub use stress::{StressArgs, stress_cmd};

use crate::build::{self, Output};
use crate::exit::status;
use crate::out::say;
use crate::record::{self, Record, Style};
use crate::symbols::Symbolizer;
use crate::{Error, ErrorKind, doctor, paths, setup};

const EXIT_STATUSES: &str = "\
Exit status: 0 success, 1 kernel test failure, 2 usage/bad input/build failure, 3 bad kernel
command, 4 kernel panic, 5 kernel abort, 6 timeout, 7 environment, 8 no exit record (reset?),
130 interrupted, 141 standard output closed. See docs/running.md.";

/// The command line of `cargo lab`.
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(
    name = "cargo lab",
    bin_name = "cargo lab",
    version,
    about = "stacklab's host tool: set up, build, boot the kernel in QEMU, report",
    after_help = EXIT_STATUSES,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A command.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Install what is missing (toolchains, targets, qemu-system-x86, ovmf)
    Setup,
    /// Build the kernel and its UEFI image (target/stacklab/stacklab-uefi.img)
    Build {
        /// Build the debug kernel
        #[arg(long)]
        debug: bool,
        /// Make the image from this ELF instead of building the kernel
        #[arg(long, value_name = "ELF")]
        kernel: Option<PathBuf>,
    },
    /// Build, then boot the kernel in QEMU and show what it reports
    Run(RunArgs),
    /// Setup + build + run the demo command line
    Demo,
    /// Seeded random programs of scenarios, several QEMUs in parallel, each outcome checked;
    /// a reproducer file per failure (replay with `run --repro FILE`)
    Stress(StressArgs),
    /// Setup + build, then `cargo test --workspace [ARGS]`
    Test {
        /// Passed to `cargo test` (after `--`)
        #[arg(last = true, value_name = "ARGS")]
        extra: Vec<String>,
    },
    /// Report what is installed and which accelerator `auto` would pick
    Doctor,
    /// Compute FRED (and legacy IDT) event delivery and ERETS/ERETU with the model: JSON
    /// lines in, JSON lines out (see docs/fred.md)
    Fred {
        /// Add each step of the computation and the rule (with its source) that decided it
        #[arg(long)]
        explain: bool,
        /// Read the cases from FILE instead of standard input
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Name the kernel functions at these addresses (minus the load offset)
    Symbolize {
        /// Addresses, 0x… or decimal
        #[arg(required = true, value_name = "ADDR", value_parser = parse_addr)]
        addrs: Vec<u64>,
        /// The load offset to subtract (`kernel_offset` of the `ready` record)
        #[arg(long, value_name = "HEX", default_value = "0", value_parser = parse_addr)]
        offset: u64,
        /// The kernel ELF (default: the release build)
        #[arg(long, value_name = "ELF")]
        kernel: Option<PathBuf>,
    },
}

fn parse_addr(s: &str) -> Result<u64, String> {
    record::parse_hex(s)
        .or_else(|| s.parse().ok())
        .ok_or_else(|| format!("not an address: '{s}' (use 0x… or decimal)"))
}

impl Command {
    /// Runs the command; returns the process exit status.
    pub fn run(self) -> Result<i32, Error> {
        match self {
            Command::Setup => setup_cmd(),
            Command::Build { debug, kernel } => build_cmd(debug, kernel).map(|_| 0),
            Command::Run(r) => run_cmd(&r),
            Command::Demo => demo_cmd(),
            Command::Stress(a) => stress_cmd(&a),
            Command::Test { extra } => test_cmd(&extra),
            Command::Doctor => doctor::doctor().map(|()| 0),
            Command::Fred { explain, file } => fred::fred_cmd(file.as_deref(), explain),
            Command::Symbolize {
                addrs,
                offset,
                kernel,
            } => symbolize_cmd(&addrs, offset, kernel),
        }
    }
}

/// Runs the binary on the arguments after the program name; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("cargo lab")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and exit 0; usage errors to stderr, exit 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command.run() {
        Ok(code) => code,
        Err(e) if e.kind == ErrorKind::BrokenPipe => e.exit_status(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.exit_status()
        }
    }
}

/// A progress line on stderr (never fails, never panics).
fn note(msg: &str) {
    let err = std::io::stderr();
    let dim = Style {
        color: err.is_terminal(),
    }
    .dim("lab:");
    let _ = writeln!(err.lock(), "{dim} {msg}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn setup_cmd() -> Result<i32, Error> {
    let t = Instant::now();
    setup::setup()?;
    note(&format!("setup done in {}", secs(t.elapsed())));
    Ok(0)
}

fn demo_cmd() -> Result<i32, Error> {
    note("setup");
    setup::setup()?;
    let r = RunArgs {
        cmdline: paths::DEMO_CMDLINE.into(),
        ..RunArgs::default()
    };
    // The demo ends, by design, with the SDM-abort baseline: a stack overflow that the #DF
    // handler reports before stopping the machine. That abort, after every scene before it
    // succeeded, is the expected ending; anything else is a failed demo.
    let (out, status) = run_outcome(&r)?;
    match demo_verdict(&out.records, status) {
        Ok(()) => {
            note(
                "demo finished: every scene succeeded, and the last one stops the machine with the #DF report, as the SDM baseline must",
            );
            Ok(0)
        }
        Err(why) => {
            note(&format!("demo failed: {why}"));
            Ok(if status == status::ABORT {
                status::FAILURE
            } else {
                status
            })
        }
    }
}

/// Whether a demo run ended as it must: every `result` ok, no `error`, and exactly one
/// `abort`, the overflow report from #DF, right before `exit`.
pub fn demo_verdict(records: &[Record], status: i32) -> Result<(), String> {
    if let Some(r) = records.iter().find(|r| r.kind == "error") {
        return Err(format!("a command was refused: {}", r.to_json_line()));
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.kind == "result" && r.bool("ok") != Some(true))
    {
        return Err(format!("a scene did not succeed: {}", r.to_json_line()));
    }
    let aborts: Vec<&Record> = records.iter().filter(|r| r.kind == "abort").collect();
    match aborts.as_slice() {
        [a] if a.str("reason") == Some("stack-overflow") && a.str("via") == Some("#DF") => {}
        [a] => {
            return Err(format!(
                "the ending is not the #DF overflow report: {}",
                a.to_json_line()
            ));
        }
        _ => return Err(format!("{} abort records instead of one", aborts.len())),
    }
    if status != status::ABORT {
        return Err(format!("the run ended with status {status}, not the abort"));
    }
    Ok(())
}

fn symbolize_cmd(addrs: &[u64], offset: u64, kernel: Option<PathBuf>) -> Result<i32, Error> {
    let elf = kernel.unwrap_or_else(|| paths::kernel_elf(false));
    let syms = Symbolizer::from_file(&elf)
        .map_err(|e| Error::usage(format!("{e} (run `cargo lab build`)")))?;
    for &a in addrs {
        let name = syms
            .describe(a, offset, false)
            .unwrap_or_else(|| "?".into());
        say!("{a:#x} {name}")?;
    }
    Ok(0)
}

/// Builds; returns (elf, image).
fn build_cmd(debug: bool, kernel: Option<PathBuf>) -> Result<(PathBuf, PathBuf), Error> {
    let total = Instant::now();
    let image = paths::default_image();
    let _lock = build::BuildLock::acquire()?;
    let elf = match kernel {
        Some(elf) => {
            crate::elf::validate_file(&elf)?;
            elf
        }
        None => {
            let t = Instant::now();
            note(&format!(
                "building the kernel ({})",
                if debug { "debug" } else { "release" }
            ));
            let elf = build::build_kernel(debug, Output::Inherit)?;
            crate::elf::validate_file(&elf)?;
            note(&format!(
                "kernel: {} ({})",
                elf.display(),
                secs(t.elapsed())
            ));
            elf
        }
    };
    let t = Instant::now();
    if build::image_up_to_date(&elf, &image) {
        note(&format!("image: {} (up to date)", image.display()));
    } else {
        note(&format!("building the UEFI image with {}", paths::NIGHTLY));
        build::build_image(&elf, &image, Output::Inherit)?;
        note(&format!(
            "image: {} ({})",
            image.display(),
            secs(t.elapsed())
        ));
    }
    note(&format!("build done in {}", secs(total.elapsed())));
    Ok((elf, image))
}

fn test_cmd(extra: &[String]) -> Result<i32, Error> {
    let total = Instant::now();
    note("setup");
    setup::setup()?;
    build_cmd(false, None)?;
    note(&format!(
        "cargo +{} test --workspace {}",
        paths::STABLE,
        extra.join(" ")
    ));
    let status = Process::new("cargo")
        .arg(format!("+{}", paths::STABLE))
        .args(["test", "--workspace"])
        .args(extra)
        .current_dir(paths::workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::env(format!("cannot run cargo test: {e}")))?;
    note(&format!(
        "cargo test {} in {} total",
        if status.success() { "passed" } else { "failed" },
        secs(total.elapsed())
    ));
    Ok(status.code().unwrap_or(status::INTERRUPTED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::AccelChoice;
    use clap::error::ErrorKind as ClapKind;

    fn p(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo lab").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    /// A refused command line: exit status 2 and clap's error kind; returns the message.
    fn err(args: &[&str], kind: ClapKind) -> String {
        let e = p(args).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (kind, 2), "{args:?}: {e}");
        e.to_string()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(p(&["setup"]).unwrap(), Command::Setup);
        assert_eq!(p(&["demo"]).unwrap(), Command::Demo);
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
                no_build: true,
                raw: true,
                image: None,
                debug: false,
                repro: None,
            })
        );
        assert_eq!(p(&["run"]).unwrap(), Command::Run(RunArgs::default()));
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
}

#[cfg(test)]
mod demo_tests {
    use super::demo_verdict;
    use crate::exit::status;
    use crate::record::Record;

    fn recs(lines: &[&str]) -> Vec<Record> {
        lines
            .iter()
            .map(|l| Record::parse_json(l).expect("a record"))
            .collect()
    }

    const GOOD: [&str; 4] = [
        r#"{"kind":"ready"}"#,
        r#"{"kind":"result","cmd":"recurse","ok":true}"#,
        r##"{"kind":"abort","reason":"stack-overflow","via":"#DF"}"##,
        r#"{"kind":"exit","code":"abort"}"#,
    ];

    #[test]
    fn the_demo_must_end_in_the_df_overflow_report_after_only_successes() {
        assert_eq!(demo_verdict(&recs(&GOOD), status::ABORT), Ok(()));
        let mut bad = GOOD;
        bad[1] = r#"{"kind":"result","cmd":"recurse","ok":false}"#;
        assert!(demo_verdict(&recs(&bad), status::ABORT).is_err());
        let mut pf = GOOD;
        pf[2] = r##"{"kind":"abort","reason":"stack-overflow","via":"#PF"}"##;
        assert!(demo_verdict(&recs(&pf), status::ABORT).is_err());
        let mut other = GOOD;
        other[2] = r#"{"kind":"abort","reason":"exception"}"#;
        assert!(demo_verdict(&recs(&other), status::ABORT).is_err());
        let mut refused = GOOD;
        refused[1] = r#"{"kind":"error","cmd":"x","msg":"y"}"#;
        assert!(demo_verdict(&recs(&refused), status::ABORT).is_err());
        assert!(demo_verdict(&recs(&GOOD[..2]), status::SUCCESS).is_err());
    }
}
