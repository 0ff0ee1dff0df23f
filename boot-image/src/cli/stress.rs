//! `cargo lab stress`: seeded, parallel stress runs (see `crate::stress`), with a progress
//! line on stderr, a table per policy and growth mode on stdout, a JSON summary, and a
//! reproducer file per failure; and `cargo lab run --repro FILE`, which replays one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{build_cmd, note, secs};
use crate::exit::status;
use crate::harness::Harness;
use crate::out::say;
use crate::qemu::AccelChoice;
use crate::snapshot::{BootChoice, Start};
use crate::stress::program::{GenConfig, MODES, POLICIES};
use crate::stress::repro::Repro;
use crate::stress::{self, Progress, StressConfig};
use crate::{Error, paths};

/// `cargo lab stress` options.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct StressArgs {
    /// How many random programs to run
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub runs: u64,
    /// QEMUs at a time (default: the number of cores)
    #[arg(long, value_name = "J")]
    pub jobs: Option<usize>,
    /// The seed all programs derive from (default: from the clock, printed)
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Start no new run after M minutes
    #[arg(long, value_name = "M")]
    pub minutes: Option<u64>,
    /// Policies to draw from, comma-separated: fixed16k, fixed32k, grow (default: all)
    #[arg(long, value_name = "LIST", value_parser = parse_policies)]
    pub policies: Option<String>,
    /// Growth modes to draw from, comma-separated: pf-ist, df-recover, fred-sim, abort
    #[arg(long, value_name = "LIST", value_parser = parse_modes)]
    pub modes: Option<String>,
    /// Accelerator: auto uses KVM only if a probe boot proves it works
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Per-run timeout in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// How runs start: snapshot resumes a saved machine waiting for its program (no
    /// firmware); auto does that where it works and boots cold otherwise, saying why
    #[arg(long, value_name = "KIND", value_enum, default_value_t = BootChoice::Auto)]
    pub boot: BootChoice,
    /// The JSON summary (default: target/stacklab/stress/summary.json)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Boot the existing image
    #[arg(long)]
    pub no_build: bool,
    /// Testing the checker: invert the expectation of this run, which must then fail
    #[arg(long, value_name = "RUN", hide = true)]
    pub plant: Option<u64>,
}

/// Checks a `--policies` list; returns it as the kernel spells the policies, comma-separated.
fn parse_policies(s: &str) -> Result<String, String> {
    s.split(',')
        .map(|p| match p.trim() {
            "fixed16k" | "fixed-16K" | "fixed 16K" => Ok(POLICIES[0].to_string()),
            "fixed32k" | "fixed-32K" | "fixed 32K" => Ok(POLICIES[1].to_string()),
            "grow" | "grow 4K 32K" => Ok(POLICIES[2].to_string()),
            other => Err(format!(
                "unknown policy '{other}' (use fixed16k, fixed32k, grow)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join(","))
}

/// Checks a `--modes` list.
fn parse_modes(s: &str) -> Result<String, String> {
    s.split(',')
        .map(|m| {
            let m = m.trim();
            MODES
                .iter()
                .find(|x| **x == m)
                .map(|x| x.to_string())
                .ok_or_else(|| format!("unknown growth mode '{m}' (use {})", MODES.join(", ")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join(","))
}

/// Says how the runs will start (snapshot or cold, and why), making the snapshot first if
/// one is wanted. Shared with `demo`.
pub(super) fn note_boot_plan(
    h: &Harness,
    choice: BootChoice,
    accel: crate::qemu::Accel,
    memory_mib: u64,
) -> Result<(), Error> {
    let boot = match h.plan_boot(choice, accel, memory_mib)? {
        Start::Snapshot(p) => format!("snapshot starts from {}", p.display()),
        Start::Cold(None) => "cold boots".into(),
        Start::Cold(Some(why)) => format!("cold boots: {why}"),
    };
    for n in h.snapshots().take_notes() {
        note(&n);
    }
    note(&format!("boot: {boot}"));
    Ok(())
}

/// `cargo lab stress`: exit 0 if every run passed, 1 if any failed.
pub fn stress_cmd(a: &StressArgs) -> Result<i32, Error> {
    let (h, accel) = super::release_harness(a.no_build, a.accel)?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut programs = GenConfig::default();
    if let Some(p) = &a.policies {
        programs.policies = p.split(',').map(String::from).collect();
    }
    if let Some(m) = &a.modes {
        programs.modes = m.split(',').map(String::from).collect();
    }
    let cfg = StressConfig {
        runs: a.runs,
        jobs: a.jobs.unwrap_or_else(stress::default_jobs).max(1),
        seed,
        time_limit: a.minutes.map(|m| Duration::from_secs(m * 60)),
        programs,
        accel: a.accel,
        boot: a.boot,
        timeout_secs: a.timeout.max(1),
        out_dir: stress::default_dir(),
        plant: a.plant,
        ..StressConfig::default()
    };
    note(&format!(
        "stress: {} runs, seed {seed}, {} jobs, timeout {} s",
        cfg.runs, cfg.jobs, cfg.timeout_secs
    ));
    note_boot_plan(&h, cfg.boot, accel, cfg.memory_mib)?;
    let tty = std::io::stderr().is_terminal();
    let summary = stress::stress(&h, &cfg, &mut |p: &Progress| {
        let line = format!(
            "stress: {}/{} runs, {} failed, {:.1} runs/min, boot {}",
            p.done,
            p.total,
            p.failures,
            p.per_minute(),
            p.boots()
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r{line}  ")
        } else {
            writeln!(err, "{line}")
        };
    })?;
    if tty {
        eprintln!();
    }
    for n in h.snapshots().take_notes() {
        note(&n);
    }
    say!("{}", summary.table())?;
    for r in summary.failures() {
        say!(
            "FAILED run {} ({}{}): {}\n  cmdline: {}\n  reproducer: {}",
            r.program.index,
            r.judgement.class.name(),
            if r.planted { ", planted" } else { "" },
            r.judgement.detail,
            r.program.cmdline(),
            r.repro
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string())
        )?;
    }
    let json = a
        .json
        .clone()
        .unwrap_or_else(|| stress::default_dir().join("summary.json"));
    write_file(&json, &summary.to_json())?;
    note(&format!(
        "stress: {} runs in {} ({:.1} runs/min with {} jobs, {:.1} s per run; boots: {} cold, {} snapshot); summary {}",
        summary.runs.len(),
        secs(summary.wall),
        summary.per_minute(),
        summary.jobs,
        summary.mean_run_secs(),
        summary.boots()["cold"],
        summary.boots()["snapshot"],
        json.display()
    ));
    Ok(if summary.failures().is_empty() {
        status::SUCCESS
    } else {
        status::FAILURE
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))
}

/// `cargo lab run --repro FILE`: exit 0 if the replay classified as recorded, 1 if not.
pub fn repro_cmd(file: &Path, no_build: bool, boot: Option<BootChoice>) -> Result<i32, Error> {
    let repro = Repro::read(file)?;
    let (elf, image) = if no_build {
        (paths::kernel_elf(false), paths::default_image())
    } else {
        build_cmd(false, None)?
    };
    let h = Harness::new(elf, image)?;
    note(&format!(
        "replaying run {} of seed {} ({}, {} boot, timeout {} s): {}",
        repro.run,
        repro.seed,
        match repro.accel {
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
            AccelChoice::Auto => "auto",
        },
        boot.unwrap_or(repro.boot.choice()).name(),
        repro.timeout_secs,
        repro.cmdline
    ));
    let r = stress::replay(&h, repro, boot)?;
    say!(
        "recorded: {} ({}, {} boot)\nreplayed: {} ({}, {} boot)\n{}",
        r.repro.class.name(),
        r.repro.detail,
        r.repro.boot.name(),
        r.now.class.name(),
        r.now.detail,
        r.boot.name(),
        if r.matched() {
            "reproduced: same classification"
        } else {
            "NOT reproduced: the classification differs"
        }
    )?;
    Ok(if r.matched() {
        status::SUCCESS
    } else {
        status::FAILURE
    })
}
