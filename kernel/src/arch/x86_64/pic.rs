//! Legacy interrupt controllers: the 8259 pair (remapped to vectors 32-47) and the 8254 PIT on
//! IRQ 0 as the periodic timer.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use pic8259::ChainedPics;
use spin::Mutex;
use stacklab_core::event::Vector;
use stacklab_core::jitter::Jitter;
use x86_64::instructions::port::Port;

/// First vector of the master PIC after remapping.
pub const PIC_BASE: u8 = Vector::PIC_BASE.0;
/// Timer frequency.
pub const TIMER_HZ: u32 = 1000;
const PIT_HZ: u32 = 1_193_182;

// SAFETY: 32 and 40 do not overlap the CPU's exception vectors (0-31) and each other.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(PIC_BASE, PIC_BASE + 8) });
static TICKS: AtomicU64 = AtomicU64::new(0);
/// IRQ handlers between their entry and their EOI (see `recover_lost_irq`). The entry stub of
/// every PIC line increments it as its first instruction, before it touches the stack;
/// [`acknowledge`] decrements it right after the EOI.
pub(super) static IRQ_ENTERED: AtomicU64 = AtomicU64::new(0);
static LOST_RECOVERED: AtomicU64 = AtomicU64::new(0);
/// Whether channel 0 runs as the periodic timer (set by [`periodic`], cleared by [`quiet`]
/// and [`one_shot`]): only then does jitter reprogram it after a tick.
static PERIODIC: AtomicBool = AtomicBool::new(false);
/// Seeded jitter of the periodic timer (off by default): on, its generator state and spread,
/// and the periods it chose so far. Read and written with interrupts off only.
static JITTER_ON: AtomicBool = AtomicBool::new(false);
static JITTER_STATE: AtomicU64 = AtomicU64::new(0);
static JITTER_SPREAD: AtomicU32 = AtomicU32::new(0);
static JITTER_PERIODS: AtomicU64 = AtomicU64::new(0);
/// The unjittered period of the periodic timer, in PIT input clocks.
const BASE_COUNT: u16 = (PIT_HZ / TIMER_HZ) as u16;

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
    });
    periodic();
}

/// Opens IRQ line `irq` (0-7, the master PIC) at the PIC.
pub fn unmask(irq: u8) {
    super::cpu::without_interrupts(|| {
        let mut pics = PICS.lock();
        // SAFETY: reads and rewrites the 8259 pair's interrupt masks, clearing one bit of the
        // master's; the line's vector has a stub (entry.rs) and is acknowledged above.
        unsafe {
            let [m, s] = pics.read_masks();
            pics.write_masks(m & !(1 << (irq & 7)), s);
        }
    });
}

/// Programs PIT channel 0 (IRQ 0), mode `mode`, with `count` input clocks.
fn program_channel0(mode: u8, count: u16) {
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch0 = Port::<u8>::new(0x40);
    super::cpu::without_interrupts(|| {
        // SAFETY: the PIT's mode/command and channel-0 data ports: channel 0, lobyte/hibyte,
        // the given mode, binary; then the count, low byte first. Only the timer's rate
        // changes.
        unsafe {
            cmd.write(0b0011_0000 | (mode << 1));
            ch0.write((count & 0xff) as u8);
            ch0.write((count >> 8) as u8);
        }
    });
}

/// The periodic timer at [`TIMER_HZ`] (mode 2, rate generator): the boot setting. With
/// jitter on, each period is drawn from the jitter sequence instead (see [`set_jitter`]).
pub fn periodic() {
    super::cpu::without_interrupts(|| {
        PERIODIC.store(true, Ordering::Relaxed);
        let count = next_jittered().unwrap_or(BASE_COUNT);
        program_channel0(2, count);
    });
}

/// Turns seeded timer jitter on (`Some`) or off (`None`) and restarts the periodic timer.
/// While on, every periodic tick reprograms channel 0 with the next period of the sequence
/// (`stacklab_core::jitter`), so a seed gives the same sequence of periods every boot. One-shot
/// and quiet phases are not jittered.
pub fn set_jitter(j: Option<Jitter>) {
    super::cpu::without_interrupts(|| {
        if let Some(j) = j {
            JITTER_STATE.store(j.state(), Ordering::Relaxed);
            JITTER_SPREAD.store(j.spread(), Ordering::Relaxed);
        }
        JITTER_ON.store(j.is_some(), Ordering::Relaxed);
        JITTER_PERIODS.store(0, Ordering::Relaxed);
    });
    if PERIODIC.load(Ordering::Relaxed) {
        periodic();
    }
}

/// Periods chosen by the jitter since it was last set.
pub fn jitter_periods() -> u64 {
    JITTER_PERIODS.load(Ordering::Relaxed)
}

/// The next jittered period, advancing the sequence; `None` when jitter is off. Called with
/// interrupts off (one CPU), so the load and store of the state cannot interleave.
fn next_jittered() -> Option<u16> {
    if !JITTER_ON.load(Ordering::Relaxed) {
        return None;
    }
    let mut j = Jitter::from_parts(
        JITTER_STATE.load(Ordering::Relaxed),
        JITTER_SPREAD.load(Ordering::Relaxed),
    );
    let count = j.next_count(BASE_COUNT);
    JITTER_STATE.store(j.state(), Ordering::Relaxed);
    JITTER_PERIODS.fetch_add(1, Ordering::Relaxed);
    Some(count)
}

/// After a periodic tick with jitter on: the next period starts now, with the next length.
fn rearm_jittered() {
    if !PERIODIC.load(Ordering::Relaxed) {
        return;
    }
    if let Some(count) = next_jittered() {
        program_channel0(2, count);
    }
}

/// Stops the periodic timer: mode 0 with the longest count, so no timer interrupt comes for
/// about 55 ms (until [`one_shot`] or [`periodic`] reprograms it). An interrupt the PIC
/// latched before this is still delivered when interrupts are next enabled.
pub fn quiet() {
    PERIODIC.store(false, Ordering::Relaxed);
    program_channel0(0, 0xffff);
}

/// Exactly one timer interrupt, `us` microseconds from now (mode 0, interrupt on terminal
/// count: the output rises once and stays high), and none after it until [`periodic`]. For
/// tests that must know how many timer interrupts the hardware raised.
pub fn one_shot(us: u32) {
    let count = (PIT_HZ as u64 * us as u64 / 1_000_000).clamp(1, 0xffff) as u16;
    PERIODIC.store(false, Ordering::Relaxed);
    program_channel0(0, count);
}

/// The IRQ-side work of a PIC line's delivery, from `trap::dispatch`: a spurious IRQ 7/15 is
/// dropped (false); otherwise the timer is counted, the line acknowledged, and the handler
/// runs next (true). Closes the window the entry stub opened in [`IRQ_ENTERED`].
pub(super) fn acknowledge(vector: Vector) -> bool {
    let v = vector.0;
    let real = !is_spurious(v);
    if real {
        if vector == Vector::TIMER {
            tick();
            rearm_jittered();
        } else if v == PIC_BASE + super::serial::COM1_IRQ {
            super::serial::on_rx_interrupt();
        }
        end_of_interrupt(v);
    } else if v == PIC_BASE + 15 {
        // A spurious IRQ 15 still needs an EOI at the master (for the cascade line).
        end_of_interrupt(PIC_BASE);
    }
    IRQ_ENTERED.fetch_sub(1, Ordering::Relaxed);
    real
}

/// Acknowledges IRQ `vector` at the PIC(s).
fn end_of_interrupt(vector: u8) {
    // `try_lock`: the lock is only ever held with interrupts off, so it is free here unless an
    // exception hit inside `init`; then skipping the EOI is the safe choice.
    if let Some(mut pics) = PICS.try_lock() {
        // SAFETY: `vector` is the IRQ vector being handled right now.
        unsafe { pics.notify_end_of_interrupt(vector) };
    }
}

/// Counts one timer tick; returns the new count.
fn tick() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Spurious IRQ 7 / 15 check: reads the in-service register (OCW3) of the right PIC.
fn is_spurious(vector: u8) -> bool {
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

/// Sends a specific EOI (OCW2 0x60 | level) for `irq`, and for the cascade line on the
/// master when `irq` is on the slave: unlike the non-specific EOI it cannot acknowledge a
/// different line that happens to be in service.
fn specific_eoi(irq: u8) {
    let (mut master, mut slave) = (Port::<u8>::new(0x20), Port::<u8>::new(0xa0));
    // SAFETY: OCW2 writes to the 8259 command ports; a specific EOI clears exactly the named
    // in-service bit and changes nothing else.
    unsafe {
        if irq >= 8 {
            slave.write(0x60 | (irq - 8));
            master.write(0x60 | 2);
        } else {
            master.write(0x60 | irq);
        }
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
/// then block that line (and lower ones) for good. Replays the timer's work and sends a
/// specific EOI for exactly that line. Returns how many interrupts were recovered.
///
/// A fault taken inside an IRQ's entry stub or dispatch (its frame was delivered, its pushes
/// crossed the stack's edge) is not a loss: the stub counted itself in [`IRQ_ENTERED`] before
/// touching the stack, so nothing is replayed and the handler still runs once.
pub fn recover_lost_irq() -> u64 {
    if IRQ_ENTERED.load(Ordering::Relaxed) != 0 {
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
        specific_eoi(irq);
        n += 1;
    }
    LOST_RECOVERED.fetch_add(n, Ordering::Relaxed);
    n
}

/// Interrupts recovered by `recover_lost_irq` since boot.
pub fn lost_recovered() -> u64 {
    LOST_RECOVERED.load(Ordering::Relaxed)
}
