//! A stack drawn as a line of text for the shell's `stacks` command, lowest address on the
//! left: `g` guard (never mapped under the stack's policy), `.` reserved (may be mapped by
//! growth, not mapped yet), `#` mapped, zones separated by `|`, e.g. `[gggg|........|####]`.
//! One character per page up to [`MAX_CELLS`] pages; larger stacks are scaled down, and a
//! zone that is not empty always gets at least one character.

use core::fmt::{self, Write};

/// Most characters inside the brackets (plus up to two separators).
pub const MAX_CELLS: u64 = 64;

/// A stack's zones in pages, from its lowest address up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zones {
    /// Pages that are never mapped (guard).
    pub guard: u64,
    /// Pages growth may still map.
    pub reserved: u64,
    /// Pages mapped now.
    pub mapped: u64,
}

impl Zones {
    /// Pages per character.
    pub fn scale(&self) -> u64 {
        (self.guard + self.reserved + self.mapped)
            .div_ceil(MAX_CELLS)
            .max(1)
    }
}

impl fmt::Display for Zones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = self.scale();
        f.write_char('[')?;
        let mut first = true;
        for (pages, c) in [(self.guard, 'g'), (self.reserved, '.'), (self.mapped, '#')] {
            if pages == 0 {
                continue;
            }
            if !first {
                f.write_char('|')?;
            }
            first = false;
            for _ in 0..pages.div_ceil(scale) {
                f.write_char(c)?;
            }
        }
        f.write_char(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn z(guard: u64, reserved: u64, mapped: u64) -> Zones {
        Zones {
            guard,
            reserved,
            mapped,
        }
    }

    #[test]
    fn one_character_per_page_in_address_order() {
        // A 64 KiB slot under grow 4K 32K: 8 guard pages, 7 reserved, 1 mapped.
        assert_eq!(z(8, 7, 1).to_string(), "[gggggggg|.......|#]");
        // Fixed 16K in a 64K slot: no reserved zone.
        assert_eq!(z(12, 0, 4).to_string(), "[gggggggggggg|####]");
        assert_eq!(z(1, 0, 16).to_string(), "[g|################]");
        assert_eq!(z(0, 0, 0).to_string(), "[]");
    }

    #[test]
    fn large_stacks_are_scaled_and_small_zones_still_show() {
        // 1 MiB slot: 256 pages, 4 per character.
        let big = z(128, 127, 1);
        assert_eq!(big.scale(), 4);
        let s = big.to_string();
        assert_eq!(s.matches('g').count(), 32);
        assert_eq!(s.matches('.').count(), 32);
        assert_eq!(s.matches('#').count(), 1);
        // At most one extra cell per zone from rounding up, two separators, two brackets.
        assert!(s.len() as u64 <= MAX_CELLS + 3 + 4, "{s}");
    }
}
