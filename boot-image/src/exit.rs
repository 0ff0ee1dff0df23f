//! From "the kernel wrote an `exit` record and QEMU exited with status S" to a verdict and the
//! host tool's exit status.

use stacklab_core::proto::ExitCode;

/// The host tool's exit statuses (see docs/running.md).
pub mod status {
    /// The kernel exited `success`.
    pub const SUCCESS: i32 = 0;
    /// The kernel exited `failure`: a command's result was not ok.
    pub const FAILURE: i32 = 1;
    /// Usage error, bad input (flag, ELF, image), or a failed build.
    pub const USAGE: i32 = 2;
    /// The kernel exited `bad-command`.
    pub const BAD_COMMAND: i32 = 3;
    /// The kernel exited `panic`.
    pub const PANIC: i32 = 4;
    /// The kernel exited `abort`.
    pub const ABORT: i32 = 5;
    /// QEMU was killed at the timeout.
    pub const TIMEOUT: i32 = 6;
    /// Something the tool needs is missing or broken.
    pub const ENVIRONMENT: i32 = 7;
    /// QEMU ended without a consistent `exit` record.
    pub const NO_EXIT_RECORD: i32 = 8;
    /// Ctrl-C (128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
    /// Standard output was closed by its reader (128 + SIGPIPE, as a shell reports a
    /// program killed by a broken pipe); QEMU was stopped and nothing more was printed.
    pub const BROKEN_PIPE: i32 = 141;
}

/// How a run ended, as far as the kernel is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelExit {
    /// The kernel wrote an `exit` record and QEMU's status agrees with it.
    Kernel(ExitCode),
    /// The run did not end within its timeout; QEMU was killed.
    Timeout,
    /// QEMU ended without a (consistent) `exit` record: a reset (triple fault), a QEMU error,
    /// or an exit record that contradicts QEMU's status.
    NoExitRecord,
}

impl KernelExit {
    /// The host tool's exit status for this outcome.
    pub fn host_status(self) -> i32 {
        match self {
            KernelExit::Kernel(ExitCode::Success) => status::SUCCESS,
            KernelExit::Kernel(ExitCode::Failure) => status::FAILURE,
            KernelExit::Kernel(ExitCode::BadCommand) => status::BAD_COMMAND,
            KernelExit::Kernel(ExitCode::Panic) => status::PANIC,
            KernelExit::Kernel(ExitCode::Abort) => status::ABORT,
            KernelExit::Timeout => status::TIMEOUT,
            KernelExit::NoExitRecord => status::NO_EXIT_RECORD,
        }
    }
}

/// How the QEMU process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QemuEnd {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signaled(i32),
    /// We killed it after the timeout.
    TimedOut,
    /// We killed it early because the caller had seen enough (e.g. its output was closed).
    Stopped,
}

/// The verdict plus, when it is not a clean kernel exit, a one-line explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The outcome.
    pub exit: KernelExit,
    /// Why it is not a clean kernel exit, if so.
    pub problem: Option<String>,
}

/// Combines the `code` of the last `exit` record (if any) with how QEMU ended.
///
/// `timeout_secs`, `last_line` and `stderr_tail` only feed the explanation.
pub fn decide(
    exit_record: Option<&str>,
    end: QemuEnd,
    timeout_secs: u64,
    last_line: Option<&str>,
    stderr_tail: &str,
) -> Verdict {
    let stderr_note = || {
        let t = stderr_tail.trim();
        if t.is_empty() {
            String::new()
        } else {
            format!("; QEMU stderr: {}", one_line(t))
        }
    };
    let status = match end {
        QemuEnd::TimedOut => {
            let last = last_line
                .map(one_line)
                .unwrap_or_else(|| "(no serial output)".into());
            return Verdict {
                exit: KernelExit::Timeout,
                problem: Some(format!(
                    "timed out after {timeout_secs} s, last serial line: {last}"
                )),
            };
        }
        QemuEnd::Stopped => {
            return Verdict {
                exit: KernelExit::NoExitRecord,
                problem: Some("QEMU was stopped by the host before the kernel exited".into()),
            };
        }
        QemuEnd::Signaled(sig) => {
            return Verdict {
                exit: KernelExit::NoExitRecord,
                problem: Some(format!(
                    "QEMU was killed by signal {sig} before the kernel exited{}",
                    stderr_note()
                )),
            };
        }
        QemuEnd::Exited(s) => s,
    };
    let from_status = ExitCode::from_qemu_status(status);
    match exit_record {
        Some(name) => match ExitCode::from_name(name) {
            None => Verdict {
                exit: KernelExit::NoExitRecord,
                problem: Some(format!(
                    "the kernel's exit record has an unknown code '{name}' (QEMU exit status {status})"
                )),
            },
            Some(code) if from_status == Some(code) => Verdict {
                exit: KernelExit::Kernel(code),
                problem: None,
            },
            Some(code) => Verdict {
                exit: KernelExit::NoExitRecord,
                problem: Some(format!(
                    "the kernel's exit record says '{}' but QEMU exited with status {status} ({}); \
                     they disagree",
                    code.name(),
                    describe_status(status)
                )),
            },
        },
        None => {
            let what = match from_status {
                Some(code) => format!(
                    "QEMU exited with status {status} (the kernel's '{}' exit) but no exit record was seen",
                    code.name()
                ),
                None => format!(
                    "machine reset or QEMU died (triple fault?): QEMU exited with status {status} \
                     and no exit record"
                ),
            };
            Verdict {
                exit: KernelExit::NoExitRecord,
                problem: Some(format!("{what}{}", stderr_note())),
            }
        }
    }
}

fn describe_status(status: i32) -> String {
    match ExitCode::from_qemu_status(status) {
        Some(code) => format!("the kernel's '{}' exit", code.name()),
        None if status == 0 => "a machine reset under -no-reboot, e.g. a triple fault".into(),
        None => "not a kernel exit".into(),
    }
}

/// Collapses whitespace runs (newlines included) and caps the length, for one-line messages.
pub fn one_line(s: &str) -> String {
    let joined: Vec<&str> = s.split_whitespace().collect();
    let mut out = joined.join(" ");
    const MAX: usize = 300;
    if out.len() > MAX {
        let mut cut = out.len() - MAX;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_exit_maps_to_its_host_status() {
        let expect = [
            (ExitCode::Success, 0),
            (ExitCode::Failure, 1),
            (ExitCode::BadCommand, 3),
            (ExitCode::Panic, 4),
            (ExitCode::Abort, 5),
        ];
        for (code, host) in expect {
            let v = decide(
                Some(code.name()),
                QemuEnd::Exited(code.qemu_status()),
                60,
                None,
                "",
            );
            assert_eq!(
                v,
                Verdict {
                    exit: KernelExit::Kernel(code),
                    problem: None
                }
            );
            assert_eq!(v.exit.host_status(), host);
        }
        assert_eq!(KernelExit::Timeout.host_status(), 6);
        assert_eq!(KernelExit::NoExitRecord.host_status(), 8);
    }

    #[test]
    fn timeout_names_the_last_serial_line() {
        let v = decide(None, QemuEnd::TimedOut, 7, Some("looping\n"), "");
        assert_eq!(v.exit, KernelExit::Timeout);
        assert_eq!(
            v.problem.unwrap(),
            "timed out after 7 s, last serial line: looping"
        );
        let v = decide(Some("success"), QemuEnd::TimedOut, 7, None, "");
        assert_eq!(v.exit, KernelExit::Timeout);
        assert!(v.problem.unwrap().contains("(no serial output)"));
    }

    #[test]
    fn reset_without_record_is_a_triple_fault_suspect_with_stderr() {
        let v = decide(
            None,
            QemuEnd::Exited(0),
            60,
            Some("x"),
            "qemu: warning\nsomething",
        );
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        let p = v.problem.unwrap();
        assert!(
            p.contains("machine reset or QEMU died (triple fault?)"),
            "{p}"
        );
        assert!(p.contains("QEMU stderr: qemu: warning something"), "{p}");
        let v = decide(
            None,
            QemuEnd::Exited(1),
            60,
            None,
            "qemu-system-x86_64: -drive: bad",
        );
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert!(v.problem.unwrap().contains("-drive: bad"));
    }

    #[test]
    fn record_and_status_must_agree() {
        let v = decide(
            Some("success"),
            QemuEnd::Exited(ExitCode::Abort.qemu_status()),
            60,
            None,
            "",
        );
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        let p = v.problem.unwrap();
        assert!(
            p.contains("says 'success'") && p.contains("'abort' exit") && p.contains("disagree"),
            "{p}"
        );
        let v = decide(Some("panic"), QemuEnd::Exited(0), 60, None, "");
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert!(v.problem.unwrap().contains("machine reset"));
    }

    #[test]
    fn status_without_record_or_unknown_code_is_no_exit_record() {
        let v = decide(
            None,
            QemuEnd::Exited(ExitCode::Success.qemu_status()),
            60,
            None,
            "",
        );
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert!(v.problem.unwrap().contains("no exit record was seen"));
        let v = decide(Some("weird"), QemuEnd::Exited(33), 60, None, "");
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert!(v.problem.unwrap().contains("unknown code 'weird'"));
        let v = decide(None, QemuEnd::Signaled(9), 60, None, "");
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert!(v.problem.unwrap().contains("signal 9"));
        let v = decide(Some("success"), QemuEnd::Stopped, 60, None, "");
        assert_eq!(v.exit, KernelExit::NoExitRecord);
        assert_eq!(
            v.problem.unwrap(),
            "QEMU was stopped by the host before the kernel exited"
        );
    }

    #[test]
    fn one_line_collapses_and_caps() {
        assert_eq!(one_line(" a\n b\t c "), "a b c");
        let long = "é".repeat(400);
        let s = one_line(&long);
        assert!(s.starts_with('…') && s.len() <= 304);
    }
}
