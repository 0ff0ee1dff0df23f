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
//!   overflowing access: CR2 growable (the #PF that escalated was a stack access in the
//!   growable part), RSP in the same slot (the push that failed was on this stack), error code
//!   0 (#DF always pushes 0; anything else means a corrupt frame), and RIP in kernel text
//!   (returning to anything else would execute garbage).

use crate::stack_layout::{SlotRange, Zone, zone};

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
}

/// What to do with a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Map `pages` pages from `page` up to the mapped edge, then resume.
    #[allow(missing_docs)]
    Grow { page: u64, pages: u64 },
    /// CR2 is below what the stack may use: an overflow, report and stop.
    Overflow,
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

/// Decision for a #DF under `df-recover`. `text` is the kernel's executable range. On top of
/// the shared checks: the #DF error code must be 0 and the saved RIP in kernel text.
pub fn judge_df(cr2_slot: Option<LiveSlot>, f: Fault, text: (u64, u64)) -> Verdict {
    let mapped = "CR2 is mapped: this #DF is not a stack overflow";
    let (page, pages) = match own_stack_growth(cr2_slot, f, mapped) {
        Ok(g) => g,
        Err(v) => return v,
    };
    let why = if f.error_code != 0 {
        "#DF error code is not 0"
    } else if f.rip < text.0 || f.rip >= text.1 {
        "saved RIP is not in kernel text"
    } else {
        return Verdict::Grow { page, pages };
    };
    Verdict::NotGrowth { why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack_layout::{Layout, PAGE};

    const K: u64 = 1024;
    const TEXT: (u64, u64) = (0x0080_0000_0000, 0x0080_0010_0000);

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
            rip: TEXT.0 + 0x100,
            error_code: 0,
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
    fn pf_rsp_must_be_in_the_same_slot() {
        let s = live();
        let cr2 = s.mapped_lo - 8;
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, s.range.top)),
            Verdict::Grow { .. }
        ));
        assert!(matches!(
            judge_pf(Some(s), fault(cr2, s.range.base)),
            Verdict::Grow { .. }
        ));
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
        let bad_code = Fault {
            error_code: 1,
            ..ok
        };
        assert_eq!(
            judge_df(Some(s), bad_code, TEXT),
            Verdict::NotGrowth {
                why: "#DF error code is not 0"
            }
        );
        for rip in [TEXT.0 - 1, TEXT.1] {
            assert_eq!(
                judge_df(Some(s), Fault { rip, ..ok }, TEXT),
                Verdict::NotGrowth {
                    why: "saved RIP is not in kernel text"
                }
            );
        }
        for rip in [TEXT.0, TEXT.1 - 1] {
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
}
