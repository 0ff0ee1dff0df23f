//! The kernel's command registry, checked on the host from its source: every `command!` row
//! names a unique command, has a well-formed argument specification, and its example parses
//! against that specification with the same code the kernel runs (`stacklab_core::cmdspec`);
//! every file that defines rows is in the registry's `GROUPS`, so `help` (which walks
//! `GROUPS`) lists every row. One QEMU boot then checks that `help` lists exactly these rows.

use std::path::{Path, PathBuf};

use stacklab_core::cmdline::Command as Parsed;
use stacklab_core::cmdspec::Spec;
use stacklab_tests::*;

/// One `command!(...)` row as written in the source.
#[derive(Debug)]
struct Row {
    file: String,
    name: String,
    args: String,
    help: String,
    example: String,
}

fn kernel_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The string literals of one macro call starting right after `command!(`, up to its
/// closing parenthesis.
fn literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = src.chars();
    let mut depth = 0;
    while let Some(c) = it.next() {
        match c {
            '"' => {
                let mut s = String::new();
                while let Some(c) = it.next() {
                    match c {
                        '\\' => s.push(it.next().unwrap()),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            _ => {}
        }
    }
    out
}

/// Every row in the kernel's source, in file order (files sorted by path).
fn rows() -> Vec<Row> {
    let mut files = Vec::new();
    rust_files(&kernel_src(), &mut files);
    files.sort();
    let mut rows = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        // A row may be one line or, as rustfmt wraps long ones, one argument per line.
        for (at, _) in src.match_indices("command!(") {
            let body = &src[at + "command!(".len()..];
            if !body.trim_start().starts_with('"') {
                continue;
            }
            let lits = literals(body);
            assert!(
                lits.len() >= 4,
                "{}: a row needs 4 strings: {lits:?}",
                f.display()
            );
            rows.push(Row {
                file: f.strip_prefix(kernel_src()).unwrap().display().to_string(),
                name: lits[0].clone(),
                args: lits[1].clone(),
                help: lits[2].clone(),
                example: lits[3].clone(),
            });
        }
    }
    rows
}

/// Leaks a string for the `'static` specification type.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[test]
fn the_source_has_the_registry_rows() {
    let rows = rows();
    assert!(rows.len() >= 25, "{rows:#?}");
    for name in ["help", "recurse", "reserve", "bench", "growth", "read"] {
        assert!(rows.iter().any(|r| r.name == name), "{name} missing");
    }
}

#[test]
fn command_names_are_unique() {
    let rows = rows();
    for (i, r) in rows.iter().enumerate() {
        assert!(
            rows[i + 1..].iter().all(|o| o.name != r.name),
            "'{}' is registered twice",
            r.name
        );
    }
}

#[test]
fn every_specification_is_well_formed_and_every_row_has_help() {
    for r in rows() {
        if let Err(e) = Spec(leak(&r.args)).validate() {
            panic!("{} ({}): {e}", r.name, r.file);
        }
        assert!(!r.help.trim().is_empty(), "{}: no help", r.name);
    }
}

#[test]
fn every_row_parses_its_own_example() {
    for r in rows() {
        let c = Parsed::parse(leak(&r.example)).expect("a non-empty example");
        assert_eq!(
            c.name, r.name,
            "{}: the example runs another command",
            r.name
        );
        if let Err(e) = Spec(leak(&r.args)).bind(c.args()) {
            panic!("{}: example '{}' does not parse: {e}", r.name, r.example);
        }
    }
}

#[test]
fn every_file_with_rows_is_in_the_registry_groups() {
    let registry = std::fs::read_to_string(kernel_src().join("commands/mod.rs")).unwrap();
    let groups = &registry[registry.find("pub const GROUPS").expect("GROUPS")..];
    let groups = &groups[..groups.find("];").unwrap()];
    for r in rows() {
        let module = r.file.trim_end_matches(".rs").replace('/', "::");
        let module = module.trim_start_matches("commands::");
        assert!(
            groups.contains(&format!("{module}::COMMANDS")),
            "{} defines '{}' but {module}::COMMANDS is not in GROUPS",
            r.file,
            r.name
        );
    }
}

#[test]
fn help_lists_exactly_the_registered_rows_in_order() {
    let out = boot("help");
    let listed: Vec<(&str, &str, &str)> = out
        .find_all("command")
        .iter()
        .map(|r| (text(r, "name"), text(r, "args"), text(r, "example")))
        .collect();
    let mut want: Vec<Row> = rows();
    // `help` lists the groups in GROUPS order; the source scan is in file order.
    let registry = std::fs::read_to_string(kernel_src().join("commands/mod.rs")).unwrap();
    let pos = |r: &Row| {
        let module = r.file.trim_end_matches(".rs").replace('/', "::");
        let module = module.trim_start_matches("commands::").to_string();
        registry.find(&format!("{module}::COMMANDS")).unwrap()
    };
    want.sort_by_key(|r| pos(r));
    let want: Vec<(&str, &str, &str)> = want
        .iter()
        .map(|r| (r.name.as_str(), r.args.as_str(), r.example.as_str()))
        .collect();
    assert_eq!(listed, want);
    let r = out.result_for("help").expect("help result");
    assert_eq!(num(r, "commands"), want.len() as u64);
    assert_exit(&out, ExitCode::Success);
}
