//! `cargo lab run` (and `demo`): boot, stream the serial line for people (or raw), write the
//! JSON records, and turn the verdict into the exit status. If standard output is closed
//! while QEMU runs (`cargo lab run | head -5`), QEMU is stopped at once and the tool exits
//! quietly with status 141.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::{build_cmd, note, secs};
use crate::bochs::{self, Emulator};
use crate::exit::KernelExit;
use crate::harness::{Harness, Outcome, RunOptions};
use crate::qemu::{AccelChoice, DEFAULT_MEMORY_MIB, Flow};
use crate::record::{self, Line, Renderer, Style};
use crate::{Error, ExitCode, paths};

/// `cargo lab run` options.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct RunArgs {
    /// Kernel command line: `;`-separated commands (at most 4096 bytes; default: empty)
    #[arg(
        long,
        value_name = "STRING",
        default_value = "",
        hide_default_value = true
    )]
    pub cmdline: String,
    /// Write every @stacklab record to FILE, one JSON object per line
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Kill QEMU after SECS seconds (exit 6)
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = parse_timeout)]
    pub timeout: u64,
    /// Accelerator: auto uses KVM only if a probe boot proves it works
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Guest memory, a whole number of MiB or GiB: 512M, 4G (64M to 64G)
    #[arg(long = "memory", value_name = "SIZE", default_value = "512M",
          value_parser = parse_memory)]
    pub memory_mib: u64,
    /// Emulator: qemu, or bochs (built by `cargo lab setup --with-bochs SRC`; has FRED)
    #[arg(long, value_name = "NAME", value_enum, default_value_t = Emulator::Qemu)]
    pub emulator: Emulator,
    /// Boot the existing image
    #[arg(long)]
    pub no_build: bool,
    /// Boot this image (implies --no-build)
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Print serial lines verbatim, records included
    #[arg(long)]
    pub raw: bool,
    /// Build and boot the debug kernel
    #[arg(long)]
    pub debug: bool,
    /// Replay a stress reproducer (its command line, accelerator, timeout and memory) and
    /// report whether it classifies as recorded (exit 0) or not (exit 1)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cmdline", "timeout", "accel", "memory_mib", "image", "debug", "emulator"])]
    pub repro: Option<PathBuf>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            cmdline: String::new(),
            json: None,
            timeout: 60,
            accel: AccelChoice::Auto,
            memory_mib: DEFAULT_MEMORY_MIB,
            emulator: Emulator::Qemu,
            no_build: false,
            image: None,
            raw: false,
            debug: false,
            repro: None,
        }
    }
}

fn parse_timeout(s: &str) -> Result<u64, String> {
    s.parse()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("needs a positive number of seconds, got '{s}'"))
}

fn parse_memory(s: &str) -> Result<u64, String> {
    crate::qemu::args::parse_memory_size(s)
}

/// Writes one line for people; a failed write is remembered and stops the run.
fn show(out: &mut impl Write, failed: &mut Option<std::io::Error>, line: &str) -> Flow {
    if failed.is_some() {
        return Flow::Stop;
    }
    match writeln!(out, "{line}") {
        Ok(()) => Flow::Continue,
        Err(e) => {
            *failed = Some(e);
            Flow::Stop
        }
    }
}

/// `cargo lab run`: returns the exit status of the run.
pub fn run_cmd(r: &RunArgs) -> Result<i32, Error> {
    if let Some(file) = &r.repro {
        return super::stress::repro_cmd(file, r.no_build);
    }
    run_outcome(r).map(|(_, status)| status)
}

/// `run`, also returning what the kernel reported (`--repro` is `run_cmd`'s alone).
pub fn run_outcome(r: &RunArgs) -> Result<(Outcome, i32), Error> {
    let (elf, image) = match (&r.image, r.no_build) {
        (Some(img), _) => (paths::kernel_elf(r.debug), img.clone()),
        (None, true) => (paths::kernel_elf(r.debug), paths::default_image()),
        (None, false) => build_cmd(r.debug, None)?,
    };
    // Check the command line before booting anything.
    crate::qemu::fw_cfg_cmdline(&r.cmdline)?;
    let h = Harness::new(elf, image)?;
    let (accel, reason) = match r.emulator {
        Emulator::Qemu => h.accel(r.accel)?,
        Emulator::Bochs => {
            let b = bochs::find()?;
            note(&format!("emulator: Bochs {}", b.binary.display()));
            (crate::qemu::Accel::Tcg, bochs::NO_ACCEL_REASON.to_string())
        }
    };
    if r.emulator == Emulator::Qemu {
        note(&format!("accelerator: {} ({reason})", accel.name()));
    }
    let mut json = match &r.json {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Error::usage(format!("cannot create {}: {e}", p.display())),
        )?)),
        None => None,
    };
    note(&format!(
        "booting {} with cmdline \"{}\" ({} MiB, timeout {} s)",
        h.image().display(),
        r.cmdline,
        r.memory_mib,
        r.timeout
    ));
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let mut renderer = Renderer::new(style, Some(h.symbols()));
    let mut json_err = None;
    let mut stdout_err = None;
    let opts = RunOptions::new(r.cmdline.clone())
        .timeout_secs(r.timeout)
        .accel(r.accel)
        .memory_mib(r.memory_mib)
        .emulator(r.emulator);
    let stdout = std::io::stdout();
    let out = h.run_with(&opts, accel, reason, &mut |line, parsed| {
        let mut o = stdout.lock();
        if let (Line::Record { record, .. }, Some(j)) = (parsed, json.as_mut())
            && let Err(e) = writeln!(j, "{}", record.to_json_line()).and_then(|_| j.flush())
        {
            json_err.get_or_insert(e);
        }
        if r.raw {
            return show(&mut o, &mut stdout_err, line);
        }
        match parsed {
            Line::Plain(p) => {
                let p = record::strip_control(p);
                if p.trim().is_empty() {
                    Flow::Continue
                } else {
                    show(&mut o, &mut stdout_err, &p)
                }
            }
            Line::Record { before, record } => {
                let b = record::strip_control(before);
                if !b.trim().is_empty() && show(&mut o, &mut stdout_err, &b) == Flow::Stop {
                    return Flow::Stop;
                }
                show(&mut o, &mut stdout_err, &renderer.render(record))
            }
            Line::Malformed { line, error } => {
                let text = format!(
                    "{} {} ({error})",
                    style.yellow("?"),
                    record::strip_control(line)
                );
                show(&mut o, &mut stdout_err, &text)
            }
        }
    })?;
    if let Some(e) = stdout_err {
        return Err(Error::stdout(e));
    }
    if let Some(e) = json_err {
        return Err(Error::usage(format!(
            "writing the JSON records failed: {e}"
        )));
    }
    let elapsed = secs(out.elapsed);
    match (&out.exit, &out.problem) {
        (KernelExit::Kernel(code), _) => {
            let verdict = if *code == ExitCode::Success {
                style.green(code.name())
            } else {
                style.red(code.name())
            };
            note(&format!(
                "kernel exit: {verdict} after {elapsed} ({} results)",
                out.results().len()
            ));
        }
        (_, Some(p)) => note(&format!("{} [{elapsed}]", style.red(p))),
        (_, None) => note(&format!("{:?} after {elapsed}", out.exit)),
    }
    let status = out.host_status();
    Ok((out, status))
}
