//! The 8254 PIT's channel 2, polled to time the TSC, and the CPUID leaves that may state the
//! TSC frequency instead.
//!
//! Channel 2 is the one whose gate software controls (port 0x61 bit 0; bit 1 routes its output
//! to the speaker, bit 5 reads the output back). In mode 0 ("interrupt on terminal count") it
//! counts down from the loaded value once per PIT clock while the gate is high, raising no
//! interrupt anywhere: the way Linux times the TSC in `arch/x86/kernel/tsc.c`
//! (`pit_calibrate_tsc`, `quick_pit_calibrate`). Reading it does not depend on interrupt
//! delivery, which under QEMU TCG on a loaded host loses timer ticks. The arithmetic on what
//! is read here is `stacklab_core::tsc`.

use stacklab_core::tsc::{self, PitEdge};
use x86_64::instructions::port::Port;

use super::cpu;

/// Mode/command port.
const PIT_COMMAND: u16 = 0x43;
/// Channel 2's data port.
const PIT_CH2: u16 = 0x42;
/// NMI status and control: bit 0 gates channel 2, bit 1 enables the speaker.
const PORT_61: u16 = 0x61;
/// Channel 2, access lobyte/hibyte, mode 0, binary.
const CH2_MODE0: u8 = 0b1011_0000;
/// Counter latch command for channel 2.
const CH2_LATCH: u8 = 0b1000_0000;
/// Reads without a change of the counter after which it is taken as not counting (gate
/// stuck low, no PIT). A read costs well under 100 µs even under TCG; one PIT period is 838 ns.
const STUCK_READS: u32 = 100_000;

/// One polled measurement: the narrowest-bracketed counter change near its start and near its
/// end, and the longest TSC gap between two consecutive reads from the first to the last.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The best-bracketed change in the first quarter of the run.
    pub start: PitEdge,
    /// The best-bracketed change in the last quarter of the run.
    pub end: PitEdge,
    /// Longest TSC distance between the starts of two consecutive reads in the run.
    pub max_gap: u64,
}

/// Why a measurement gave no [`Run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// The counter did not change over many reads: channel 2 is not counting.
    NotCounting,
    /// The counter went up between two reads: it wrapped (mode 0 restarts at 0xffff), so the
    /// CPU was away for longer than the counter's range.
    Wrapped,
}

/// One read of channel 2's counter: (TSC before, value, TSC after).
fn read_ch2(cmd: &mut Port<u8>, data: &mut Port<u8>) -> (u64, u16, u64) {
    let before = cpu::rdtsc();
    // SAFETY: the counter latch command for channel 2 and two reads of its data port (low,
    // then high byte, as programmed in `measure`); they change no other PIT state.
    let (lo, hi) = unsafe {
        cmd.write(CH2_LATCH);
        (data.read(), data.read())
    };
    let after = cpu::rdtsc();
    (before, u16::from_le_bytes([lo, hi]), after)
}

/// Longest run [`measure`] makes, in PIT periods (about 41 ms), leaving room below 0xffff
/// for the first change and the reads after the last.
pub const MAX_PERIODS: u16 = 0xc000;

/// Starts channel 2 in mode 0 from 0xffff and polls it with interrupts off until it has
/// counted `periods` PIT periods (at most [`MAX_PERIODS`]) from its first change. Of the
/// changes in the first and in the last quarter of that span it keeps the one bracketed most
/// tightly: under a loaded host a read can take milliseconds (the vCPU thread waits for the
/// emulator's lock or is preempted, for a scheduler slice or more), and a single slow read at
/// an end would dominate the error. Channel 2's gate and the speaker bit are restored afterwards.
pub fn measure(periods: u16) -> Result<Run, Failed> {
    let periods = periods.clamp(16, MAX_PERIODS);
    cpu::without_interrupts(|| {
        let mut p61 = Port::<u8>::new(PORT_61);
        let mut cmd = Port::<u8>::new(PIT_COMMAND);
        let mut data = Port::<u8>::new(PIT_CH2);
        // SAFETY: port 0x61 bit 0 is channel 2's gate and bit 1 the speaker enable; raising
        // the gate with the speaker off makes no sound and affects nothing but channel 2.
        // Then channel 2 is programmed (mode 0, lobyte/hibyte) and loaded with 0xffff;
        // channel 2 drives no interrupt, and nothing else in the kernel uses it.
        let saved = unsafe {
            let saved = p61.read();
            p61.write((saved & !0x02) | 0x01);
            cmd.write(CH2_MODE0);
            data.write(0xff);
            data.write(0xff);
            saved
        };
        let result = poll(&mut cmd, &mut data, periods);
        // SAFETY: puts back the gate and speaker bits as they were (the upper bits of port
        // 0x61 are read-only status).
        unsafe { p61.write(saved & 0x0f) };
        result
    })
}

/// The polling loop of [`measure`].
fn poll(cmd: &mut Port<u8>, data: &mut Port<u8>, periods: u16) -> Result<Run, Failed> {
    let window = periods / 4;
    let mut prev = read_ch2(cmd, data);
    let mut first: Option<u16> = None;
    let mut start: Option<PitEdge> = None;
    let mut end: Option<PitEdge> = None;
    let mut max_gap = 0;
    let mut unchanged = 0u32;
    loop {
        let next = read_ch2(cmd, data);
        if first.is_some() {
            max_gap = max_gap.max(next.0 - prev.0);
        }
        if next.1 > prev.1 {
            if first.is_none() {
                // Before the first change a read may still see the old count (the 8254
                // loads a new one on its next clock): start over from this read.
                prev = next;
                continue;
            }
            return Err(Failed::Wrapped);
        }
        if next.1 == prev.1 {
            unchanged += 1;
            if unchanged >= STUCK_READS {
                return Err(Failed::NotCounting);
            }
            prev = next;
            continue;
        }
        unchanged = 0;
        // The counter became `next.1` after `prev` began and before `next` ended.
        let edge = PitEdge {
            count: next.1,
            lo: prev.0,
            hi: next.2,
        };
        let first_count = *first.get_or_insert(edge.count);
        let done = first_count - edge.count;
        if done <= window {
            start = Some(tsc::narrower(start, edge));
        } else if done >= periods - window {
            end = Some(tsc::narrower(end, edge));
        }
        if done >= periods {
            // Both are set: the first change is in the start window, this one in the end's.
            if let (Some(start), Some(end)) = (start, end) {
                return Ok(Run {
                    start,
                    end,
                    max_gap,
                });
            }
        }
        prev = next;
    }
}

/// The CPUID values that may state the TSC frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscLeaves {
    /// CPUID.0:EAX, the highest basic leaf.
    pub max_leaf: u32,
    /// CPUID.15H: EAX (denominator), EBX (numerator), ECX (crystal Hz); zeros if absent.
    pub leaf_15h: [u32; 3],
    /// CPUID.16H:EAX, the processor base frequency in MHz; zero if absent.
    pub base_mhz: u32,
}

/// Reads CPUID leaves 0, 0x15 and 0x16 (the latter two only if enumerated).
pub fn tsc_leaves() -> TscLeaves {
    use core::arch::x86_64::__cpuid;
    let max_leaf = __cpuid(0).eax;
    let leaf_15h = if max_leaf >= 0x15 {
        let r = __cpuid(0x15);
        [r.eax, r.ebx, r.ecx]
    } else {
        [0; 3]
    };
    let base_mhz = if max_leaf >= 0x16 {
        __cpuid(0x16).eax
    } else {
        0
    };
    TscLeaves {
        max_leaf,
        leaf_15h,
        base_mhz,
    }
}
