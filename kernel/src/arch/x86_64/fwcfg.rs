//! QEMU's fw_cfg interface through I/O ports (QEMU docs/specs/fw_cfg.rst): write a 16-bit
//! selector to 0x510, then read the item's bytes one at a time from 0x511.

use stacklab_core::fwcfg::{self, ENTRY_SIZE};
use x86_64::instructions::port::Port;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
const SIG: u16 = 0x0000;
const FILE_DIR: u16 = 0x0019;

fn select(key: u16) {
    let mut p = Port::<u16>::new(SELECTOR);
    // SAFETY: the fw_cfg selector register; selecting an item only changes what DATA returns.
    unsafe { p.write(key) };
}

fn read(buf: &mut [u8]) {
    let mut p = Port::<u8>::new(DATA);
    for b in buf {
        // SAFETY: the fw_cfg data register; each read returns the next byte of the selected item
        // (0 when absent or past the end).
        *b = unsafe { p.read() };
    }
}

/// Whether QEMU's fw_cfg is present (signature "QEMU").
pub fn present() -> bool {
    select(SIG);
    let mut sig = [0u8; 4];
    read(&mut sig);
    &sig == b"QEMU"
}

/// The number of files in the fw_cfg directory (0 without fw_cfg): cheap to poll, six port
/// accesses.
pub fn file_count() -> u32 {
    if !present() {
        return 0;
    }
    select(FILE_DIR);
    let mut count = [0u8; 4];
    read(&mut count);
    fwcfg::parse_count(count)
}

/// Reads the named file into `buf`; returns the number of bytes stored (at most `buf.len()`),
/// or `None` if there is no such file. Whether the file was cut short is `Some(n)` with
/// `n < size`: the second value is the file's full size.
pub fn read_file(name: &str, buf: &mut [u8]) -> Option<(usize, usize)> {
    if !present() {
        return None;
    }
    select(FILE_DIR);
    let mut count = [0u8; 4];
    read(&mut count);
    let count = fwcfg::parse_count(count);
    let mut found = None;
    for _ in 0..count {
        let mut raw = [0u8; ENTRY_SIZE];
        read(&mut raw);
        if let Some((n, entry)) = fwcfg::parse_entry(&raw)
            && n == name
        {
            found = Some(entry);
            break;
        }
    }
    let entry = found?;
    let size = entry.size as usize;
    let n = size.min(buf.len());
    select(entry.select);
    read(&mut buf[..n]);
    Some((n, size))
}
