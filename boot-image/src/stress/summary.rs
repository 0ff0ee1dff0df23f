//! The summary of a stress run: counts per class, a table per policy and growth mode, and
//! the JSON file.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::RunReport;
use super::classify::Class;
use crate::snapshot::BootKind;

/// Every finished run of a stress run, in run order.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Parallel QEMUs.
    pub jobs: usize,
    /// Wall time of the whole stress run.
    pub wall: Duration,
    /// The finished runs, by index.
    pub runs: Vec<RunReport>,
}

impl Summary {
    /// How many runs ended in each class.
    pub fn counts(&self) -> BTreeMap<Class, u64> {
        let mut m = BTreeMap::new();
        for r in &self.runs {
            *m.entry(r.judgement.class).or_default() += 1;
        }
        m
    }

    /// Runs that did not pass.
    pub fn failures(&self) -> Vec<&RunReport> {
        self.runs
            .iter()
            .filter(|r| !r.judgement.class.passed())
            .collect()
    }

    /// How the runs started: `{"cold": N, "snapshot": M}`.
    pub fn boots(&self) -> serde_json::Value {
        let n = |k: BootKind| self.runs.iter().filter(|r| r.boot == k).count();
        json!({"cold": n(BootKind::Cold), "snapshot": n(BootKind::Snapshot)})
    }

    /// Finished runs per minute of wall time.
    pub fn per_minute(&self) -> f64 {
        self.runs.len() as f64 * 60.0 / self.wall.as_secs_f64().max(1e-3)
    }

    /// Mean wall time of one run, in seconds.
    pub fn mean_run_secs(&self) -> f64 {
        let total: f64 = self.runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        total / self.runs.len().max(1) as f64
    }

    /// Counts per (policy, mode) and class.
    fn by_group(&self) -> BTreeMap<(String, String), BTreeMap<Class, u64>> {
        let mut m: BTreeMap<(String, String), BTreeMap<Class, u64>> = BTreeMap::new();
        for r in &self.runs {
            let key = (r.program.policy.clone(), r.program.mode.clone());
            *m.entry(key)
                .or_default()
                .entry(r.judgement.class)
                .or_default() += 1;
        }
        m
    }

    /// The table for people: one row per policy and growth mode, one column per class.
    pub fn table(&self) -> String {
        let mut s = format!("{:<12} {:<11} {:>5}", "policy", "growth", "runs");
        for c in Class::ALL {
            s += &format!(" {:>w$}", c.name(), w = c.name().len().max(4));
        }
        s.push('\n');
        let mut row = |policy: &str, mode: &str, counts: &BTreeMap<Class, u64>| {
            let total: u64 = counts.values().sum();
            s += &format!("{policy:<12} {mode:<11} {total:>5}");
            for c in Class::ALL {
                let n = counts.get(&c).copied().unwrap_or(0);
                s += &format!(" {n:>w$}", w = c.name().len().max(4));
            }
            s.push('\n');
        };
        for ((policy, mode), counts) in self.by_group() {
            row(&policy, &mode, &counts);
        }
        row("all", "", &self.counts());
        s
    }

    /// The JSON summary: totals, the table's rows and every run.
    pub fn to_json(&self) -> String {
        let counts = |m: &BTreeMap<Class, u64>| {
            Class::ALL
                .iter()
                .map(|c| (c.name().to_string(), json!(m.get(c).copied().unwrap_or(0))))
                .collect::<serde_json::Map<_, _>>()
        };
        let groups: Vec<_> = self
            .by_group()
            .iter()
            .map(|((policy, mode), m)| json!({"policy": policy, "growth": mode, "counts": counts(m)}))
            .collect();
        let runs: Vec<_> = self
            .runs
            .iter()
            .map(|r| {
                json!({
                    "run": r.program.index,
                    "cmdline": r.program.cmdline(),
                    "policy": r.program.policy,
                    "growth": r.program.mode,
                    "expect": r.program.expect.name(),
                    "planted": r.planted,
                    "classification": r.judgement.class.name(),
                    "detail": r.judgement.detail,
                    "accel": r.accel.name(),
                    "boot": r.boot.name(),
                    "boot_note": r.boot_note,
                    "secs": r.elapsed.as_secs_f64(),
                    "repro": r.repro.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        let v = json!({
            "seed": self.seed,
            "jobs": self.jobs,
            "runs": self.runs.len(),
            "failures": self.failures().len(),
            "boot": self.boots(),
            "wall_secs": self.wall.as_secs_f64(),
            "runs_per_minute": self.per_minute(),
            "mean_run_secs": self.mean_run_secs(),
            "counts": counts(&self.counts()),
            "by_policy_growth": groups,
            "results": runs,
        });
        let mut s = serde_json::to_string_pretty(&v).expect("a JSON value serializes");
        s.push('\n');
        s
    }
}
