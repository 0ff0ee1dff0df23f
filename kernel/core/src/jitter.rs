//! Seeded timer jitter: the period of each periodic timer tick drawn from a seed, so that
//! preemption lands at different instructions from one seed to the next while a given seed
//! replays the same sequence of periods.
//!
//! The kernel's `jitter SEED [SPREAD]` command starts it; after every periodic tick the timer
//! interrupt reprograms the PIT with [`Jitter::next_count`] of the 1 kHz base count. `SPREAD`
//! is a percentage: each period is uniformly one of `base * (100 - SPREAD .. 100 + SPREAD) /
//! 100` input clocks, so the mean rate stays about 1 kHz.

/// Largest accepted spread, in percent of the base period.
pub const MAX_SPREAD: u32 = 90;
/// The spread when `jitter SEED` names none.
pub const DEFAULT_SPREAD: u32 = 50;

/// One step of splitmix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The state of a jittered timer: the generator's state and the spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jitter {
    state: u64,
    spread: u32,
}

impl Jitter {
    /// A jitter sequence from `seed`, periods within `spread` percent of the base (clamped to
    /// [`MAX_SPREAD`]).
    pub fn new(seed: u64, spread: u32) -> Jitter {
        Jitter {
            state: seed,
            spread: spread.min(MAX_SPREAD),
        }
    }

    /// The generator's state (to store between ticks).
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The spread in percent.
    pub fn spread(&self) -> u32 {
        self.spread
    }

    /// Rebuilds a jitter from a stored state and spread.
    pub fn from_parts(state: u64, spread: u32) -> Jitter {
        Jitter::new(state, spread)
    }

    /// The next period for a timer whose unjittered period is `base` input clocks: within
    /// the spread of `base`, at least 1 and at most `0xffff` (the PIT's 16-bit counter).
    pub fn next_count(&mut self, base: u16) -> u16 {
        let r = splitmix64(&mut self.state);
        let spread = self.spread as u64;
        let percent = 100 - spread + r % (2 * spread + 1);
        (base as u64 * percent / 100).clamp(1, 0xffff) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn periods(seed: u64, spread: u32, n: usize) -> Vec<u16> {
        let mut j = Jitter::new(seed, spread);
        (0..n).map(|_| j.next_count(1193)).collect()
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 1234567 of the reference implementation.
        let mut s = 1234567;
        assert_eq!(splitmix64(&mut s), 6457827717110365317);
        assert_eq!(splitmix64(&mut s), 3203168211198807973);
        assert_eq!(splitmix64(&mut s), 9817491932198370423);
    }

    #[test]
    fn same_seed_same_periods_other_seed_other_periods() {
        assert_eq!(periods(7, 50, 64), periods(7, 50, 64));
        assert_ne!(periods(7, 50, 64), periods(8, 50, 64));
    }

    #[test]
    fn periods_stay_within_the_spread() {
        for spread in [0, 1, 10, 50, 90] {
            let p = periods(42, spread, 2000);
            let lo = 1193 * (100 - spread as u64) / 100;
            let hi = 1193 * (100 + spread as u64) / 100;
            assert!(
                p.iter().all(|&c| (lo..=hi).contains(&(c as u64))),
                "{spread}"
            );
            if spread >= 10 {
                // Both ends of the range are reached (roughly) and the mean stays near base.
                let mean = p.iter().map(|&c| c as u64).sum::<u64>() / p.len() as u64;
                assert!(mean.abs_diff(1193) < 1193 / 20, "{spread}: mean {mean}");
                assert!(p.iter().any(|&c| (c as u64) < 1193 - (1193 - lo) / 2));
                assert!(p.iter().any(|&c| (c as u64) > 1193 + (hi - 1193) / 2));
            }
        }
        assert!(periods(3, 0, 100).iter().all(|&c| c == 1193));
    }

    #[test]
    fn spread_is_clamped_and_counts_fit_the_counter() {
        assert_eq!(Jitter::new(1, 500).spread(), MAX_SPREAD);
        let mut j = Jitter::new(1, MAX_SPREAD);
        for _ in 0..1000 {
            let c = j.next_count(0xffff);
            assert!(c >= 1);
            assert!(j.next_count(1) >= 1);
        }
        let j2 = Jitter::from_parts(j.state(), j.spread());
        assert_eq!(j, j2);
    }
}
