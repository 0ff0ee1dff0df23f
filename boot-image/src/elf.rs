//! Checks that a file is something the bootloader can load as the stacklab kernel, before an
//! image is made from it (a bad file would otherwise hang in the bootloader until the
//! timeout). Read with `object`:
//!
//! * an ELF64, little-endian, x86-64 executable (static `ET_EXEC` or position-independent
//!   `ET_DYN`) whose program and section headers can be read;
//! * every loadable (`PT_LOAD`) segment's bytes are inside the file, and the entry point lies
//!   inside a loadable, executable segment;
//! * it has the `.bootloader-config` section that `bootloader_api`'s `entry_point!` emits
//!   (the bootloader reads its configuration from there).

use std::fmt;
use std::path::Path;

use object::elf::{EM_X86_64, ET_DYN, ET_EXEC, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, FileKind, Object, ObjectSection};

use crate::Error;

/// The section `bootloader_api::entry_point!` puts the bootloader configuration in.
pub const BOOTLOADER_CONFIG_SECTION: &str = ".bootloader-config";

/// Why a file is not a usable kernel ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic (or another object format).
    NotElf,
    /// An ELF file whose headers or segments cannot be read (cut short or damaged).
    Malformed(String),
    /// ELFCLASS32.
    Not64Bit,
    /// ELFDATA2MSB.
    BigEndian,
    /// `e_machine` is not x86-64.
    WrongMachine(u16),
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN`.
    NotExecutable(u16),
    /// The entry point is in no loadable, executable segment.
    EntryNotInCode(u64),
    /// No `.bootloader-config` section.
    NoBootloaderConfig,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "is not an ELF file (no \\x7fELF magic)"),
            ElfError::Malformed(why) => {
                write!(f, "is a truncated or damaged ELF file ({why})")
            }
            ElfError::Not64Bit => write!(f, "is a 32-bit ELF; the kernel must be ELF64"),
            ElfError::BigEndian => {
                write!(f, "is a big-endian ELF; the kernel must be little-endian")
            }
            ElfError::WrongMachine(m) => {
                write!(
                    f,
                    "is an ELF for machine {m} ({}), not x86_64 (62)",
                    machine_name(*m)
                )
            }
            ElfError::NotExecutable(t) => {
                let what = match t {
                    0 => "no file type",
                    1 => "a relocatable object",
                    4 => "a core dump",
                    _ => "an unknown type",
                };
                write!(f, "is ELF type {t} ({what}), not an executable")
            }
            ElfError::EntryNotInCode(entry) => write!(
                f,
                "has its entry point {entry:#x} outside every loadable executable segment"
            ),
            ElfError::NoBootloaderConfig => write!(
                f,
                "has no {BOOTLOADER_CONFIG_SECTION} section: not a kernel built with \
                 bootloader_api's entry_point!"
            ),
        }
    }
}

fn machine_name(m: u16) -> &'static str {
    match m {
        3 => "i386",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        40 => "ARM",
        183 => "AArch64",
        243 => "RISC-V",
        _ => "unknown",
    }
}

/// Validates a kernel ELF's bytes.
pub fn validate(bytes: &[u8]) -> Result<(), ElfError> {
    let malformed = |e: object::Error| ElfError::Malformed(e.to_string());
    match FileKind::parse(bytes) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err(ElfError::Not64Bit),
        _ if bytes.starts_with(&object::elf::ELFMAG) => {
            return Err(ElfError::Malformed("ELF identification incomplete".into()));
        }
        _ => return Err(ElfError::NotElf),
    }
    let header = object::elf::FileHeader64::<Endianness>::parse(bytes).map_err(malformed)?;
    if !header.is_little_endian() {
        return Err(ElfError::BigEndian);
    }
    let file = ElfFile64::<Endianness>::parse(bytes).map_err(malformed)?;
    let endian = file.endian();
    let header = file.elf_header();
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let e_type = header.e_type(endian);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let entry = header.e_entry(endian);
    let mut entry_in_code = false;
    for (i, ph) in file.elf_program_headers().iter().enumerate() {
        if ph.p_type(endian) != PT_LOAD {
            continue;
        }
        ph.data(endian, bytes).map_err(|()| {
            ElfError::Malformed(format!(
                "loadable segment {i} lies beyond the end of the file"
            ))
        })?;
        let (start, size) = (ph.p_vaddr(endian), ph.p_memsz(endian));
        if ph.p_flags(endian) & PF_X != 0 && entry >= start && entry - start < size {
            entry_in_code = true;
        }
    }
    let mut config = false;
    for section in file.sections() {
        config |= section.name().map_err(malformed)? == BOOTLOADER_CONFIG_SECTION;
    }
    if !entry_in_code {
        return Err(ElfError::EntryNotInCode(entry));
    }
    if !config {
        return Err(ElfError::NoBootloaderConfig);
    }
    Ok(())
}

/// Validates a kernel file; the error names the file and is a usage error (exit 2).
pub fn validate_file(path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::usage(format!("cannot read kernel ELF {}: {e}", path.display())))?;
    validate(&bytes).map_err(|e| Error::usage(format!("{} {e}", path.display())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    /// A minimal ELF header: class, data, type, machine (no segments, no sections).
    pub(crate) fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    /// The real release kernel, built if needed (as the harness does).
    pub(crate) fn real_kernel() -> &'static [u8] {
        static ELF: OnceLock<Vec<u8>> = OnceLock::new();
        ELF.get_or_init(|| {
            let path: PathBuf = {
                let _lock = crate::build::BuildLock::acquire().unwrap();
                crate::build::build_kernel(false, crate::build::Output::Quiet)
                    .unwrap_or_else(|e| panic!("building the kernel for the ELF tests: {e}"))
            };
            std::fs::read(path).unwrap()
        })
    }

    #[test]
    fn the_real_kernel_passes() {
        assert_eq!(validate(real_kernel()), Ok(()));
    }

    #[test]
    fn a_truncated_kernel_is_refused() {
        let k = real_kernel();
        for len in [k.len() / 2, k.len() - 1, 200, 63, 10] {
            match validate(&k[..len]) {
                Err(ElfError::Malformed(_)) => {}
                other => panic!("cut at {len}: {other:?}"),
            }
        }
        // Cut inside the code: the section headers at the end are gone.
        let e = validate(&k[..k.len() / 2]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("is a truncated or damaged ELF file ("),
            "{e}"
        );
    }

    #[test]
    fn a_host_binary_is_refused_for_its_missing_bootloader_config() {
        let host = std::fs::read("/bin/true").unwrap();
        assert_eq!(validate(&host), Err(ElfError::NoBootloaderConfig));
        assert_eq!(
            ElfError::NoBootloaderConfig.to_string(),
            "has no .bootloader-config section: not a kernel built with bootloader_api's entry_point!"
        );
    }

    #[test]
    fn random_bytes_are_refused() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(validate(&bytes), Err(ElfError::NotElf));
        // Random bytes behind the ELF magic.
        let mut elfish = b"\x7fELF\x02\x01\x01".to_vec();
        elfish.extend_from_slice(&bytes);
        assert!(matches!(validate(&elfish), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn an_entry_point_outside_the_code_is_refused() {
        let mut k = real_kernel().to_vec();
        // e_entry = 0: inside the first, read-only segment.
        k[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(validate(&k), Err(ElfError::EntryNotInCode(0)));
        k[24..32].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        assert_eq!(
            validate(&k).unwrap_err().to_string(),
            "has its entry point 0xdead0000 outside every loadable executable segment"
        );
    }

    #[test]
    fn a_kernel_without_the_config_section_is_refused() {
        let mut k = real_kernel().to_vec();
        let name = b".bootloader-config\0";
        let at = k
            .windows(name.len())
            .rposition(|w| w == name)
            .expect("section name in .shstrtab");
        k[at + name.len() - 2] = b'X';
        assert_eq!(validate(&k), Err(ElfError::NoBootloaderConfig));
    }

    #[test]
    fn header_level_errors_have_reasons() {
        assert_eq!(validate(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(validate(b""), Err(ElfError::NotElf));
        assert_eq!(validate(&header(1, 1, ET_EXEC, 3)), Err(ElfError::Not64Bit));
        assert_eq!(
            validate(&header(2, 2, ET_EXEC, 62)),
            Err(ElfError::BigEndian)
        );
        assert_eq!(
            validate(&header(2, 1, ET_EXEC, 183)),
            Err(ElfError::WrongMachine(183))
        );
        assert_eq!(
            validate(&header(2, 1, 1, 62)),
            Err(ElfError::NotExecutable(1))
        );
        // A header without segments has nowhere to start.
        assert_eq!(
            validate(&header(2, 1, ET_DYN, 62)),
            Err(ElfError::EntryNotInCode(0))
        );
        assert!(matches!(
            validate(&header(2, 1, ET_EXEC, 62)[..40]),
            Err(ElfError::Malformed(_))
        ));
        assert_eq!(
            ElfError::WrongMachine(183).to_string(),
            "is an ELF for machine 183 (AArch64), not x86_64 (62)"
        );
        assert_eq!(
            ElfError::Not64Bit.to_string(),
            "is a 32-bit ELF; the kernel must be ELF64"
        );
    }

    #[test]
    fn file_errors_name_the_file_and_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kernel");
        std::fs::write(&p, b"garbage").unwrap();
        let e = validate_file(&p).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert_eq!(
            e.msg,
            format!("{} is not an ELF file (no \\x7fELF magic)", p.display())
        );
        std::fs::write(&p, std::fs::read("/bin/true").unwrap()).unwrap();
        let e = validate_file(&p).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert_eq!(
            e.msg,
            format!(
                "{} has no .bootloader-config section: not a kernel built with bootloader_api's entry_point!",
                p.display()
            )
        );
        let e = validate_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.msg.starts_with("cannot read kernel ELF"), "{}", e.msg);
    }
}
