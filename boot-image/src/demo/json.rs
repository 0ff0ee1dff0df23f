//! The matrix as JSON (`--json FILE`): the catalogue, then one object per cell.
//!
//! ```text
//! { "version": 1, "jobs": 2, "wall_secs": 81.3,
//!   "summary": { "cells": 49, "match": 47, "mismatch": 0, "undocumented": 2 },
//!   "policies": [ { "name", "setup", "title" } ],
//!   "hazards": [ { "name", "run", "title", "story", "expect": { "POLICY": "OUTCOME" } } ],
//!   "cells": [ { "hazard", "policy", "cmdline", "expected" (or null), "outcome",
//!                "verdict" (match|mismatch|undocumented), "results_ok",
//!                "cost": { "growth_events", "pages_mapped", "avg_cycles", "avg_ns", "measured",
//!                          "high_water" (of the fatal report, or null) },
//!                "paths": [ { "path", "events", "avg_cycles" } ],
//!                "trace": [ { "t_ns", "slot", "pages" } ],
//!                "abort": the abort record (or null), "problem": text (or null),
//!                "elapsed_secs" } ] }
//! ```

use serde_json::{Value, json};

use super::Report;
use super::cell::CellResult;

/// The version of the shape above.
pub const VERSION: u64 = 1;

fn cell(r: &CellResult) -> Value {
    json!({
        "hazard": r.cell.hazard,
        "policy": r.cell.policy,
        "cmdline": r.cell.cmdline,
        "expected": r.cell.expected,
        "outcome": r.outcome,
        "verdict": r.verdict.name(),
        "results_ok": r.results_ok,
        "cost": {
            "growth_events": r.cost.growth_events,
            "pages_mapped": r.cost.pages_mapped,
            "avg_cycles": r.cost.avg_cycles,
            "avg_ns": r.cost.avg_ns,
            "measured": r.cost.measured,
            "high_water": r.cost.high_water,
        },
        "paths": r.paths.iter().map(|p| json!({
            "path": p.path, "events": p.events, "avg_cycles": p.avg_cycles,
        })).collect::<Vec<_>>(),
        "trace": r.trace.iter().map(|t| json!({
            "t_ns": t.t_ns, "slot": t.slot, "pages": t.pages,
        })).collect::<Vec<_>>(),
        "abort": r.fatal.as_ref().map(|f| f.record.json.clone()),
        "problem": r.problem,
        "elapsed_secs": r.elapsed.as_secs_f64(),
    })
}

impl Report {
    /// The report as a JSON value (shape in this module's documentation).
    pub fn to_json(&self) -> Value {
        let count = |v: &str| {
            self.results
                .iter()
                .filter(|r| r.verdict.name() == v)
                .count()
        };
        json!({
            "version": VERSION,
            "jobs": self.jobs,
            "wall_secs": self.wall.as_secs_f64(),
            "summary": {
                "cells": self.results.len(),
                "match": count("match"),
                "mismatch": count("mismatch"),
                "undocumented": count("undocumented"),
            },
            "policies": self.catalogue.policies.iter().map(|p| json!({
                "name": p.name, "setup": p.setup, "title": p.title,
            })).collect::<Vec<_>>(),
            "hazards": self.catalogue.hazards.iter().map(|h| json!({
                "name": h.name, "run": h.run, "title": h.title, "story": h.story,
                "expect": h.expect.iter().map(|(p, o)| (p.clone(), Value::from(o.clone())))
                    .collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "cells": self.results.iter().map(cell).collect::<Vec<_>>(),
        })
    }

    /// [`Report::to_json`], pretty-printed, with a final newline.
    pub fn to_json_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::report;
    use super::*;

    #[test]
    fn json_shape() {
        let v: Value = serde_json::from_str(&report().to_json_text()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["summary"],
            json!({"cells": 4, "match": 2, "mismatch": 1, "undocumented": 1})
        );
        assert_eq!(v["policies"][0]["name"], "fixed-16k");
        assert_eq!(
            v["hazards"][0]["expect"],
            json!({"fixed-16k": "abort:stack-overflow", "pf-ist": "ok"})
        );
        let cells = v["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 4);
        let c = &cells[1];
        assert_eq!(c["hazard"], "deep-recursion");
        assert_eq!(c["policy"], "pf-ist");
        assert_eq!(
            c["cmdline"],
            "policy grow 4K 32K; growth pf-ist; recurse 100 256"
        );
        assert_eq!(c["expected"], "ok");
        assert_eq!(c["outcome"], "abort:stack-overflow");
        assert_eq!(c["verdict"], "mismatch");
        assert_eq!(c["abort"]["via"], "#DF");
        assert_eq!(c["cost"]["high_water"], 16248);
        assert_eq!(cells[3]["cost"]["high_water"], Value::Null);
        let ok = &cells[3];
        assert_eq!(ok["cost"]["growth_events"], 2);
        assert_eq!(ok["cost"]["avg_ns"], 2500.0);
        assert_eq!(
            ok["trace"][1],
            json!({"t_ns": 3000.0, "slot": 2, "pages": 4})
        );
        assert_eq!(ok["abort"], Value::Null);
        assert_eq!(cells[2]["expected"], Value::Null);
        assert_eq!(cells[2]["verdict"], "undocumented");
    }
}
