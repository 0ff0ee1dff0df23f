//! Checks that a file is something the bootloader can load as the kernel: a little-endian
//! x86_64 ELF64 executable (static or position-independent).

use std::fmt;
use std::path::Path;

use crate::Error;

const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Why a file is not a usable kernel ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated,
    Not64Bit,
    BigEndian,
    WrongMachine(u16),
    NotExecutable(u16),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "is not an ELF file (no \\x7fELF magic)"),
            ElfError::Truncated => write!(f, "is a truncated ELF file (header incomplete)"),
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

/// Validates an ELF header.
pub fn validate(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < 6 {
        return Err(ElfError::Truncated);
    }
    if bytes[4] != 2 {
        return Err(ElfError::Not64Bit);
    }
    if bytes[5] != 1 {
        return Err(ElfError::BigEndian);
    }
    if bytes.len() < 64 {
        return Err(ElfError::Truncated);
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    let e_machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(e_machine));
    }
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
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

    /// A minimal ELF header: class, data, type, machine.
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

    #[test]
    fn accepts_x86_64_executables_static_and_pie() {
        assert_eq!(validate(&header(2, 1, ET_EXEC, 62)), Ok(()));
        assert_eq!(validate(&header(2, 1, ET_DYN, 62)), Ok(()));
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
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
        assert_eq!(
            validate(&header(2, 1, ET_EXEC, 62)[..40]),
            Err(ElfError::Truncated)
        );
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
        let dir = stacklab_ovmf::TempDir::new("elf-test").unwrap();
        let p = dir.path().join("kernel");
        std::fs::write(&p, b"garbage").unwrap();
        let e = validate_file(&p).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert_eq!(
            e.msg,
            format!("{} is not an ELF file (no \\x7fELF magic)", p.display())
        );
        let e = validate_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.msg.starts_with("cannot read kernel ELF"), "{}", e.msg);
    }
}
