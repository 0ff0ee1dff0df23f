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
/// IRQ handlers between their entry and their EOI (see `recover_lost_irq`).
static IN_IRQ: AtomicU64 = AtomicU64::new(0);
static LOST_RECOVERED: AtomicU64 = AtomicU64::new(0);

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
    read_isr(port) & (1 << bit) == 0
}

/// The tick counter itself (for code that must poll it without calls).
pub fn ticks_counter() -> &'static AtomicU64 {
    &TICKS
}

/// Marks the start (true) or the end (false, right after EOI) of an IRQ handler's
/// acknowledged part.
pub fn irq_window(open: bool) {
    if open {
        IN_IRQ.fetch_add(1, Ordering::Relaxed);
    } else {
        IN_IRQ.fetch_sub(1, Ordering::Relaxed);
    }
}

fn read_isr(port: u16) -> u8 {
    let mut p = Port::<u8>::new(port);
    // SAFETY: OCW3 "read ISR" then a read of the same command port; no other state changes.
    unsafe {
        p.write(0x0b);
        p.read()
    }
}

/// After a fault was resolved: if the PIC shows an IRQ in service while no IRQ handler is
/// between entry and EOI, the fault hit the delivery of that interrupt (its frame push) and
/// the CPU consumed the interrupt without running its handler. Without an EOI the PIC would
/// then block that line (and lower ones) for good. Replays the timer's work and sends the
/// EOI. Returns how many interrupts were recovered.
pub fn recover_lost_irq() -> u64 {
    if IN_IRQ.load(Ordering::Relaxed) != 0 {
        return 0;
    }
    let (master, slave) = (read_isr(0x20), read_isr(0xa0));
    let mut n = 0;
    for irq in 0..16u8 {
        let set = if irq < 8 {
            master & (1 << irq) != 0
        } else {
            slave & (1 << (irq - 8)) != 0
        };
        if !set || irq == 2 {
            continue;
        }
        if irq == 0 {
            tick();
        }
        end_of_interrupt(PIC_BASE + irq);
        n += 1;
    }
    LOST_RECOVERED.fetch_add(n, Ordering::Relaxed);
    n
}

/// Interrupts recovered by `recover_lost_irq` since boot.
pub fn lost_recovered() -> u64 {
    LOST_RECOVERED.load(Ordering::Relaxed)
}
