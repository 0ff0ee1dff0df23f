//! The hazard matrix (`cargo lab demo`): every hazard of the kernel's catalogue under every
//! stack policy, each cell in its own boot (an abort stops the machine), several QEMUs at a
//! time, each outcome checked against the catalogue's expectation; a table, a JSON file and
//! a self-contained HTML report.
//!
//! ```no_run
//! use boot_image::Harness;
//! use boot_image::demo::{DemoConfig, load_catalogue, cells, run_cells, Report};
//! let h = Harness::get();
//! let cfg = DemoConfig::default();
//! let cat = load_catalogue(h, &cfg)?;
//! let results = run_cells(h, &cfg, cells(&cat), &mut |_, _| {})?;
//! let report = Report::new(cat, results, &cfg, std::time::Duration::ZERO);
//! assert!(report.mismatches().is_empty());
//! # Ok::<(), boot_image::Error>(())
//! ```

pub mod browser;
pub mod catalogue;
pub mod cell;
mod html;
mod json;
mod matrix;
mod svg;

use std::time::{Duration, Instant};

use crate::harness::{Harness, RunOptions};
use crate::qemu::{self, AccelChoice};
use crate::snapshot::BootChoice;
use crate::stress::{default_jobs, pool};
use crate::{Error, paths};
pub use catalogue::{Catalogue, Hazard, Policy};
pub use cell::{Cell, CellResult, Verdict};
pub use html::escape;
pub use matrix::{cost_text as matrix_cost, missing, outcome_text as matrix_outcome};

/// The command line that lists the catalogue.
pub const CATALOGUE_CMDLINE: &str = "catalogue";

/// Options of a demo run.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// QEMUs at a time.
    pub jobs: usize,
    /// The accelerator choice for every boot.
    pub accel: AccelChoice,
    /// Per-boot timeout in seconds (a `hang` cell takes this long).
    pub timeout_secs: u64,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Only these hazards (all when `None`).
    pub only: Option<Vec<String>>,
    /// Only these policies (all when `None`).
    pub policies: Option<Vec<String>>,
    /// Cold boots or snapshot starts (default `auto`: snapshot starts where they work).
    pub boot: BootChoice,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            jobs: default_jobs(),
            accel: AccelChoice::Auto,
            timeout_secs: 60,
            memory_mib: qemu::DEFAULT_MEMORY_MIB,
            only: None,
            policies: None,
            boot: BootChoice::Auto,
        }
    }
}

impl DemoConfig {
    fn options(&self, cmdline: String) -> RunOptions {
        RunOptions::new(cmdline)
            .timeout_secs(self.timeout_secs)
            .accel(self.accel)
            .memory_mib(self.memory_mib)
            .boot(self.boot)
    }
}

/// `target/stacklab/report`: the HTML report and the JSON file.
pub fn default_dir() -> std::path::PathBuf {
    paths::stacklab_dir().join("report")
}

/// Boots the kernel's `catalogue` command once and reads it, narrowed to the hazards and
/// policies `cfg` names.
pub fn load_catalogue(h: &Harness, cfg: &DemoConfig) -> Result<Catalogue, Error> {
    let out = h.run(cfg.options(CATALOGUE_CMDLINE.into()))?;
    let all = Catalogue::from_records(&out.records)
        .map_err(|e| Error::usage(format!("cannot read the kernel's catalogue: {e}\n{out:?}")))?;
    all.select(cfg.only.as_deref(), cfg.policies.as_deref())
        .map_err(Error::usage)
}

/// Testing the checker: replaces the documented outcome of the cell `HAZARD/POLICY` with a
/// wrong one (`hang`, or `ok` where `hang` was documented), so that cell must mismatch.
pub fn plant(cat: &mut Catalogue, cell: &str) -> Result<(), String> {
    let (h, p) = cell
        .split_once('/')
        .ok_or_else(|| format!("'{cell}' is not HAZARD/POLICY"))?;
    if cat.policy(p).is_none() {
        return Err(format!("no policy '{p}' in the catalogue"));
    }
    let hazard = cat
        .hazards
        .iter_mut()
        .find(|x| x.name == h)
        .ok_or_else(|| format!("no hazard '{h}' in the catalogue"))?;
    let wrong = if hazard.expected(p) == Some("hang") {
        "ok"
    } else {
        "hang"
    };
    hazard.expect.retain(|(x, _)| x != p);
    hazard.expect.push((p.to_string(), wrong.to_string()));
    Ok(())
}

/// Every cell of the catalogue: hazards in order, each under every policy.
pub fn cells(cat: &Catalogue) -> Vec<Cell> {
    cat.hazards
        .iter()
        .flat_map(|h| {
            cat.policies.iter().map(move |p| Cell {
                hazard: h.name.clone(),
                policy: p.name.clone(),
                cmdline: format!("{}; {}", p.setup, h.run),
                expected: h.expected(&p.name).map(String::from),
            })
        })
        .collect()
}

/// Boots one cell and judges it.
pub fn run_cell(h: &Harness, cfg: &DemoConfig, cell: Cell) -> Result<CellResult, Error> {
    let start = Instant::now();
    let out = h.run(cfg.options(cell.boot_cmdline()))?;
    Ok(cell::judge(
        cell,
        out.exit,
        &out.records,
        h.symbols(),
        start.elapsed(),
        out.problem,
    ))
}

/// Runs the cells, `cfg.jobs` at a time; `progress(result, elapsed)` after each, on the
/// calling thread. The results come back in the order of `cells`.
pub fn run_cells(
    h: &Harness,
    cfg: &DemoConfig,
    cells: Vec<Cell>,
    progress: &mut dyn FnMut(&CellResult, Duration),
) -> Result<Vec<CellResult>, Error> {
    let start = Instant::now();
    let order = cells.clone();
    let mut done = pool::parallel(
        cfg.jobs,
        cells,
        &|| true,
        &|c| run_cell(h, cfg, c),
        &mut |r: &CellResult| progress(r, start.elapsed()),
    )?;
    done.sort_by_key(|r| order.iter().position(|c| *c == r.cell));
    Ok(done)
}

/// A finished matrix.
#[derive(Clone, Debug)]
pub struct Report {
    /// The catalogue it ran.
    pub catalogue: Catalogue,
    /// Every cell, hazards in order, policies in order within each.
    pub results: Vec<CellResult>,
    /// QEMUs at a time.
    pub jobs: usize,
    /// Wall time of the cells.
    pub wall: Duration,
}

impl Report {
    /// A report of these results.
    pub fn new(
        catalogue: Catalogue,
        results: Vec<CellResult>,
        cfg: &DemoConfig,
        wall: Duration,
    ) -> Report {
        Report {
            catalogue,
            results,
            jobs: cfg.jobs,
            wall,
        }
    }

    /// The cell of `hazard` under `policy`.
    pub fn get(&self, hazard: &str, policy: &str) -> Option<&CellResult> {
        self.results
            .iter()
            .find(|r| r.cell.hazard == hazard && r.cell.policy == policy)
    }

    /// Cells whose outcome is not the documented one.
    pub fn mismatches(&self) -> Vec<&CellResult> {
        self.results
            .iter()
            .filter(|r| r.verdict == Verdict::Mismatch)
            .collect()
    }

    /// Writes `index.html` into `dir` and the JSON file to `json`; returns the HTML's path.
    pub fn write(
        &self,
        dir: &std::path::Path,
        json: &std::path::Path,
    ) -> Result<std::path::PathBuf, Error> {
        let write = |path: &std::path::Path, text: String| -> Result<(), Error> {
            if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::usage(format!("cannot create {}: {e}", d.display())))?;
            }
            std::fs::write(path, text)
                .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))
        };
        let html = dir.join("index.html");
        write(&html, self.html())?;
        write(json, self.to_json_text())?;
        Ok(html)
    }
}
