//! `cargo lab run --gdb`: the gdb command line that attaches to QEMU's stub with the kernel's
//! symbols where the boot loader put them.
//!
//! The kernel is a position-independent ELF linked at 0; the boot loader maps it at a load
//! offset that it reports in `BootInfo::kernel_image_offset`, which the kernel writes as
//! `kernel_offset` in its `ready` record. With this project's boot loader configuration
//! (no ASLR) that offset is always [`KERNEL_LOAD_OFFSET`]; a QEMU test checks the `ready`
//! record against it. gdb is told the offset with `add-symbol-file FILE -o OFFSET`, which
//! moves every section by it (the `.text` address is printed for reference). The older form
//! `add-symbol-file FILE TEXTADDR -o OFFSET` is not used: gdb 13 then resolves a function's
//! breakpoint through the line table at its unrelocated address (0x42514 instead of
//! 0x8000042514), which never hits.
//!
//! Breakpoints are hardware breakpoints (`hbreak`): when gdb connects, the CPU is halted at
//! the firmware's reset vector and the kernel is not in memory yet, so a software breakpoint
//! (an `int3` written into the code) cannot be planted; a debug-register breakpoint on the
//! virtual address works once the kernel runs.

use std::path::Path;

use object::{Object, ObjectSection};

use super::note;
use crate::Error;

/// Where the boot loader maps the kernel ELF (its `kernel_image_offset`).
pub const KERNEL_LOAD_OFFSET: u64 = 0x80_0000_0000;
/// The #DF handler's symbol, the breakpoint the printed command line sets.
pub const DF_HANDLER: &str = "stacklab_kernel::events::double_fault::handle";

/// What the gdb command line needs from the kernel ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfFacts {
    /// The `.text` section's address in the ELF (before the load offset).
    pub text: u64,
    /// The #DF handler as gdb names it: demangled with its hash (`...::handle::h0123…`),
    /// since the plain path does not resolve in gdb 13 for a symbol-table-only function.
    pub df_handler: String,
}

/// Reads [`ElfFacts`] from the kernel ELF.
pub fn elf_facts(elf: &Path) -> Result<ElfFacts, Error> {
    use object::ObjectSymbol;
    let bad = |e: String| Error::usage(format!("{}: {e}", elf.display()));
    let data = std::fs::read(elf).map_err(|e| bad(e.to_string()))?;
    let file = object::File::parse(&*data).map_err(|e| bad(e.to_string()))?;
    let text = file
        .section_by_name(".text")
        .map(|s| s.address())
        .ok_or_else(|| bad("no .text section".into()))?;
    let df_handler = file
        .symbols()
        .filter_map(|s| s.name().ok().map(rustc_demangle::demangle))
        .find(|d| format!("{d:#}") == DF_HANDLER)
        .map(|d| d.to_string())
        .ok_or_else(|| bad(format!("no symbol {DF_HANDLER} (not a stacklab kernel?)")))?;
    Ok(ElfFacts { text, df_handler })
}

/// gdb's arguments (after the program name): connect to the stub on `port`, load the
/// symbols of `elf` at the load offset, break on the #DF handler, continue.
pub fn gdb_command(elf: &Path, port: u16, facts: &ElfFacts) -> Vec<String> {
    let offset = KERNEL_LOAD_OFFSET;
    [
        "-q".to_string(),
        "-ex".into(),
        format!("target remote 127.0.0.1:{port}"),
        "-ex".into(),
        format!("add-symbol-file {} -o {offset:#x}", elf.display()),
        "-ex".into(),
        format!("hbreak {}", facts.df_handler),
        "-ex".into(),
        "continue".into(),
    ]
    .into()
}

/// Quotes a word for a POSIX shell.
fn quote(w: &str) -> String {
    if w.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./:=".contains(&b))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Prints how to attach gdb to the QEMU that is about to start.
pub fn announce(elf: &Path, port: u16) -> Result<(), Error> {
    let elf = std::path::absolute(elf).unwrap_or_else(|_| elf.to_path_buf());
    let facts = elf_facts(&elf)?;
    let cmd: Vec<String> = gdb_command(&elf, port, &facts)
        .iter()
        .map(|w| quote(w))
        .collect();
    note(&format!(
        "QEMU starts halted with its gdb stub on 127.0.0.1:{port}; the kernel is loaded at \
         offset {KERNEL_LOAD_OFFSET:#x} (.text at {:#x}). In another terminal:",
        facts.text + KERNEL_LOAD_OFFSET
    ));
    note(&format!("  gdb {}", cmd.join(" ")));
    note("  (hbreak, not break: the kernel is not in memory until the firmware loads it)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_connects_loads_at_the_offset_and_breaks_on_df() {
        let facts = ElfFacts {
            text: 0xf480,
            df_handler: format!("{DF_HANDLER}::h0123456789abcdef"),
        };
        let a = gdb_command(Path::new("/k/stacklab-kernel"), 4321, &facts);
        assert_eq!(
            a,
            [
                "-q",
                "-ex",
                "target remote 127.0.0.1:4321",
                "-ex",
                "add-symbol-file /k/stacklab-kernel -o 0x8000000000",
                "-ex",
                "hbreak stacklab_kernel::events::double_fault::handle::h0123456789abcdef",
                "-ex",
                "continue",
            ]
        );
    }

    #[test]
    fn words_are_quoted_for_a_shell() {
        assert_eq!(quote("-q"), "-q");
        assert_eq!(
            quote("target remote 127.0.0.1:1"),
            "'target remote 127.0.0.1:1'"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn elf_facts_of_the_real_kernel_or_a_clear_error() {
        let e = elf_facts(Path::new("/nonexistent/k")).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert!(e.msg.starts_with("/nonexistent/k: "), "{}", e.msg);
        // /bin/true is an ELF with a .text section but no #DF handler.
        let e = elf_facts(Path::new("/bin/true")).unwrap_err();
        assert!(e.msg.contains("no symbol stacklab_kernel::"), "{}", e.msg);
        let kernel = crate::paths::kernel_elf(false);
        if kernel.is_file() {
            let f = elf_facts(&kernel).unwrap();
            assert!(f.text > 0);
            assert!(
                f.df_handler.starts_with(&format!("{DF_HANDLER}::h")),
                "{f:?}"
            );
        }
    }
}
