//! The `boot-image` binary (`cargo lab ...`): the command line, declared once with `clap`'s
//! derive (parser, `--help` of every command and the usage text all come from the types
//! below), and the commands.
//!
//! Adding a command is one variant of [`Command`] (its doc comment is its help, its fields
//! or an `Args` struct its options) and one function that runs it, called from
//! [`Command::run`]. Exit statuses are documented in docs/running.md; clap's own usage
//! errors exit 2, `--help` and `--version` exit 0.

mod bench;
mod demo;
mod fred;
mod gdb;
mod run;
mod shell;
mod stress;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

pub use bench::{BenchBootArgs, bench_boot_cmd};
pub use demo::{DemoArgs, demo_cmd};
pub use gdb::{KERNEL_LOAD_OFFSET, gdb_command};
pub use run::{RunArgs, run_cmd, run_outcome};
pub use shell::{Screen, restore_terminal, scan_keys, shell_cmdline};
pub use stress::{StressArgs, stress_cmd};

use crate::build::{self, Output};
use crate::exit::status;
use crate::out::say;
use crate::record::{self, Style};
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
    Setup {
        /// Also build Bochs (with FRED) from SRC, a source directory or tarball, into
        /// target/stacklab/bochs/ (skipped when SRC was built already)
        #[arg(long = "with-bochs", value_name = "SRC")]
        with_bochs: Option<PathBuf>,
        /// Also Debian's chromium (headless), which the test of the demo's HTML report uses
        #[arg(long)]
        with_chromium: bool,
    },
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
    /// The hazard matrix: every hazard of the kernel's catalogue under every stack policy,
    /// one boot per cell, in parallel, checked against the documented outcomes; a table, an
    /// HTML report and JSON in target/stacklab/report/ (the kernel's linear tour is
    /// `run --cmdline demo`)
    Demo(DemoArgs),
    /// Seeded random programs of scenarios, several QEMUs in parallel, each outcome checked;
    /// a reproducer file per failure (replay with `run --repro FILE`)
    Stress(StressArgs),
    /// Time from QEMU start to the first command: cold boots against snapshot starts
    BenchBoot(BenchBootArgs),
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
            Command::Setup {
                with_bochs,
                with_chromium,
            } => setup_cmd(with_bochs.as_deref(), with_chromium),
            Command::Build { debug, kernel } => build_cmd(debug, kernel).map(|_| 0),
            Command::Run(r) => run_cmd(&r),
            Command::Demo(a) => demo_cmd(&a),
            Command::Stress(a) => stress_cmd(&a),
            Command::BenchBoot(a) => bench_boot_cmd(&a),
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

fn setup_cmd(with_bochs: Option<&std::path::Path>, with_chromium: bool) -> Result<i32, Error> {
    let t = Instant::now();
    if let Some(src) = with_bochs {
        // A bad path is refused before anything is installed.
        crate::bochs::build::Source::detect(src)?;
    }
    setup::setup()?;
    if let Some(src) = with_bochs {
        crate::bochs::build::setup_bochs(src)?;
    }
    if with_chromium {
        setup::setup_chromium()?;
    }
    note(&format!("setup done in {}", secs(t.elapsed())));
    Ok(0)
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

/// The harness of the release kernel (built first unless `no_build`) and the accelerator
/// `choice` resolves to, said on stderr.
fn release_harness(
    no_build: bool,
    choice: crate::qemu::AccelChoice,
) -> Result<(crate::harness::Harness, crate::qemu::Accel), Error> {
    let (elf, image) = if no_build {
        (paths::kernel_elf(false), paths::default_image())
    } else {
        build_cmd(false, None)?
    };
    let h = crate::harness::Harness::new(elf, image)?;
    let (accel, reason) = h.accel(choice)?;
    note(&format!("accelerator: {} ({reason})", accel.name()));
    Ok((h, accel))
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
mod tests;
