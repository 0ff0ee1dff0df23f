//! COM1 through `uart_16550`, behind a spinlock taken with interrupts disabled.
//!
//! Fatal paths (exception reports, panics) must never wait for a lock the interrupted code may
//! hold, so they write through [`emergency`], which drives the UART without the lock.
//!
//! Receiving (for the shell) is interrupt-driven once [`enable_rx`] ran: IRQ 4 drains the
//! UART's receive register into a lock-free single-producer, single-consumer ring that
//! [`read_byte`] empties, and a Ctrl-C byte (0x03) also raises the cancel flag that
//! long-running commands poll ([`cancel_requested`]).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
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

/// IRQ line of COM1 on the legacy PIC.
pub const COM1_IRQ: u8 = 4;
/// The byte a terminal sends for Ctrl-C.
pub const CTRL_C: u8 = 0x03;
const RX_SIZE: usize = 256;

/// Received bytes. The IRQ 4 handler is the only producer (it advances `RX_HEAD`), the shell
/// the only consumer (it advances `RX_TAIL`); both indexes only grow (modulo `RX_SIZE` when
/// used), so `head - tail` is the fill level.
static RX: [AtomicU8; RX_SIZE] = [const { AtomicU8::new(0) }; RX_SIZE];
static RX_HEAD: AtomicUsize = AtomicUsize::new(0);
static RX_TAIL: AtomicUsize = AtomicUsize::new(0);
/// Bytes dropped because the ring was full (kept for a debugger to read).
static RX_DROPPED: AtomicU64 = AtomicU64::new(0);
static CANCEL: AtomicBool = AtomicBool::new(false);
static CTRL_C_SEEN: AtomicU64 = AtomicU64::new(0);

/// Turns on COM1's "received data available" interrupt (IER bit 0; MCR OUT2, which gates the
/// UART's interrupt line on PC-compatible boards) and unmasks IRQ 4. Idempotent.
pub fn enable_rx() {
    let mut ier = Port::<u8>::new(COM1 + 1);
    let mut mcr = Port::<u8>::new(COM1 + 4);
    super::cpu::without_interrupts(|| {
        // SAFETY: COM1's interrupt-enable and modem-control registers (COM1 is the kernel's
        // own port, see `open`): enabling only the receive interrupt and OUT2 changes no
        // transmit setting, and with interrupts off here the IRQ cannot arrive half set up.
        unsafe {
            ier.write(0x01);
            let m = mcr.read();
            mcr.write(m | 0x0b);
        }
        drain_uart();
    });
    super::pic::unmask(COM1_IRQ);
}

/// Moves every byte the UART holds into the ring (from IRQ 4, or with interrupts off).
fn drain_uart() {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut rbr = Port::<u8>::new(COM1);
    // SAFETY: reading COM1's line-status register and, while it says data is ready, its
    // receive buffer: this only takes received bytes out of the UART.
    while unsafe { lsr.read() } & 0x01 != 0 {
        // SAFETY: as above.
        let b = unsafe { rbr.read() };
        if b == CTRL_C {
            CANCEL.store(true, Ordering::SeqCst);
            CTRL_C_SEEN.fetch_add(1, Ordering::Relaxed);
        }
        let head = RX_HEAD.load(Ordering::Relaxed);
        if head - RX_TAIL.load(Ordering::Acquire) == RX_SIZE {
            RX_DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        RX[head % RX_SIZE].store(b, Ordering::Relaxed);
        RX_HEAD.store(head + 1, Ordering::Release);
    }
}

/// IRQ 4, from `pic::acknowledge` before the EOI.
pub(super) fn on_rx_interrupt() {
    drain_uart();
}

/// The next received byte, if any (single consumer: the shell).
pub fn read_byte() -> Option<u8> {
    let tail = RX_TAIL.load(Ordering::Relaxed);
    if tail == RX_HEAD.load(Ordering::Acquire) {
        return None;
    }
    let b = RX[tail % RX_SIZE].load(Ordering::Relaxed);
    RX_TAIL.store(tail + 1, Ordering::Release);
    Some(b)
}

/// Whether Ctrl-C arrived since the last [`clear_cancel`].
pub fn cancel_requested() -> bool {
    CANCEL.load(Ordering::Relaxed)
}

/// Forgets an earlier Ctrl-C (before a new command starts).
pub fn clear_cancel() {
    CANCEL.store(false, Ordering::SeqCst);
}

/// Ctrl-C bytes received since boot.
pub fn ctrl_c_count() -> u64 {
    CTRL_C_SEEN.load(Ordering::Relaxed)
}
