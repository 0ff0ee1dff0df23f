//! Which emulator the kernel runs on, and what its CPU offers: the facts the `ready` record
//! and `info` report, and what picks how the kernel gets its command line and powers off.
//!
//! Bochs is recognized by its port 0xE9 console (the host's bochsrc enables `port_e9_hack`):
//! a read of port 0xE9 returns 0xE9 there, and all ones where no device decodes the port
//! (QEMU without a debugcon device, which stacklab never adds).

use core::sync::atomic::{AtomicU8, Ordering};
use stacklab_core::bochs::{E9_PORT, EXIT_PREFIX, SHUTDOWN, SHUTDOWN_PORT};
use x86_64::instructions::port::Port;

/// The machine the kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    /// QEMU (or anything without Bochs's port 0xE9 console).
    Qemu,
    /// Bochs with `port_e9_hack`.
    Bochs,
}

impl Emulator {
    /// The name the `ready` record uses.
    pub fn name(self) -> &'static str {
        match self {
            Emulator::Qemu => "qemu",
            Emulator::Bochs => "bochs",
        }
    }
}

const UNKNOWN: u8 = 0;
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The emulator, probed once (port 0xE9) and remembered.
pub fn emulator() -> Emulator {
    match DETECTED.load(Ordering::Relaxed) {
        1 => Emulator::Qemu,
        2 => Emulator::Bochs,
        _ => {
            let mut p = Port::<u8>::new(E9_PORT);
            // SAFETY: reading port 0xE9 has no side effect: Bochs's console returns 0xE9, an
            // undecoded port returns all ones.
            let v = unsafe { p.read() };
            let e = if v == 0xe9 {
                Emulator::Bochs
            } else {
                Emulator::Qemu
            };
            DETECTED.store(if e == Emulator::Bochs { 2 } else { 1 }, Ordering::Relaxed);
            e
        }
    }
}

/// FRED as the `ready` record and `info` report it: `"enabled"` while `growth fred` has it on,
/// `"available"` when CPUID says the CPU implements it (leaf 7 subleaf 1, EAX bit 17), else
/// `"absent"`.
pub fn fred_state() -> &'static str {
    super::fred::status()
}

/// Writes bytes to Bochs's port 0xE9 console (Bochs prints them on its standard output).
fn e9_write(bytes: &[u8]) {
    let mut p = Port::<u8>::new(E9_PORT);
    for &b in bytes {
        // SAFETY: port 0xE9 is Bochs's console; a write only prints the byte.
        unsafe { p.write(b) };
    }
}

/// Bochs's power-off: writes `stacklab-exit STATUS` on the 0xE9 console (STATUS is what QEMU
/// would exit with), then `Shutdown` to port 0x8900. Returns only if Bochs did not stop.
pub fn bochs_power_off(qemu_status: i32) {
    e9_write(EXIT_PREFIX.as_bytes());
    let mut digits = [0u8; 10];
    let mut n = qemu_status.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    e9_write(&digits[at..]);
    e9_write(b"\n");
    let mut p = Port::<u8>::new(SHUTDOWN_PORT);
    for &b in SHUTDOWN {
        // SAFETY: Bochs's shutdown port; the string powers the machine off, which is the
        // point; elsewhere nothing decodes it.
        unsafe { p.write(b) };
    }
}
