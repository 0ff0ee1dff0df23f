//! The result protocol on the host side: recognizing `@stacklab {json}` lines, reading their
//! fields, and rendering them for people.
//!
//! The writer side (and the prefix) lives in `stacklab_core::proto`.

use serde_json::Value;
use stacklab_core::proto::RECORD_PREFIX;
use stacklab_core::runs::runs;

use crate::symbols::Symbolizer;

/// One machine-readable record from the serial line.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The `kind` field.
    pub kind: String,
    /// The whole JSON object, `kind` included.
    pub json: Value,
}

impl Record {
    /// Parses the JSON part of a record line (after the prefix).
    pub fn parse_json(text: &str) -> Result<Record, String> {
        let json: Value =
            serde_json::from_str(text.trim()).map_err(|e| format!("bad JSON: {e}"))?;
        let kind = json
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| "record has no string field 'kind'".to_string())?
            .to_string();
        if !json.is_object() {
            return Err("record is not a JSON object".into());
        }
        Ok(Record { kind, json })
    }

    /// A raw field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.json.get(key)
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// An unsigned number field (a JSON number, or a `"0x…"` string).
    pub fn u64(&self, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        v.as_u64().or_else(|| v.as_str().and_then(parse_hex))
    }

    /// A `"0x…"` address field.
    pub fn hex(&self, key: &str) -> Option<u64> {
        parse_hex(self.str(key)?)
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// An array of `"0x…"` strings (e.g. `backtrace`); unparsable entries are skipped.
    pub fn hex_list(&self, key: &str) -> Vec<u64> {
        match self.get(key).and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .filter_map(|v| v.as_str().and_then(parse_hex))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The record as one line of compact JSON.
    pub fn to_json_line(&self) -> String {
        self.json.to_string()
    }
}

/// Parses `0x…` (or `0X…`) hexadecimal.
pub fn parse_hex(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(h, 16).ok()
}

/// What one serial line holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// Human log output (no record prefix).
    Plain(String),
    /// A record; `before` is any text that preceded the prefix on the same line (e.g. firmware
    /// output that did not end with a newline).
    Record {
        /// Text before the prefix on the same line.
        before: String,
        /// The record.
        record: Record,
    },
    /// A line with the prefix whose JSON could not be read.
    Malformed {
        /// The whole line.
        line: String,
        /// Why its JSON could not be read.
        error: String,
    },
}

/// Classifies one serial line (without its line terminator).
pub fn classify(line: &str) -> Line {
    let line = line.trim_end_matches(['\r', '\n']);
    match line.find(RECORD_PREFIX) {
        None => Line::Plain(line.to_string()),
        Some(at) => match Record::parse_json(&line[at + RECORD_PREFIX.len()..]) {
            Ok(record) => Line::Record {
                before: line[..at].to_string(),
                record,
            },
            Err(error) => Line::Malformed {
                line: line.to_string(),
                error,
            },
        },
    }
}

/// Removes terminal control sequences (ESC [ … final byte, other ESC pairs) and stray control
/// characters. OVMF paints its console with these; printed raw they clear the user's screen.
pub fn strip_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // Character-set designations carry one more byte (ESC ( B).
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                Some(_) | None => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text styling: ANSI colors when writing to a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Style {
    /// Use ANSI colors.
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Green (success).
    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    /// Red (failure).
    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
    /// Yellow (warnings).
    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    /// Bold.
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    /// Dim (secondary text).
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// Renders records for people. Remembers the kernel load offset from the `ready` record so
/// abort addresses can be symbolized.
#[derive(Debug)]
pub struct Renderer<'a> {
    /// How to style the text.
    pub style: Style,
    /// The kernel's symbols, if known.
    pub symbols: Option<&'a Symbolizer>,
    /// The load offset from the last `ready` record.
    pub kernel_offset: u64,
}

impl<'a> Renderer<'a> {
    /// A renderer; the load offset is 0 until a `ready` record arrives.
    pub fn new(style: Style, symbols: Option<&'a Symbolizer>) -> Renderer<'a> {
        Renderer {
            style,
            symbols,
            kernel_offset: 0,
        }
    }

    /// Renders one record (possibly several lines, no trailing newline).
    pub fn render(&mut self, r: &Record) -> String {
        let st = self.style;
        match r.kind.as_str() {
            "ready" => {
                if let Some(off) = r.hex("kernel_offset") {
                    self.kernel_offset = off;
                }
                let mut s = format!("  {} kernel ready", st.green("●"));
                if let Some(v) = r.str("version") {
                    s += &format!(" (stacklab {v})");
                }
                if let Some(ns) = r.u64("entry_to_ready_ns") {
                    s += &format!(", {} after entry", human_ns(ns));
                }
                if let Some(hz) = r.u64("tsc_hz") {
                    s += &format!(", TSC {:.2} GHz", hz as f64 / 1e9);
                }
                if let Some(c) = r.str("cmdline") {
                    s += &format!(", cmdline \"{c}\"");
                }
                s
            }
            "result" => {
                let cmd = r.str("cmd").unwrap_or("?");
                let ok = r.bool("ok").unwrap_or(false);
                let mark = if ok { st.green("✓") } else { st.red("✗") };
                let rest = fields_except(r, &["kind", "cmd", "ok", "msg"]);
                let mut s = format!("  {mark} {}", st.bold(cmd));
                match (r.str("msg"), rest.is_empty()) {
                    (Some(m), true) => s += &format!(": {m}"),
                    (Some(m), false) => s += &format!(": {m} ({rest})"),
                    (None, false) => s += &format!(": {rest}"),
                    (None, true) => s += if ok { ": ok" } else { ": not ok" },
                }
                s
            }
            "error" => {
                let cmd = r.str("cmd").unwrap_or("?");
                let msg = r.str("msg").unwrap_or("(no message)");
                format!("  {} {}: {}", st.yellow("!"), st.bold(cmd), st.yellow(msg))
            }
            "abort" => self.render_abort(r),
            "exit" => {
                let code = r.str("code").unwrap_or("?");
                let painted = if code == "success" {
                    st.green(code)
                } else {
                    st.red(code)
                };
                format!("  {} exit: {painted}", st.dim("■"))
            }
            kind => {
                let rest = fields_except(r, &["kind"]);
                if rest.is_empty() {
                    format!("  {kind}")
                } else {
                    format!("  {kind}: {rest}")
                }
            }
        }
    }

    fn render_abort(&self, r: &Record) -> String {
        let st = self.style;
        let reason = r.str("reason").unwrap_or("abort");
        let mut head = format!(
            "  {} {}",
            st.red("✗"),
            st.red(&st.bold(&format!("ABORT ({reason})")))
        );
        let mut what = Vec::new();
        if let Some(name) = r.str("name") {
            what.push(name.to_string());
        }
        if let Some(v) = r.u64("vector") {
            what.push(format!("vector {v}"));
        }
        if let Some(ec) = r.get("error_code") {
            what.push(format!("error code {}", value_text(ec)));
        }
        if !what.is_empty() {
            head += &format!(": {}", what.join(", "));
        }
        let mut lines = vec![head];
        if let Some(m) = r.str("msg") {
            lines.push(format!("    {m}"));
        }
        let mut regs = Vec::new();
        for k in ["rsp", "rflags", "cr2"] {
            if let Some(v) = r.get(k) {
                regs.push(format!("{k}={}", value_text(v)));
            }
        }
        if !regs.is_empty() {
            lines.push(format!("    {}", regs.join("  ")));
        }
        if let Some(Value::Object(m)) = r.get("regs") {
            let all: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", value_text(v)))
                .collect();
            for chunk in all.chunks(4) {
                lines.push(format!("    {}", chunk.join("  ")));
            }
        }
        if let Some(rip) = r.hex("rip") {
            lines.push(format!("    rip {rip:#x} {}", self.sym(rip, false)));
        }
        let bt = r.hex_list("backtrace");
        if !bt.is_empty() {
            lines.push("    backtrace:".into());
            let rip = r.hex("rip");
            let line = |i: usize, a: u64| {
                // Frame 0 may be the faulting RIP itself; the rest are return addresses.
                let ret = !(i == 0 && Some(a) == rip);
                format!("  #{i} {a:#x} {}", self.sym(a, ret))
            };
            for run in runs(&bt) {
                lines.push(line(run.first, run.value));
                if run.folds() {
                    // Deep recursion repeats one frame many times: say so once.
                    let (i, same) = (run.first, run.len - 1);
                    lines.push(format!(
                        "  #{}..#{} same as #{i} ({same} frames)",
                        i + 1,
                        i + same
                    ));
                } else {
                    for i in run.first + 1..run.first + run.len {
                        lines.push(line(i, run.value));
                    }
                }
            }
        }
        let shown = [
            "kind",
            "reason",
            "name",
            "vector",
            "error_code",
            "msg",
            "rsp",
            "rflags",
            "cr2",
            "regs",
            "rip",
            "backtrace",
        ];
        let rest = fields_except(r, &shown);
        if !rest.is_empty() {
            lines.push(format!("    {rest}"));
        }
        lines.join("\n")
    }

    fn sym(&self, addr: u64, return_address: bool) -> String {
        self.symbols
            .and_then(|s| s.describe(addr, self.kernel_offset, return_address))
            .unwrap_or_else(|| "?".into())
    }
}

/// `k=v, k=v` for every field not in `skip`, in record order.
fn fields_except(r: &Record, skip: &[&str]) -> String {
    let Some(obj) = r.json.as_object() else {
        return String::new();
    };
    obj.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}={}", value_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => other.to_string(),
    }
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests;
