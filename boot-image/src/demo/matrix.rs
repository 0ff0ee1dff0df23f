//! The matrix as a text table: rows hazards, columns policies, each cell two lines (the
//! outcome with its mark, then the cost).

use super::cell::{CellResult, Verdict};
use super::{Cell, Report};

/// The mark of a verdict: `✓` as documented, `✗` not, `·` nothing documented.
pub fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Match => "✓",
        Verdict::Mismatch => "✗",
        Verdict::Undocumented => "·",
    }
}

/// One line of cost: growth events, pages mapped, mean handler time; when the cell stopped
/// before the counters were read, the high-water mark of its fatal report, or `-`.
pub fn cost_text(r: &CellResult) -> String {
    let c = &r.cost;
    if !c.measured {
        return c
            .high_water
            .map_or("-".into(), |hw| format!("hw {:.1} KiB", hw as f64 / 1024.0));
    }
    if c.growth_events == 0 {
        return "no growth".into();
    }
    format!(
        "{} ev {} pg {}",
        c.growth_events,
        c.pages_mapped,
        if c.avg_ns > 0.0 {
            format!("{:.1}us", c.avg_ns / 1000.0)
        } else {
            format!("{}cyc", c.avg_cycles)
        }
    )
}

/// The outcome line of a cell (with what was expected when it differs).
pub fn outcome_text(r: &CellResult) -> String {
    match (r.verdict, &r.cell.expected) {
        (Verdict::Mismatch, Some(e)) => format!("{} {} (want {e})", mark(r.verdict), r.outcome),
        _ => format!("{} {}", mark(r.verdict), r.outcome),
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

impl Report {
    /// The matrix as text, with a summary line.
    pub fn table(&self) -> String {
        let mut rows: Vec<Vec<String>> = vec![];
        let mut head = vec!["hazard".to_string()];
        head.extend(self.catalogue.policies.iter().map(|p| p.name.clone()));
        rows.push(head);
        for h in &self.catalogue.hazards {
            let mut a = vec![h.name.clone()];
            let mut b = vec![String::new()];
            for p in &self.catalogue.policies {
                match self.get(&h.name, &p.name) {
                    Some(r) => {
                        a.push(outcome_text(r));
                        b.push(cost_text(r));
                    }
                    None => {
                        a.push("(not run)".into());
                        b.push(String::new());
                    }
                }
            }
            rows.push(a);
            rows.push(b);
        }
        let cols = rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (n, r) in rows.iter().enumerate() {
            let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| pad(s, *w)).collect();
            out += line.join("  ").trim_end();
            out.push('\n');
            if n == 0 {
                out += &"-".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1));
                out.push('\n');
            }
        }
        out += &self.summary_line();
        out.push('\n');
        out
    }

    /// `N cells: M as documented, K not, U undocumented (wall time, jobs)`.
    pub fn summary_line(&self) -> String {
        let count = |v: Verdict| self.results.iter().filter(|r| r.verdict == v).count();
        format!(
            "{} cells: {} as documented, {} not, {} undocumented ({:.1} s with {} jobs)",
            self.results.len(),
            count(Verdict::Match),
            count(Verdict::Mismatch),
            count(Verdict::Undocumented),
            self.wall.as_secs_f64(),
            self.jobs
        )
    }
}

/// Every cell the report lacks (none after a complete run).
pub fn missing(report: &Report, cells: &[Cell]) -> Vec<Cell> {
    cells
        .iter()
        .filter(|c| report.get(&c.hazard, &c.policy).is_none())
        .cloned()
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::catalogue::{Catalogue, tests::records};
    use super::super::cell::judge;
    use super::super::{DemoConfig, cells};
    use super::*;
    use crate::ExitCode;
    use crate::exit::KernelExit;
    use crate::record::Record;
    use crate::symbols::Symbolizer;
    use std::time::Duration;

    /// A synthetic matrix: deep-recursion aborts under fixed-16k (documented) and pf-ist
    /// (documented ok: a mismatch); irq-at-edge is ok under both (fixed-16k undocumented).
    pub(crate) fn report() -> Report {
        let cat = Catalogue::from_records(&records()).unwrap();
        let r = |l: &[&str]| -> Vec<Record> {
            l.iter().map(|x| Record::parse_json(x).unwrap()).collect()
        };
        let abort = r(&[
            r#"{"kind":"ready","tsc_hz":1000000000}"#,
            r##"{"kind":"abort","reason":"stack-overflow","via":"#DF","thread":"<deep>","high_water":16248,"rip":"0x10","backtrace":["0x20","0x20","0x30"]}"##,
        ]);
        let ok = r(&[
            r#"{"kind":"ready","tsc_hz":1000000000}"#,
            r#"{"kind":"result","cmd":"edge-irq","ok":true}"#,
            r#"{"kind":"growth-event","tsc":1000,"slot":2,"pages":2}"#,
            r#"{"kind":"growth-event","tsc":3000,"slot":2,"pages":4}"#,
            r#"{"kind":"stats","path":"pf-ist","events":2,"pages":3,"avg_cycles":2500}"#,
        ]);
        let results = cells(&cat)
            .into_iter()
            .map(|c| {
                let (exit, recs) = if c.hazard == "deep-recursion" {
                    (ExitCode::Abort, &abort)
                } else {
                    (ExitCode::Success, &ok)
                };
                judge(
                    c,
                    KernelExit::Kernel(exit),
                    recs,
                    &Symbolizer::default(),
                    Duration::from_secs(5),
                    None,
                )
            })
            .collect();
        Report::new(
            cat,
            results,
            &DemoConfig {
                jobs: 2,
                ..DemoConfig::default()
            },
            Duration::from_secs(10),
        )
    }

    #[test]
    fn the_matrix_has_every_cell_marked() {
        let rep = report();
        assert_eq!(rep.results.len(), 4);
        assert!(missing(&rep, &cells(&rep.catalogue)).is_empty());
        let t = rep.table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("hazard"), "{t}");
        assert!(
            lines[0].contains("fixed-16k") && lines[0].contains("pf-ist"),
            "{t}"
        );
        assert!(lines[2].contains("✓ abort:stack-overflow"), "{t}");
        assert!(lines[2].contains("✗ abort:stack-overflow (want ok)"), "{t}");
        assert!(
            lines[4].contains("· ok") && lines[4].contains("✓ ok"),
            "{t}"
        );
        assert!(lines[5].contains("2 ev 3 pg 2.5us"), "{t}");
        assert!(lines[3].starts_with("                hw 15.9 KiB"), "{t}");
        assert_eq!(
            lines.last().unwrap(),
            &"4 cells: 2 as documented, 1 not, 1 undocumented (10.0 s with 2 jobs)"
        );
        let bad = rep.mismatches();
        assert_eq!(bad.len(), 1);
        assert_eq!(
            (bad[0].cell.hazard.as_str(), bad[0].cell.policy.as_str()),
            ("deep-recursion", "pf-ist")
        );
    }
}
