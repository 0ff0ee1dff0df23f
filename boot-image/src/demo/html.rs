//! The report as one self-contained HTML file: inline CSS and SVG, no scripts, no external
//! references. Every piece of text from the kernel or the catalogue goes through [`escape`].

use std::fmt::Write;

use super::Report;
use super::cell::{CellResult, Verdict, category};
use super::matrix::{cost_text, mark};
use super::svg;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 sans-serif;margin:24px;color:#222}\
table.m{border-collapse:collapse}table.m td,table.m th{border:1px solid #bbb;padding:4px 6px;vertical-align:top}\
.completed{background:#d9f2d9}.aborted{background:#fde2c8}.detected{background:#fff3b0}\
.refused{background:#dde7f7}.hang{background:#f4c7c7}.failed{background:#f4c7c7}\
td.mismatch{outline:3px solid #c00;outline-offset:-3px}.cost{color:#555;font-size:12px}\
.ax{font:10px sans-serif}.charts{display:flex;flex-wrap:wrap;gap:12px}\
.reports{display:flex;flex-wrap:wrap;gap:12px}.reports pre{background:#f6f6f6;padding:8px;font-size:11px;\
max-width:440px;overflow:auto;border:1px solid #ccc}.legend span{padding:2px 6px;margin-right:6px}";

fn css_class(outcome: &str) -> &'static str {
    match category(outcome) {
        "completed" => "completed",
        "aborted with report" => "aborted",
        "corrupted, detected" => "detected",
        "refused" => "refused",
        "hang or triple fault" => "hang",
        _ => "failed",
    }
}

fn cell_html(out: &mut String, r: &CellResult) {
    let mism = if r.verdict == Verdict::Mismatch {
        " mismatch"
    } else {
        ""
    };
    let _ = write!(
        out,
        r#"<td class="{}{mism}" title="{}">{} {}<br><span class="cost">{}</span>"#,
        css_class(&r.outcome),
        escape(&r.cell.cmdline),
        mark(r.verdict),
        escape(&r.outcome),
        escape(&cost_text(r))
    );
    if let (Verdict::Mismatch, Some(e)) = (r.verdict, &r.cell.expected) {
        let _ = write!(out, r#"<br><b>expected {}</b>"#, escape(e));
    }
    out.push_str("</td>");
}

fn fatal_html(out: &mut String, r: &CellResult) {
    let Some(f) = &r.fatal else { return };
    let mut text = format!("{} under {}\n", r.cell.hazard, r.cell.policy);
    if let Some(o) = f.record.json.as_object() {
        for (k, v) in o.iter().filter(|(k, _)| *k != "kind" && *k != "backtrace") {
            let v = v.as_str().map_or_else(|| v.to_string(), String::from);
            let _ = writeln!(text, "{k:>12}: {v}");
        }
    }
    if let Some(rip) = &f.rip {
        let _ = writeln!(text, "{:>12}: {rip}", "rip is in");
    }
    if !f.backtrace.is_empty() {
        text += "backtrace:\n";
        // A recursion repeats one frame many times: one line per run of equal frames.
        let mut i = 0;
        for run in f.backtrace.chunk_by(|a, b| a == b) {
            let (a, name) = &run[0];
            let name = name.as_deref().unwrap_or("?");
            match run.len() {
                1 => _ = writeln!(text, "  #{i} {a:#x} {name}"),
                n => _ = writeln!(text, "  #{i}..#{} {a:#x} {name} (x{n})", i + n - 1),
            }
            i += run.len();
        }
    }
    let _ = write!(out, "<pre>{}</pre>", escape(&text));
}

impl Report {
    /// The HTML report.
    pub fn html(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stacklab hazard matrix</title><style>{STYLE}</style></head><body>"
        );
        let _ = write!(
            o,
            "<h1>stacklab: every hazard under every stack policy</h1><p>{}</p>",
            escape(&self.summary_line())
        );
        o += "<p class=\"legend\">";
        for (c, name) in [
            ("completed", "completed right"),
            ("aborted", "aborted with report"),
            ("detected", "corrupted, detected"),
            ("refused", "refused"),
            ("hang", "hang, triple fault or failed"),
        ] {
            let _ = write!(
                o,
                r#"<span class="{c}" style="display:inline-block"><span>{name}</span></span>"#
            );
        }
        o += "✓ as documented, ✗ not as documented (red frame), · nothing documented</p>";
        o += r#"<table class="m"><tr><th>hazard</th>"#;
        for p in &self.catalogue.policies {
            let _ = write!(
                o,
                r#"<th title="{}">{}</th>"#,
                escape(&format!("{}: {}", p.title, p.setup)),
                escape(&p.name)
            );
        }
        o += "</tr>";
        for h in &self.catalogue.hazards {
            let _ = write!(
                o,
                r#"<tr><th title="{}">{}</th>"#,
                escape(&h.title),
                escape(&h.name)
            );
            for p in &self.catalogue.policies {
                match self.get(&h.name, &p.name) {
                    Some(r) => cell_html(&mut o, r),
                    None => o += "<td>not run</td>",
                }
            }
            o += "</tr>";
        }
        o += "</table>";
        o += "<h2>Stack pages mapped per thread over time</h2><p>For each policy, the cell with the most growth events (one line per stack slot).</p><div class=\"charts\">";
        for p in &self.catalogue.policies {
            let best = self
                .results
                .iter()
                .filter(|r| r.cell.policy == p.name)
                .max_by_key(|r| r.trace.len());
            let (label, trace) = match best {
                Some(r) if !r.trace.is_empty() => (
                    format!("{} — {}", p.name, r.cell.hazard),
                    r.trace.as_slice(),
                ),
                _ => (format!("{} — no growth", p.name), &[][..]),
            };
            let _ = write!(
                o,
                "<figure><figcaption>{}</figcaption>{}</figure>",
                escape(&label),
                svg::pages_over_time(&label, trace)
            );
        }
        o += "</div><h2>Growth cost per path</h2><p>Mean handler cycles per growth event, over every cell that reached its counters.</p>";
        o += &svg::cost_per_path(&self.path_costs());
        o += "<h2>Overflow reports side by side</h2><div class=\"reports\">";
        for p in &self.catalogue.policies {
            if let Some(r) = self
                .results
                .iter()
                .filter(|r| r.cell.policy == p.name && r.fatal.is_some())
                .min_by_key(|r| r.outcome != "abort:stack-overflow")
            {
                fatal_html(&mut o, r);
            }
        }
        o += "</div><h2>The hazards</h2><dl>";
        for h in &self.catalogue.hazards {
            let _ = write!(
                o,
                "<dt><b>{}</b>: {} (<code>{}</code>)</dt><dd>{}</dd>",
                escape(&h.name),
                escape(&h.title),
                escape(&h.run),
                escape(&h.story)
            );
        }
        o += "</dl></body></html>\n";
        o
    }

    /// (path, mean cycles per event, events) over every cell, paths with events only.
    pub fn path_costs(&self) -> Vec<(String, u64, u64)> {
        let mut acc: Vec<(String, u64, u64)> = Vec::new();
        for p in self.results.iter().flat_map(|r| &r.paths) {
            match acc.iter_mut().find(|a| a.0 == p.path) {
                Some(a) => {
                    a.1 += p.avg_cycles * p.events;
                    a.2 += p.events;
                }
                None => acc.push((p.path.clone(), p.avg_cycles * p.events, p.events)),
            }
        }
        acc.into_iter()
            .filter(|a| a.2 > 0)
            .map(|(p, c, e)| (p, c / e, e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::report;
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain µs"), "plain µs");
    }

    #[test]
    fn the_report_is_self_contained_and_escaped() {
        let h = report().html();
        assert!(h.starts_with("<!DOCTYPE html>") && h.ends_with("</html>\n"));
        let lower = h.to_ascii_lowercase();
        for bad in ["src=", "href=", "<script", "<link", "@import", "url("] {
            assert!(!lower.contains(bad), "{bad} in the report");
        }
        assert!(!lower.contains("http:") && !lower.contains("https:"));
        // Catalogue text is escaped, never markup.
        assert!(h.contains("Deep &lt;recursion&gt;"), "title escaped");
        assert!(
            h.contains("A &quot;deep&quot; call &amp; more."),
            "story escaped"
        );
        assert!(h.contains("&lt;deep&gt;"), "kernel text escaped");
        assert!(!h.contains("<deep>") && !h.contains("<recursion>"));
        // One coloured cell per matrix entry, the mismatch framed with its expectation.
        assert_eq!(h.matches("<td class=").count(), 4);
        assert_eq!(h.matches(" mismatch\"").count(), 1);
        assert!(h.contains("<b>expected ok</b>"));
        assert_eq!(
            h.matches("<svg").count(),
            3,
            "two policies' traces and the cost chart"
        );
        assert_eq!(
            h.matches("<pre>").count(),
            2,
            "one overflow report per policy"
        );
        assert_eq!(report().path_costs(), vec![("pf-ist".to_string(), 2500, 4)]);
    }
}
