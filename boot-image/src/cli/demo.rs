//! `cargo lab demo`: the hazard matrix (see `crate::demo`) with a progress bar, the table on
//! stdout, the HTML report and the JSON file; `--narrate` walks it one hazard at a time.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::{build_cmd, note, secs};
use crate::demo::{self, Catalogue, CellResult, DemoConfig, Report, Verdict};
use crate::exit::status;
use crate::harness::Harness;
use crate::out::say;
use crate::qemu::AccelChoice;
use crate::snapshot::BootChoice;
use crate::{Error, paths, setup};

/// `cargo lab demo` options.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct DemoArgs {
    /// Only these hazards (names from the kernel's catalogue), comma-separated
    #[arg(long, value_name = "HAZARD,..", value_delimiter = ',')]
    pub only: Option<Vec<String>>,
    /// Only these stack policies, comma-separated
    #[arg(long, value_name = "POLICY,..", value_delimiter = ',')]
    pub policy: Option<Vec<String>>,
    /// One hazard at a time: its title and story, its cells, the outcome; then wait for
    /// Enter (only when standard input is a terminal)
    #[arg(long)]
    pub narrate: bool,
    /// The JSON file (default: target/stacklab/report/demo.json)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Boot the existing image (no setup, no build)
    #[arg(long)]
    pub no_build: bool,
    /// QEMUs at a time (default: the number of cores)
    #[arg(long, value_name = "J")]
    pub jobs: Option<usize>,
    /// Accelerator: auto uses KVM only if a probe boot proves it works
    #[arg(long, value_name = "MODE", value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Per-boot timeout in seconds (a cell that hangs takes this long)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// How cells start: snapshot resumes a saved machine waiting for its command line (no
    /// firmware); auto does that where it works and boots cold otherwise, saying why
    #[arg(long, value_name = "KIND", value_enum, default_value_t = BootChoice::Auto)]
    pub boot: BootChoice,
    /// Testing the checker: document a wrong outcome for the cell HAZARD/POLICY, which must
    /// then be reported as a mismatch
    #[arg(long, value_name = "HAZARD/POLICY", hide = true)]
    pub plant: Option<String>,
}

impl Default for DemoArgs {
    /// What `cargo lab demo` alone means.
    fn default() -> Self {
        DemoArgs {
            only: None,
            policy: None,
            narrate: false,
            json: None,
            no_build: false,
            jobs: None,
            accel: AccelChoice::Auto,
            timeout: 60,
            boot: BootChoice::Auto,
            plant: None,
        }
    }
}

/// `cargo lab demo`: exit 0 if every documented cell matched, 1 if any did not.
pub fn demo_cmd(a: &DemoArgs) -> Result<i32, Error> {
    let (elf, image) = if a.no_build {
        (paths::kernel_elf(false), paths::default_image())
    } else {
        note("setup");
        setup::setup()?;
        build_cmd(false, None)?
    };
    let h = Harness::new(elf, image)?;
    let (accel, reason) = h.accel(a.accel)?;
    note(&format!("accelerator: {} ({reason})", accel.name()));
    let cfg = DemoConfig {
        jobs: a.jobs.unwrap_or_else(crate::stress::default_jobs).max(1),
        accel: a.accel,
        timeout_secs: a.timeout.max(1),
        only: a.only.clone(),
        policies: a.policy.clone(),
        boot: a.boot,
        ..DemoConfig::default()
    };
    super::stress::note_boot_plan(&h, cfg.boot, accel, cfg.memory_mib)?;
    note("reading the kernel's catalogue (one boot)");
    let mut cat = demo::load_catalogue(&h, &cfg)?;
    if let Some(cell) = &a.plant {
        demo::plant(&mut cat, cell).map_err(Error::usage)?;
        note(&format!("planted a wrong expectation for {cell}"));
    }
    let total = cat.hazards.len() * cat.policies.len();
    note(&format!(
        "{} hazards x {} policies = {total} cells, {} at a time, timeout {} s each",
        cat.hazards.len(),
        cat.policies.len(),
        cfg.jobs,
        cfg.timeout_secs
    ));
    let start = Instant::now();
    let results = if a.narrate {
        narrate(&h, &cfg, &cat)?
    } else {
        with_progress(&h, &cfg, &cat, total)?
    };
    let report = Report::new(cat, results, &cfg, start.elapsed());
    say!("{}", report.table())?;
    for r in report.mismatches() {
        say!(
            "MISMATCH {} under {}: {} (documented: {}){}\n  cmdline: {}",
            r.cell.hazard,
            r.cell.policy,
            r.outcome,
            r.cell.expected.as_deref().unwrap_or("-"),
            r.problem
                .as_ref()
                .map_or(String::new(), |p| format!(" [{p}]")),
            r.cell.cmdline
        )?;
    }
    let json = a
        .json
        .clone()
        .unwrap_or_else(|| demo::default_dir().join("demo.json"));
    let html = report.write(&demo::default_dir(), &json)?;
    note(&format!(
        "report: {}; JSON: {}",
        html.display(),
        json.display()
    ));
    Ok(if report.mismatches().is_empty() {
        status::SUCCESS
    } else {
        status::FAILURE
    })
}

/// Every cell at once, with a progress bar on a terminal (a line per cell otherwise).
fn with_progress(
    h: &Harness,
    cfg: &DemoConfig,
    cat: &Catalogue,
    total: usize,
) -> Result<Vec<CellResult>, Error> {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} cells, {msg}, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("0 mismatches");
    bar.enable_steady_tick(Duration::from_millis(500));
    let (mut done, mut bad) = (0, 0);
    let results = demo::run_cells(h, cfg, demo::cells(cat), &mut |r, elapsed| {
        done += 1;
        if r.verdict == Verdict::Mismatch {
            bad += 1;
        }
        bar.set_message(format!("{bad} mismatches"));
        bar.inc(1);
        if !tty {
            note(&format!(
                "{done}/{total} cells, {bad} mismatches, {}: {} under {}: {} {}",
                secs(elapsed),
                r.cell.hazard,
                r.cell.policy,
                r.outcome,
                r.verdict.name()
            ));
        }
    });
    bar.finish_and_clear();
    results
}

/// One hazard at a time: story, cells, outcome row; waits for Enter on a terminal.
fn narrate(h: &Harness, cfg: &DemoConfig, cat: &Catalogue) -> Result<Vec<CellResult>, Error> {
    let pause = std::io::stdin().is_terminal();
    let mut all = Vec::new();
    for (i, hz) in cat.hazards.iter().enumerate() {
        say!(
            "\n[{}/{}] {} ({})\n{}\n  runs: {}",
            i + 1,
            cat.hazards.len(),
            hz.title,
            hz.name,
            wrap(&hz.story, 88, "  "),
            hz.run
        )?;
        let one = Catalogue {
            policies: cat.policies.clone(),
            hazards: vec![hz.clone()],
        };
        let rows = demo::run_cells(h, cfg, demo::cells(&one), &mut |_, _| {})?;
        for r in &rows {
            say!(
                "  {:<12} {:<21} {}",
                r.cell.policy,
                crate::demo::cell::category(&r.outcome),
                demo_cell_line(r)
            )?;
        }
        all.extend(rows);
        if pause && i + 1 < cat.hazards.len() {
            eprint!("press Enter for the next hazard ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
        }
    }
    Ok(all)
}

fn demo_cell_line(r: &CellResult) -> String {
    format!(
        "{}  [{}]",
        crate::demo::matrix_outcome(r),
        crate::demo::matrix_cost(r)
    )
}

/// `text` in lines of at most `width` characters (longer words stay whole), each indented.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn stories_are_wrapped_for_a_terminal() {
        let w = wrap("one two three four five six", 12, "  ");
        assert_eq!(w, "  one two\n  three four\n  five six");
        assert!(w.lines().all(|l| l.len() <= 12));
        assert_eq!(
            wrap("averyveryverylongword x", 8, ""),
            "averyveryverylongword\nx"
        );
        assert_eq!(wrap("", 8, "  "), "");
    }
}
