//! Helpers for the QEMU integration tests in `tests/tests/`: every boot goes through
//! `boot_image::Harness` (the one place that knows how to start QEMU), and these functions
//! only read what the kernel reported.
//!
//! A boot costs about 5 s under TCG, so a test file shares one boot between several tests
//! where the commands do not disturb each other (see [`Shared`]); a command that ends the
//! machine is always the last one of its boot.

use std::sync::OnceLock;

pub use boot_image::{Harness, KernelExit, Outcome, Record, RunOptions};
pub use stacklab_core::proto::ExitCode;

/// Per-boot timeout. A normal boot takes about 5 s under TCG; this only bounds a hang.
pub const TIMEOUT_SECS: u64 = 60;

/// Boots the kernel once with `cmdline` and returns what it reported. Panics if the harness
/// cannot be built or QEMU cannot be started (not if the kernel fails: that is for the test).
pub fn boot(cmdline: &str) -> Outcome {
    let h = Harness::get();
    // Read the ELF now, next to the harness's symbol table, so both describe the same build.
    elf_bytes();
    h.run(RunOptions::new(cmdline).timeout_secs(TIMEOUT_SECS))
        .unwrap_or_else(|e| panic!("booting with cmdline {cmdline:?}: {e}"))
}

/// One boot shared by the tests of a file: the first test to ask boots, the others wait.
pub struct Shared {
    cmdline: &'static str,
    cell: OnceLock<Outcome>,
}

impl Shared {
    /// A boot with `cmdline` that has not happened yet.
    pub const fn new(cmdline: &'static str) -> Shared {
        Shared {
            cmdline,
            cell: OnceLock::new(),
        }
    }

    /// The outcome, booting first if no test has yet.
    pub fn get(&self) -> &Outcome {
        self.cell.get_or_init(|| boot(self.cmdline))
    }
}

/// Per-boot timeout on Bochs, which interprets every instruction (a boot takes 10 to 40 s on a
/// busy host). This only bounds a hang.
pub const BOCHS_TIMEOUT_SECS: u64 = 300;

/// Boots on Bochs (`cargo lab setup --with-bochs SRC`), or returns `None` after saying the test
/// is skipped when Bochs is not built, unless `STACKLAB_REQUIRE_BOCHS` is set: then a missing
/// Bochs panics.
pub fn boot_on_bochs(cmdline: &str) -> Option<Outcome> {
    use boot_image::bochs;
    use std::io::Write;
    if let Err(e) = bochs::find() {
        if bochs::required() {
            panic!("{} is set but Bochs is not usable: {e}", bochs::ENV_REQUIRE);
        }
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED Bochs test (booting {cmdline:?}): {e}. To run the Bochs tests: `cargo lab \
             setup --with-bochs SRC` (SRC: a Bochs source tree or tarball with FRED)"
        );
        return None;
    }
    elf_bytes();
    let opts = RunOptions::new(cmdline)
        .timeout_secs(BOCHS_TIMEOUT_SECS)
        .emulator(bochs::Emulator::Bochs);
    Some(
        Harness::get()
            .run(opts)
            .unwrap_or_else(|e| panic!("booting {cmdline:?} on Bochs: {e}")),
    )
}

/// [`Shared`] on Bochs: one boot for the tests of a file, or none if Bochs is not built.
pub struct BochsBoot {
    cmdline: &'static str,
    cell: OnceLock<Option<Outcome>>,
}

impl BochsBoot {
    /// A Bochs boot with `cmdline` that has not happened yet.
    pub const fn new(cmdline: &'static str) -> BochsBoot {
        BochsBoot {
            cmdline,
            cell: OnceLock::new(),
        }
    }

    /// The outcome, booting first if no test has yet; `None` when skipped.
    pub fn get(&self) -> Option<&Outcome> {
        self.cell
            .get_or_init(|| boot_on_bochs(self.cmdline))
            .as_ref()
    }
}

/// Asserts the run ended with the kernel's own `exit` record naming `code`, agreeing with
/// QEMU's exit status, and that this record is the last one.
pub fn assert_exit(out: &Outcome, code: ExitCode) {
    assert_eq!(out.exit, KernelExit::Kernel(code), "{out:?}");
    assert_eq!(out.problem, None, "{out:?}");
    let last = out
        .records
        .last()
        .unwrap_or_else(|| panic!("no records: {out:?}"));
    assert_eq!(last.kind, "exit", "{out:?}");
    assert_eq!(last.str("code"), Some(code.name()), "{out:?}");
    assert_eq!(out.find_all("exit").len(), 1, "{out:?}");
}

/// The record kinds in the order the kernel wrote them, with the command name for `result`
/// and `error` records (`result:int3`, `error:bogus`), for asserting the exact sequence.
pub fn sequence(out: &Outcome) -> Vec<String> {
    out.records
        .iter()
        .map(|r| match (r.kind.as_str(), r.str("cmd")) {
            (k @ ("result" | "error"), Some(c)) => format!("{k}:{c}"),
            (k, _) => k.to_string(),
        })
        .collect()
}

/// Every `result` record of command `cmd`, in order.
pub fn results_for<'a>(out: &'a Outcome, cmd: &str) -> Vec<&'a Record> {
    out.records
        .iter()
        .filter(|r| r.kind == "result" && r.str("cmd") == Some(cmd))
        .collect()
}

/// The one `abort` record of a run, which must come right before the `exit` record.
pub fn the_abort(out: &Outcome) -> &Record {
    let aborts = out.find_all("abort");
    assert_eq!(
        aborts.len(),
        1,
        "expected exactly one abort record: {out:?}"
    );
    let n = out.records.len();
    assert!(
        n >= 2 && out.records[n - 2].kind == "abort",
        "the abort record must precede exit: {out:?}"
    );
    aborts[0]
}

/// A `"0x…"` field that must be present.
pub fn hex(r: &Record, key: &str) -> u64 {
    r.hex(key)
        .unwrap_or_else(|| panic!("field {key} missing or not hex in {}", r.to_json_line()))
}

/// A number field that must be present.
pub fn num(r: &Record, key: &str) -> u64 {
    r.u64(key).unwrap_or_else(|| {
        panic!(
            "field {key} missing or not a number in {}",
            r.to_json_line()
        )
    })
}

/// A string field that must be present.
pub fn text<'a>(r: &'a Record, key: &str) -> &'a str {
    r.str(key).unwrap_or_else(|| {
        panic!(
            "field {key} missing or not a string in {}",
            r.to_json_line()
        )
    })
}

/// An array of numbers that must be present (a histogram, say).
pub fn num_list(r: &Record, key: &str) -> Vec<u64> {
    r.get(key)
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().map(|v| v.as_u64()).collect())
        .unwrap_or_else(|| panic!("field {key} missing or not numbers in {}", r.to_json_line()))
}

/// The report's backtrace is not empty and its first return address is in a function whose
/// path starts with `prefix` (the address minus one is inside the call instruction).
pub fn assert_backtrace_starts_in(out: &Outcome, report: &Record, prefix: &str) {
    let bt = report.hex_list("backtrace");
    assert!(!bt.is_empty(), "no backtrace: {out:?}");
    let f = function_at(out, bt[0] - 1);
    assert!(f.starts_with(prefix), "backtrace starts in {f}: {out:?}");
}

/// The function containing a runtime kernel address; panics if it is not in the kernel.
pub fn function_at(out: &Outcome, addr: u64) -> String {
    out.symbolize(addr).unwrap_or_else(|| {
        panic!(
            "{addr:#x} is not in any kernel function (offset {:#x})",
            out.kernel_offset
        )
    })
}

/// A thread's stack under a grow policy that started at one page (`pages`, `high_water`,
/// `grow_events`, `grow_pages` of a scenario's result): every mapped page beyond the first
/// came from a growth event, and exactly the pages the thread touched are mapped.
pub fn assert_grown_exactly(r: &Record) {
    const PAGE: u64 = 4096;
    let (pages, hw) = (num(r, "pages"), num(r, "high_water"));
    let (events, grown) = (num(r, "grow_events"), num(r, "grow_pages"));
    assert!(events >= 1, "no growth: {}", r.to_json_line());
    assert!(grown >= events, "{}", r.to_json_line());
    assert_eq!(pages, hw.div_ceil(PAGE), "{}", r.to_json_line());
    assert_eq!(pages, 1 + grown, "{}", r.to_json_line());
}

/// A scenario's checked result: `ok`, and `result` equal to the independently computed
/// `expected` (and not 0). Returns the value.
pub fn assert_checked_result(r: &Record) -> u64 {
    assert_eq!(r.bool("ok"), Some(true), "{}", r.to_json_line());
    let (got, want) = (hex(r, "result"), hex(r, "expected"));
    assert_eq!(got, want, "{}", r.to_json_line());
    assert_ne!(got, 0);
    got
}

/// The byte of the kernel image at a runtime address (load offset taken into account), read
/// from the ELF the harness booted.
pub fn kernel_byte(out: &Outcome, addr: u64) -> Option<u8> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf_bytes()).ok()?;
    let link = addr.checked_sub(out.kernel_offset)?;
    file.sections().find_map(|s| {
        let (start, size) = (s.address(), s.size());
        if link < start || link >= start + size {
            return None;
        }
        let data = s.data().ok()?;
        data.get((link - start) as usize).copied()
    })
}

fn elf_bytes() -> &'static [u8] {
    static ELF: OnceLock<Vec<u8>> = OnceLock::new();
    ELF.get_or_init(|| {
        let path = &Harness::get().elf;
        std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    })
}
