//! Tests of the process runner, with small shell scripts standing in for QEMU.

use super::*;
use std::path::PathBuf;

/// A fake QEMU: `/bin/sh` running a script with `body`. Run through the shell rather than
/// executed itself, because exec'ing a file this process just wrote fails with "text file
/// busy" when a test on another thread forks meanwhile (the child briefly holds the file
/// open for writing).
fn fake(dir: &Path, body: &str) -> (PathBuf, Vec<OsString>) {
    let p = dir.join("fake-qemu");
    std::fs::write(&p, format!("{body}\n")).unwrap();
    (PathBuf::from("/bin/sh"), vec![p.into_os_string()])
}

#[test]
fn a_hung_process_is_killed_at_the_timeout_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    let bin = fake(
        dir.path(),
        &format!(
            "echo booting; echo 'still here'; (sleep 1.5; touch {}) & sleep 30",
            marker.display()
        ),
    );
    let mut lines = Vec::new();
    let t = Instant::now();
    let r = run(&bin.0, &bin.1, Duration::from_millis(500), &mut |l| {
        lines.push(l.to_string());
        Flow::Continue
    })
    .unwrap();
    assert_eq!(r.end, QemuEnd::TimedOut);
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(lines, ["booting", "still here"]);
    assert_eq!(r.last_line.as_deref(), Some("still here"));
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        !marker.exists(),
        "a child of the fake QEMU outlived the timeout"
    );
}

#[test]
fn stop_kills_the_group_at_once_and_reads_no_further() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("survived");
    let bin = fake(
        dir.path(),
        &format!(
            "(sleep 1; touch {}) & echo one; echo two; echo three; sleep 30",
            marker.display()
        ),
    );
    let mut lines = Vec::new();
    let t = Instant::now();
    let r = run(&bin.0, &bin.1, Duration::from_secs(20), &mut |l| {
        lines.push(l.to_string());
        if l == "two" {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })
    .unwrap();
    assert_eq!(r.end, QemuEnd::Stopped);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(lines, ["one", "two"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !marker.exists(),
        "a child of the fake QEMU outlived the stop"
    );
}

#[test]
fn exit_status_stderr_and_partial_last_line_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(
        dir.path(),
        "printf 'a\\r\\nb'; echo 'qemu: oops' >&2; exit 41",
    );
    let mut lines = Vec::new();
    let r = run(&bin.0, &bin.1, Duration::from_secs(10), &mut |l| {
        lines.push(l.to_string());
        Flow::Continue
    })
    .unwrap();
    assert_eq!(r.end, QemuEnd::Exited(41));
    assert_eq!(lines, ["a", "b"]);
    assert_eq!(r.stderr_tail(1), "qemu: oops");
    let e = run(
        &dir.path().join("nope"),
        &[],
        Duration::from_secs(1),
        &mut |_| Flow::Continue,
    )
    .unwrap_err();
    assert_eq!(e.exit_status(), 7);
    assert!(
        e.msg.contains("apt-get install qemu-system-x86"),
        "{}",
        e.msg
    );
}

#[test]
fn interactive_input_reaches_the_process_and_leave_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(
        dir.path(),
        "printf 'prompt> '; while read l; do echo \"got $l\"; printf 'prompt> '; done",
    );
    let (tx, rx) = mpsc::channel();
    tx.send(Io::Input(b"one\n".to_vec())).unwrap();
    let mut seen = Vec::new();
    let feeder = tx.clone();
    let r = run_interactive(&bin.0, &bin.1, tx, rx, &mut |b| {
        seen.extend_from_slice(b);
        if seen.ends_with(b"got one\nprompt> ") {
            feeder.send(Io::Leave).unwrap();
        }
        Flow::Continue
    })
    .unwrap();
    assert_eq!(r.end, QemuEnd::Stopped);
    assert_eq!(String::from_utf8_lossy(&seen), "prompt> got one\nprompt> ");
}

#[test]
fn interactive_run_reports_the_exit_status_and_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(
        dir.path(),
        "read l; echo \"bye $l\"; echo oops >&2; exit 41",
    );
    let (tx, rx) = mpsc::channel();
    tx.send(Io::Input(b"now\n".to_vec())).unwrap();
    let r = run_interactive(&bin.0, &bin.1, tx, rx, &mut |_| Flow::Continue).unwrap();
    assert_eq!(r.end, QemuEnd::Exited(41));
    assert_eq!(r.last_line.as_deref(), Some("bye now"));
    assert_eq!(r.stderr_tail(1), "oops");
}

#[test]
fn an_external_serial_source_ends_with_the_process_and_stdout_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake(dir.path(), "echo 'stacklab-exit 37'; sleep 0.3; exit 1");
    let (tx, rx) = mpsc::channel();
    tx.send("serial one".to_string()).unwrap();
    let mut lines = Vec::new();
    let t = Instant::now();
    let r = run_from(
        &bin.0,
        &bin.1,
        Duration::from_secs(20),
        Some(rx),
        &mut |l| {
            lines.push(l.to_string());
            Flow::Continue
        },
    )
    .unwrap();
    // `tx` is still open: the run ended because the process did.
    assert_eq!(r.end, QemuEnd::Exited(1));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(lines, ["serial one"]);
    assert_eq!(r.stdout, "stacklab-exit 37\n");
    drop(tx);
}
