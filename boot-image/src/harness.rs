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

use crate::bochs::{self, Emulator};
use crate::build::{self, Output};
use crate::exit::{self, KernelExit, QemuEnd};
use crate::qemu::{self, Accel, AccelChoice, Flow, Machine};
use crate::record::{self, Line, Record};
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
    /// Which emulator boots the image.
    pub emulator: Emulator,
}

impl RunOptions {
    /// The kernel command line; 60 s timeout; accelerator `auto`; 512 MiB of memory.
    pub fn new(cmdline: impl Into<String>) -> RunOptions {
        RunOptions {
            cmdline: cmdline.into(),
            timeout: Duration::from_secs(60),
            accel: AccelChoice::Auto,
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            emulator: Emulator::Qemu,
        }
    }
    /// Sets the emulator (Bochs: built by `cargo lab setup --with-bochs SRC`).
    pub fn emulator(mut self, emulator: Emulator) -> RunOptions {
        self.emulator = emulator;
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
    /// The emulator that ran the image.
    pub emulator: Emulator,
    /// The accelerator used (QEMU; `tcg` on Bochs, which interprets).
    pub accel: Accel,
    /// Why that accelerator.
    pub accel_reason: String,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
    /// The kernel's load offset from the `ready` record (0 if there was none).
    pub kernel_offset: u64,
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
            "Outcome {{ exit: {:?}, {:?}: {:?}, accel: {}, elapsed: {:.1?}",
            self.exit,
            self.emulator,
            self.qemu_end,
            self.accel.name(),
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
        })
    }

    /// The kernel's function symbols.
    pub fn symbols(&self) -> &Symbolizer {
        &self.symbols
    }

    /// Boots once and collects the outcome. Prints nothing unless `STACKLAB_TEST_VERBOSE` is set.
    pub fn run(&self, opts: RunOptions) -> Result<Outcome, Error> {
        let verbose = std::env::var_os(ENV_VERBOSE).is_some_and(|v| !v.is_empty() && v != "0");
        let (accel, reason) = match opts.emulator {
            Emulator::Qemu => self.accel(opts.accel)?,
            Emulator::Bochs => (Accel::Tcg, bochs::NO_ACCEL_REASON.to_string()),
        };
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
    pub fn run_with(
        &self,
        opts: &RunOptions,
        accel: Accel,
        accel_reason: String,
        on_line: &mut dyn FnMut(&str, &Line) -> Flow,
    ) -> Result<Outcome, Error> {
        // Validate the command line before paying for a boot.
        qemu::fw_cfg_cmdline(&opts.cmdline)?;
        let mut serial = String::new();
        let mut records = Vec::new();
        let mut exit_code: Option<String> = None;
        let mut kernel_offset = 0;
        let mut firmware_gave_up = false;
        let mut on_serial = |line: &str| {
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
        };
        let r = match opts.emulator {
            Emulator::Qemu => self.boot_qemu(opts, accel, &mut on_serial)?,
            Emulator::Bochs => bochs::boot::run(
                &bochs::find()?,
                &self.image,
                &opts.cmdline,
                opts.memory_mib,
                opts.timeout,
                &mut on_serial,
            )?,
        };
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
            problem: match (opts.emulator, verdict.exit) {
                // Bochs's end was read as QEMU's (bochs::boot::as_qemu_end): name the right
                // one (not in a timeout's message, which quotes the kernel's last line).
                (Emulator::Bochs, e) if e != KernelExit::Timeout => {
                    verdict.problem.map(|p| p.replace("QEMU", "Bochs"))
                }
                _ => verdict.problem,
            },
            records,
            serial,
            qemu_end: r.end,
            qemu_stderr: r.stderr,
            emulator: opts.emulator,
            accel,
            accel_reason,
            elapsed: r.elapsed,
            kernel_offset,
            symbols: Arc::clone(&self.symbols),
        })
    }

    /// One QEMU run of the image with the serial lines going to `on_serial`.
    fn boot_qemu(
        &self,
        opts: &RunOptions,
        accel: Accel,
        on_serial: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<qemu::RunResult, Error> {
        let vars = self
            .firmware
            .fresh_vars()
            .map_err(|e| Error::env(format!("cannot copy the OVMF variable store: {e}")))?;
        let machine = Machine {
            image: &self.image,
            firmware: &self.firmware,
            vars: vars.as_ref().map(|v| v.path()),
            cmdline: &opts.cmdline,
            accel,
            memory_mib: opts.memory_mib,
        };
        let args = machine.args()?;
        let r = qemu::run(&self.qemu, &args, opts.timeout, on_serial)?;
        drop(vars);
        Ok(r)
    }

    /// The image this harness boots.
    pub fn image(&self) -> &Path {
        &self.image
    }
}
