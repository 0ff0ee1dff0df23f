//! What a run's outcome means against what its program must do: the classification, computed
//! from the verdict and the records alone (pure, unit-tested on synthetic records).

use crate::exit::KernelExit;
use crate::record::Record;
use crate::stress::program::Expect;
use stacklab_core::proto::ExitCode;

/// How one stress run ended, judged against its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Every `result` ok, exit `success`, and none was expected otherwise.
    Ok,
    /// The program ended in the overflow it was made to end in, with the expected reason.
    DocumentedAbort,
    /// A `result` with `ok: false`, or a command the kernel refused.
    WrongResult,
    /// An `abort` (or panic) the program did not call for, or one with another reason.
    UnexpectedAbort,
    /// The program was to end in an abort and the kernel exited normally instead.
    MissingAbort,
    /// Killed at the timeout.
    Hang,
    /// QEMU ended without a consistent `exit` record (reset, triple fault, QEMU died).
    MachineDeath,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 7] = [
        Class::Ok,
        Class::DocumentedAbort,
        Class::WrongResult,
        Class::UnexpectedAbort,
        Class::MissingAbort,
        Class::Hang,
        Class::MachineDeath,
    ];

    /// The name used in reports and JSON files.
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::DocumentedAbort => "documented-abort",
            Class::WrongResult => "wrong-result",
            Class::UnexpectedAbort => "unexpected-abort",
            Class::MissingAbort => "missing-abort",
            Class::Hang => "hang",
            Class::MachineDeath => "machine-death",
        }
    }

    /// The class called `name`.
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether this is what the program had to do (`ok` or `documented-abort`).
    pub fn passed(self) -> bool {
        matches!(self, Class::Ok | Class::DocumentedAbort)
    }
}

/// The classification, and a one-line reason for anything but a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// The class.
    pub class: Class,
    /// What decided it, for people.
    pub detail: String,
}

fn judged(class: Class, detail: impl Into<String>) -> Judgement {
    Judgement {
        class,
        detail: detail.into(),
    }
}

/// Whether every command of `cmdline` but the last wrote its `result`, in order: then an
/// abort that follows came from the last command.
pub fn reached_last_command(cmdline: &str, records: &[Record]) -> bool {
    let names: Vec<&str> = cmdline
        .split(';')
        .filter_map(|c| c.split_whitespace().next())
        .collect();
    let mut results = records
        .iter()
        .filter(|r| r.kind == "result")
        .filter_map(|r| r.str("cmd"));
    names
        .split_last()
        .is_none_or(|(_, before)| before.iter().all(|n| results.any(|c| c == *n)))
}

/// Classifies a run of `cmdline` that ended with `exit` and reported `records`, for a program
/// that must do `expect` (an expected abort must come from its last command).
pub fn classify(expect: &Expect, cmdline: &str, exit: KernelExit, records: &[Record]) -> Judgement {
    let code = match exit {
        KernelExit::Timeout => return judged(Class::Hang, "killed at the timeout"),
        KernelExit::NoExitRecord => {
            return judged(
                Class::MachineDeath,
                "QEMU ended without a consistent exit record",
            );
        }
        KernelExit::Kernel(code) => code,
    };
    if let Some(bad) = records
        .iter()
        .find(|r| r.kind == "result" && r.bool("ok") != Some(true))
    {
        return judged(
            Class::WrongResult,
            format!("result of '{}' not ok", bad.str("cmd").unwrap_or("?")),
        );
    }
    if let Some(e) = records.iter().find(|r| r.kind == "error") {
        return judged(
            Class::WrongResult,
            format!("command refused: {}", e.str("msg").unwrap_or("?")),
        );
    }
    let abort = records.iter().find(|r| r.kind == "abort");
    match (code, expect) {
        (ExitCode::Success, Expect::Ok) => judged(Class::Ok, ""),
        (ExitCode::Success, Expect::Abort(reason)) => judged(
            Class::MissingAbort,
            format!("expected an abort ({reason}), the kernel exited success"),
        ),
        (ExitCode::Abort, Expect::Abort(reason)) => {
            let got = abort.and_then(|a| a.str("reason"));
            if got != Some(reason.as_str()) {
                judged(
                    Class::UnexpectedAbort,
                    format!("abort reason {got:?}, expected {reason}"),
                )
            } else if !reached_last_command(cmdline, records) {
                judged(
                    Class::UnexpectedAbort,
                    format!("{reason} before the last command"),
                )
            } else {
                judged(Class::DocumentedAbort, "")
            }
        }
        (ExitCode::Abort | ExitCode::Panic, _) => judged(
            Class::UnexpectedAbort,
            format!(
                "kernel {} ({})",
                code.name(),
                abort
                    .and_then(|a| a.str("reason"))
                    .unwrap_or("no abort record")
            ),
        ),
        (ExitCode::Failure | ExitCode::BadCommand, _) => {
            judged(Class::WrongResult, format!("kernel exit {}", code.name()))
        }
    }
}

/// What a run did, in the catalogue's outcome vocabulary (`stacklab_core::catalogue`; no
/// expectation needed): `ok`, `abort:<reason>` (an `abort` record, panics included),
/// `refused` (a `result` with a `refused` field, `true` or a reason: the command declined
/// cleanly), `detected:<what>` (a `result` naming what it detected), `hang` (killed at the
/// timeout) or `triple-fault` (QEMU ended without a consistent `exit` record: a reset under
/// `-no-reboot`). Two more words no cell may be documented with: `bad-command:<cmd>` (the
/// kernel did not accept a command: an `error` record) and `failed:<cmd>` (a `result` not
/// ok that names nothing detected or refused).
pub fn observe(exit: KernelExit, records: &[Record]) -> String {
    match exit {
        KernelExit::Timeout => return "hang".into(),
        KernelExit::NoExitRecord => return "triple-fault".into(),
        KernelExit::Kernel(_) => {}
    }
    if let Some(a) = records.iter().find(|r| r.kind == "abort") {
        return format!("abort:{}", a.str("reason").unwrap_or("unknown"));
    }
    if let Some(e) = records.iter().find(|r| r.kind == "error") {
        return format!("bad-command:{}", e.str("cmd").unwrap_or("?"));
    }
    let results = || records.iter().filter(|r| r.kind == "result");
    let refused = |r: &Record| {
        r.get("refused")
            .is_some_and(|v| v.as_bool() == Some(true) || v.is_string())
    };
    if results().any(refused) {
        return "refused".into();
    }
    if let Some(what) = results().find_map(|r| r.str("detected")) {
        return format!("detected:{what}");
    }
    if let Some(bad) = results().find(|r| r.bool("ok") != Some(true)) {
        return format!("failed:{}", bad.str("cmd").unwrap_or("?"));
    }
    "ok".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(lines: &[&str]) -> Vec<Record> {
        lines
            .iter()
            .map(|l| Record::parse_json(l).expect("test record"))
            .collect()
    }

    const READY: &str = r#"{"kind":"ready","version":"0.1.0"}"#;
    const OK: &str = r#"{"kind":"result","cmd":"recurse","ok":true}"#;
    const BAD: &str = r#"{"kind":"result","cmd":"threads","ok":false}"#;
    const OVERFLOW: &str = r##"{"kind":"abort","reason":"stack-overflow","via":"#DF"}"##;
    const OTHER: &str = r#"{"kind":"abort","reason":"exception","vector":13}"#;
    const K: fn(ExitCode) -> KernelExit = KernelExit::Kernel;

    /// The command line of the synthetic runs: two commands, the second the one that may
    /// overflow.
    const CMDLINE: &str = "recurse 4 64; recurse 400 1024";

    fn class(e: &Expect, x: KernelExit, lines: &[&str]) -> Class {
        classify(e, CMDLINE, x, &recs(lines)).class
    }

    #[test]
    fn passes() {
        let ab = Expect::Abort("stack-overflow".into());
        assert_eq!(
            class(&Expect::Ok, K(ExitCode::Success), &[READY, OK, OK]),
            Class::Ok
        );
        assert_eq!(
            class(&ab, K(ExitCode::Abort), &[READY, OK, OVERFLOW]),
            Class::DocumentedAbort
        );
    }

    #[test]
    fn failures() {
        let ab = Expect::Abort("stack-overflow".into());
        let ok = Expect::Ok;
        assert_eq!(
            class(&ok, K(ExitCode::Failure), &[READY, BAD]),
            Class::WrongResult
        );
        // A wrong result before the deliberate overflow is still a wrong result.
        assert_eq!(
            class(&ab, K(ExitCode::Abort), &[READY, BAD, OVERFLOW]),
            Class::WrongResult
        );
        let err = r#"{"kind":"error","cmd":"x","msg":"unknown command"}"#;
        assert_eq!(
            class(&ok, K(ExitCode::BadCommand), &[READY, err]),
            Class::WrongResult
        );
        assert_eq!(
            class(&ok, K(ExitCode::Abort), &[READY, OK, OVERFLOW]),
            Class::UnexpectedAbort
        );
        assert_eq!(
            class(&ab, K(ExitCode::Abort), &[READY, OTHER]),
            Class::UnexpectedAbort
        );
        assert_eq!(
            class(&ab, K(ExitCode::Abort), &[READY]),
            Class::UnexpectedAbort
        );
        let panic = r#"{"kind":"abort","reason":"panic","msg":"boom"}"#;
        assert_eq!(
            class(&ab, K(ExitCode::Panic), &[READY, panic]),
            Class::UnexpectedAbort
        );
        assert_eq!(
            class(&ab, K(ExitCode::Success), &[READY, OK]),
            Class::MissingAbort
        );
        assert_eq!(class(&ok, KernelExit::Timeout, &[READY, OK]), Class::Hang);
        assert_eq!(
            class(&ok, KernelExit::NoExitRecord, &[]),
            Class::MachineDeath
        );
        // The expected overflow, but before the last command wrote its result.
        let early = "threads 4; recurse 400 1024; stats";
        let lines = recs(&[
            READY,
            r#"{"kind":"result","cmd":"threads","ok":true}"#,
            OVERFLOW,
        ]);
        let j = classify(&ab, early, K(ExitCode::Abort), &lines);
        assert_eq!(j.class, Class::UnexpectedAbort, "{j:?}");
        assert_eq!(j.detail, "stack-overflow before the last command");
        let j = classify(&ok, CMDLINE, K(ExitCode::Failure), &recs(&[READY, BAD]));
        assert_eq!(j.detail, "result of 'threads' not ok");
    }

    #[test]
    fn the_last_command_is_reached_when_the_others_reported_in_order() {
        let r = |cmds: &[&str]| -> Vec<Record> {
            cmds.iter()
                .map(|c| {
                    Record::parse_json(&format!(r#"{{"kind":"result","cmd":"{c}","ok":true}}"#))
                        .unwrap()
                })
                .collect()
        };
        let line = "jitter 1; policy fixed 16K; recurse 3 32; recurse 900 1024";
        assert!(reached_last_command(
            line,
            &r(&["jitter", "policy", "recurse"])
        ));
        assert!(!reached_last_command(line, &r(&["jitter", "policy"])));
        assert!(!reached_last_command(
            line,
            &r(&["policy", "jitter", "recurse"])
        ));
        assert!(reached_last_command("recurse 900 1024", &[]));
        assert!(reached_last_command("", &[]));
    }

    #[test]
    fn observed_outcomes_in_catalogue_words() {
        let ok = K(ExitCode::Success);
        assert_eq!(observe(ok, &recs(&[READY, OK])), "ok");
        assert_eq!(
            observe(K(ExitCode::Abort), &recs(&[READY, OK, OVERFLOW])),
            "abort:stack-overflow"
        );
        let panic = r#"{"kind":"abort","reason":"panic","msg":"boom"}"#;
        assert_eq!(observe(K(ExitCode::Panic), &recs(&[panic])), "abort:panic");
        let err = r#"{"kind":"error","cmd":"x","msg":"unknown command"}"#;
        assert_eq!(
            observe(K(ExitCode::BadCommand), &recs(&[READY, err])),
            "bad-command:x"
        );
        let no = r#"{"kind":"result","cmd":"extra","ok":true,"refused":true}"#;
        assert_eq!(observe(ok, &recs(&[READY, no, OK])), "refused");
        let why = r#"{"kind":"result","cmd":"extra","ok":true,"refused":"pool empty"}"#;
        assert_eq!(observe(ok, &recs(&[READY, why])), "refused");
        let not = r#"{"kind":"result","cmd":"extra","ok":true,"refused":false}"#;
        assert_eq!(observe(ok, &recs(&[READY, not])), "ok");
        let det = r#"{"kind":"result","cmd":"clobber","ok":true,"detected":"canary"}"#;
        assert_eq!(observe(ok, &recs(&[READY, det])), "detected:canary");
        assert_eq!(
            observe(K(ExitCode::Failure), &recs(&[READY, OK, BAD])),
            "failed:threads"
        );
        // The machine's end decides before any record.
        assert_eq!(
            observe(KernelExit::Timeout, &recs(&[READY, OVERFLOW])),
            "hang"
        );
        assert_eq!(
            observe(KernelExit::NoExitRecord, &recs(&[READY])),
            "triple-fault"
        );
    }

    #[test]
    fn names_round_trip() {
        for c in Class::ALL {
            assert_eq!(Class::from_name(c.name()), Some(c));
        }
        assert_eq!(Class::from_name("fine"), None);
        assert_eq!(
            Class::ALL.iter().filter(|c| c.passed()).count(),
            2,
            "only ok and documented-abort pass"
        );
    }
}
