//! Time: the TSC, calibrated against the PIT's interrupt count.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::{cpu, pic};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Remembers the TSC at kernel entry.
pub fn mark_entry(tsc: u64) {
    TSC_AT_ENTRY.store(tsc, Ordering::Relaxed);
}

/// TSC at kernel entry.
pub fn entry_tsc() -> u64 {
    TSC_AT_ENTRY.load(Ordering::Relaxed)
}

/// Measures the TSC rate over `ms` timer ticks (interrupts must be on).
pub fn calibrate(ms: u64) {
    let t0 = pic::ticks();
    while pic::ticks() == t0 {
        cpu::wait_for_interrupt();
    }
    let (start_tick, start) = (pic::ticks(), cpu::rdtsc());
    while pic::ticks() < start_tick + ms {
        cpu::wait_for_interrupt();
    }
    let (end_tick, end) = (pic::ticks(), cpu::rdtsc());
    let hz = (end - start) * pic::TIMER_HZ as u64 / (end_tick - start_tick);
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
}

/// TSC ticks per second (after `calibrate`).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed).max(1)
}

/// Converts TSC cycles to nanoseconds.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    (cycles as u128 * 1_000_000_000 / tsc_hz() as u128) as u64
}

/// Spins for `ms` milliseconds of TSC time.
pub fn spin_ms(ms: u64) {
    let end = cpu::rdtsc() + tsc_hz() / 1000 * ms;
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}
