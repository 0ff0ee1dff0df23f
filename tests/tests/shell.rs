//! `cargo lab run --shell` driven the way a person uses it: in a terminal (a tmux pane of
//! 120x40 on a tmux server of its own), typing keys and reading the screen. Every wait polls
//! the pane until what must appear appears, with a deadline; nothing is judged by sleeping.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stacklab_tests::Harness;

/// A tmux server and session of this test's own, killed when dropped.
struct Pane {
    socket: String,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl Pane {
    /// Starts `cmd` (a shell command line) in a 120x40 pane.
    fn start(cmd: &str) -> Pane {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("stacklab-shell-test-{}-{n}", std::process::id());
        let p = Pane { socket };
        let out = p.tmux(&["new-session", "-d", "-s", "t", "-x", "120", "-y", "40", cmd]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        p
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .current_dir(workspace_root())
            .output()
            .expect("tmux runs (cargo lab setup installs it)")
    }

    /// Types keys (tmux key names, e.g. `Enter`, `Up`, `C-c`, or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend_from_slice(keys);
        assert!(self.tmux(&a).status.success());
    }

    /// The pane's text, its scroll-back included.
    fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-5000", "-t", "t"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` holds; panics with the screen at the deadline.
    fn wait_for(&self, what: &str, secs: u64, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited {secs} s for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the last non-blank line is the bare prompt (the shell is ready again).
    fn wait_prompt(&self, after: &str) -> String {
        self.wait_for(&format!("the prompt after {after}"), 60, |s| {
            s.contains(after) && last_line(s) == "stacklab>"
        })
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn count(s: &str, what: &str) -> usize {
    s.matches(what).count()
}

#[test]
fn a_person_at_the_shell() {
    // The image must exist before `--no-build` boots it.
    Harness::get();
    let cargo = env!("CARGO");
    let pane = Pane::start(&format!(
        "{cargo} run -q -p boot-image --bin boot-image -- run --shell --no-build --accel tcg \
         --cmdline int3; echo SHELL-EXIT=$?; stty -a; sleep 300"
    ));
    let s = pane.wait_for("the first prompt", 120, |s| last_line(s) == "stacklab>");
    assert!(
        s.contains("✓ int3:"),
        "the commands before `shell` ran first:\n{s}"
    );

    pane.keys(&["help", "Enter"]);
    let s = pane.wait_prompt("✓ help: commands=");
    // The listing: one log line per command, the shell's own included.
    for name in ["shell", "ps", "stack-map", "halt", "recurse", "edge-sweep"] {
        assert!(
            s.lines().any(|l| l
                .split("INFO ]")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                == Some(name)),
            "help lists {name}:\n{s}"
        );
    }
    let n: usize = s
        .split("✓ help: commands=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .expect("help's result counts the commands");
    let listed = s
        .lines()
        .filter(|l| l.contains("INFO ]   ") && !l.contains("shell:"))
        .count();
    assert_eq!(listed, n, "one listing line per command:\n{s}");

    pane.keys(&["bogus 1", "Enter"]);
    let s = pane.wait_prompt("! bogus: unknown command 'bogus' (try 'help')");
    assert!(s.contains("stacklab> bogus 1"), "{s}");

    pane.keys(&["ps", "Enter"]);
    let s = pane.wait_prompt("✓ ps: threads=1");
    assert!(
        s.lines()
            .any(|l| l.contains(" main ") && l.contains("running") && l.ends_with("boot stack")),
        "ps shows the shell's own thread:\n{s}"
    );
    // History: Up brings `ps` back; Enter runs it again.
    pane.keys(&["Up"]);
    pane.wait_for("ps recalled by Up", 30, |s| last_line(s) == "stacklab> ps");
    pane.keys(&["Enter"]);
    pane.wait_for("ps run a second time", 60, |s| {
        count(s, "✓ ps: threads=1") == 2 && last_line(s) == "stacklab>"
    });

    // Tab completes the command name (one match: completed, with a space).
    pane.keys(&["stack-m", "Tab"]);
    pane.wait_for("Tab completion", 30, |s| {
        last_line(s) == "stacklab> stack-map"
    });
    pane.keys(&["Enter"]);
    let s = pane.wait_prompt("✓ stack-map: stacks=5");
    // The boot stack (16 pages above one guard page) and the #DF IST stack (4 pages).
    assert!(
        s.contains(" boot   0x") && s.contains("[g|################] map 64K res 0K guard 4K"),
        "{s}"
    );
    assert!(s.contains("[g|####] map 16K res 0K guard 4K"), "{s}");

    // A command that never ends by itself, stopped by Ctrl-C.
    pane.keys(&["halt", "Enter"]);
    pane.wait_for("halt to run", 60, |s| s.contains("halt: idle"));
    pane.keys(&["C-c"]);
    let s = pane.wait_prompt("✓ halt: interrupted=true");
    assert!(
        !s.contains("^C"),
        "the Ctrl-C that stopped halt is not also a key at the prompt:\n{s}"
    );

    // Ctrl-C at the prompt drops the line being typed.
    pane.keys(&["garbage", "C-c"]);
    let s = pane.wait_for("the line dropped", 30, |s| {
        s.contains("stacklab> garbage^C") && last_line(s) == "stacklab>"
    });
    assert!(!s.contains("unknown command 'garbage'"), "{s}");

    // Ctrl-] leaves: QEMU stops, the tool exits 0, the terminal is back in cooked mode.
    pane.keys(&["C-]"]);
    let s = pane.wait_for("the tool to exit and stty to report", 60, |s| {
        stty_printed(s, "SHELL-EXIT=")
    });
    assert!(s.contains("left the shell"), "{s}");
    assert!(s.contains("SHELL-EXIT=0"), "{s}");
    assert_cooked(&s, "SHELL-EXIT=0");
}

/// Whether the pane shows `marker` and, after it, the whole `stty -a` report (its last
/// line names `extproc`, set or not).
fn stty_printed(screen: &str, marker: &str) -> bool {
    screen
        .split(marker)
        .nth(1)
        .is_some_and(|rest| rest.contains("extproc"))
}

/// Asserts that `stty -a` output (after `marker`) shows a terminal in cooked mode again.
fn assert_cooked(screen: &str, marker: &str) {
    let stty = screen
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("{screen}"));
    let settings: Vec<&str> = stty.split_whitespace().collect();
    for mode in ["icanon", "echo", "isig", "opost", "icrnl"] {
        assert!(settings.contains(&mode), "{mode} restored:\n{stty}");
    }
}

/// The host tool's binary, built by cargo as the tests' own `cargo run` would.
fn tool_binary() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "boot-image", "--bin", "boot-image"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("boot-image")
}

#[test]
fn a_signal_to_the_tool_restores_the_terminal() {
    Harness::get();
    let bin = tool_binary();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The inner shell writes its pid and becomes the tool (exec), so the pid is the tool's.
    let pane = Pane::start(&format!(
        "sh -c 'echo $$ > {}; exec {} run --shell --no-build --accel tcg'; echo TOOL-EXIT=$?; \
         stty -a; sleep 300",
        pidfile.display(),
        bin.display()
    ));
    pane.wait_for("the first prompt", 120, |s| last_line(s) == "stacklab>");
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let s = pane.wait_for("the tool to exit and stty to report", 60, |s| {
        stty_printed(s, "TOOL-EXIT=")
    });
    assert!(
        s.contains("TOOL-EXIT=130"),
        "SIGTERM is an interruption (130):\n{s}"
    );
    assert_cooked(&s, "TOOL-EXIT=130");
}

#[test]
fn shell_needs_a_terminal() {
    Harness::get();
    let out = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "boot-image", "--bin", "boot-image", "--"])
        .args(["run", "--shell", "--no-build"])
        .current_dir(workspace_root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("standard input is not a terminal"), "{err}");
}

/// `park`, `ps`, `stack-map` and `unpark` in a command line (what the shell shows, as records).
#[test]
fn parked_threads_in_ps_and_stack_map() {
    let out = stacklab_tests::boot(
        "policy grow 4K 32K; growth pf-ist; park 3; ps; stack-map; unpark; ps",
    );
    stacklab_tests::assert_exit(&out, stacklab_tests::ExitCode::Success);
    let threads = out.find_all("thread");
    let rows: Vec<(u64, &str, &str, &str)> = threads
        .iter()
        .map(|t| {
            (
                t.u64("tid").unwrap(),
                t.str("name").unwrap(),
                t.str("state").unwrap(),
                t.str("policy").unwrap(),
            )
        })
        .collect();
    // First `ps`: main and the three parked threads; the second, after `unpark`: main alone.
    assert_eq!(rows.len(), 5, "{out:?}");
    assert_eq!(rows[0], (1, "main", "running", "boot stack"));
    for r in &rows[1..4] {
        assert_eq!(
            (r.1, r.2, r.3),
            ("parked", "sleeping", "grow(4K,32K)"),
            "{out:?}"
        );
    }
    assert_eq!(rows[4], (1, "main", "running", "boot stack"));
    let stacks = out.find_all("stack");
    let kinds: Vec<&str> = stacks.iter().map(|s| s.str("type").unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "boot", "thread", "thread", "thread", "ist", "ist", "ist", "ist"
        ]
    );
    let mut mapped = Vec::new();
    for s in &stacks[1..4] {
        let (g, r, m) = (
            s.u64("guard_pages").unwrap(),
            s.u64("reserved_pages").unwrap(),
            s.u64("mapped_pages").unwrap(),
        );
        // A 64K slot under grow 4K 32K: 8 pages that are never mapped, 8 the stack may use.
        assert_eq!((g, r + m), (8, 8), "{out:?}");
        mapped.push(m);
        let bar = format!(
            "[{}|{}{}{}]",
            "g".repeat(8),
            ".".repeat(r as usize),
            if r > 0 { "|" } else { "" },
            "#".repeat(m as usize)
        );
        assert_eq!(s.str("bar"), Some(bar.as_str()), "{out:?}");
        assert_eq!(
            s.hex("hi").unwrap() - s.hex("mapped_lo").unwrap(),
            m * 4096,
            "{out:?}"
        );
    }
    // Thread k recursed 8k levels of 256 B: a deeper thread has at least as many pages, and
    // the third (24 levels, over 6 KiB) grew beyond the first page.
    assert!(
        mapped.is_sorted() && mapped[2] > 1 && mapped[0] >= 1,
        "{mapped:?} {out:?}"
    );
    let boot = &stacks[0];
    assert_eq!(boot.str("bar"), Some("[g|################]"));
    let unpark = out.result_for("unpark").unwrap();
    assert_eq!(
        (unpark.bool("ok"), unpark.u64("threads")),
        (Some(true), Some(3))
    );
}
