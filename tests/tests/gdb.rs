//! `cargo lab run --gdb`: the printed gdb command line, run as printed (plus `-batch`),
//! connects to the halted QEMU, loads the kernel's symbols at the load offset, stops in the
//! #DF handler when an overflow of a fixed stack escalates to #DF, and `detach` lets the
//! kernel finish its overflow report.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stacklab_tests::{ExitCode, Harness, boot};

/// Splits a line the way a POSIX shell would for the quoting `--gdb` prints: words separated
/// by spaces, `'...'` quoted, `'\''` an escaped quote.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if !quoted => cur.extend(chars.next()),
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn the_load_offset_is_the_one_the_kernel_reports() {
    let out = boot("int3");
    let ready = out.find("ready").expect("ready record");
    assert_eq!(
        ready.hex("kernel_offset"),
        Some(boot_image::cli::KERNEL_LOAD_OFFSET),
        "{out:?}"
    );
}

#[test]
fn gdb_stops_in_the_double_fault_handler() {
    Harness::get();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut lab = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "boot-image", "--bin", "boot-image", "--"])
        .args(["run", "--no-build", "--accel", "tcg", "--gdb", "--gdb-port"])
        .arg(port.to_string())
        .args([
            "--cmdline",
            "policy fixed 16K; growth abort; recurse 100 256",
        ])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The tool prints the gdb command line before QEMU starts.
    let mut err = BufReader::new(lab.stderr.take().unwrap());
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let gdb_line = loop {
        let mut l = String::new();
        if err.read_line(&mut l).unwrap() == 0 || Instant::now() > deadline {
            let _ = lab.kill();
            panic!("no gdb command line printed:\n{printed}");
        }
        printed.push_str(&l);
        if let Some(cmd) = l.trim().strip_prefix("lab:   gdb ") {
            break cmd.to_string();
        }
    };
    std::thread::spawn(move || {
        // Keep draining the tool's stderr so it never blocks.
        let mut rest = String::new();
        while err.read_line(&mut rest).unwrap_or(0) > 0 {}
    });
    let mut args = shell_words(&gdb_line);
    assert_eq!(
        args[..3],
        ["-q", "-ex", &format!("target remote 127.0.0.1:{port}")]
    );
    assert_eq!(args.last().map(String::as_str), Some("continue"));
    args.insert(0, "-batch".into());
    args.extend(["-ex", "info symbol $pc", "-ex", "detach"].map(String::from));
    let gdb = Command::new("gdb")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("gdb runs (cargo lab setup installs it)");
    let gdb_out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let lab = lab.wait_with_output().unwrap();
    let lab_out = String::from_utf8_lossy(&lab.stdout);
    assert!(
        gdb_out.contains("Hardware assisted breakpoint 1 at 0x80"),
        "the breakpoint resolved to a loaded kernel address:\n{gdb_out}"
    );
    // The stop (the source line shown may be of a function inlined at the handler's first
    // line), then `info symbol $pc`: the handler itself, a few bytes in.
    assert!(
        gdb_out.contains("\nBreakpoint 1, "),
        "gdb stopped:\n{gdb_out}"
    );
    assert!(
        gdb_out.lines().any(
            |l| l.starts_with("stacklab_kernel::events::double_fault::handle::h")
                && l.ends_with("in section .text")
        ),
        "gdb stopped in the #DF handler:\n{gdb_out}"
    );
    // After detach the kernel finishes: the #DF report and the abort exit.
    assert!(
        lab_out.contains("ABORT (stack-overflow): #DF"),
        "{lab_out}\n{gdb_out}"
    );
    assert_eq!(lab.status.code(), Some(5), "{lab_out}");
    let _ = ExitCode::Abort;
}
