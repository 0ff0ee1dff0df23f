//! Thread-stack geometry and policy: slots in a dedicated virtual region, what is mapped,
//! what is guard, and where growth may go. Pure arithmetic, so every boundary is host-tested.
//!
//! A slot `i` spans `[base + i*span, base + (i+1)*span)`. The stack grows down from the slot's
//! top. The lowest page of every slot is never mapped (the guard page); a policy maps some
//! pages at the top, and the rest between the guard page and the mapped part is "reserve":
//! unmapped, and under `fixed` treated exactly like the guard page.

use core::fmt;

/// Page size.
pub const PAGE: u64 = 4096;

/// How a thread's stack is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `bytes` mapped up front; never grows.
    #[allow(missing_docs)]
    Fixed { bytes: u64 },
    /// `initial` bytes mapped up front; grows on demand down to `max` bytes.
    #[allow(missing_docs)]
    Grow { initial: u64, max: u64 },
}

impl Policy {
    /// Bytes mapped when the thread is created.
    pub const fn initial_bytes(&self) -> u64 {
        match *self {
            Policy::Fixed { bytes } => bytes,
            Policy::Grow { initial, .. } => initial,
        }
    }

    /// Most bytes the stack may ever have mapped.
    pub const fn max_bytes(&self) -> u64 {
        match *self {
            Policy::Fixed { bytes } => bytes,
            Policy::Grow { max, .. } => max,
        }
    }

    /// Checks the policy against a slot span: page multiples, `initial <= max`, and room for
    /// the guard page below `max`.
    pub fn validate(&self, span: u64) -> Result<(), PolicyError> {
        let (i, m) = (self.initial_bytes(), self.max_bytes());
        if i == 0 || i % PAGE != 0 || m % PAGE != 0 {
            return Err(PolicyError::NotPages);
        }
        if i > m {
            return Err(PolicyError::InitialAboveMax);
        }
        if m > span - PAGE {
            return Err(PolicyError::NoRoomForGuard { max: m, span });
        }
        Ok(())
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Policy::Fixed { bytes } => write!(f, "fixed({}K)", bytes / 1024),
            Policy::Grow { initial, max } => write!(f, "grow({}K,{}K)", initial / 1024, max / 1024),
        }
    }
}

/// Why a policy does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// A size is not a whole number of pages.
    NotPages,
    /// `initial` is above `max`.
    InitialAboveMax,
    /// `max` leaves no room for the guard page in a slot of `span` bytes.
    #[allow(missing_docs)]
    NoRoomForGuard { max: u64, span: u64 },
}

impl PolicyError {
    /// A fixed message (no numbers), for contexts without formatting.
    pub const fn message(&self) -> &'static str {
        match self {
            PolicyError::NotPages => "stack sizes must be non-zero multiples of 4K",
            PolicyError::InitialAboveMax => "initial size is above the maximum",
            PolicyError::NoRoomForGuard { .. } => {
                "maximum leaves no guard page in the slot (raise stack-span)"
            }
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::NotPages => f.write_str("stack sizes must be non-zero multiples of 4K"),
            PolicyError::InitialAboveMax => f.write_str("initial size is above the maximum"),
            PolicyError::NoRoomForGuard { max, span } => write!(
                f,
                "maximum {}K leaves no guard page in a {}K slot",
                max / 1024,
                span / 1024
            ),
        }
    }
}

/// The stack region: `count` slots of `span` bytes from `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Lowest address of slot 0.
    pub base: u64,
    /// Bytes per slot (a power of two).
    pub span: u64,
    /// Number of slots.
    pub count: u64,
}

/// Address ranges of one slot (all half-open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    /// The slot's index.
    pub index: u64,
    /// Lowest address of the slot (start of the guard page).
    pub base: u64,
    /// One past the highest address; the initial stack pointer.
    pub top: u64,
}

impl SlotRange {
    /// The page that is never mapped.
    pub const fn guard_page(&self) -> (u64, u64) {
        (self.base, self.base + PAGE)
    }

    /// Lowest address that a policy with `max` bytes may ever map.
    pub const fn floor(&self, max: u64) -> u64 {
        self.top - max
    }
}

impl Layout {
    /// A layout; `span` must be a power of two of at least two pages, `base` aligned to it.
    pub const fn new(base: u64, span: u64, count: u64) -> Option<Layout> {
        if !span.is_power_of_two() || span < 2 * PAGE || !base.is_multiple_of(span) || count == 0 {
            return None;
        }
        Some(Layout { base, span, count })
    }

    /// One past the region's last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.span * self.count
    }

    /// The slot containing `addr` (any part: guard, reserve or mapped). O(1).
    pub const fn slot_of(&self, addr: u64) -> Option<SlotRange> {
        if addr < self.base || addr >= self.end() {
            return None;
        }
        Some(self.slot(((addr - self.base) / self.span) as usize))
    }

    /// Slot `index` (which must be `< count`).
    pub const fn slot(&self, index: usize) -> SlotRange {
        let base = self.base + index as u64 * self.span;
        SlotRange {
            index: index as u64,
            base,
            top: base + self.span,
        }
    }
}

/// Where an address falls relative to a live stack whose mapped part is `[mapped_lo, top)`
/// and which may grow down to `floor` (`floor == mapped_lo` for a fixed stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// Already mapped.
    Mapped,
    /// Unmapped but allowed: mapping `[page, mapped_lo)` makes it valid.
    #[allow(missing_docs)]
    Growable { page: u64, pages: u64 },
    /// Below what the policy allows (the guard page, or reserve past `max`).
    Guard,
}

/// Classifies `addr` (which must lie inside `slot`).
pub fn zone(slot: &SlotRange, mapped_lo: u64, floor: u64, addr: u64) -> Zone {
    debug_assert!(addr >= slot.base && addr < slot.top);
    let floor = floor.max(slot.base + PAGE);
    if addr >= mapped_lo {
        Zone::Mapped
    } else if addr >= floor {
        let page = addr & !(PAGE - 1);
        Zone::Growable {
            page,
            pages: (mapped_lo - page) / PAGE,
        }
    } else {
        Zone::Guard
    }
}

/// Bytes used according to a zero-filled stack's contents: `words` is the mapped part from its
/// lowest address up; the high-water mark is measured from the first non-zero word to the top
/// (Linux DEBUG_STACK_USAGE). 0 if the stack was never touched. An iterator, so the kernel
/// can feed it volatile reads of a live stack without making a slice of it.
pub fn high_water(words: impl ExactSizeIterator<Item = u64>) -> u64 {
    let len = words.len();
    let mut words = words;
    match words.position(|w| w != 0) {
        Some(i) => ((len - i) * 8) as u64,
        None => 0,
    }
}

/// Power-of-two buckets of per-thread maximum stack use, as Linux's kstack_* counters:
/// bucket `k` counts uses in `(2^(k-1) KiB, 2^k KiB]` for k = 0..=6 (1K .. 64K), the last
/// bucket everything larger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Counts per bucket.
    pub buckets: [u64; HISTOGRAM_BUCKETS],
}

/// Number of histogram buckets (1K, 2K, 4K, 8K, 16K, 32K, 64K, rest).
pub const HISTOGRAM_BUCKETS: usize = 8;

/// Bucket labels.
pub const HISTOGRAM_LABELS: [&str; HISTOGRAM_BUCKETS] =
    ["1k", "2k", "4k", "8k", "16k", "32k", "64k", "rest"];

impl Histogram {
    /// The bucket a use of `bytes` falls in.
    pub fn bucket_of(bytes: u64) -> usize {
        let mut limit = 1024;
        for k in 0..HISTOGRAM_BUCKETS - 1 {
            if bytes <= limit {
                return k;
            }
            limit *= 2;
        }
        HISTOGRAM_BUCKETS - 1
    }

    /// Counts one use of `bytes`.
    pub fn add(&mut self, bytes: u64) {
        self.buckets[Self::bucket_of(bytes)] += 1;
    }

    /// Uses counted.
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Median and 99th percentile of `samples` (sorted in place). (0, 0) when empty.
pub fn median_p99(samples: &mut [u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    samples.sort_unstable();
    let n = samples.len();
    let p99 = ((n * 99).div_ceil(100)).saturating_sub(1);
    (samples[n / 2], samples[p99.min(n - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_e010_0000_0000;
    const K: u64 = 1024;

    fn layout() -> Layout {
        Layout::new(BASE, 64 * K, 4096).unwrap()
    }

    #[test]
    fn layout_rejects_bad_geometry() {
        assert!(Layout::new(BASE, 48 * K, 1).is_none());
        assert!(Layout::new(BASE, PAGE, 1).is_none());
        assert!(Layout::new(BASE + PAGE, 64 * K, 1).is_none());
        assert!(Layout::new(BASE, 64 * K, 0).is_none());
    }

    #[test]
    fn slot_lookup_at_every_boundary() {
        let l = layout();
        assert_eq!(l.slot_of(BASE - 1), None);
        assert_eq!(l.slot_of(BASE).unwrap().index, 0);
        assert_eq!(l.slot_of(BASE + 64 * K - 1).unwrap().index, 0);
        assert_eq!(l.slot_of(BASE + 64 * K).unwrap().index, 1);
        let last = l.slot_of(l.end() - 1).unwrap();
        assert_eq!(last.index, 4095);
        assert_eq!(last.top, l.end());
        assert_eq!(l.slot_of(l.end()), None);
        let s = l.slot(3);
        assert_eq!(s.base, BASE + 3 * 64 * K);
        assert_eq!(s.top, BASE + 4 * 64 * K);
        assert_eq!(s.guard_page(), (s.base, s.base + PAGE));
    }

    #[test]
    fn policy_validation() {
        let span = 64 * K;
        assert_eq!(Policy::Fixed { bytes: 16 * K }.validate(span), Ok(()));
        assert_eq!(Policy::Fixed { bytes: 60 * K }.validate(span), Ok(()));
        assert_eq!(
            Policy::Fixed { bytes: 64 * K }.validate(span),
            Err(PolicyError::NoRoomForGuard { max: 64 * K, span })
        );
        assert_eq!(
            Policy::Fixed { bytes: 100 }.validate(span),
            Err(PolicyError::NotPages)
        );
        assert_eq!(
            Policy::Fixed { bytes: 0 }.validate(span),
            Err(PolicyError::NotPages)
        );
        assert_eq!(
            Policy::Grow {
                initial: 8 * K,
                max: 4 * K
            }
            .validate(span),
            Err(PolicyError::InitialAboveMax)
        );
        assert_eq!(
            Policy::Grow {
                initial: 4 * K,
                max: 32 * K
            }
            .validate(span),
            Ok(())
        );
        assert_eq!(
            std::format!(
                "{}",
                Policy::Grow {
                    initial: 4 * K,
                    max: 32 * K
                }
            ),
            "grow(4K,32K)"
        );
    }

    #[test]
    fn zones_one_byte_either_side_of_each_boundary() {
        let s = layout().slot(7);
        let mapped_lo = s.top - 4 * K;
        let floor = s.top - 32 * K;
        assert_eq!(zone(&s, mapped_lo, floor, s.top - 1), Zone::Mapped);
        assert_eq!(zone(&s, mapped_lo, floor, mapped_lo), Zone::Mapped);
        assert_eq!(
            zone(&s, mapped_lo, floor, mapped_lo - 1),
            Zone::Growable {
                page: mapped_lo - PAGE,
                pages: 1
            }
        );
        assert_eq!(
            zone(&s, mapped_lo, floor, floor),
            Zone::Growable {
                page: floor,
                pages: 7
            }
        );
        assert_eq!(zone(&s, mapped_lo, floor, floor - 1), Zone::Guard);
        assert_eq!(zone(&s, mapped_lo, floor, s.base), Zone::Guard);
        // A fixed stack: nothing below the mapped part is growable.
        assert_eq!(zone(&s, mapped_lo, mapped_lo, mapped_lo - 1), Zone::Guard);
        // A floor inside the guard page is clamped to it.
        assert_eq!(
            zone(&s, mapped_lo, s.base, s.base + PAGE),
            Zone::Growable {
                page: s.base + PAGE,
                pages: 14
            }
        );
        assert_eq!(zone(&s, mapped_lo, s.base, s.base + PAGE - 1), Zone::Guard);
    }

    #[test]
    fn high_water_is_first_nonzero_word_from_bottom() {
        let hw = |w: &[u64]| high_water(w.iter().copied());
        assert_eq!(hw(&[0, 0, 0, 0]), 0);
        assert_eq!(hw(&[0, 0, 5, 0]), 16);
        assert_eq!(hw(&[1, 0, 0, 0]), 32);
        assert_eq!(hw(&[]), 0);
    }

    #[test]
    fn histogram_buckets_are_power_of_two_kib() {
        assert_eq!(Histogram::bucket_of(0), 0);
        assert_eq!(Histogram::bucket_of(1024), 0);
        assert_eq!(Histogram::bucket_of(1025), 1);
        assert_eq!(Histogram::bucket_of(2048), 1);
        assert_eq!(Histogram::bucket_of(4097), 3);
        assert_eq!(Histogram::bucket_of(64 * K), 6);
        assert_eq!(Histogram::bucket_of(64 * K + 1), 7);
        let mut h = Histogram::default();
        for b in [100, 3000, 3000, 70_000] {
            h.add(b);
        }
        assert_eq!(h.buckets, [1, 0, 2, 0, 0, 0, 0, 1]);
        assert_eq!(h.total(), 4);
    }

    #[test]
    fn percentiles() {
        assert_eq!(median_p99(&mut []), (0, 0));
        assert_eq!(median_p99(&mut [5]), (5, 5));
        let mut v: std::vec::Vec<u64> = (1..=100).rev().collect();
        assert_eq!(median_p99(&mut v), (51, 99));
        let mut v: std::vec::Vec<u64> = (1..=1000).collect();
        assert_eq!(median_p99(&mut v), (501, 990));
    }
}
