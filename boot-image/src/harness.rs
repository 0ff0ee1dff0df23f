//! Booting the kernel and collecting what it reports: the API of the QEMU integration tests
//! (and what `cargo lab run` is built on).
//!
//! ```no_run
//! use boot_image::{Harness, KernelExit, RunOptions};
//! let out = Harness::get().run(RunOptions::new("int3").timeout_secs(60))?;
//! assert_eq!(out.exit, KernelExit::Kernel(boot_image::ExitCode::Success), "{out:?}");
//! assert_eq!(out.result_for("int3").and_then(|r| r.bool("ok")), Some(true));
//! # Ok::<(), boot_image::Error>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use stacklab_ovmf::Firmware;

use crate::build::{self, Output};
use crate::exit::{self, KernelExit, QemuEnd};
use crate::qemu::{self, Accel, AccelChoice, Flow, Machine};
use crate::record::{self, Line, Record};
use crate::snapshot::{self, BootChoice, BootKind, Start, Store};
use crate::symbols::Symbolizer;
use crate::{Error, paths};

/// Set to see every serial line of every test run on stderr.
pub const ENV_VERBOSE: &str = "STACKLAB_TEST_VERBOSE";

/// What to boot with.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The kernel command line.
    pub cmdline: String,
    /// QEMU is killed after this long.
    pub timeout: Duration,
    /// Which accelerator to use.
    pub accel: AccelChoice,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Start QEMU's gdb stub on this port, the CPU halted until gdb continues it.
    pub gdb_port: Option<u16>,
    /// Cold boot or snapshot start (see [`crate::snapshot`]).
    pub boot: BootChoice,
}

impl RunOptions {
    /// The kernel command line; 60 s timeout; accelerator `auto`; 512 MiB of memory; cold
    /// boot.
    pub fn new(cmdline: impl Into<String>) -> RunOptions {
        RunOptions {
            cmdline: cmdline.into(),
            timeout: Duration::from_secs(60),
            accel: AccelChoice::Auto,
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            gdb_port: None,
            boot: BootChoice::Cold,
        }
    }
    /// Starts QEMU's gdb stub on `port`, halted until gdb continues (`run --gdb`).
    pub fn gdb(mut self, port: u16) -> RunOptions {
        self.gdb_port = Some(port);
        self
    }
    /// Sets how the run starts: `Auto` and `Snapshot` resume a saved machine waiting for its
    /// program (made on first use, cached in `target/stacklab/snapshots/`), which skips the
    /// firmware; records, exit statuses and timeouts are those of a cold boot.
    pub fn boot(mut self, boot: BootChoice) -> RunOptions {
        self.boot = boot;
        self
    }
    /// Sets the timeout in seconds.
    pub fn timeout_secs(mut self, secs: u64) -> RunOptions {
        self.timeout = Duration::from_secs(secs);
        self
    }
    /// Sets the accelerator choice.
    pub fn accel(mut self, accel: AccelChoice) -> RunOptions {
        self.accel = accel;
        self
    }
    /// Sets the guest memory in MiB (QEMU's `-m`; 64 MiB to 64 GiB, else the run is a usage
    /// error).
    pub fn memory_mib(mut self, mib: u64) -> RunOptions {
        self.memory_mib = mib;
        self
    }
}

/// Everything a run produced.
#[derive(Clone)]
pub struct Outcome {
    /// The verdict.
    pub exit: KernelExit,
    /// Why `exit` is not a clean kernel exit (timeout, reset, disagreement), if so.
    pub problem: Option<String>,
    /// Every `@stacklab` record, in order.
    pub records: Vec<Record>,
    /// The whole serial output, one `\n` per line.
    pub serial: String,
    /// How the QEMU process ended.
    pub qemu_end: QemuEnd,
    /// Everything QEMU wrote to stderr.
    pub qemu_stderr: String,
    /// The accelerator used.
    pub accel: Accel,
    /// Why that accelerator.
    pub accel_reason: String,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
    /// The kernel's load offset from the `ready` record (0 if there was none).
    pub kernel_offset: u64,
    /// How the run started.
    pub boot: BootKind,
    /// Why it booted cold although a snapshot start was wanted, if so.
    pub boot_note: Option<String>,
    symbols: Arc<Symbolizer>,
}

impl Outcome {
    /// Records of kind `result`.
    pub fn results(&self) -> Vec<&Record> {
        self.find_all("result")
    }

    /// The first record of this kind.
    pub fn find(&self, kind: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.kind == kind)
    }

    /// Every record of this kind.
    pub fn find_all(&self, kind: &str) -> Vec<&Record> {
        self.records.iter().filter(|r| r.kind == kind).collect()
    }

    /// The first `result` record for this command name.
    pub fn result_for(&self, cmd: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.kind == "result" && r.str("cmd") == Some(cmd))
    }

    /// The function containing a runtime kernel address (load offset taken into account).
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        self.symbols.function(addr, self.kernel_offset)
    }

    /// `name+0xoff` for a runtime kernel address.
    pub fn describe_addr(&self, addr: u64) -> Option<String> {
        self.symbols.describe(addr, self.kernel_offset, false)
    }

    /// The host tool's exit status for this run.
    pub fn host_status(&self) -> i32 {
        self.exit.host_status()
    }
}

impl fmt::Debug for Outcome {
    /// Written for assertion messages: the verdict, then the serial output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Outcome {{ exit: {:?}, qemu: {:?}, accel: {}, boot: {}, elapsed: {:.1?}",
            self.exit,
            self.qemu_end,
            self.accel.name(),
            self.boot.name(),
            self.elapsed
        )?;
        if let Some(p) = &self.problem {
            writeln!(f, "  problem: {p}")?;
        }
        writeln!(f, "  serial:")?;
        for l in self.serial.lines() {
            writeln!(f, "    | {}", record::strip_control(l))?;
        }
        if !self.qemu_stderr.trim().is_empty() {
            writeln!(f, "  qemu stderr:")?;
            for l in self.qemu_stderr.lines() {
                writeln!(f, "    ! {l}")?;
            }
        }
        write!(f, "}}")
    }
}

/// A built kernel image plus the tools to boot it.
#[derive(Debug)]
pub struct Harness {
    /// The kernel ELF (for symbols).
    pub elf: PathBuf,
    /// The disk image booted.
    pub image: PathBuf,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The OVMF files.
    pub firmware: Firmware,
    symbols: Arc<Symbolizer>,
    snapshots: Store,
}

static HARNESS: OnceLock<Result<Harness, Error>> = OnceLock::new();

impl Harness {
    /// The process-wide harness: builds the kernel and image once (under a file lock, so
    /// concurrent test processes do not collide). Panics with the reason if that fails.
    /// It does not install anything: run `cargo lab setup` first.
    pub fn get() -> &'static Harness {
        match Harness::try_get() {
            Ok(h) => h,
            Err(e) => panic!("stacklab harness: {e}"),
        }
    }

    /// Like [`Harness::get`], returning the error instead of panicking.
    pub fn try_get() -> Result<&'static Harness, Error> {
        HARNESS
            .get_or_init(|| {
                let built = build::ensure_built(false, Output::Quiet)?;
                Harness::new(built.elf, built.image)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A harness for an existing image. `elf` is only used for symbolization and may be
    /// missing (addresses then stay unnamed).
    pub fn new(elf: PathBuf, image: PathBuf) -> Result<Harness, Error> {
        if !image.is_file() {
            return Err(Error::usage(format!(
                "image {} does not exist (run `cargo lab build`)",
                image.display()
            )));
        }
        let qemu = qemu::find_qemu()?;
        let firmware = stacklab_ovmf::locate().map_err(|e| Error::env(e.to_string()))?;
        let symbols = Arc::new(Symbolizer::from_file(&elf).unwrap_or_default());
        Ok(Harness {
            elf,
            image,
            qemu,
            firmware,
            symbols,
            snapshots: Store::default(),
        })
    }

    /// The same harness keeping its snapshots in `dir` (tests that damage them).
    pub fn with_snapshot_dir(mut self, dir: PathBuf) -> Harness {
        self.snapshots = Store::in_dir(dir);
        self
    }

    /// Its snapshots: the state for a machine, and notes on what was made or rebuilt.
    pub fn snapshots(&self) -> &Store {
        &self.snapshots
    }

    /// How runs of this choice, accelerator and memory will start: finds, checks or makes the
    /// snapshot now (so a caller can say so before its runs), or says why they boot cold.
    pub fn plan_boot(
        &self,
        choice: BootChoice,
        accel: Accel,
        memory_mib: u64,
    ) -> Result<Start, Error> {
        if choice == BootChoice::Cold {
            return Ok(Start::Cold(None));
        }
        snapshot::decide(choice, &self.snapshots.state(self, accel, memory_mib))
    }

    /// The kernel's function symbols.
    pub fn symbols(&self) -> &Symbolizer {
        &self.symbols
    }

    /// Boots once and collects the outcome. Prints nothing unless `STACKLAB_TEST_VERBOSE` is set.
    pub fn run(&self, opts: RunOptions) -> Result<Outcome, Error> {
        let verbose = std::env::var_os(ENV_VERBOSE).is_some_and(|v| !v.is_empty() && v != "0");
        let (accel, reason) = self.accel(opts.accel)?;
        if verbose {
            eprintln!(
                "[stacklab] cmdline {:?}, accel {} ({reason})",
                opts.cmdline,
                accel.name()
            );
        }
        self.run_with(&opts, accel, reason, &mut |line, _| {
            if verbose {
                eprintln!("[serial] {}", record::strip_control(line));
            }
            Flow::Continue
        })
    }

    /// Picks the accelerator (the KVM probe verdict is cached on disk in target/stacklab/).
    pub fn accel(&self, choice: AccelChoice) -> Result<(Accel, String), Error> {
        qemu::resolve_accel(
            choice,
            &self.qemu,
            Some(&paths::stacklab_dir().join("kvm-probe")),
        )
    }

    /// Boots once with a chosen accelerator, calling `on_line` for every serial line as it
    /// arrives (with its classification). When `on_line` returns [`Flow::Stop`], QEMU is
    /// killed at once and the outcome says so ([`QemuEnd::Stopped`]).
    ///
    /// If the firmware finds nothing bootable in the image and starts its UEFI shell, QEMU
    /// is killed at once and the run is a usage error (bad input, exit 2).
    ///
    /// A snapshot start whose QEMU cannot load the saved state discards it; under
    /// [`BootChoice::Auto`] the run is then booted cold (`boot_note` says why), under
    /// [`BootChoice::Snapshot`] it is an environment error.
    pub fn run_with(
        &self,
        opts: &RunOptions,
        accel: Accel,
        accel_reason: String,
        on_line: &mut dyn FnMut(&str, &Line) -> Flow,
    ) -> Result<Outcome, Error> {
        // Validate the command line before paying for a boot.
        qemu::fw_cfg_cmdline(&opts.cmdline)?;
        let state = match self.plan_boot(opts.boot, accel, opts.memory_mib)? {
            Start::Snapshot(state) => state,
            Start::Cold(note) => {
                let mut out = self.boot_once(opts, accel, accel_reason, None, on_line)?;
                out.boot_note = note;
                return Ok(out);
            }
        };
        let out = self.boot_once(opts, accel, accel_reason.clone(), Some(&state), on_line)?;
        if out.records.is_empty() && qemu::snapshot::resume_failed(&out.qemu_stderr) {
            let why = record::strip_control(out.qemu_stderr.lines().last().unwrap_or(""));
            self.snapshots.discard(accel, opts.memory_mib, &why);
            let note = format!("resuming the snapshot failed ({why}); cold boot");
            if opts.boot == BootChoice::Snapshot {
                return Err(Error::env(note));
            }
            let mut out = self.boot_once(opts, accel, accel_reason, None, on_line)?;
            out.boot_note = Some(note);
            return Ok(out);
        }
        Ok(out)
    }

    /// One QEMU run: a cold boot, or a resume of `state` with the command line as program.
    fn boot_once(
        &self,
        opts: &RunOptions,
        accel: Accel,
        accel_reason: String,
        state: Option<&Path>,
        on_line: &mut dyn FnMut(&str, &Line) -> Flow,
    ) -> Result<Outcome, Error> {
        let vars = self
            .firmware
            .fresh_vars()
            .map_err(|e| Error::env(format!("cannot copy the OVMF variable store: {e}")))?;
        let machine = Machine {
            image: &self.image,
            firmware: &self.firmware,
            vars: vars.as_ref().map(|v| v.path()),
            cmdline: if state.is_some() {
                stacklab_core::proto::AWAIT_CMDLINE
            } else {
                &opts.cmdline
            },
            accel,
            memory_mib: opts.memory_mib,
        };
        let mut args = machine.args()?;
        if let Some(port) = opts.gdb_port {
            args.extend(qemu::args::gdb_args(port));
        }
        if let Some(state) = state {
            args.extend(qemu::snapshot::resume_args(state, &opts.cmdline)?);
        }
        let mut serial = String::new();
        let mut records = Vec::new();
        let mut exit_code: Option<String> = None;
        let mut kernel_offset = 0;
        let mut firmware_gave_up = false;
        let r = qemu::run(&self.qemu, &args, opts.timeout, &mut |line| {
            serial.push_str(line);
            serial.push('\n');
            let parsed = record::classify(line);
            if let Line::Record { record, .. } = &parsed {
                match record.kind.as_str() {
                    "exit" => exit_code = Some(record.str("code").unwrap_or("").to_string()),
                    "ready" => kernel_offset = record.hex("kernel_offset").unwrap_or(0),
                    _ => {}
                }
                records.push(record.clone());
            }
            let flow = on_line(line, &parsed);
            if records.is_empty() && stacklab_ovmf::gave_up_booting(&record::strip_control(line)) {
                firmware_gave_up = true;
                return Flow::Stop;
            }
            flow
        })?;
        drop(vars);
        if firmware_gave_up {
            return Err(Error::usage(format!(
                "the firmware found no bootable image in {}: OVMF started its UEFI shell instead \
                 of a kernel (is it a stacklab UEFI disk image? `cargo lab build` makes one)",
                self.image.display()
            )));
        }
        let verdict = exit::decide(
            exit_code.as_deref(),
            r.end,
            opts.timeout.as_secs(),
            r.last_line.as_deref().map(record::strip_control).as_deref(),
            &r.stderr_tail(5),
        );
        Ok(Outcome {
            exit: verdict.exit,
            problem: verdict.problem,
            records,
            serial,
            qemu_end: r.end,
            qemu_stderr: r.stderr,
            accel,
            accel_reason,
            elapsed: r.elapsed,
            kernel_offset,
            boot: if state.is_some() {
                BootKind::Snapshot
            } else {
                BootKind::Cold
            },
            boot_note: None,
            symbols: Arc::clone(&self.symbols),
        })
    }

    /// The image this harness boots.
    pub fn image(&self) -> &Path {
        &self.image
    }
}
