//! Legacy interrupt controllers: the 8259 pair (remapped to vectors 32-47) and the 8254 PIT on
//! IRQ 0 as the periodic timer.

use core::sync::atomic::{AtomicU64, Ordering};
use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;

/// First vector of the master PIC after remapping.
pub const PIC_BASE: u8 = 32;
/// Timer interrupt vector.
pub const TIMER_VECTOR: u8 = PIC_BASE;
/// Timer frequency.
pub const TIMER_HZ: u32 = 1000;
const PIT_HZ: u32 = 1_193_182;

// SAFETY: 32 and 40 do not overlap the CPU's exception vectors (0-31) and each other.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(PIC_BASE, PIC_BASE + 8) });
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Remaps the PICs, unmasks only the timer, and starts the PIT at [`TIMER_HZ`].
pub fn init() {
    super::cpu::without_interrupts(|| {
        let mut pics = PICS.lock();
        // SAFETY: programs the 8259 pair through its standard ports; vectors were chosen above.
        // Masks: only IRQ 0 (timer) and IRQ 2 (cascade) are open.
        unsafe {
            pics.initialize();
            pics.write_masks(0b1111_1010, 0b1111_1111);
        }
        let divisor = (PIT_HZ / TIMER_HZ) as u16;
        let mut cmd = Port::<u8>::new(0x43);
        let mut ch0 = Port::<u8>::new(0x40);
        // SAFETY: the PIT's mode/command and channel-0 data ports: channel 0, lobyte/hibyte,
        // mode 2 (rate generator), binary.
        unsafe {
            cmd.write(0b0011_0100);
            ch0.write((divisor & 0xff) as u8);
            ch0.write((divisor >> 8) as u8);
        }
    });
}

/// Acknowledges IRQ `vector` at the PIC(s).
pub fn end_of_interrupt(vector: u8) {
    // `try_lock`: the lock is only ever held with interrupts off, so it is free here unless an
    // exception hit inside `init`; then skipping the EOI is the safe choice.
    if let Some(mut pics) = PICS.try_lock() {
        // SAFETY: `vector` is the IRQ vector being handled right now.
        unsafe { pics.notify_end_of_interrupt(vector) };
    }
}

/// Counts one timer tick; returns the new count.
pub fn tick() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Spurious IRQ 7 / 15 check: reads the in-service register (OCW3) of the right PIC.
pub fn is_spurious(vector: u8) -> bool {
    let (port, bit) = match vector.wrapping_sub(PIC_BASE) {
        7 => (0x20u16, 7),
        15 => (0xa0u16, 7),
        _ => return false,
    };
    let mut p = Port::<u8>::new(port);
    // SAFETY: OCW3 "read ISR" then a read of the same command port; no other state changes.
    let isr = unsafe {
        p.write(0x0b);
        p.read()
    };
    isr & (1 << bit) == 0
}

/// The tick counter itself (for code that must poll it without calls).
pub fn ticks_counter() -> &'static AtomicU64 {
    &TICKS
}
