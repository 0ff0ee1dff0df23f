//! What rustup has: installed toolchains, targets and components, read from `rustup`'s
//! list output. Used by `setup`, `doctor` and the image build (which needs the nightly).

use std::process::{Command, Stdio};

/// Runs a program and returns its stdout if it succeeded (stderr discarded, stdin closed,
/// `RUSTUP_TOOLCHAIN` removed so an outer `cargo +toolchain` does not leak in).
pub fn capture(program: &str, args: &[&str]) -> Option<String> {
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

/// `rustup target list --installed` for a toolchain (empty if rustup fails).
pub fn installed_targets(tc: &str) -> String {
    capture(
        "rustup",
        &[&format!("+{tc}"), "target", "list", "--installed"],
    )
    .unwrap_or_default()
}

/// `rustup component list --installed` for a toolchain (empty if rustup fails).
pub fn installed_components(tc: &str) -> String {
    capture(
        "rustup",
        &[&format!("+{tc}"), "component", "list", "--installed"],
    )
    .unwrap_or_default()
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
