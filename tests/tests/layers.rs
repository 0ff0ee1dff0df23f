//! The kernel's layering and unsafe discipline, checked on the source (no QEMU):
//! `kernel/src/arch` names no module above it, `unsafe` appears only in `arch` and `mem`, the
//! kernel has no `static mut`, `lazy_static` or `#![feature]`, and no source file outgrows
//! one concern. Each check prints the offending lines, so a failure says where to look.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Lines of the Rust files under `dir` (relative to the repository) that are code, not
/// comments, with their place, for which `bad` holds.
fn offending(dir: &str, bad: impl Fn(&str) -> bool) -> Vec<String> {
    let root = repo();
    let mut hits = Vec::new();
    for f in rust_files(&root.join(dir)) {
        let src = std::fs::read_to_string(&f).unwrap();
        for (i, line) in src.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if bad(code) {
                let rel = f.strip_prefix(&root).unwrap().display().to_string();
                hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn arch_names_no_module_above_it() {
    let hits = offending("kernel/src/arch", |code| {
        code.match_indices("crate::")
            .any(|(at, _)| !code[at + "crate::".len()..].starts_with("arch"))
    });
    assert!(hits.is_empty(), "arch reaches up:\n{}", hits.join("\n"));
}

#[test]
fn the_check_above_can_fail() {
    // The predicate the layering test uses, on lines it must reject and accept.
    let bad = |code: &str| {
        code.match_indices("crate::")
            .any(|(at, _)| !code[at + "crate::".len()..].starts_with("arch"))
    };
    assert!(bad("use crate::stacks::find;"));
    assert!(bad("    crate::mem::kva::alloc_stack(4);"));
    assert!(!bad("use crate::arch::x86_64::cpu;"));
    assert!(!bad("use super::space::OwnedStack;"));
}

#[test]
fn unsafe_lives_only_in_arch_and_mem() {
    let root = repo().join("kernel/src");
    let mut hits = Vec::new();
    for f in rust_files(&root) {
        let rel = f.strip_prefix(&root).unwrap();
        if rel.starts_with("arch") || rel.starts_with("mem") {
            continue;
        }
        let src = std::fs::read_to_string(&f).unwrap();
        for (i, line) in src.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unsafe ") || code.contains("unsafe{") {
                hits.push(format!(
                    "kernel/src/{}:{}: {}",
                    rel.display(),
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "unsafe outside arch/ and mem/:\n{}",
        hits.join("\n")
    );
}

#[test]
fn no_static_mut_lazy_static_or_feature_gates_in_the_kernel() {
    let hits = offending("kernel", |code| {
        code.contains("static mut ") || code.contains("lazy_static!") || code.contains("#![feature")
    });
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

#[test]
fn no_source_file_outgrows_one_concern() {
    // About 400 lines is the guide; a cohesive table may go past it, up to 500. A file's unit
    // tests (from `#[cfg(test)]` on) are a test list and do not count.
    let mut big = Vec::new();
    for dir in [
        "kernel/src",
        "kernel/core/src",
        "kernel/fred/src",
        "boot-image/src",
        "ovmf/src",
    ] {
        for f in rust_files(&repo().join(dir)) {
            let src = std::fs::read_to_string(&f).unwrap();
            let n = src
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            if n > 500 {
                big.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(big.is_empty(), "{}", big.join("\n"));
}
