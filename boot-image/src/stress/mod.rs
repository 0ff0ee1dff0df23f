//! Seeded stress runs: many boots, each running a random program of registered scenarios
//! (drawn on the host from a seed, [`program`]), several QEMUs in parallel through the
//! [`Harness`], each outcome checked against what its program must do ([`classify`]), a
//! reproducer file for every failure ([`repro`]) and a summary ([`Summary`]).
//!
//! ```no_run
//! use boot_image::Harness;
//! use boot_image::stress::{StressConfig, stress};
//! let cfg = StressConfig { runs: 8, jobs: 2, seed: 7, ..StressConfig::default() };
//! let summary = stress(Harness::get(), &cfg, &mut |_| {})?;
//! assert!(summary.runs.iter().all(|r| r.judgement.class.passed()));
//! # Ok::<(), boot_image::Error>(())
//! ```

pub mod classify;
pub mod pool;
pub mod program;
pub mod repro;
mod summary;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::{Harness, RunOptions};
use crate::qemu::{self, Accel, AccelChoice};
use crate::snapshot::{BootChoice, BootKind};
use crate::{Error, paths};
use classify::{Judgement, classify};
use program::{Expect, GenConfig, Program, generate};
use repro::Repro;

pub use summary::Summary;

/// Options of a stress run.
#[derive(Clone, Debug)]
pub struct StressConfig {
    /// How many programs to run (at most).
    pub runs: u64,
    /// How many QEMUs at a time.
    pub jobs: usize,
    /// The seed every program derives from.
    pub seed: u64,
    /// Start no new run after this much time (the runs under way finish).
    pub time_limit: Option<Duration>,
    /// How programs are drawn.
    pub programs: GenConfig,
    /// The accelerator choice for every run.
    pub accel: AccelChoice,
    /// Cold boots or snapshot starts (default `auto`: snapshot starts where they work).
    pub boot: BootChoice,
    /// Per-run timeout in seconds.
    pub timeout_secs: u64,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Where reproducer files go.
    pub out_dir: PathBuf,
    /// A planted fault, for testing the checker: the expectation of this run is inverted
    /// (an ok program is expected to abort, an aborting one to succeed), so it must be
    /// reported as failed.
    pub plant: Option<u64>,
}

impl Default for StressConfig {
    fn default() -> Self {
        StressConfig {
            runs: 20,
            jobs: default_jobs(),
            seed: 0,
            time_limit: None,
            programs: GenConfig::default(),
            accel: AccelChoice::Auto,
            boot: BootChoice::Auto,
            timeout_secs: 60,
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            out_dir: default_dir(),
            plant: None,
        }
    }
}

/// The number of cores, the default number of jobs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `target/stacklab/stress`: reproducers and the summary.
pub fn default_dir() -> PathBuf {
    paths::stacklab_dir().join("stress")
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The program it ran (with the expectation the checker used).
    pub program: Program,
    /// Whether its expectation was planted wrong on purpose.
    pub planted: bool,
    /// How it was classified.
    pub judgement: Judgement,
    /// The accelerator it ran under.
    pub accel: Accel,
    /// How it started.
    pub boot: BootKind,
    /// Why it booted cold although a snapshot start was wanted, if so.
    pub boot_note: Option<String>,
    /// The QEMU run's wall time.
    pub elapsed: Duration,
    /// The reproducer written for it, if it failed.
    pub repro: Option<PathBuf>,
}

/// Where a stress run stands, after each finished run.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Runs finished.
    pub done: u64,
    /// Runs planned.
    pub total: u64,
    /// Finished runs that did not pass.
    pub failures: u64,
    /// Finished runs that booted cold (the rest started from a snapshot).
    pub cold: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

impl Progress {
    /// How the runs so far started: `snapshot`, `cold` or `mixed (N cold)`.
    pub fn boots(&self) -> String {
        match self.cold {
            0 => "snapshot".into(),
            n if n == self.done => "cold".into(),
            n => format!("mixed ({n} cold)"),
        }
    }

    /// Finished runs per minute of wall time.
    pub fn per_minute(&self) -> f64 {
        self.done as f64 * 60.0 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// The programs of a stress run, with any planted expectation applied (the same list every
/// time for the same configuration).
pub fn programs(cfg: &StressConfig) -> Vec<(Program, bool)> {
    (0..cfg.runs)
        .map(|i| {
            let mut p = generate(cfg.seed, i, &cfg.programs);
            let planted = cfg.plant == Some(i);
            if planted {
                p.expect = match p.expect {
                    Expect::Ok => Expect::Abort(program::OVERFLOW_REASON.into()),
                    Expect::Abort(_) => Expect::Ok,
                };
            }
            (p, planted)
        })
        .collect()
}

/// Boots one program and classifies it; a failure writes its reproducer.
pub fn run_one(
    h: &Harness,
    cfg: &StressConfig,
    program: Program,
    planted: bool,
) -> Result<RunReport, Error> {
    let opts = RunOptions::new(program.cmdline())
        .timeout_secs(cfg.timeout_secs)
        .accel(cfg.accel)
        .memory_mib(cfg.memory_mib)
        .boot(cfg.boot);
    let start = Instant::now();
    // An error here (QEMU or firmware missing, Ctrl-C) is no verdict on the program: it
    // stops the stress run. A QEMU that dies is an outcome (`machine-death`), not an error.
    let out = h.run(opts)?;
    let judgement = classify(&program.expect, &program.cmdline(), out.exit, &out.records);
    let (accel, serial, boot, boot_note) = (out.accel, out.serial, out.boot, out.boot_note);
    let elapsed = start.elapsed();
    let mut repro = None;
    if !judgement.class.passed() {
        let r = Repro {
            seed: program.seed,
            run: program.index,
            cmdline: program.cmdline(),
            accel: match accel {
                Accel::Kvm => AccelChoice::Kvm,
                Accel::Tcg => AccelChoice::Tcg,
            },
            timeout_secs: cfg.timeout_secs,
            memory_mib: cfg.memory_mib,
            boot,
            expect: program.expect.clone(),
            class: judgement.class,
            detail: judgement.detail.clone(),
            serial,
        };
        repro = Some(r.write(&cfg.out_dir)?);
    }
    Ok(RunReport {
        program,
        planted,
        judgement,
        accel,
        boot,
        boot_note,
        elapsed,
        repro,
    })
}

/// Runs the stress run: `cfg.jobs` threads take programs in order and boot them; `progress`
/// is called (on the calling thread) after each finished run. Stops early at the time limit,
/// or for an error that is no verdict on a program (QEMU or firmware missing, Ctrl-C).
pub fn stress(
    h: &Harness,
    cfg: &StressConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Summary, Error> {
    let start = Instant::now();
    let mut failures = 0;
    let mut done = 0;
    let mut cold = 0;
    let mut reports = pool::parallel(
        cfg.jobs,
        programs(cfg),
        &|| cfg.time_limit.is_none_or(|t| start.elapsed() < t),
        &|(p, planted)| run_one(h, cfg, p, planted),
        &mut |r: &RunReport| {
            done += 1;
            if !r.judgement.class.passed() {
                failures += 1;
            }
            cold += u64::from(r.boot == BootKind::Cold);
            progress(&Progress {
                done,
                total: cfg.runs,
                failures,
                cold,
                elapsed: start.elapsed(),
            });
        },
    )?;
    reports.sort_by_key(|r| r.program.index);
    Ok(Summary {
        seed: cfg.seed,
        jobs: cfg.jobs.max(1),
        wall: start.elapsed(),
        runs: reports,
    })
}

/// What replaying a reproducer gave.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The reproducer.
    pub repro: Repro,
    /// The classification of the new run.
    pub now: Judgement,
    /// How the new run started.
    pub boot: BootKind,
}

impl Replay {
    /// Whether the new run was classified as the recorded one.
    pub fn matched(&self) -> bool {
        self.now.class == self.repro.class
    }
}

/// Boots a reproducer's command line again with its options (and started as recorded, or
/// as `boot` says) and classifies the outcome against its expectation.
pub fn replay(h: &Harness, repro: Repro, boot: Option<BootChoice>) -> Result<Replay, Error> {
    let opts = RunOptions::new(repro.cmdline.clone())
        .timeout_secs(repro.timeout_secs)
        .accel(repro.accel)
        .memory_mib(repro.memory_mib)
        .boot(boot.unwrap_or(repro.boot.choice()));
    let out = h.run(opts)?;
    let now = classify(&repro.expect, &repro.cmdline, out.exit, &out.records);
    Ok(Replay {
        repro,
        now,
        boot: out.boot,
    })
}
