//! The `boot-image` binary as a user runs it: exit statuses of `--help`, usage errors, and a
//! standard output closed early (`cargo lab ... | head`). QEMU is replaced by a fake through
//! `STACKLAB_QEMU`, so these tests boot nothing.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_boot-image");

fn lab(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c
}

/// Waits for the child at most `limit`; kills it and panics if it is still running then.
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `lines` lines of the child's stdout, then closes the pipe as `head` does.
fn read_then_close(child: &mut Child, lines: usize) -> Vec<String> {
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..lines {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "stdout ended early");
        got.push(l.trim_end().to_string());
    }
    got
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn help_exits_0_for_every_command_and_usage_errors_exit_2() {
    for cmd in [
        "setup",
        "build",
        "run",
        "demo",
        "stress",
        "test",
        "doctor",
        "symbolize",
    ] {
        let out = lab(&[cmd, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Usage: cargo lab {cmd}")),
            "{cmd}: {text}"
        );
        assert!(out.stderr.is_empty(), "{cmd}");
    }
    let out = lab(&["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--memory <SIZE>"));
    for args in [&["--help"][..], &["help"], &["help", "run"], &["--version"]] {
        assert_eq!(
            lab(args).output().unwrap().status.code(),
            Some(0),
            "{args:?}"
        );
    }
    let out = lab(&["run", "--tiemout", "5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: unexpected argument '--tiemout' found")
            && err.contains("tip: a similar argument exists: '--timeout'"),
        "{err}"
    );
    let out = lab(&["run", "--memory", "2X"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "invalid value '2X' for '--memory <SIZE>': '2X' is not a memory size (use a whole number of MiB or GiB: 512M, 4G)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lab(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: cargo lab <COMMAND>"));
}

#[test]
fn a_closed_stdout_ends_symbolize_quietly_with_141() {
    // Enough output to overflow the pipe long after the reader is gone.
    let addrs: Vec<String> = (1..=40_000).map(|a| a.to_string()).collect();
    let mut args = vec!["symbolize", "--kernel", "/bin/true"];
    args.extend(addrs.iter().map(String::as_str));
    let mut child = lab(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(read_then_close(&mut child, 1), ["0x1 ?"]);
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(141), "stderr: {err}");
    assert_eq!(err, "");
}

/// A fake QEMU that prints serial lines for ever. Written by a `sh` child, not by this
/// process: a file this multi-threaded test process had open for writing could be inherited
/// by a child another test forks at that moment, and exec'ing it would then fail with "text
/// file busy".
fn fake_qemu(dir: &Path) -> PathBuf {
    let p = dir.join("fake-qemu");
    let pid = dir.join("pid");
    let script = format!(
        "#!/bin/sh\necho $$ > {}\nexec yes 'serial line'\n",
        pid.display()
    );
    let ok = Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
            "sh",
        ])
        .arg(&script)
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "writing {}", p.display());
    p
}

#[test]
fn a_closed_stdout_stops_qemu_at_once_and_exits_141() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = fake_qemu(dir.path());
    let image = dir.path().join("some.img");
    std::fs::write(&image, [0u8; 512]).unwrap();
    let t = Instant::now();
    let mut child = lab(&[
        "run",
        "--image",
        image.to_str().unwrap(),
        "--accel",
        "tcg",
        "--timeout",
        "60",
    ])
    .env("STACKLAB_QEMU", &qemu)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert_eq!(read_then_close(&mut child, 5), ["serial line"; 5]);
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(141), "stderr: {err}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "{:?}: QEMU was not stopped",
        t.elapsed()
    );
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the fake QEMU (pid {}) is still running",
        pid.trim()
    );
}

/// `cargo lab fred` on the model's case file prints the known answers (as JSON values); the case file
/// holds some bad lines on purpose, so the status is 2, and each bad line got an error object.
#[test]
fn fred_prints_the_known_answers_and_exits_2_for_bad_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/fred/tests");
    let out = lab(&["fred", dir.join("cases.jsonl").to_str().unwrap()])
        .output()
        .unwrap();
    let want = std::fs::read_to_string(dir.join("cases.expected.jsonl")).unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    let values = |t: &str| -> Vec<serde_json::Value> {
        t.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(values(&got), values(&want));
    assert!(got.lines().any(|l| l.starts_with("{\"error\"")));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(" bad"), "{err}");
}

/// Good lines only: status 0. A missing file: status 2 with a message naming it.
#[test]
fn fred_exits_0_on_good_input_and_2_on_a_missing_file() {
    use std::io::Write;
    let mut child = lab(&["fred"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let case = r#"{"op":"erets","cpl":0,"csl":1,"cs":"0x10","ss":"0x18","rsp":"0x1000","frame":["0x0","0x401000","0x10","0x2","0x2000","0x18","0x0","0x0"]}"#;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{case}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("{\"outcome\":\"returned\""), "{line}");
    assert_eq!(out.status.code(), Some(0));
    let out = lab(&["fred", "/nonexistent/cases.jsonl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("/nonexistent/cases.jsonl")
    );
}
