//! The hazard matrix, every cell asserted: the kernel's catalogue is booted once, then every
//! hazard under every stack policy (one boot each, through `boot_image::demo`, the code of
//! `cargo lab demo`). Every cell must end as the catalogue documents it; the JSON file must
//! hold every hazard x policy exactly once; the HTML report must load in headless Chromium
//! without a console error (Chromium is installed on demand through the host tool).

use std::collections::HashMap;
use std::sync::OnceLock;

use boot_image::demo::{self, DemoConfig, Report, Verdict};
use serde_json::Value;
use stacklab_tests::*;

/// The whole matrix, run once for the tests of this file.
fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        let h = Harness::get();
        let cfg = DemoConfig {
            // Generous: the machines are shared, and a `hang` cell takes the whole timeout.
            timeout_secs: 120,
            ..DemoConfig::default()
        };
        let cat = demo::load_catalogue(h, &cfg).expect("the kernel's catalogue");
        let start = std::time::Instant::now();
        let results = demo::run_cells(h, &cfg, demo::cells(&cat), &mut |_, _| {}).unwrap();
        let r = Report::new(cat, results, &cfg, start.elapsed());
        eprintln!("{}", r.table());
        r
    })
}

fn out_dir() -> std::path::PathBuf {
    boot_image::paths::stacklab_dir().join("test-demo")
}

#[test]
fn every_cell_ends_as_documented() {
    let r = report();
    let cells = demo::cells(&r.catalogue);
    assert!(demo::missing(r, &cells).is_empty());
    assert_eq!(r.results.len(), cells.len());
    assert!(
        r.catalogue.hazards.len() >= 5 && r.catalogue.policies.len() == 7,
        "{:?}",
        r.catalogue
    );
    let mut wrong = Vec::new();
    for c in &r.results {
        // Every cell is documented, and ends as documented.
        if c.cell.expected.is_none() || c.verdict != Verdict::Match {
            wrong.push(format!(
                "{} under {}: {} (documented: {:?}) {:?} cmdline {:?}",
                c.cell.hazard,
                c.cell.policy,
                c.outcome,
                c.cell.expected,
                c.problem,
                c.cell.boot_cmdline()
            ));
        }
        if c.outcome == "ok" {
            assert!(c.results_ok, "{:?}", c);
            assert!(c.cost.measured, "an ok cell reaches `stats`: {c:?}");
        }
        if c.outcome.starts_with("abort:") {
            assert!(c.fatal.is_some(), "{c:?}");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells not as documented:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        r.table()
    );
}

#[test]
fn the_json_holds_every_cell_of_the_catalogue_once() {
    let r = report();
    let dir = out_dir();
    let json = dir.join("demo.json");
    r.write(&dir, &json).unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for c in v["cells"].as_array().unwrap() {
        let key = (
            c["hazard"].as_str().unwrap().to_string(),
            c["policy"].as_str().unwrap().to_string(),
        );
        *count.entry(key).or_default() += 1;
        let h = r.catalogue.hazard(c["hazard"].as_str().unwrap()).unwrap();
        assert_eq!(
            c["expected"].as_str(),
            h.expected(c["policy"].as_str().unwrap()),
            "{c}"
        );
        assert_eq!(c["verdict"], "match", "{c}");
    }
    for h in &r.catalogue.hazards {
        for p in &r.catalogue.policies {
            assert_eq!(
                count.remove(&(h.name.clone(), p.name.clone())),
                Some(1),
                "{} x {}",
                h.name,
                p.name
            );
        }
    }
    assert!(count.is_empty(), "cells outside the catalogue: {count:?}");
    let names = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let hazards: Vec<String> = r.catalogue.hazards.iter().map(|h| h.name.clone()).collect();
    let policies: Vec<String> = r
        .catalogue
        .policies
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names("hazards"), hazards);
    assert_eq!(names("policies"), policies);
    assert_eq!(v["summary"]["mismatch"], 0);
}

#[test]
fn the_html_report_renders_in_headless_chromium_without_console_errors() {
    let r = report();
    let dir = out_dir();
    let html = r.write(&dir, &dir.join("demo.json")).unwrap();
    let text = std::fs::read_to_string(&html).unwrap();
    let lower = text.to_ascii_lowercase();
    for bad in ["src=", "href=", "<script", "http:", "https:"] {
        assert!(!lower.contains(bad), "{bad} in {}", html.display());
    }
    assert_eq!(
        text.matches("<td class=").count(),
        r.results.len(),
        "one coloured cell per matrix entry"
    );
    let browser = boot_image::setup::setup_chromium().expect("chromium (installed on demand)");
    let png = dir.join("demo-report.png");
    let _ = std::fs::remove_file(&png);
    let shot = demo::browser::screenshot(&browser, &html, &png, 1400, 2600).unwrap();
    assert!(
        shot.console_errors().is_empty(),
        "console errors: {:?}\n{}",
        shot.console_errors(),
        shot.log
    );
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 10_000, "a screenshot of {size} bytes");
}
