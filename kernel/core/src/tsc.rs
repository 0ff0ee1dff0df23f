//! TSC frequency arithmetic: from a polled 8254 PIT, from CPUID leaf 0x15, and the window of
//! timer interrupts a busy wait may count.
//!
//! **Why polling.** Counting PIT *interrupts* over a TSC interval measures how many
//! interrupts the emulator managed to deliver, not how much time passed: under QEMU TCG on a
//! loaded host, timer callbacks run late and the edges they raise on IRQ 0 merge while the
//! previous one is still pending, so ten "ticks" can take 15 ms and the TSC read 1.9 to 4.4 GHz
//! on one machine. The PIT's *counter*, read through its ports, is computed from the clock
//! itself and loses nothing. Linux does the same (`arch/x86/kernel/tsc.c`: `pit_calibrate_tsc`
//! gates PIT channel 2 through port 0x61 in mode 0 and polls it with interrupts off;
//! `quick_pit_calibrate` brackets each counter change between TSC reads and derives the error
//! from the TSC cost of the reads at both ends). This module is that arithmetic; the port I/O
//! is in `kernel/src/arch/x86_64/pit.rs`.
//!
//! **Edges.** A read of the counter is bracketed by a TSC read before and after it. If one read
//! saw a value `v` and the next one a smaller value `w`, the counter became `w` after the first
//! read began and before the second one ended: at a TSC value in `[lo, hi]` = `[before of the
//! first read, after of the second]`. That is a [`PitEdge`]. Two edges `count` PIT periods
//! apart give the TSC frequency as (midpoint distance) × [`PIT_HZ`] / `count`, with an error of
//! at most (half the width of each bracket, summed) / (midpoint distance); see [`from_pit`].

/// The 8254's input clock: 14.31818 MHz / 12, as Linux's `PIT_TICK_RATE` and QEMU's
/// `PIT_FREQ` round it.
pub const PIT_HZ: u64 = 1_193_182;

/// A moment a PIT counter changed: it became `count` at a TSC value in `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PitEdge {
    /// The counter value after the change (mode 0 counts down).
    pub count: u16,
    /// TSC before the last read that still saw a larger value.
    pub lo: u64,
    /// TSC after the first read that saw `count`.
    pub hi: u64,
}

/// A TSC frequency and its error bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// TSC ticks per second.
    pub hz: u64,
    /// Bound of the relative error, in parts per million (rounded up).
    pub error_ppm: u64,
}

/// Why two edges give no estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// The end edge is not below the start edge: no PIT period between them (or the counter
    /// wrapped).
    NoPitCounts,
    /// A bracket is inverted (`lo > hi`) or the end does not follow the start in TSC time.
    BadOrder,
    /// One gap between two consecutive reads was long enough that a wrap of the counter could
    /// hide in it, so the count of PIT periods is not trusted (see [`from_pit`]).
    Preempted,
}

/// The frequency from two edges of a 16-bit counter that was seen only counting down between
/// them, and the longest TSC gap between two consecutive reads in between (`max_gap`).
///
/// With `D` the distance of the bracket midpoints and `E` half the sum of the bracket widths,
/// the true TSC distance of the edges is within `D ± E`, so the frequency
/// `D × PIT_HZ / count` is within a factor `1 ± E / D`: `error_ppm = ceil(E × 10⁶ / D)`.
///
/// **Hidden wraps.** In mode 0 the counter goes on from 0xffff after reaching 0. A read after a
/// gap of `g` periods sees a value above the one before (a wrap the caller refuses) unless
/// `g ≥ 0x10000`. So a hidden wrap needs one gap of at least 0x10000 periods, and the edges
/// are then really `count + 0x10000` periods (or more) apart: the gap is at least a share
/// `0x10000 / (count + 0x10000)` of their true distance, which is at least `D − E`. A run whose
/// longest gap is below that share of `D − E` cannot hide a wrap; any other is refused.
pub fn from_pit(start: PitEdge, end: PitEdge, max_gap: u64) -> Result<Estimate, Reject> {
    if start.lo > start.hi || end.lo > end.hi || end.lo < start.hi {
        return Err(Reject::BadOrder);
    }
    let count = match start.count.checked_sub(end.count) {
        Some(0) | None => return Err(Reject::NoPitCounts),
        Some(c) => c as u128,
    };
    // Doubled, to stay in integers: 2D and 2E.
    let d2 = (end.lo as u128 + end.hi as u128) - (start.lo as u128 + start.hi as u128);
    let e2 = (start.hi - start.lo) as u128 + (end.hi - end.lo) as u128;
    if d2 == 0 {
        return Err(Reject::BadOrder);
    }
    // gap >= (D - E) * 0x10000 / (count + 0x10000), in doubled units.
    if e2 >= d2 || 2 * max_gap as u128 * (count + 0x10000) >= (d2 - e2) * 0x10000 {
        return Err(Reject::Preempted);
    }
    let hz = d2 * PIT_HZ as u128 / (2 * count);
    let error_ppm = (e2 * 1_000_000).div_ceil(d2);
    Ok(Estimate {
        hz: hz as u64,
        error_ppm: error_ppm as u64,
    })
}

/// The edge with the narrower bracket: `b` unless `a` is at least as narrow.
pub fn narrower(a: Option<PitEdge>, b: PitEdge) -> PitEdge {
    match a {
        Some(a) if a.hi - a.lo <= b.hi - b.lo => a,
        _ => b,
    }
}

/// The better of two estimates: the smaller error bound (the first one on a tie).
pub fn better(a: Option<Estimate>, b: Estimate) -> Estimate {
    match a {
        Some(a) if a.error_ppm <= b.error_ppm => a,
        _ => b,
    }
}

/// The TSC frequency that CPUID leaf 0x15 states (Intel SDM Vol. 2A, CPUID, leaf 15H: "TSC
/// frequency = ECX × EBX / EAX", EAX the denominator and EBX the numerator of the TSC/crystal
/// ratio, ECX the crystal's frequency in Hz), or `None` when any of the three is zero (leaf
/// not enumerated, or the crystal frequency not given; Linux then derives it per CPU model
/// in `native_calibrate_tsc`, which this kernel does not). `max_leaf` is CPUID.0:EAX: a
/// higher leaf returns the highest basic leaf's data on Intel, so it must be checked first.
pub fn from_cpuid_15h(max_leaf: u32, eax: u32, ebx: u32, ecx: u32) -> Option<u64> {
    if max_leaf < 0x15 || eax == 0 || ebx == 0 || ecx == 0 {
        return None;
    }
    Some((ecx as u64 * ebx as u64) / eax as u64)
}

/// How many timer interrupts a busy wait of `cycles` TSC cycles may count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickWindow {
    /// Timer periods that fit into the wait, by TSC time.
    pub expected: u64,
    /// The fewest interrupts accepted (see [`tick_window`]).
    pub min: u64,
    /// The most interrupts the timer can raise in the wait.
    pub max: u64,
}

/// Percentage of the expected timer interrupts that a wait must count at least. Lost
/// interrupts are the emulator's doing, not the kernel's: measured with the TSC right
/// (`pit-poll`), `ticks 2000` under QEMU TCG with both host cores kept busy by two shell loops
/// counted 30% to 75% of the periods over ten boots. A timer that stopped, or runs at a fifth
/// of its rate or less, is still caught. See [`tick_window`].
pub const MIN_TICKS_PERCENT: u64 = 20;

/// Timer periods a single host stall may swallow whole, on top of [`MIN_TICKS_PERCENT`]: the
/// loss comes in bursts (the vCPU or QEMU's main loop off the CPU for a scheduler slice), which
/// weigh most in a short wait, so a wait of up to 50 periods is judged only from above.
pub const STALL_PERIODS: u64 = 10;

/// The window for a wait of `cycles` TSC cycles at `tsc_hz` (error bound `error_ppm`) with a
/// periodic timer of `timer_hz`.
///
/// An interval of length `T` holds at most `floor(T × timer_hz) + 1` period boundaries; `T` is
/// taken at the top of the TSC's error bound, so `max` is a hard bound: more interrupts means
/// the timer runs too fast or the TSC is wrong. Fewer are possible without a kernel fault:
/// under QEMU TCG a loaded host runs the timer callback late and edges raised while one is
/// still pending merge (the 8259 keeps one request per line until the CPU takes it), so
/// `min` is
/// [`MIN_TICKS_PERCENT`] of `expected` (rounded down) less [`STALL_PERIODS`], below which the
/// timer is taken as stopped or programmed to a wrong rate.
pub fn tick_window(cycles: u64, tsc_hz: u64, error_ppm: u64, timer_hz: u64) -> TickWindow {
    let tsc_hz = tsc_hz.max(1) as u128;
    let periods = |scale_ppm: u128| -> u64 {
        (cycles as u128 * timer_hz as u128 * scale_ppm / (tsc_hz * 1_000_000)) as u64
    };
    let expected = periods(1_000_000);
    let max = periods(1_000_000 + error_ppm as u128) + 1;
    TickWindow {
        expected,
        min: (expected * MIN_TICKS_PERCENT / 100).saturating_sub(STALL_PERIODS),
        max,
    }
}

impl TickWindow {
    /// Whether `counted` interrupts are inside the window.
    pub fn accepts(&self, counted: u64) -> bool {
        counted >= self.min && counted <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(count: u16, lo: u64, hi: u64) -> PitEdge {
        PitEdge { count, lo, hi }
    }

    #[test]
    fn exact_edges_give_the_exact_frequency() {
        // 11932 PIT periods (10.0001 ms) at 2.5 GHz, in whole cycles.
        let cycles = 11_932u64 * 2_500_000_000 / PIT_HZ;
        let e = from_pit(
            edge(60_000, 1000, 1000),
            edge(48_068, 1000 + cycles, 1000 + cycles),
            10,
        )
        .unwrap();
        assert_eq!(e.error_ppm, 0);
        // hz = cycles * PIT_HZ / 11932, rounded down.
        assert_eq!(e.hz, (cycles as u128 * PIT_HZ as u128 / 11_932) as u64);
        assert!(e.hz.abs_diff(2_500_000_000) < 300, "{}", e.hz);
    }

    #[test]
    fn bracket_widths_bound_the_error() {
        // Midpoints 1_000_000 cycles apart; brackets 100 and 300 wide: E = 200, 200 ppm.
        let e = from_pit(edge(2000, 950, 1050), edge(1000, 1_000_850, 1_001_150), 10).unwrap();
        assert_eq!(e.error_ppm, 200);
        assert_eq!(e.hz, 1_000_000 * PIT_HZ / 1000);
        // Rounded up: E = 0.5 cycles over 1_000_000 is 0.5 ppm, reported as 1.
        let e = from_pit(edge(2000, 1000, 1001), edge(1000, 1_001_000, 1_001_000), 1).unwrap();
        assert_eq!(e.error_ppm, 1);
    }

    #[test]
    fn the_true_frequency_is_inside_the_bound() {
        // True edges at TSC 10_000 and 10_000 + 23_880_000 (1000 periods at ~28.5 GHz is
        // irrelevant: only the ratio matters). Brackets placed around them asymmetrically.
        let (t0, t1) = (10_000u64, 10_000 + 23_880_000);
        let truth = (t1 - t0) as u128 * PIT_HZ as u128 / 1000;
        let e = from_pit(
            edge(5000, t0 - 700, t0 + 20),
            edge(4000, t1 - 5, t1 + 900),
            100,
        )
        .unwrap();
        let diff = (e.hz as u128).abs_diff(truth);
        assert!(
            diff * 1_000_000 <= truth * e.error_ppm as u128,
            "{e:?} vs {truth}"
        );
        assert!(e.error_ppm > 0);
    }

    #[test]
    fn refuses_what_cannot_be_trusted() {
        assert_eq!(
            from_pit(edge(1000, 0, 10), edge(1000, 100, 110), 1),
            Err(Reject::NoPitCounts)
        );
        // The counter went up: a wrap of mode 0.
        assert_eq!(
            from_pit(edge(1000, 0, 10), edge(1001, 100, 110), 1),
            Err(Reject::NoPitCounts)
        );
        assert_eq!(
            from_pit(edge(1000, 20, 10), edge(900, 100, 110), 1),
            Err(Reject::BadOrder)
        );
        assert_eq!(
            from_pit(edge(1000, 0, 100), edge(900, 50, 110), 1),
            Err(Reject::BadOrder)
        );
        // 100 periods in 1000 cycles: a hidden wrap needs a gap of at least
        // 1000 * 0x10000 / (100 + 0x10000) = 998.48 cycles: 998 is accepted, 999 is not.
        assert!(from_pit(edge(1000, 0, 0), edge(900, 1000, 1000), 998).is_ok());
        assert_eq!(
            from_pit(edge(1000, 0, 0), edge(900, 1000, 1000), 999),
            Err(Reject::Preempted)
        );
        // The brackets' error counts against the gap: D = 995 and E = 10 make the limit
        // 985 * 0x10000 / (100 + 0x10000) = 983.5.
        assert!(from_pit(edge(1000, 0, 10), edge(900, 995, 1005), 983).is_ok());
        assert_eq!(
            from_pit(edge(1000, 0, 10), edge(900, 995, 1005), 984),
            Err(Reject::Preempted)
        );
        // Brackets as wide as the interval: nothing to measure.
        assert_eq!(
            from_pit(edge(1000, 0, 1000), edge(900, 1000, 2000), 0),
            Err(Reject::Preempted)
        );
    }

    #[test]
    fn narrower_keeps_the_tighter_bracket() {
        let (a, b) = (edge(10, 100, 150), edge(9, 200, 240));
        assert_eq!(narrower(None, a), a);
        assert_eq!(narrower(Some(a), b), b);
        assert_eq!(narrower(Some(b), a), b);
        assert_eq!(narrower(Some(a), edge(8, 300, 350)), a);
    }

    #[test]
    fn better_keeps_the_smaller_error() {
        let a = Estimate {
            hz: 1,
            error_ppm: 50,
        };
        let b = Estimate {
            hz: 2,
            error_ppm: 40,
        };
        assert_eq!(better(None, a), a);
        assert_eq!(better(Some(a), b), b);
        assert_eq!(better(Some(b), a), b);
        assert_eq!(
            better(
                Some(a),
                Estimate {
                    hz: 3,
                    error_ppm: 50
                }
            ),
            a
        );
    }

    #[test]
    fn cpuid_15h_needs_all_three_values_and_the_leaf() {
        // A 24 MHz crystal with ratio 176/2: 2.112 GHz.
        assert_eq!(
            from_cpuid_15h(0x16, 2, 176, 24_000_000),
            Some(2_112_000_000)
        );
        assert_eq!(
            from_cpuid_15h(0x15, 2, 176, 24_000_000),
            Some(2_112_000_000)
        );
        assert_eq!(from_cpuid_15h(0x14, 2, 176, 24_000_000), None);
        assert_eq!(from_cpuid_15h(0x1f, 0, 176, 24_000_000), None);
        assert_eq!(from_cpuid_15h(0x1f, 2, 0, 24_000_000), None);
        assert_eq!(from_cpuid_15h(0x1f, 2, 176, 0), None);
    }

    #[test]
    fn tick_window_bounds() {
        // 200 ms at 2 GHz, exact TSC, 1 kHz timer: 200 expected, at most 201, at least
        // 200 / 5 - 10 = 30.
        let w = tick_window(400_000_000, 2_000_000_000, 0, 1000);
        assert_eq!(
            w,
            TickWindow {
                expected: 200,
                min: 30,
                max: 201
            }
        );
        assert!(!w.accepts(29));
        assert!(w.accepts(30));
        assert!(w.accepts(201));
        assert!(!w.accepts(202));
        // A TSC error of 5% (50_000 ppm) widens the top: 210 periods fit, so 211.
        let w = tick_window(400_000_000, 2_000_000_000, 50_000, 1000);
        assert_eq!((w.expected, w.min, w.max), (200, 30, 211));
        // 2000 ms: 390..=2001. 20 ms: judged from above only, 0..=21.
        let w = tick_window(5_000_000_000, 2_500_000_000, 100, 1000);
        assert_eq!((w.expected, w.min, w.max), (2000, 390, 2001));
        let w = tick_window(40_000_000, 2_000_000_000, 0, 1000);
        assert_eq!((w.expected, w.min, w.max), (20, 0, 21));
        assert!(w.accepts(0));
        assert!(!w.accepts(22));
        // Half a period: none or one.
        let w = tick_window(1_000_000, 2_000_000_000, 0, 1000);
        assert_eq!((w.expected, w.min, w.max), (0, 0, 1));
        assert!(w.accepts(0));
        assert!(w.accepts(1));
        assert!(!w.accepts(2));
    }
}
