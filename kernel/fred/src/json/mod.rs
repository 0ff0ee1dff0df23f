//! The line-oriented JSON driver behind `cargo lab fred [--explain] [FILE]`.
//!
//! One JSON object per input line, one JSON result per output line; blank lines and lines
//! starting with `#` are skipped. Numbers are integers or strings (`"0x…"` hex, or decimal);
//! addresses and quadwords are printed as `"0x…"` strings, small fields as integers. A bad line
//! gives `{"error": "...", "line": N}` naming the field, and the next line is processed.
//!
//! Delivery: `{"op": "deliver", "cpl", "csl", "rsp", "rip", "rflags", "cs", "ss",
//! "event": {"type", "vector", "error_code", "event_data", "ilen"}, "stklvls", "config",
//! "rsp_msrs": [4], "unmapped": [[lo, hi], ...]}` (ranges half-open; optional `"star"`,
//! `"sti_blocking"`, `"wfe"`, `"nested_policy": "any_event" | "hardware_exceptions_only"`).
//!
//! Return: `{"op": "erets" | "eretu", "fred_enabled", "cpl", "csl", "cs", "ss", "rsp",
//! "frame": [8]}` (optional `"star"`).
//!
//! Legacy IDT delivery, for comparison: `{"op": "legacy", "cpl", "rsp", "rip", "rflags", "cs",
//! "ss", "event", "unmapped", "rsp0", "ist": [up to 7], "gate_ist": [[vector, index], ...],
//! "gate_cs", "handler_base"}`; the result has `"ist"` (the gate's index) instead of levels, a
//! frame of 5 or 6 quadwords, and no nested flag.

use std::format;
use std::io::{self, BufRead, Write};
use std::string::{String, ToString};
use std::vec::Vec;

use serde_json::{Map, Value, json};

use crate::deliver::{Frame, NestedPolicy, Options, deliver_with};
use crate::eret::{EretError, erets_with, eretu_with};
use crate::escalate::Attempt;

use crate::legacy::{self, LegacyConfig};
use crate::mem::Unmapped;
use crate::msr::FredMsrs;
use crate::rule::{Rule, Trace};
use crate::state::{CpuState, KERNEL_CS, KERNEL_SS, LINUX_STAR};

mod parse;
use parse::*;

/// How many lines gave a result and how many an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines that gave a result.
    pub ok: usize,
    /// Lines that gave an error object.
    pub errors: usize,
}

/// Runs every line of `input`, writing one result line per case to `output`. `explain` adds
/// a `"steps"` array: each decision, the rule that made it and its source.
pub fn run_lines(
    input: impl BufRead,
    mut output: impl Write,
    explain: bool,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let out = match run_one(text, explain) {
            Ok(v) => {
                summary.ok += 1;
                v
            }
            Err(e) => {
                summary.errors += 1;
                json!({ "error": e, "line": n + 1 })
            }
        };
        writeln!(output, "{out}")?;
    }
    Ok(summary)
}

/// Runs one case (a JSON object as text) and returns its result, or the error message.
pub fn run_one(text: &str, explain: bool) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let op = obj
        .get("op")
        .ok_or("missing field 'op'")?
        .as_str()
        .ok_or("field 'op': expected a string")?;
    let mut steps = Steps(Vec::new());
    let mut out = match op {
        "deliver" => run_deliver(obj, &mut steps)?,
        "erets" | "eretu" => run_return(obj, op == "eretu", &mut steps)?,
        "legacy" => run_legacy(obj, &mut steps)?,
        other => {
            return Err(format!(
                "field 'op': unknown operation '{other}' (deliver, erets, eretu, legacy)"
            ));
        }
    };
    if explain {
        out.insert("steps".to_string(), Value::Array(steps.0));
    }
    Ok(Value::Object(out))
}

struct Steps(Vec<Value>);

impl Trace for Steps {
    fn step(&mut self, rule: Rule, value: u64) {
        self.0.push(json!({
            "rule": rule.name(),
            "value": hex(value),
            "decided": rule.what(),
            "source": rule.source(),
        }));
    }
}

fn hex(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

fn run_deliver(obj: &Map<String, Value>, steps: &mut Steps) -> Result<Map<String, Value>, String> {
    let ctx = parse_context(obj, DELIVER_FIELDS, "a deliver case")?;
    let nested = match obj.get("nested_policy") {
        None => NestedPolicy::AnyEvent,
        Some(Value::String(s)) if s == "any_event" => NestedPolicy::AnyEvent,
        Some(Value::String(s)) if s == "hardware_exceptions_only" => {
            NestedPolicy::HardwareExceptionsOnly
        }
        Some(v) => {
            return Err(format!(
                "field 'nested_policy': expected \"any_event\" or \"hardware_exceptions_only\", got {v}"
            ));
        }
    };

    let d = deliver_with(
        &ctx.state,
        &ctx.event,
        &Unmapped(&ctx.ranges),
        &Options { nested },
        steps,
    );
    let mut out = Map::new();
    out.insert("outcome".into(), d.outcome.name().into());
    if let Some(del) = d.delivered {
        out.insert(
            "delivered_event".into(),
            json!({
                "type": del.event.kind.number(),
                "vector": del.event.vector,
                "nested": del.nested,
            }),
        );
        out.insert("level".into(), del.level.into());
        out.insert("new_csl".into(), del.new_csl.into());
        frame_fields(
            &mut out,
            (del.frame_top, del.new_rsp),
            &del.frame.words,
            del.entry_rip,
        );
    }
    report_tail(&mut out, d.after.cr2, &d.attempts);
    Ok(out)
}

/// Where the frame went, what it holds, where execution continues.
fn frame_fields(out: &mut Map<String, Value>, (top, rsp): (u64, u64), words: &[u64], entry: u64) {
    out.insert("frame_top".into(), hex(top));
    out.insert("new_rsp".into(), hex(rsp));
    out.insert(
        "frame".into(),
        Value::Array(words.iter().map(|&w| hex(w)).collect()),
    );
    out.insert("entry_rip".into(), hex(entry));
}

/// CR2 afterwards and the deliveries that faulted.
fn report_tail(out: &mut Map<String, Value>, cr2: u64, attempts: &crate::escalate::Attempts) {
    out.insert("cr2".into(), hex(cr2));
    out.insert(
        "attempts".into(),
        Value::Array(attempts.iter().map(attempt_json).collect()),
    );
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "type": a.event.kind.number(),
        "vector": a.event.vector,
        "nested": a.nested,
        "level": a.level,
        "frame_top": hex(a.frame_top),
        "fault": {
            "vector": a.fault.vector,
            "error_code": a.fault.error_code,
            "address": hex(a.fault.address),
        },
    })
}

fn run_return(
    obj: &Map<String, Value>,
    user: bool,
    steps: &mut Steps,
) -> Result<Map<String, Value>, String> {
    check_fields(
        obj,
        &[
            "op",
            "fred_enabled",
            "cpl",
            "csl",
            "cs",
            "ss",
            "rsp",
            "frame",
            "star",
        ],
        "a return case",
    )?;
    let fred = boolean(obj, "fred_enabled", true)?;
    let words = quadwords::<8>(obj, "frame")?.ok_or("missing field 'frame'")?;
    let mut state = CpuState::kernel(
        num(obj, "rsp")?.unwrap_or(0),
        0,
        FredMsrs::default(),
        bounded(obj, "csl", 3, 0)? as u8,
    );
    state.cpl = cpl(obj)?;
    state.cs = bounded(obj, "cs", 0xFFFF, KERNEL_CS as u64)? as u16;
    state.ss = bounded(obj, "ss", 0xFFFF, KERNEL_SS as u64)? as u16;
    state.star = num(obj, "star")?.unwrap_or(LINUX_STAR);
    let frame = Frame { words };
    let r = if user {
        eretu_with(&state, &frame, fred, steps)
    } else {
        erets_with(&state, &frame, fred, steps)
    };
    let mut out = Map::new();
    match r {
        Ok(r) => {
            out.insert("outcome".into(), "returned".into());
            out.insert("rip".into(), hex(r.state.rip));
            out.insert("rsp".into(), hex(r.state.rsp));
            out.insert("rflags".into(), hex(r.state.rflags));
            out.insert("csl".into(), r.state.csl().into());
            out.insert("cpl".into(), r.state.cpl.into());
            out.insert("cs".into(), hex(r.state.cs as u64));
            out.insert("ss".into(), hex(r.state.ss as u64));
            out.insert("nmi_unblocked".into(), r.nmi_unblocked.into());
            out.insert("pending_debug".into(), r.pending_debug.into());
            out.insert("sti_blocking".into(), r.state.sti_blocking.into());
        }
        Err(EretError::NotModelled(_)) => {
            return Err(format!(
                "field 'frame': ERETU to CS {:#x} / SS {:#x}, which are not IA32_STAR's flat user selectors; loading them from descriptor tables is not modelled",
                words[2] & 0xFFFF,
                words[5] & 0xFFFF
            ));
        }
        Err(e) => {
            out.insert("outcome".into(), e.name().into());
            out.insert("rule".into(), e.rule().name().into());
            out.insert("reason".into(), e.rule().what().into());
        }
    }
    Ok(out)
}

const LEGACY_FIELDS: &[&str] = &[
    "op",
    "cpl",
    "rsp",
    "rip",
    "rflags",
    "cs",
    "ss",
    "event",
    "unmapped",
    "rsp0",
    "ist",
    "gate_ist",
    "gate_cs",
    "handler_base",
];

fn run_legacy(obj: &Map<String, Value>, steps: &mut Steps) -> Result<Map<String, Value>, String> {
    let ctx = parse_context(obj, LEGACY_FIELDS, "a legacy case")?;
    let mut cfg = LegacyConfig::new(
        num(obj, "rsp0")?.unwrap_or(0),
        num(obj, "handler_base")?.unwrap_or(0),
    );
    cfg.gate_cs = bounded(obj, "gate_cs", 0xFFFF, KERNEL_CS as u64)? as u16;
    if let Some(a) = array(obj, "ist")? {
        if a.len() > 7 {
            return Err(format!(
                "field 'ist': at most 7 values (IST1..IST7), got {}",
                a.len()
            ));
        }
        for (i, v) in a.iter().enumerate() {
            cfg.ist[i] = parse_num(v, &format!("ist[{i}]"))?;
        }
    }
    if let Some(a) = array(obj, "gate_ist")? {
        for (i, g) in a.iter().enumerate() {
            let pair = g.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                format!("field 'gate_ist[{i}]': expected [vector, index], got {g}")
            })?;
            let v = parse_num(&pair[0], &format!("gate_ist[{i}][0]"))?;
            let n = parse_num(&pair[1], &format!("gate_ist[{i}][1]"))?;
            if v > 255 || n > 7 {
                return Err(format!(
                    "field 'gate_ist[{i}]': vector {v} (at most 255) or index {n} (at most 7) out of range"
                ));
            }
            cfg.gate_ist[v as usize] = n as u8;
        }
    }
    let d = legacy::deliver_with(&ctx.state, &cfg, &ctx.event, &Unmapped(&ctx.ranges), steps);
    let mut out = Map::new();
    out.insert("outcome".into(), d.outcome.name().into());
    if let Some(del) = d.delivered {
        out.insert(
            "delivered_event".into(),
            json!({ "type": del.event.kind.number(), "vector": del.event.vector }),
        );
        out.insert("ist".into(), del.ist.into());
        frame_fields(
            &mut out,
            (del.frame_top, del.new_rsp),
            del.frame.words(),
            del.entry_rip,
        );
    }
    report_tail(&mut out, d.after.cr2, &d.attempts);
    Ok(out)
}
