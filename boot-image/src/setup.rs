//! `cargo lab setup`: installs what is missing (toolchains, target, components, QEMU, OVMF),
//! one line per item. [`rust_items`] and [`system_items`] are also what `doctor` reports.

use std::process::{Command, Stdio};

use crate::out::say;
use crate::paths::{KERNEL_TARGET, NIGHTLY, STABLE};
use crate::toolchain::{
    capture, installed_components, installed_targets, list_has_component, list_has_toolchain,
};
use crate::{Error, qemu};

/// Debian package providing `qemu-system-x86_64`.
pub const QEMU_PACKAGE: &str = "qemu-system-x86";

/// One thing setup or doctor checks.
#[derive(Clone, Debug)]
pub struct Item {
    /// What it is, for people.
    pub what: String,
    /// Whether it is installed.
    pub present: bool,
    /// The command that installs it.
    pub fix: String,
    /// Extra detail for doctor (path, version).
    pub detail: String,
}

/// The Rust side: toolchains, target, components.
pub fn rust_items() -> Vec<Item> {
    let list = capture("rustup", &["toolchain", "list"]).unwrap_or_default();
    let mut items = Vec::new();
    let stable = list_has_toolchain(&list, STABLE);
    items.push(Item {
        what: format!("toolchain {STABLE}"),
        present: stable,
        fix: format!("rustup toolchain install {STABLE} --profile minimal --no-self-update"),
        detail: String::new(),
    });
    let (targets, comps) = if stable {
        (installed_targets(STABLE), installed_components(STABLE))
    } else {
        Default::default()
    };
    items.push(Item {
        what: format!("target {KERNEL_TARGET} ({STABLE})"),
        present: stable && targets.lines().any(|t| t.trim() == KERNEL_TARGET),
        fix: format!("rustup target add --toolchain {STABLE} {KERNEL_TARGET}"),
        detail: String::new(),
    });
    for c in ["clippy", "rustfmt"] {
        items.push(Item {
            what: format!("component {c} ({STABLE})"),
            present: stable && list_has_component(&comps, c),
            fix: format!("rustup component add --toolchain {STABLE} {c}"),
            detail: String::new(),
        });
    }
    let nightly = list_has_toolchain(&list, NIGHTLY);
    items.push(Item {
        what: format!("toolchain {NIGHTLY} (image builder)"),
        present: nightly,
        fix: format!("rustup toolchain install {NIGHTLY} --profile minimal --component rust-src --no-self-update"),
        detail: String::new(),
    });
    let ncomps = if nightly {
        installed_components(NIGHTLY)
    } else {
        String::new()
    };
    items.push(Item {
        what: format!("component rust-src ({NIGHTLY})"),
        present: nightly && list_has_component(&ncomps, "rust-src"),
        fix: format!("rustup component add --toolchain {NIGHTLY} rust-src"),
        detail: String::new(),
    });
    items
}

/// QEMU and OVMF. An OVMF override that points nowhere is an error, not a missing package.
pub fn system_items() -> Result<Vec<Item>, Error> {
    let q = qemu::find_qemu();
    let qemu_item = Item {
        what: "qemu-system-x86_64".into(),
        present: q.is_ok(),
        fix: apt_command(&[QEMU_PACKAGE]),
        detail: q
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    if let Err(e) = &q
        && std::env::var_os(qemu::ENV_QEMU).is_some()
    {
        return Err(e.clone());
    }
    let fw = stacklab_ovmf::locate();
    if let Err(
        e @ (stacklab_ovmf::OvmfError::EnvMissing { .. }
        | stacklab_ovmf::OvmfError::EnvIncomplete { .. }),
    ) = &fw
    {
        return Err(Error::env(e.to_string()));
    }
    let ovmf_item = Item {
        what: "OVMF firmware".into(),
        present: fw.is_ok(),
        fix: apt_command(&[stacklab_ovmf::PACKAGE]),
        detail: fw.map(|f| f.to_string()).unwrap_or_default(),
    };
    let mut items = vec![qemu_item, ovmf_item];
    // The tests of `run --shell` type into a tmux pane; those of `run --gdb` drive gdb.
    for (tool, why) in [("tmux", "run --shell tests"), ("gdb", "run --gdb tests")] {
        let found = qemu::which(tool.as_ref());
        items.push(Item {
            what: format!("{tool} ({why})"),
            present: found.is_some(),
            fix: apt_command(&[tool]),
            detail: found.map(|p| p.display().to_string()).unwrap_or_default(),
        });
    }
    Ok(items)
}

fn apt_command(pkgs: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        pkgs.join(" ")
    )
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub(crate) fn run_step(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), Error> {
    let shown = format!("{program} {}", args.join(" "));
    say!("  running: {shown}")?;
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::env(format!("cannot run `{shown}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::env(format!("`{shown}` failed ({status})")))
    }
}

/// Installs whatever is missing; one line per item. Fast when everything is present.
pub fn setup() -> Result<(), Error> {
    if capture("rustup", &["--version"]).is_none() {
        return Err(Error::env(
            "rustup not found: install it from the Rust project's installer first",
        ));
    }
    for item in rust_items() {
        if item.present {
            say!("  ✓ {}: present", item.what)?;
            continue;
        }
        let args: Vec<&str> = item.fix.split_whitespace().collect();
        run_step(args[0], &args[1..], &[])?;
        say!("  ✓ {}: installed", item.what)?;
    }
    // Anything still missing after the installs (e.g. a component of a toolchain just added).
    if let Some(still) = rust_items().into_iter().find(|i| !i.present) {
        return Err(Error::env(format!(
            "{} is still missing after setup; try `{}`",
            still.what, still.fix
        )));
    }

    let items = system_items()?;
    let missing: Vec<&Item> = items.iter().filter(|i| !i.present).collect();
    for i in items.iter().filter(|i| i.present) {
        say!("  ✓ {}: present ({})", i.what, i.detail)?;
    }
    if missing.is_empty() {
        return Ok(());
    }
    // Each item's fix installs one package, the last word of its apt-get command.
    let pkgs: Vec<&str> = missing
        .iter()
        .filter_map(|i| i.fix.split_whitespace().last())
        .collect();
    if !is_root() {
        return Err(Error::env(format!(
            "missing Debian packages {}; install them with: sudo apt-get update && sudo apt-get install -y {}",
            pkgs.join(" "),
            pkgs.join(" ")
        )));
    }
    run_step("apt-get", &["update", "-q"], &[])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(pkgs.iter().copied());
    run_step("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])?;
    for i in system_items()? {
        if !i.present {
            return Err(Error::env(format!(
                "{} is still missing after apt-get install",
                i.what
            )));
        }
        say!("  ✓ {}: installed ({})", i.what, i.detail)?;
    }
    Ok(())
}

/// Installs Debian's `chromium` if it is missing (only the test of the HTML report needs
/// it: `cargo lab setup --with-chromium`); returns its path.
pub fn setup_chromium() -> Result<std::path::PathBuf, Error> {
    use crate::demo::browser;
    if let Some(p) = browser::find() {
        say!("  ✓ chromium: present ({})", p.display())?;
        return Ok(p);
    }
    if !is_root() {
        return Err(Error::env(format!(
            "chromium is missing; install it with: sudo {}",
            apt_command(&[browser::PACKAGE])
        )));
    }
    run_step("apt-get", &["update", "-q"], &[])?;
    run_step(
        "apt-get",
        &[
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            browser::PACKAGE,
        ],
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )?;
    let p = browser::find()
        .ok_or_else(|| Error::env("chromium is still missing after apt-get install"))?;
    say!("  ✓ chromium: installed ({})", p.display())?;
    Ok(p)
}
