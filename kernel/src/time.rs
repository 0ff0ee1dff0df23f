//! Time: the TSC, with its frequency from CPUID leaf 0x15 when the CPU states it, otherwise
//! measured against the 8254 PIT's channel 2 by polling its counter.
//!
//! The kernel used to count PIT *interrupts* for 10 ms. Under QEMU TCG with a loaded host the
//! timer's callbacks run late and edges merge at the PIC, so fewer interrupts arrive than
//! periods pass and the TSC read 1.9 to 4.4 GHz across boots of one machine. Polling the
//! counter (Linux `arch/x86/kernel/tsc.c`, `pit_calibrate_tsc` and `quick_pit_calibrate`)
//! depends on no interrupt; each measurement carries an error bound from the TSC cost of the
//! reads at its two ends (`stacklab_core::tsc::from_pit`). Under load one read can take
//! milliseconds (the vCPU thread waits for QEMU's lock or the host preempts it), so each end is
//! the most tightly bracketed counter change of a quarter of the run
//! (`crate::arch::x86_64::pit::measure`), and up to six runs are made to keep the best.
//! QEMU's `-cpu max` under TCG reports no usable leaf 0x15 (its highest basic leaf is 0xd),
//! so there the source is `pit-poll`.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use stacklab_core::tsc::{self, Estimate};

use crate::arch::x86_64::{cpu, pic, pit};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_ERROR_PPM: AtomicU64 = AtomicU64::new(0);
static TSC_SOURCE: AtomicU8 = AtomicU8::new(Source::Unset as u8);
static TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// PIT periods per polled measurement: 0xc000, 41.2 ms (the ends are picked from its first
/// and last quarters, so they are at least 20.6 ms apart).
const PERIODS: u16 = pit::MAX_PERIODS;
/// Measurements at most; the first one within [`GOOD_PPM`] ends the search.
const ATTEMPTS: u32 = 6;
/// An error bound good enough to stop measuring (0.01%).
const GOOD_PPM: u64 = 100;

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    /// Not calibrated yet.
    Unset,
    /// CPUID leaf 0x15 (crystal frequency × ratio).
    Cpuid15h,
    /// Polled PIT channel 2.
    PitPoll,
    /// Counted PIT interrupts: only if channel 2 could not be polled. Late and merged
    /// interrupts make it read high or low; its error figure covers only the counting's
    /// rounding.
    PitIrq,
}

impl Source {
    /// The name in the `ready` record.
    pub fn name(self) -> &'static str {
        match self {
            Source::Unset => "unset",
            Source::Cpuid15h => "cpuid-15h",
            Source::PitPoll => "pit-poll",
            Source::PitIrq => "pit-irq",
        }
    }
}

/// Remembers the TSC at kernel entry.
pub fn mark_entry(tsc: u64) {
    TSC_AT_ENTRY.store(tsc, Ordering::Relaxed);
}

/// TSC at kernel entry.
pub fn entry_tsc() -> u64 {
    TSC_AT_ENTRY.load(Ordering::Relaxed)
}

/// Finds the TSC frequency: CPUID leaf 0x15 if it states one, else the best of up to
/// [`ATTEMPTS`] polled PIT measurements of 41 ms each, else (channel 2 not counting) 10
/// counted timer interrupts, which needs interrupts on.
pub fn calibrate() {
    let leaves = pit::tsc_leaves();
    let [eax, ebx, ecx] = leaves.leaf_15h;
    log::info!(
        "tsc: cpuid max leaf {:#x}, leaf 0x15 {eax}/{ebx}/{ecx}, leaf 0x16 base {} MHz",
        leaves.max_leaf,
        leaves.base_mhz
    );
    if let Some(hz) = tsc::from_cpuid_15h(leaves.max_leaf, eax, ebx, ecx) {
        set(Source::Cpuid15h, Estimate { hz, error_ppm: 0 });
        return;
    }
    let mut best = None;
    for attempt in 1..=ATTEMPTS {
        match pit::measure(PERIODS) {
            Ok(run) => match tsc::from_pit(run.start, run.end, run.max_gap) {
                Ok(e) => {
                    let b = tsc::better(best, e);
                    best = Some(b);
                    if b.error_ppm <= GOOD_PPM {
                        break;
                    }
                }
                Err(why) => log::info!("tsc: PIT measurement {attempt} refused: {why:?}"),
            },
            Err(pit::Failed::NotCounting) => {
                log::warn!("tsc: PIT channel 2 does not count; counting timer interrupts");
                break;
            }
            Err(why) => log::info!("tsc: PIT measurement {attempt} failed: {why:?}"),
        }
    }
    match best {
        Some(e) => set(Source::PitPoll, e),
        None => set(Source::PitIrq, count_interrupts(10)),
    }
}

fn set(source: Source, e: Estimate) {
    TSC_HZ.store(e.hz.max(1), Ordering::Relaxed);
    TSC_ERROR_PPM.store(e.error_ppm, Ordering::Relaxed);
    TSC_SOURCE.store(source as u8, Ordering::Relaxed);
}

/// The old way, kept as the last resort: TSC cycles over `ms` timer ticks (interrupts on).
fn count_interrupts(ms: u64) -> Estimate {
    let t0 = pic::ticks();
    while pic::ticks() == t0 {
        cpu::wait_for_interrupt();
    }
    let (start_tick, start) = (pic::ticks(), cpu::rdtsc());
    while pic::ticks() < start_tick + ms {
        cpu::wait_for_interrupt();
    }
    let (end_tick, end) = (pic::ticks(), cpu::rdtsc());
    let ticks = end_tick - start_tick;
    Estimate {
        hz: (end - start) * pic::TIMER_HZ as u64 / ticks,
        error_ppm: 1_000_000 / ticks,
    }
}

/// TSC ticks per second (after `calibrate`).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed).max(1)
}

/// Bound of the TSC frequency's relative error, in parts per million.
pub fn tsc_error_ppm() -> u64 {
    TSC_ERROR_PPM.load(Ordering::Relaxed)
}

/// Where the TSC frequency came from.
pub fn tsc_source() -> Source {
    match TSC_SOURCE.load(Ordering::Relaxed) {
        1 => Source::Cpuid15h,
        2 => Source::PitPoll,
        3 => Source::PitIrq,
        _ => Source::Unset,
    }
}

/// Converts TSC cycles to nanoseconds.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    (cycles as u128 * 1_000_000_000 / tsc_hz() as u128) as u64
}

/// Spins for `ms` milliseconds of TSC time (rounded up to a whole cycle). Returns false if
/// Ctrl-C in the shell stopped it early (see `commands::shell::interrupted`).
pub fn spin_ms(ms: u64) -> bool {
    let cycles = (tsc_hz() as u128 * ms as u128).div_ceil(1000) as u64;
    let end = cpu::rdtsc() + cycles;
    while cpu::rdtsc() < end {
        if crate::arch::x86_64::serial::cancel_requested() {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}
