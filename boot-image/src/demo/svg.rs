//! The report's charts as inline SVG (no scripts, no external assets): stack pages mapped per
//! thread over time for one cell, and growth cost per path.

use std::fmt::Write;

use super::cell::TracePoint;
use super::html::escape;

const W: f64 = 360.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

fn frame(out: &mut String, label: &str, x_label: &str, y_label: &str, x_max: f64, y_max: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        escape(label)
    );
    let (x0, y0) = (LEFT, H - BOTTOM);
    let _ = write!(
        out,
        r##"<line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="#444"/><line x1="{x0}" y1="8" x2="{x0}" y2="{y0}" stroke="#444"/>"##,
        W - 8.0
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" class="ax" text-anchor="end">{}</text><text x="{}" y="{}" class="ax">0</text>"#,
        W - 8.0,
        H - 6.0,
        escape(&format!("{x_label} (max {x_max:.0})")),
        x0 - 4.0,
        y0 + 12.0
    );
    let _ = write!(
        out,
        r#"<text x="4" y="14" class="ax">{}</text>"#,
        escape(&format!("{y_label} (max {y_max:.0})"))
    );
}

fn sx(x: f64, max: f64) -> f64 {
    LEFT + (W - 8.0 - LEFT) * if max > 0.0 { x / max } else { 0.0 }
}

fn sy(y: f64, max: f64) -> f64 {
    // 32 px above the tallest value: room for the axis label and a bar's value.
    (H - BOTTOM) - (H - BOTTOM - 32.0) * if max > 0.0 { y / max } else { 0.0 }
}

/// Stack pages mapped per thread (stack slot) over time: a step line per slot, time in
/// microseconds since the first event.
pub fn pages_over_time(label: &str, trace: &[TracePoint]) -> String {
    let mut out = String::new();
    let t0 = trace.iter().map(|t| t.t_ns).fold(f64::INFINITY, f64::min);
    let t_max = trace
        .iter()
        .map(|t| (t.t_ns - t0) / 1000.0)
        .fold(0.0, f64::max);
    let p_max = trace.iter().map(|t| t.pages).max().unwrap_or(0) as f64;
    frame(&mut out, label, "µs", "pages", t_max, p_max);
    if trace.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="ax">no growth events</text>"#,
            LEFT + 10.0,
            H / 2.0
        );
    }
    let mut slots: Vec<u64> = trace.iter().map(|t| t.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    for (i, slot) in slots.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts = String::new();
        let mut last: Option<(f64, f64)> = None;
        for t in trace.iter().filter(|t| t.slot == *slot) {
            let (x, y) = (sx((t.t_ns - t0) / 1000.0, t_max), sy(t.pages as f64, p_max));
            if let Some((_, ly)) = last {
                let _ = write!(pts, "{x:.1},{ly:.1} ");
            }
            let _ = write!(pts, "{x:.1},{y:.1} ");
            last = Some((x, y));
        }
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}" class="ax" fill="{colour}">slot {slot}</text>"#,
            pts.trim_end(),
            W - 60.0,
            24.0 + 12.0 * i as f64
        );
    }
    out += "</svg>";
    out
}

/// Mean handler cycles per growth path (a bar each, labelled with the cycles and the number
/// of events behind the mean).
pub fn cost_per_path(bars: &[(String, u64, u64)]) -> String {
    let mut out = String::new();
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0) as f64;
    frame(
        &mut out,
        "growth cost per path",
        "path",
        "cycles per event",
        bars.len() as f64,
        max,
    );
    let slot = (W - 8.0 - LEFT) / bars.len().max(1) as f64;
    for (i, (path, cycles, events)) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let y = sy(*cycles as f64, max);
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" class="ax" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" class="ax" text-anchor="middle">{}</text>"#,
            slot * 0.7,
            (H - BOTTOM) - y,
            COLOURS[i % COLOURS.len()],
            x + slot * 0.35,
            H - BOTTOM + 12.0,
            escape(path),
            x + slot * 0.35,
            y - 3.0,
            escape(&format!("{cycles} ({events} ev)"))
        );
    }
    out += "</svg>";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_closed_svg_with_escaped_labels() {
        let t = [
            TracePoint {
                t_ns: 1000.0,
                slot: 1,
                pages: 2,
            },
            TracePoint {
                t_ns: 5000.0,
                slot: 1,
                pages: 4,
            },
            TracePoint {
                t_ns: 3000.0,
                slot: 3,
                pages: 1,
            },
        ];
        let s = pages_over_time("a<b", &t);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"), "{s}");
        assert!(s.contains(r#"aria-label="a&lt;b""#), "{s}");
        assert_eq!(s.matches("<polyline").count(), 2);
        // A step: the second point of slot 1 is preceded by one at the old height.
        assert!(
            s.contains(&format!(
                "{:.1},{:.1} {:.1},{:.1}",
                LEFT,
                sy(2.0, 4.0),
                sx(4.0, 4.0),
                sy(2.0, 4.0)
            )),
            "{s}"
        );
        assert!(pages_over_time("x", &[]).contains("no growth events"));
        let c = cost_per_path(&[("pf-ist".into(), 3000, 4), ("df-recover".into(), 6000, 2)]);
        assert_eq!(c.matches("<rect").count(), 2);
        assert!(c.contains("6000 (2 ev)"), "{c}");
    }
}
