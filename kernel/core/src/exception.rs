//! Names of the x86 exception vectors and decoding of their error codes
//! (Intel SDM Vol. 3A, Table 6-1, §6.13 "Error Code", §6.15 Interrupt 14).

use core::fmt;

use crate::event::Vector;

/// Mnemonic and name of an exception vector (0-31).
pub fn name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        9 => ("CSO", "coprocessor segment overrun"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        28 => ("#HV", "hypervisor injection"),
        29 => ("#VC", "VMM communication"),
        30 => ("#SX", "security exception"),
        32..=255 => ("IRQ", "interrupt"),
        _ => ("RSV", "reserved"),
    }
}

/// Whether the CPU pushes an error code for this vector (see [`Vector::pushes_error_code`]).
pub fn has_error_code(vector: u8) -> bool {
    Vector(vector).pushes_error_code()
}

/// A decoded error code, displayable for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The vector has no error code.
    None,
    /// #PF: bit 0 present, 1 write, 2 user, 3 reserved bit, 4 instruction fetch, 5 protection
    /// key, 6 shadow stack, 15 SGX.
    PageFault(u64),
    /// Selector-style codes (#TS, #NP, #SS, #GP): bit 0 EXT, bit 1 IDT, bit 2 TI (LDT), 15:3 index.
    Selector(u64),
    /// #DF, #AC and others: always zero or not decoded further.
    Raw(u64),
}

impl ErrorCode {
    /// Decodes the error code `code` of vector `vector`.
    pub fn decode(vector: u8, code: u64) -> ErrorCode {
        match vector {
            14 => ErrorCode::PageFault(code),
            10..=13 => ErrorCode::Selector(code),
            v if has_error_code(v) => ErrorCode::Raw(code),
            _ => ErrorCode::None,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorCode::None => f.write_str("none"),
            ErrorCode::Raw(c) => write!(f, "{c:#x}"),
            ErrorCode::PageFault(c) => {
                write!(f, "{c:#x} (")?;
                f.write_str(if c & 1 != 0 {
                    "protection violation"
                } else {
                    "not present"
                })?;
                f.write_str(if c & 2 != 0 { ", write" } else { ", read" })?;
                f.write_str(if c & 4 != 0 { ", user" } else { ", kernel" })?;
                for (bit, what) in [
                    (3, "reserved bit"),
                    (4, "instruction fetch"),
                    (5, "protection key"),
                    (6, "shadow stack"),
                    (15, "SGX"),
                ] {
                    if c & (1 << bit) != 0 {
                        write!(f, ", {what}")?;
                    }
                }
                f.write_str(")")
            }
            ErrorCode::Selector(0) => f.write_str("0x0 (no selector)"),
            ErrorCode::Selector(c) => {
                let table = if c & 2 != 0 {
                    "IDT"
                } else if c & 4 != 0 {
                    "LDT"
                } else {
                    "GDT"
                };
                write!(f, "{c:#x} ({table} index {}", (c >> 3) & 0x1fff)?;
                if c & 1 != 0 {
                    f.write_str(", external event")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn names_and_error_code_vectors() {
        assert_eq!(name(8), ("#DF", "double fault"));
        assert_eq!(name(14).0, "#PF");
        assert_eq!(name(15).0, "RSV");
        assert_eq!(name(40).0, "IRQ");
        let with: std::vec::Vec<u8> = (0..32).filter(|v| has_error_code(*v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn decodes_page_fault_bits() {
        assert_eq!(
            ErrorCode::decode(14, 0).to_string(),
            "0x0 (not present, read, kernel)"
        );
        assert_eq!(
            ErrorCode::decode(14, 0b1_0011).to_string(),
            "0x13 (protection violation, write, kernel, instruction fetch)"
        );
        assert_eq!(
            ErrorCode::decode(14, 6).to_string(),
            "0x6 (not present, write, user)"
        );
    }

    #[test]
    fn decodes_selector_codes() {
        assert_eq!(
            ErrorCode::decode(13, 0x50).to_string(),
            "0x50 (GDT index 10)"
        );
        assert_eq!(ErrorCode::decode(13, 0).to_string(), "0x0 (no selector)");
        assert_eq!(
            ErrorCode::decode(11, 0x6b).to_string(),
            "0x6b (IDT index 13, external event)"
        );
        assert_eq!(ErrorCode::decode(12, 0x0c).to_string(), "0xc (LDT index 1)");
        assert_eq!(ErrorCode::decode(8, 0).to_string(), "0x0");
        assert_eq!(ErrorCode::decode(3, 0).to_string(), "none");
    }
}
