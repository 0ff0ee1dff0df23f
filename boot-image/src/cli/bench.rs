//! `cargo lab bench-boot`: how long a run takes to reach its first command, booted cold
//! (through the firmware) and started from the snapshot, measured in one go.

use std::time::{Duration, Instant};

use super::note;
use crate::Error;
use crate::harness::{Harness, RunOptions};
use crate::out::say;
use crate::qemu::{AccelChoice, Flow};
use crate::record::Line;
use crate::snapshot::{BootChoice, BootKind, Start};

/// `cargo lab bench-boot` options.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct BenchBootArgs {
    /// Runs of each kind (cold and snapshot, alternating)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Accelerator: auto uses KVM only if a probe boot proves it works
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Boot the existing image
    #[arg(long)]
    pub no_build: bool,
}

/// The program each run executes: one short command.
const PROGRAM: &str = "int3";

/// One timed run: (QEMU start to the `ready` record, QEMU start to its end).
fn timed(h: &Harness, opts: &RunOptions, want: BootKind) -> Result<(Duration, Duration), Error> {
    let (accel, reason) = h.accel(opts.accel)?;
    let start = Instant::now();
    let mut ready = None;
    let out = h.run_with(opts, accel, reason, &mut |_, parsed| {
        if let Line::Record { record, .. } = parsed
            && record.kind == "ready"
        {
            ready.get_or_insert_with(|| start.elapsed());
        }
        Flow::Continue
    })?;
    let total = start.elapsed();
    match ready {
        Some(r) if out.boot == want && out.host_status() == 0 => Ok((r, total)),
        _ => Err(Error::env(format!(
            "a {} run of '{PROGRAM}' did not succeed: {out:?}",
            want.name()
        ))),
    }
}

fn stats(v: &mut [Duration]) -> (f64, f64, f64, f64) {
    v.sort();
    let s = |d: Duration| d.as_secs_f64();
    let mean = v.iter().map(|d| s(*d)).sum::<f64>() / v.len() as f64;
    (s(v[0]), s(v[v.len() / 2]), s(v[v.len() - 1]), mean)
}

/// `cargo lab bench-boot`: prints the figures; exit 0, or an error if a run failed or no
/// snapshot could be made.
pub fn bench_boot_cmd(a: &BenchBootArgs) -> Result<i32, Error> {
    let (h, accel) = super::release_harness(a.no_build, a.accel)?;
    let made = Instant::now();
    let plan = h.plan_boot(BootChoice::Snapshot, accel, crate::qemu::DEFAULT_MEMORY_MIB)?;
    for n in h.snapshots().take_notes() {
        note(&n);
    }
    if let Start::Snapshot(p) = &plan {
        note(&format!(
            "snapshot {} ready after {:.1} s",
            p.display(),
            made.elapsed().as_secs_f64()
        ));
    }
    let base = RunOptions::new(PROGRAM).accel(a.accel).timeout_secs(120);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        for (kind, list) in [(BootKind::Cold, &mut cold), (BootKind::Snapshot, &mut warm)] {
            let (ready, total) = timed(&h, &base.clone().boot(kind.choice()), kind)?;
            note(&format!(
                "run {}: {:<8} first command after {:.3} s, whole run {:.3} s",
                i + 1,
                kind.name(),
                ready.as_secs_f64(),
                total.as_secs_f64()
            ));
            list.push((ready, total));
        }
    }
    let mut rows = String::from(
        "boot      runs  to first command: min   median    max  | whole run: mean  runs/min/core\n",
    );
    let mut medians = Vec::new();
    for (kind, list) in [("cold", &cold), ("snapshot", &warm)] {
        let (r_min, r_med, r_max, _) = stats(&mut list.iter().map(|x| x.0).collect::<Vec<_>>());
        let (_, _, _, t_mean) = stats(&mut list.iter().map(|x| x.1).collect::<Vec<_>>());
        medians.push(r_med);
        rows += &format!(
            "{kind:<9} {:>4}  {r_min:>19.3} {r_med:>8.3} {r_max:>6.3}  | {t_mean:>15.3} {:>14.1}\n",
            list.len(),
            60.0 / t_mean
        );
    }
    say!(
        "{rows}snapshot start reaches the first command {:.1}x sooner ({} accelerator, program '{PROGRAM}')",
        medians[0] / medians[1].max(1e-6),
        accel.name()
    )?;
    Ok(0)
}
