//! `cargo lab setup` and `cargo lab doctor`: toolchains, targets, components, QEMU, OVMF.

use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::paths::{self, KERNEL_TARGET, NIGHTLY, STABLE};
use crate::{Error, build, qemu};

/// Debian package providing `qemu-system-x86_64`.
pub const QEMU_PACKAGE: &str = "qemu-system-x86";

fn capture(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `rustup toolchain list` output names this toolchain (`NAME` or `NAME-<host>`).
pub fn list_has_toolchain(list: &str, name: &str) -> bool {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|t| {
            t == name
                || t.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('-') && rest.matches('-').count() >= 3)
        })
}

/// Whether an installed-component list names this component (`NAME` or `NAME-<triple>`).
pub fn list_has_component(list: &str, name: &str) -> bool {
    list.lines().map(str::trim).any(|c| {
        c == name
            || c.strip_prefix(name)
                .is_some_and(|r| r.starts_with('-') && r.matches('-').count() >= 3)
    })
}

/// Whether rustup has this toolchain.
pub fn toolchain_installed(name: &str) -> bool {
    capture("rustup", &["toolchain", "list"]).is_some_and(|l| list_has_toolchain(&l, name))
}

fn installed_targets(tc: &str) -> String {
    capture(
        "rustup",
        &[&format!("+{tc}"), "target", "list", "--installed"],
    )
    .unwrap_or_default()
}

fn installed_components(tc: &str) -> String {
    capture(
        "rustup",
        &[&format!("+{tc}"), "component", "list", "--installed"],
    )
    .unwrap_or_default()
}

/// One thing setup or doctor checks.
#[derive(Clone, Debug)]
pub struct Item {
    pub what: String,
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
    Ok(vec![qemu_item, ovmf_item])
}

fn apt_command(pkgs: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        pkgs.join(" ")
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run_step(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), Error> {
    let shown = format!("{program} {}", args.join(" "));
    println!("  running: {shown}");
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
            println!("  ✓ {}: present", item.what);
            continue;
        }
        let args: Vec<&str> = item.fix.split_whitespace().collect();
        run_step(args[0], &args[1..], &[])?;
        println!("  ✓ {}: installed", item.what);
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
        println!("  ✓ {}: present ({})", i.what, i.detail);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut pkgs = Vec::new();
    for i in &missing {
        pkgs.push(if i.what.starts_with("qemu") {
            QEMU_PACKAGE
        } else {
            stacklab_ovmf::PACKAGE
        });
    }
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
        println!("  ✓ {}: installed ({})", i.what, i.detail);
    }
    Ok(())
}

fn age(path: &std::path::Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?.modified().ok()?;
    let secs = SystemTime::now()
        .duration_since(m)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Some(match secs {
        0..120 => format!("{secs} s old"),
        120..7200 => format!("{} min old", secs / 60),
        7200..172_800 => format!("{} h old", secs / 3600),
        _ => format!("{} days old", secs / 86_400),
    })
}

/// `cargo lab doctor`: reports everything; an error if something essential is missing.
pub fn doctor() -> Result<(), Error> {
    let mut problems = Vec::new();
    println!("toolchains:");
    for i in rust_items() {
        if i.present {
            println!("  ✓ {}", i.what);
        } else {
            println!("  ✗ {} missing (fix: {})", i.what, i.fix);
            problems.push(i.fix);
        }
    }
    println!("system:");
    let items = system_items()?;
    for i in &items {
        if i.present {
            println!("  ✓ {}: {}", i.what, i.detail);
        } else {
            println!("  ✗ {} missing (fix: {})", i.what, i.fix);
            problems.push(i.fix.clone());
        }
    }
    let q = qemu::find_qemu().ok();
    if let Some(q) = &q {
        let version = capture(&q.display().to_string(), &["--version"]).unwrap_or_default();
        println!(
            "  qemu version: {}",
            version.lines().next().unwrap_or("(unknown)")
        );
    }
    println!("build outputs:");
    for (what, p) in [
        ("kernel ELF (release)", paths::kernel_elf(false)),
        ("kernel ELF (debug)", paths::kernel_elf(true)),
        ("UEFI image", paths::default_image()),
    ] {
        match age(&p) {
            Some(a) => println!("  ✓ {what}: {} ({a})", p.display()),
            None => println!("  - {what}: not built ({})", p.display()),
        }
    }
    let (elf, img) = (paths::kernel_elf(false), paths::default_image());
    if elf.exists() && img.exists() {
        let fresh = build::image_up_to_date(&elf, &img);
        println!(
            "  image is {} the release kernel",
            if fresh {
                "up to date with"
            } else {
                "older than / not from"
            }
        );
    }
    println!("accelerator:");
    match &q {
        Some(q) => match qemu::probe_kvm(q) {
            Ok(()) => println!("  auto picks kvm: the KVM probe guest ran and exited as expected"),
            Err(why) => println!("  auto picks tcg: KVM probe failed: {why}"),
        },
        None => println!("  (no QEMU, no probe)"),
    }
    if problems.is_empty() {
        println!("all essentials present");
        Ok(())
    } else {
        Err(Error::env(format!(
            "{} essential item(s) missing; run `cargo lab setup` or: {}",
            problems.len(),
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rustup_lists() {
        let list = "stable-x86_64-unknown-linux-gnu (default)\nnightly-2026-10-30-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu (active)\nnightly-x86_64-unknown-linux-gnu\n";
        assert!(list_has_toolchain(list, "1.95.0"));
        assert!(list_has_toolchain(list, "nightly-2026-10-30"));
        assert!(!list_has_toolchain(list, "1.95"));
        assert!(!list_has_toolchain(list, "nightly-2026-10-3"));
        assert!(!list_has_toolchain(
            "nightly-x86_64-unknown-linux-gnu\n",
            "nightly-2026-10-30"
        ));
        let comps = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(list_has_component(comps, "clippy"));
        assert!(list_has_component(comps, "rust-src"));
        assert!(!list_has_component(comps, "rustfmt"));
        assert!(!list_has_component(comps, "rust"));
    }
}
