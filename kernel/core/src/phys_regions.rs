//! The frame allocator's table of usable physical regions, built from the boot memory map.
//!
//! The UEFI memory map is finely cut: OVMF's map has well over a hundred entries, and the boot
//! loader (`bootloader` 0.11) reports every boot-services range as its own usable region, so
//! a 4 GiB q35 guest hands the kernel more usable regions than the old fixed table of 64 had
//! room for. The regions come in address order, and the one q35 places above 4 GiB (all RAM
//! beyond 2 GiB when the guest has more than 2.75 GiB) is the last, so it was the one dropped,
//! silently, and the kernel counted about 2022 MiB of 4 GiB. [`Regions::add`] merges a region
//! into the previous one when they touch, which keeps the table small, and says why a region
//! is not taken so the kernel can log it.

/// Page (frame) size.
pub const PAGE: u64 = 4096;

/// What [`Regions::add`] did with a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// A new entry.
    New,
    /// Extended the previous entry, which ends where this one starts.
    Merged,
    /// No whole frame in it (after leaving out frame 0, which the allocator never hands out).
    Empty,
    /// Skipped: the table is full.
    TableFull,
}

/// Up to `N` page-aligned `[start, end)` ranges and their frame count.
#[derive(Clone, Copy, Debug)]
pub struct Regions<const N: usize> {
    list: [(u64, u64); N],
    len: usize,
    frames: u64,
}

impl<const N: usize> Regions<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Regions {
            list: [(0, 0); N],
            len: 0,
            frames: 0,
        }
    }

    /// Adds the whole frames of `[start, end)`, leaving out frame 0 (its address is the free
    /// list's "none").
    pub fn add(&mut self, start: u64, end: u64) -> Added {
        let start = start.max(PAGE).next_multiple_of(PAGE);
        let end = end & !(PAGE - 1);
        if end <= start {
            return Added::Empty;
        }
        if self.len > 0 && self.list[self.len - 1].1 == start {
            self.list[self.len - 1].1 = end;
            self.frames += (end - start) / PAGE;
            return Added::Merged;
        }
        if self.len == N {
            return Added::TableFull;
        }
        self.list[self.len] = (start, end);
        self.len += 1;
        self.frames += (end - start) / PAGE;
        Added::New
    }

    /// The entries, in the order they were added.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.list[..self.len]
    }

    /// Frames in all entries.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

impl<const N: usize> Default for Regions<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_leaves_out_frame_zero() {
        let mut r = Regions::<4>::new();
        assert_eq!(r.add(0, 0x3000), Added::New);
        assert_eq!(r.as_slice(), &[(0x1000, 0x3000)]);
        assert_eq!(r.add(0x5001, 0x6fff), Added::Empty);
        assert_eq!(r.add(0x5001, 0x8000), Added::New);
        assert_eq!(r.as_slice(), &[(0x1000, 0x3000), (0x6000, 0x8000)]);
        assert_eq!(r.frames(), 4);
        assert_eq!(r.add(0, 0x1000), Added::Empty);
    }

    #[test]
    fn touching_regions_merge_and_a_full_table_says_so() {
        let mut r = Regions::<2>::new();
        assert_eq!(r.add(0x1000, 0x2000), Added::New);
        assert_eq!(r.add(0x2000, 0x4000), Added::Merged);
        assert_eq!(r.add(0x10000, 0x20000), Added::New);
        // Full, but a touching region still merges.
        assert_eq!(r.add(0x20000, 0x21000), Added::Merged);
        assert_eq!(r.add(0x1_0000_0000, 0x1_8000_0000), Added::TableFull);
        assert_eq!(r.as_slice(), &[(0x1000, 0x4000), (0x10000, 0x21000)]);
        assert_eq!(r.frames(), 3 + 0x11);
    }

    #[test]
    fn a_4_gib_q35_map_fits() {
        // 150 fragments below 2 GiB, alternating usable and not, then 2 GiB above 4 GiB: the
        // last region must be counted.
        let mut r = Regions::<128>::new();
        for i in 0..150u64 {
            let _ = r.add(i * 0x20_0000, i * 0x20_0000 + 0x10_0000);
        }
        assert_eq!(r.as_slice().len(), 128);
        let mut r = Regions::<256>::new();
        for i in 0..150u64 {
            assert_eq!(r.add(i * 0x20_0000, i * 0x20_0000 + 0x10_0000), Added::New);
        }
        assert_eq!(r.add(0x1_0000_0000, 0x1_8000_0000), Added::New);
        assert_eq!(r.frames(), 150 * 256 - 1 + 0x8_0000);
    }
}
