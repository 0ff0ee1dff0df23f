//! `cargo lab run` (and `demo`): boot, stream the serial line for people (or raw), write the
//! JSON records, and turn the verdict into the exit status. If standard output is closed
//! while QEMU runs (`cargo lab run | head -5`), QEMU is stopped at once and the tool exits
//! quietly with status 141.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::{build_cmd, note, secs};
use crate::exit::KernelExit;
use crate::harness::{Harness, Outcome, RunOptions};
use crate::qemu::{Accel, AccelChoice, DEFAULT_MEMORY_MIB, Flow};
use crate::record::{self, Line, Renderer, Style};
use crate::snapshot::BootChoice;
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
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cmdline", "timeout", "accel", "memory_mib", "image", "debug"])]
    pub repro: Option<PathBuf>,
    /// Connect this terminal to the kernel's shell on COM1 (boots `CMDLINE; shell`; Ctrl-]
    /// leaves, Ctrl-C stops the running command; no timeout)
    #[arg(long, conflicts_with_all = ["repro", "gdb"])]
    pub shell: bool,
    /// Start QEMU halted with its gdb stub and print the gdb command line that attaches to
    /// it with the kernel's symbols (no timeout)
    #[arg(long, conflicts_with = "repro")]
    pub gdb: bool,
    /// The gdb stub's TCP port on 127.0.0.1 (with --gdb)
    #[arg(long, value_name = "PORT", default_value_t = crate::qemu::args::DEFAULT_GDB_PORT,
          requires = "gdb")]
    pub gdb_port: u16,
    /// How to start: cold (through the firmware; the default), snapshot (resume a saved
    /// machine waiting for its program) or auto; with --repro, the recorded kind by default
    #[arg(long, value_name = "KIND", value_enum)]
    pub boot: Option<BootChoice>,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            cmdline: String::new(),
            json: None,
            timeout: 60,
            accel: AccelChoice::Auto,
            memory_mib: DEFAULT_MEMORY_MIB,
            no_build: false,
            image: None,
            raw: false,
            debug: false,
            repro: None,
            shell: false,
            gdb: false,
            gdb_port: crate::qemu::args::DEFAULT_GDB_PORT,
            boot: None,
        }
    }
}

/// The timeout of a `--gdb` run: a day (the person at gdb decides when it ends).
pub const GDB_TIMEOUT_SECS: u64 = 24 * 3600;

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
        return super::stress::repro_cmd(file, r.no_build, r.boot);
    }
    if r.shell {
        return super::shell::shell_cmd(r);
    }
    run_outcome(r).map(|(_, status)| status)
}

/// Builds (unless told not to), checks `cmdline` and picks the accelerator: everything before
/// QEMU starts.
pub(super) fn prepare(r: &RunArgs, cmdline: &str) -> Result<(Harness, Accel, String), Error> {
    // Check the command line before building or booting anything.
    crate::qemu::fw_cfg_cmdline(cmdline)?;
    let (elf, image) = match (&r.image, r.no_build) {
        (Some(img), _) => (paths::kernel_elf(r.debug), img.clone()),
        (None, true) => (paths::kernel_elf(r.debug), paths::default_image()),
        (None, false) => build_cmd(r.debug, None)?,
    };
    let h = Harness::new(elf, image)?;
    let (accel, reason) = h.accel(r.accel)?;
    Ok((h, accel, reason))
}

/// `run`, also returning what the kernel reported (`--repro` is `run_cmd`'s alone).
pub fn run_outcome(r: &RunArgs) -> Result<(Outcome, i32), Error> {
    let (h, accel, reason) = prepare(r, &r.cmdline)?;
    note(&format!("accelerator: {} ({reason})", accel.name()));
    let mut json = match &r.json {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Error::usage(format!("cannot create {}: {e}", p.display())),
        )?)),
        None => None,
    };
    // A debugging session is as long as the person at gdb wants it to be.
    let timeout = if r.gdb { GDB_TIMEOUT_SECS } else { r.timeout };
    note(&format!(
        "booting {} with cmdline \"{}\" ({} MiB, timeout {} s)",
        h.image().display(),
        r.cmdline,
        r.memory_mib,
        timeout
    ));
    if r.gdb {
        super::gdb::announce(&h.elf, r.gdb_port)?;
    }
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let mut renderer = Renderer::new(style, Some(h.symbols()));
    let mut json_err = None;
    let mut stdout_err = None;
    let mut opts = RunOptions::new(r.cmdline.clone())
        .timeout_secs(timeout)
        .accel(r.accel)
        .memory_mib(r.memory_mib)
        .boot(r.boot.unwrap_or(BootChoice::Cold));
    if r.gdb {
        opts = opts.gdb(r.gdb_port);
    }
    // Make or check the snapshot first, so its notes come before the run's output.
    h.plan_boot(opts.boot, accel, opts.memory_mib)?;
    for n in h.snapshots().take_notes() {
        note(&n);
    }
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
    for n in h.snapshots().take_notes().iter().chain(&out.boot_note) {
        note(n);
    }
    if out.boot == crate::snapshot::BootKind::Snapshot {
        note("started from the snapshot (no firmware output)");
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
