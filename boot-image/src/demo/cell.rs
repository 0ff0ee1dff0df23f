//! One cell of the matrix: a hazard under a policy, one boot. What it did is observed from
//! its records with the stress runs' classification (`stress::classify::observe`), compared
//! with the catalogue's expectation, and its cost read from the `stats` and `growth-event`
//! records.

use std::time::Duration;

use crate::exit::KernelExit;
use crate::record::Record;
use crate::stress::classify::observe;
use crate::symbols::Symbolizer;

/// Commands the demo puts in front of every cell: the kernel keeps a trace of growth events.
pub const PROLOGUE: &str = "growth-trace on";
/// The command the demo puts after every cell: growth counters and the trace (not reached
/// when the cell stops the machine).
pub const EPILOGUE: &str = "stats";

/// What to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The hazard (row).
    pub hazard: String,
    /// The policy (column).
    pub policy: String,
    /// `<setup>; <run>`, as the catalogue defines the cell.
    pub cmdline: String,
    /// The documented outcome, if the catalogue states one.
    pub expected: Option<String>,
}

impl Cell {
    /// The command line actually booted: the cell between [`PROLOGUE`] and [`EPILOGUE`].
    pub fn boot_cmdline(&self) -> String {
        format!("{PROLOGUE}; {}; {EPILOGUE}", self.cmdline)
    }
}

/// How a cell's outcome compares with its expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As documented.
    Match,
    /// Not as documented: the demo fails.
    Mismatch,
    /// The catalogue states nothing for this cell.
    Undocumented,
}

impl Verdict {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::Undocumented => "undocumented",
        }
    }
}

/// Compares an observed outcome with the documented one (exactly: the same word).
pub fn verdict(expected: Option<&str>, outcome: &str) -> Verdict {
    match expected {
        None => Verdict::Undocumented,
        Some(e) if e == outcome => Verdict::Match,
        Some(_) => Verdict::Mismatch,
    }
}

/// The broad kind of an outcome, for colours and the legend.
pub fn category(outcome: &str) -> &'static str {
    match outcome.split_once(':').map_or(outcome, |(k, _)| k) {
        "ok" => "completed",
        "abort" => "aborted with report",
        "detected" => "corrupted, detected",
        "refused" => "refused",
        "hang" | "triple-fault" => "hang or triple fault",
        "bad-command" => "bad command",
        _ => "failed",
    }
}

/// What growth cost in one cell (zero when it stopped before `stats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    /// Growth events on every growth path.
    pub growth_events: u64,
    /// Pages they mapped.
    pub pages_mapped: u64,
    /// Mean handler cycles per growth event (0 without events).
    pub avg_cycles: u64,
    /// The same in nanoseconds, from the `ready` record's TSC frequency.
    pub avg_ns: f64,
    /// Whether the `stats` record was reached.
    pub measured: bool,
    /// The stack's high-water mark in bytes from the fatal report, if it has one.
    pub high_water: Option<u64>,
}

/// Growth cost of one path in one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct PathCost {
    /// The path (`pf-ist`, `df-recover`, ...).
    pub path: String,
    /// Events.
    pub events: u64,
    /// Mean handler cycles.
    pub avg_cycles: u64,
}

/// One growth event of the kernel's trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TracePoint {
    /// Time since boot, ns.
    pub t_ns: f64,
    /// The stack slot (one per live thread).
    pub slot: u64,
    /// Pages mapped on that stack after the event.
    pub pages: u64,
}

/// A fatal report, symbolized.
#[derive(Clone, Debug, PartialEq)]
pub struct Fatal {
    /// The whole `abort` record.
    pub record: Record,
    /// `rip` as `name+0xoff`, if known.
    pub rip: Option<String>,
    /// Each backtrace address with its function, if known.
    pub backtrace: Vec<(u64, Option<String>)>,
}

/// A finished cell.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// What was booted.
    pub cell: Cell,
    /// The observed outcome (catalogue vocabulary, or `failed:<cmd>`).
    pub outcome: String,
    /// Against the expectation.
    pub verdict: Verdict,
    /// Whether every `result` record said ok.
    pub results_ok: bool,
    /// Growth cost.
    pub cost: Cost,
    /// Per path.
    pub paths: Vec<PathCost>,
    /// The growth trace.
    pub trace: Vec<TracePoint>,
    /// The fatal report, if the cell stopped the machine with one.
    pub fatal: Option<Fatal>,
    /// Why the machine's end was not clean (timeout, reset), if so.
    pub problem: Option<String>,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

/// Judges a finished boot of `cell` (pure: the records, the verdict, the symbols).
pub fn judge(
    cell: Cell,
    exit: KernelExit,
    records: &[Record],
    syms: &Symbolizer,
    elapsed: Duration,
    problem: Option<String>,
) -> CellResult {
    let outcome = observe(exit, records);
    let tsc_hz = records
        .iter()
        .find(|r| r.kind == "ready")
        .and_then(|r| r.u64("tsc_hz"))
        .filter(|&hz| hz > 0);
    let offset = records
        .iter()
        .find(|r| r.kind == "ready")
        .and_then(|r| r.hex("kernel_offset"))
        .unwrap_or(0);
    let ns = |cycles: f64| tsc_hz.map_or(0.0, |hz| cycles * 1e9 / hz as f64);
    let paths: Vec<PathCost> = records
        .iter()
        .filter(|r| r.kind == "stats" && r.str("path").is_some_and(|p| p != "demand"))
        .map(|r| PathCost {
            path: r.str("path").unwrap_or_default().to_string(),
            events: r.u64("events").unwrap_or(0),
            avg_cycles: r.u64("avg_cycles").unwrap_or(0),
        })
        .collect();
    let pages: u64 = records
        .iter()
        .filter(|r| r.kind == "stats" && r.str("path").is_some_and(|p| p != "demand"))
        .map(|r| r.u64("pages").unwrap_or(0))
        .sum();
    let events: u64 = paths.iter().map(|p| p.events).sum();
    let cycles: u64 = paths.iter().map(|p| p.events * p.avg_cycles).sum();
    let avg_cycles = cycles.checked_div(events).unwrap_or(0);
    let cost = Cost {
        growth_events: events,
        pages_mapped: pages,
        avg_cycles,
        avg_ns: ns(avg_cycles as f64),
        measured: !paths.is_empty(),
        high_water: records
            .iter()
            .find(|r| r.kind == "abort")
            .and_then(|a| a.u64("high_water")),
    };
    let trace = records
        .iter()
        .filter(|r| r.kind == "growth-event")
        .map(|r| TracePoint {
            t_ns: ns(r.u64("tsc").unwrap_or(0) as f64),
            slot: r.u64("slot").unwrap_or(0),
            pages: r.u64("pages").unwrap_or(0),
        })
        .collect();
    let fatal = records.iter().find(|r| r.kind == "abort").map(|a| Fatal {
        record: a.clone(),
        rip: a
            .hex("rip")
            .and_then(|rip| syms.describe(rip, offset, false)),
        backtrace: a
            .hex_list("backtrace")
            .into_iter()
            .map(|b| (b, syms.describe(b, offset, true)))
            .collect(),
    });
    let results_ok = records
        .iter()
        .filter(|r| r.kind == "result")
        .all(|r| r.bool("ok") == Some(true));
    CellResult {
        verdict: verdict(cell.expected.as_deref(), &outcome),
        cell,
        outcome,
        results_ok,
        cost,
        paths,
        trace,
        fatal,
        problem,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExitCode;

    fn recs(lines: &[&str]) -> Vec<Record> {
        lines
            .iter()
            .map(|l| Record::parse_json(l).unwrap())
            .collect()
    }

    fn cell(expected: Option<&str>) -> Cell {
        Cell {
            hazard: "deep-recursion".into(),
            policy: "pf-ist".into(),
            cmdline: "policy grow 4K 32K; growth pf-ist; recurse 40 256".into(),
            expected: expected.map(String::from),
        }
    }

    #[test]
    fn expectation_matching_is_exact() {
        assert_eq!(verdict(Some("ok"), "ok"), Verdict::Match);
        assert_eq!(
            verdict(Some("abort:stack-overflow"), "abort:stack-overflow"),
            Verdict::Match
        );
        assert_eq!(
            verdict(Some("abort:stack-overflow"), "abort:exception"),
            Verdict::Mismatch
        );
        assert_eq!(verdict(Some("ok"), "failed:recurse"), Verdict::Mismatch);
        assert_eq!(verdict(None, "hang"), Verdict::Undocumented);
        assert_eq!(category("abort:x"), "aborted with report");
        assert_eq!(category("triple-fault"), "hang or triple fault");
        assert_eq!(category("failed:recurse"), "failed");
        assert_eq!(
            cell(None).boot_cmdline(),
            "growth-trace on; policy grow 4K 32K; growth pf-ist; recurse 40 256; stats"
        );
    }

    #[test]
    fn cost_trace_and_fatal_from_records() {
        let ok = recs(&[
            r#"{"kind":"ready","tsc_hz":2000000000,"kernel_offset":"0x1000"}"#,
            r#"{"kind":"result","cmd":"recurse","ok":true}"#,
            r#"{"kind":"growth-event","tsc":4000,"slot":1,"pages":2}"#,
            r#"{"kind":"growth-event","tsc":6000,"slot":1,"pages":5}"#,
            r#"{"kind":"stats","path":"pf-ist","events":2,"pages":4,"avg_cycles":3000}"#,
            r#"{"kind":"stats","path":"df-recover","events":1,"pages":1,"avg_cycles":6000}"#,
            r#"{"kind":"stats","path":"demand","events":9,"pages":9,"avg_cycles":100}"#,
            r#"{"kind":"result","cmd":"stats","ok":true}"#,
            r#"{"kind":"exit","code":"success"}"#,
        ]);
        let syms = Symbolizer::default();
        let r = judge(
            cell(Some("ok")),
            KernelExit::Kernel(ExitCode::Success),
            &ok,
            &syms,
            Duration::ZERO,
            None,
        );
        assert_eq!(
            (r.outcome.as_str(), r.verdict, r.results_ok),
            ("ok", Verdict::Match, true)
        );
        assert_eq!(
            (r.cost.growth_events, r.cost.pages_mapped, r.cost.avg_cycles),
            (3, 5, 4000)
        );
        assert_eq!(r.cost.avg_ns, 2000.0);
        assert_eq!(r.trace.len(), 2);
        assert_eq!(
            r.trace[1],
            TracePoint {
                t_ns: 3000.0,
                slot: 1,
                pages: 5
            }
        );
        assert!(r.fatal.is_none());
        let syms = Symbolizer::from_symbols(vec![crate::symbols::Sym {
            addr: 0x200,
            size: 0x100,
            name: "kernel::recurse".into(),
        }]);
        let ab = recs(&[
            r#"{"kind":"ready","tsc_hz":2000000000,"kernel_offset":"0x1000"}"#,
            r##"{"kind":"abort","reason":"stack-overflow","via":"#DF","rip":"0x1210","backtrace":["0x1280","0x9999"]}"##,
            r#"{"kind":"exit","code":"abort"}"#,
        ]);
        let r = judge(
            cell(Some("ok")),
            KernelExit::Kernel(ExitCode::Abort),
            &ab,
            &syms,
            Duration::ZERO,
            None,
        );
        assert_eq!(
            (r.outcome.as_str(), r.verdict),
            ("abort:stack-overflow", Verdict::Mismatch)
        );
        assert!(!r.cost.measured);
        assert_eq!(r.cost.high_water, None);
        let f = r.fatal.unwrap();
        assert_eq!(f.rip.as_deref(), Some("kernel::recurse+0x10"));
        assert_eq!(
            f.backtrace[0],
            (0x1280, Some("kernel::recurse+0x80".into()))
        );
        assert_eq!(f.backtrace[1].1, None);
    }
}
