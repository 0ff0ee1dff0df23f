//! When a fault may grow a stack: the decision logic of both growth paths, kept free of
//! hardware so every boundary is tested on the host.
//!
//! * `pf-ist`: #PF runs on its own IST stack. A fault grows the stack when CR2 lies in the
//!   growable part of a live stack slot and the interrupted RSP lies in that same slot (the
//!   fault really is the thread's own stack growing, not a wild pointer into someone else's).
//! * `df-recover` (outside the SDM): the overflowing #PF could not push its frame and became
//!   #DF. The SDM calls #DF an abort ("the program or task cannot be restarted or resumed";
//!   the saved CS:RIP is undefined, Vol. 3A, Interrupt 8). Recovery is attempted only when
//!   every check below holds, each ruling out a case where the saved state is not the
//!   overflowing access: a page fault escalated at all (CR2, cleared after every capture, is
//!   not 0: otherwise it is stale), CR2 growable (the #PF that escalated was a stack access in
//!   the growable part), close below RSP in the same slot (the push that failed was on this
//!   stack), and RIP in the kernel's executable code (returning to anything else would execute
//!   garbage). The #DF error code is not checked: it is always 0 (SDM, Interrupt 8), so a
//!   check of it could never reject anything.
//!
//! Both paths refuse a fault further below the interrupted RSP than the delivery mechanism
//! writes ([`Fault::reach`]; [`IDT_FRAME_REACH`] for the IDT): the stack grows by pushes, calls
//! and event frames, which write right below RSP, or by moving RSP first and writing above it
//! (stack probes). A write far below RSP into the thread's own unmapped range is a wild
//! pointer, and mapping pages down to it would hide it.

use crate::stack_layout::{SlotRange, Zone, zone};

/// Furthest below the interrupted RSP that a real stack access faults under IDT delivery: a
/// push or call writes at RSP - 8, an event frame at most at RSP - 56 (64-bit mode aligns RSP
/// down to 16 bytes, then pushes 6 quadwords with an error code; SDM Vol. 3A §6.14.2). FRED
/// delivery at the same level writes further down: below a red zone, 64-byte aligned.
pub const IDT_FRAME_REACH: u64 = 64;

/// A live stack slot as the slot table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveSlot {
    /// The slot's addresses.
    pub range: SlotRange,
    /// Lowest mapped address.
    pub mapped_lo: u64,
    /// Lowest address the policy allows to map.
    pub floor: u64,
}

/// The saved state a handler judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The faulting address (event data).
    pub cr2: u64,
    /// The interrupted stack pointer.
    pub rsp: u64,
    /// The saved instruction pointer.
    pub rip: u64,
    /// The error code the CPU pushed.
    pub error_code: u64,
    /// How far below RSP the delivery mechanism itself writes ([`IDT_FRAME_REACH`] for the
    /// IDT): a fault deeper than this is not the stack growing.
    pub reach: u64,
}

/// What to do with a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Map `pages` pages from `page` up to the mapped edge, then resume.
    #[allow(missing_docs)]
    Grow { page: u64, pages: u64 },
    /// CR2 is below what the stack may use: an overflow, report and stop.
    Overflow,
    /// CR2 is in the growable part of the stack RSP is on, but far below RSP: a wild access
    /// (a stray pointer), not the stack growing; report it, never grow for it.
    WildAccess,
    /// Not a stack-growth fault; `why` says which check failed.
    #[allow(missing_docs)]
    NotGrowth { why: &'static str },
}

fn in_slot(slot: &SlotRange, addr: u64) -> bool {
    addr >= slot.base && addr <= slot.top
}

/// The checks both paths share: CR2 in the growable part of a live slot, and the interrupted
/// RSP in that same slot. `Ok((page, pages))` is the growth to make; `Err` the verdict
/// otherwise, where `mapped` explains a CR2 that is already mapped.
fn own_stack_growth(
    cr2_slot: Option<LiveSlot>,
    f: Fault,
    mapped: &'static str,
) -> Result<(u64, u64), Verdict> {
    let not = |why| Err(Verdict::NotGrowth { why });
    let Some(s) = cr2_slot else {
        return not("CR2 is not in a thread stack");
    };
    match zone(&s.range, s.mapped_lo, s.floor, f.cr2) {
        Zone::Mapped => not(mapped),
        Zone::Guard => Err(Verdict::Overflow),
        Zone::Growable { .. } if !in_slot(&s.range, f.rsp) => {
            not("RSP is not in the stack that CR2 names")
        }
        Zone::Growable { .. } if f.cr2.saturating_add(f.reach) < f.rsp => Err(Verdict::WildAccess),
        Zone::Growable { page, pages } => Ok((page, pages)),
    }
}

/// Decision for a #PF delivered on the #PF IST stack. `cr2_slot` is the live slot containing
/// CR2, if any.
pub fn judge_pf(cr2_slot: Option<LiveSlot>, f: Fault) -> Verdict {
    match own_stack_growth(cr2_slot, f, "CR2 is already mapped (protection fault)") {
        Ok((page, pages)) => Verdict::Grow { page, pages },
        Err(v) => v,
    }
}

/// Decision for a #DF under `df-recover`. `cr2` in `f` is 0 when no page fault escalated to
/// this #DF; `text` is the kernel's executable code. On top of the shared checks: a page
/// fault escalated, and the saved RIP is in `text`.
pub fn judge_df(cr2_slot: Option<LiveSlot>, f: Fault, text: core::ops::Range<u64>) -> Verdict {
    if f.cr2 == 0 {
        return Verdict::NotGrowth {
            why: "no page fault escalated to this #DF (CR2 is 0)",
        };
    }
    let mapped = "CR2 is mapped: this #DF is not a stack overflow";
    let (page, pages) = match own_stack_growth(cr2_slot, f, mapped) {
        Ok(g) => g,
        Err(v) => return v,
    };
    if !text.contains(&f.rip) {
        return Verdict::NotGrowth {
            why: "saved RIP is not in the kernel's code",
        };
    }
    Verdict::Grow { page, pages }
}

/// Where a trap frame moved off the #PF IST stack lands, for a frame of `bytes` and the
/// interrupted `rsp`: 128 bytes of margin below RSP, 16-byte aligned.
pub fn moved_frame_at(rsp: u64, bytes: u64) -> Option<u64> {
    rsp.checked_sub(128 + bytes).map(|a| a & !15)
}

/// The growth a non-growth #PF needs before its frame can move to the interrupted stack at
/// `to` (from [`moved_frame_at`]): `Some(page)` if `to` lies in the growable part of the live
/// slot that RSP is on, `None` if it is already mapped or may not be mapped (then the move is
/// refused and the fault is fatal).
pub fn room_to_move(slot: Option<LiveSlot>, rsp: u64, to: u64) -> Option<u64> {
    let s = slot?;
    if !in_slot(&s.range, rsp) || to < s.range.base {
        return None;
    }
    match zone(&s.range, s.mapped_lo, s.floor, to) {
        Zone::Growable { page, .. } => Some(page),
        Zone::Mapped | Zone::Guard => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack_layout::{Layout, PAGE};

    const K: u64 = 1024;
    const TEXT: core::ops::Range<u64> = 0x0080_0000_0000..0x0080_0010_0000;

    fn live() -> LiveSlot {
        let range = Layout::new(0xffff_e010_0000_0000, 64 * K, 16)
            .unwrap()
            .slot(2);
        LiveSlot {
            range,
            mapped_lo: range.top - 4 * K,
            floor: range.top - 32 * K,
        }
    }

    fn fault(cr2: u64, rsp: u64) -> Fault {
        Fault {
            cr2,
            rsp,
            rip: TEXT.start + 0x100,
            error_code: 0,
            reach: IDT_FRAME_REACH,
        }
    }

    #[test]
    fn pf_grows_one_byte_below_the_edge_and_not_at_it() {
        let s = live();
        let edge = s.mapped_lo;
        assert_eq!(
            judge_pf(Some(s), fault(edge - 1, edge)),
            Verdict::Grow {
                page: edge - PAGE,
                pages: 1
            }
        );
        assert!(matches!(
            judge_pf(Some(s), fault(edge, edge)),
            Verdict::NotGrowth { .. }
        ));
    }

    #[test]
    fn pf_floor_boundary() {
        let s = live();
        assert_eq!(
            judge_pf(Some(s), fault(s.floor, s.floor)),
            Verdict::Grow {
                page: s.floor,
                pages: 7
            }
        );
        assert_eq!(
            judge_pf(Some(s), fault(s.floor - 1, s.floor)),
            Verdict::Overflow
        );
        assert_eq!(
            judge_pf(Some(s), fault(s.range.base, s.floor)),
            Verdict::Overflow
        );
    }

    #[test]
    fn pf_rsp_must_be_in_the_same_slot_and_close_above_cr2() {
        let s = live();
        let cr2 = s.mapped_lo - 8;
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, cr2 + IDT_FRAME_REACH)),
            Verdict::Grow { .. }
        ));
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, s.range.base)),
            Verdict::Grow { .. }
        ));
        // A wild write far below RSP, inside the thread's own growable range.
        assert_eq!(
            judge_pf(Some(s), fault(cr2, cr2 + IDT_FRAME_REACH + 1)),
            Verdict::WildAccess
        );
        assert_eq!(
            judge_pf(Some(s), fault(s.floor, s.range.top)),
            Verdict::WildAccess
        );
        assert_eq!(
            judge_df(Some(s), fault(s.floor, s.range.top), TEXT),
            Verdict::WildAccess
        );
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, s.range.top + 1)),
            Verdict::NotGrowth { .. }
        ));
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, s.range.base - 1)),
            Verdict::NotGrowth { .. }
        ));
        assert!(matches!(
            judge_pf(None, fault(cr2, cr2)),
            Verdict::NotGrowth { .. }
        ));
    }

    #[test]
    fn df_checks_every_condition() {
        let s = live();
        let cr2 = s.mapped_lo - 8;
        let ok = fault(cr2, cr2 + 8);
        assert_eq!(
            judge_df(Some(s), ok, TEXT),
            Verdict::Grow {
                page: s.mapped_lo - PAGE,
                pages: 1
            }
        );
        assert_eq!(
            judge_df(Some(s), Fault { cr2: 0, ..ok }, TEXT),
            Verdict::NotGrowth {
                why: "no page fault escalated to this #DF (CR2 is 0)"
            }
        );
        for rip in [TEXT.start - 1, TEXT.end] {
            assert_eq!(
                judge_df(Some(s), Fault { rip, ..ok }, TEXT),
                Verdict::NotGrowth {
                    why: "saved RIP is not in the kernel's code"
                }
            );
        }
        for rip in [TEXT.start, TEXT.end - 1] {
            assert!(matches!(
                judge_df(Some(s), Fault { rip, ..ok }, TEXT),
                Verdict::Grow { .. }
            ));
        }
        assert_eq!(
            judge_df(
                Some(s),
                Fault {
                    rsp: s.range.top + 8,
                    ..ok
                },
                TEXT
            ),
            Verdict::NotGrowth {
                why: "RSP is not in the stack that CR2 names"
            }
        );
        assert_eq!(
            judge_df(Some(s), fault(s.floor - 1, s.floor), TEXT),
            Verdict::Overflow
        );
        assert!(matches!(
            judge_df(Some(s), fault(s.mapped_lo, s.mapped_lo), TEXT),
            Verdict::NotGrowth { .. }
        ));
        assert!(matches!(
            judge_df(None, ok, TEXT),
            Verdict::NotGrowth { .. }
        ));
    }

    #[test]
    fn a_moved_frame_needs_growth_only_inside_the_growable_part() {
        let s = live();
        // RSP well inside the mapped part: the copy lands in mapped memory, nothing to grow.
        let rsp = s.range.top - 1024;
        let to = moved_frame_at(rsp, 192).unwrap();
        assert_eq!(to, (rsp - 320) & !15);
        assert_eq!(room_to_move(Some(s), rsp, to), None);
        // RSP 8 bytes above the mapped edge: the copy needs the page below it.
        let rsp = s.mapped_lo + 8;
        let to = moved_frame_at(rsp, 192).unwrap();
        assert_eq!(room_to_move(Some(s), rsp, to), Some(s.mapped_lo - PAGE));
        // Exactly at the floor the copy fits; one byte lower it may not be mapped.
        assert_eq!(room_to_move(Some(s), s.floor + 320, s.floor), Some(s.floor));
        assert_eq!(room_to_move(Some(s), s.floor + 320, s.floor - 16), None);
        // RSP on another stack, or no live slot: no growth here.
        assert_eq!(
            room_to_move(Some(s), s.range.top + 8, s.mapped_lo - 64),
            None
        );
        assert_eq!(room_to_move(None, rsp, to), None);
        assert_eq!(moved_frame_at(100, 192), None);
    }
}
