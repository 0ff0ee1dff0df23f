//! COM1 through `uart_16550`, behind a spinlock taken with interrupts disabled.
//!
//! Fatal paths (exception reports, panics) must never wait for a lock the interrupted code may
//! hold, so they write through [`emergency`], which drives the UART without the lock.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::{Config, Uart16550, backend::PioBackend};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

struct Serial(Uart16550<PioBackend>);

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.send_bytes_exact(b"\r");
            }
            self.0.send_bytes_exact(&[b]);
        }
        Ok(())
    }
}

static PORT: Mutex<Option<Serial>> = Mutex::new(None);

fn open() -> Serial {
    // SAFETY: 0x3f8..0x3ff are COM1's registers on every PC-compatible machine and QEMU's q35;
    // the kernel is the only user of that port range.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.expect("COM1 base is a valid port");
    let config = Config {
        check_cts_before_sending: false,
        ..Config::default()
    };
    // A missing UART is not fatal: output is then lost, which is all we could do anyway.
    let _ = uart.init(config);
    Serial(uart)
}

/// Initialises COM1. Called once, first thing at boot.
pub fn init() {
    let s = open();
    super::cpu::without_interrupts(|| *PORT.lock() = Some(s));
}

/// Writes formatted text to COM1 (interrupts are disabled while the lock is held).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    super::cpu::without_interrupts(|| {
        if let Some(s) = PORT.lock().as_mut() {
            let _ = s.write_fmt(args);
        }
    });
}

/// A writer for paths that cannot wait for the lock (fatal exceptions, panics). It polls the
/// UART's registers directly; interleaving with a writer that was interrupted mid-line is possible but no
/// deadlock is.
pub fn emergency() -> Emergency {
    Emergency
}

/// See [`emergency`].
pub struct Emergency;

impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut lsr = Port::<u8>::new(COM1 + 5);
        let mut thr = Port::<u8>::new(COM1);
        let mut put = |b: u8| {
            // SAFETY: COM1's line-status and transmit registers; reading LSR and writing THR
            // only moves bytes out of the UART, which `init` has already configured.
            unsafe {
                while lsr.read() & 0x20 == 0 {
                    core::hint::spin_loop();
                }
                thr.write(b);
            }
        };
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

/// The next byte COM1 received, if one is waiting (polled: the kernel takes no serial
/// interrupts).
pub fn try_read() -> Option<u8> {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut rbr = Port::<u8>::new(COM1);
    // SAFETY: COM1's line-status and receive registers; reading RBR only takes the byte the
    // UART holds, which nothing else in the kernel reads.
    unsafe { (lsr.read() & 1 != 0).then(|| rbr.read()) }
}
