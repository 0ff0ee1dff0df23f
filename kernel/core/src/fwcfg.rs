//! Parsing of QEMU's fw_cfg file directory (selector 0x0019).
//!
//! The directory is big-endian: a `u32` count, then `count` entries of
//! `{ size: u32, select: u16, reserved: u16, name: [u8; 56] }` (QEMU docs/specs/fw_cfg.rst).
//! The kernel reads the bytes through the I/O interface; this module only interprets them.

/// Size of one directory entry in bytes.
pub const ENTRY_SIZE: usize = 64;
/// Length of the NUL-padded name field.
pub const NAME_LEN: usize = 56;

/// A file in the fw_cfg directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Size in bytes.
    pub size: u32,
    /// The selector key that reads it.
    pub select: u16,
}

/// Decodes the directory's leading count.
pub fn parse_count(bytes: [u8; 4]) -> u32 {
    u32::from_be_bytes(bytes)
}

/// Decodes one 64-byte entry; returns its name (up to the first NUL) and location.
/// `None` if the name is not UTF-8.
pub fn parse_entry(raw: &[u8; ENTRY_SIZE]) -> Option<(&str, FileEntry)> {
    let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let select = u16::from_be_bytes([raw[4], raw[5]]);
    let name = &raw[8..8 + NAME_LEN];
    let len = name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    let name = core::str::from_utf8(&name[..len]).ok()?;
    Some((name, FileEntry { size, select }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u32, select: u16, name: &str) -> [u8; ENTRY_SIZE] {
        let mut e = [0u8; ENTRY_SIZE];
        e[0..4].copy_from_slice(&size.to_be_bytes());
        e[4..6].copy_from_slice(&select.to_be_bytes());
        e[8..8 + name.len()].copy_from_slice(name.as_bytes());
        e
    }

    #[test]
    fn decodes_big_endian_entries() {
        assert_eq!(parse_count([0, 0, 1, 2]), 258);
        let e = entry(17, 0x0025, "opt/stacklab/cmdline");
        assert_eq!(
            parse_entry(&e),
            Some((
                "opt/stacklab/cmdline",
                FileEntry {
                    size: 17,
                    select: 0x25
                }
            ))
        );
    }

    #[test]
    fn full_length_name_and_bad_utf8() {
        let long = "x".repeat(NAME_LEN);
        let e = entry(1, 2, &long);
        assert_eq!(parse_entry(&e).unwrap().0.len(), NAME_LEN);
        let mut bad = entry(1, 2, "ab");
        bad[8] = 0xff;
        assert_eq!(parse_entry(&bad), None);
    }
}
