//! Properties over random event sequences.

mod common;
use common::*;

use proptest::prelude::*;
use stacklab_fred::deliver::Frame;
use stacklab_fred::event::vector::{DB, PF};
use stacklab_fred::legacy::{self, LegacyConfig};
use stacklab_fred::{
    CpuState, Event, EventType, FredConfig, FredMsrs, NoFaults, Outcome, StackLevels, Unmapped,
    deliver, erets, eretu,
};

const RF: u64 = 1 << 16;

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (32u8..=255).prop_map(Event::external_interrupt),
        Just(Event::nmi()),
        (0u8..32, any::<u16>()).prop_map(|(v, ec)| Event::exception(v, ec as u64)),
        (any::<u64>()).prop_map(|a| Event::page_fault(a, 2)),
        (any::<u8>(), 1u8..15).prop_map(|(v, l)| Event::int_n(v, l)),
        Just(Event::int3()),
        Just(Event {
            kind: EventType::PrivilegedSoftwareException,
            vector: DB,
            error_code: 0,
            event_data: 0,
            ilen: 1,
        }),
        Just(Event::syscall()),
    ]
}

fn any_msrs() -> impl Strategy<Value = FredMsrs> {
    (any::<u64>(), 0u8..8, 0u8..4).prop_map(|(lv, rz, il)| FredMsrs {
        rsp: [RSP0, RSP1, RSP2, RSP3],
        stklvls: StackLevels(lv),
        config: FredConfig::new(ENTRY, rz, il),
    })
}

/// Valid RFLAGS for ERETS: bit 1, and any of CF PF AF ZF SF TF IF DF OF, IOPL, NT, RF, AC.
fn any_rflags() -> impl Strategy<Value = u64> {
    any::<u32>().prop_map(|r| 2 | (r as u64 & 0x0005_7FD5))
}

#[derive(Clone, Debug)]
enum Op {
    Event(Event),
    /// The handler uses some stack.
    Push(u16),
    /// The innermost handler returns.
    Return,
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any_event().prop_map(Op::Event),
        1 => (1u16..64).prop_map(|n| Op::Push(n * 8)),
        2 => Just(Op::Return),
    ]
}

/// What a handler that returns must get back.
struct Live {
    range: (u64, u64),
    frame: Frame,
    before: CpuState,
    event: Event,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random nested deliveries and returns in ring 0: CSL never drops on delivery, no frame
    /// overlaps a live one, and ERETS of an unmodified frame restores the exact context.
    #[test]
    fn nested_kernel_events(msrs in any_msrs(), csl in 0u8..4, rflags in any_rflags(),
                            ops in prop::collection::vec(any_op(), 1..60)) {
        let mut cur = CpuState::kernel(KRSP, KRIP, msrs, csl);
        cur.rflags = rflags;
        let mut live: Vec<Live> = Vec::new();
        for op in ops {
            match op {
                Op::Event(ev) => {
                    let d = deliver(&cur, &ev, &NoFaults);
                    prop_assert_eq!(d.outcome, Outcome::Delivered);
                    let del = d.delivered.unwrap();
                    prop_assert!(del.new_csl >= cur.csl(), "CSL lowered");
                    prop_assert!(del.new_csl >= del.level);
                    prop_assert_eq!(d.after.csl(), del.new_csl);
                    prop_assert_eq!(del.frame_top % 64, 0);
                    for l in &live {
                        prop_assert!(!overlaps(l.range, del.frame_range()),
                            "frame {:x?} overlaps live {:x?}", del.frame_range(), l.range);
                    }
                    live.push(Live { range: del.frame_range(), frame: del.frame, before: cur, event: ev });
                    cur = d.after;
                }
                Op::Push(n) => cur.rsp -= n as u64,
                Op::Return => {
                    let Some(l) = live.pop() else { continue };
                    // The handler pops back to its frame.
                    cur.rsp = l.range.0;
                    let r = erets(&cur, &l.frame, true).expect("ERETS of an unmodified frame");
                    let b = &l.before;
                    let rip = if l.event.kind.is_instruction() { b.rip + (l.event.ilen & 15) as u64 } else { b.rip };
                    let rf = if l.event.sets_resume_flag() { RF } else { 0 };
                    prop_assert_eq!(r.state.rip, rip);
                    prop_assert_eq!(r.state.rsp, b.rsp);
                    prop_assert_eq!(r.state.rflags, b.rflags | rf);
                    prop_assert_eq!(r.state.csl(), b.csl());
                    prop_assert_eq!((r.state.cs, r.state.ss, r.state.cpl), (b.cs, b.ss, 0));
                    prop_assert_eq!(r.nmi_unblocked, l.event.kind == EventType::Nmi);
                    cur = r.state;
                    // The RIP the handler resumes is whatever the outer handler had.
                }
            }
        }
    }

    /// Any event from ring 3 comes back with ERETU to exactly the user context.
    #[test]
    fn user_event_and_eretu(msrs in any_msrs(), ev in any_event(), rsp in 0u64..0x7FFF_FFFF_F000,
                            rip in 0u64..0x7FFF_FFFF_F000) {
        let s = CpuState::user(rsp, rip, msrs);
        let d = deliver(&s, &ev, &NoFaults);
        let del = d.delivered.unwrap();
        prop_assert_eq!(del.entry_rip, ENTRY);
        prop_assert_eq!(del.frame.old_csl(), 0);
        if !ev.is_double_fault() {
            prop_assert_eq!((del.level, del.frame_top), (0, RSP0));
        }
        // Back at CSL 0 on the way out (a #DF handler would first have to ERETS down).
        let mut h = d.after;
        h.set_csl(0);
        let r = eretu(&h, &del.frame, true).unwrap();
        let want_rip = if ev.kind.is_instruction() { rip + (ev.ilen & 15) as u64 } else { rip };
        prop_assert_eq!((r.state.rip, r.state.rsp, r.state.cpl, r.state.cs, r.state.ss),
                        (want_rip, rsp, 3, 0x33, 0x2B));
    }

    /// With faults anywhere, delivery still never lowers the CSL, and whatever is delivered
    /// is one of the three outcomes with a failed attempt for every escalation.
    #[test]
    fn faults_never_lower_csl(mut msrs in any_msrs(), csl in 0u8..4, ev in any_event(), user_mode in any::<bool>(),
                              bad_entry in prop::bool::weighted(0.1),
                              holes in prop::collection::vec((0u64..8, 0u64..0x10000, 1u64..0x200), 0..4)) {
        if bad_entry {
            msrs.config = FredConfig(msrs.config.0 & 0xFFF | 0x0000_8000_0000_0000);
        }
        let bases = [RSP0 - 0x8000, RSP1 - 0x8000, RSP2 - 0x8000, RSP3 - 0x8000, KRSP - 0x8000, 0, 0, 0];
        let ranges: Vec<(u64, u64)> = holes.iter().map(|&(b, o, l)| {
            let lo = bases[b as usize] + o;
            (lo, lo + l)
        }).collect();
        let s = if user_mode { CpuState::user(URSP, URIP, msrs) } else { CpuState::kernel(KRSP, KRIP, msrs, csl) };
        let d = deliver(&s, &ev, &Unmapped(&ranges));
        match d.outcome {
            Outcome::Delivered => prop_assert!(d.attempts.is_empty()),
            Outcome::Nested | Outcome::DoubleFault => prop_assert!(!d.attempts.is_empty()),
            Outcome::Shutdown => {
                // Only a fault while delivering #DF ends it, never a full attempt list.
                prop_assert!(d.delivered.is_none());
                let last = d.attempts.get(d.attempts.len() - 1).unwrap();
                prop_assert!(last.event.is_double_fault());
                prop_assert!(d.attempts.len() <= 3);
            }
        }
        if let Some(del) = d.delivered {
            let old = if user_mode { 0 } else { s.csl() };
            prop_assert!(del.new_csl >= old);
            prop_assert_eq!(del.nested, d.outcome == Outcome::Nested);
            prop_assert_eq!(del.frame.nested(), del.nested);
            if d.outcome == Outcome::Nested {
                prop_assert_eq!(del.event.vector, PF);
                prop_assert_eq!(del.frame.event_data(), d.after.cr2);
            }
        }
    }

    /// Legacy: an event re-entering an IST gate while its handler runs on that IST stack
    /// writes exactly over the outer frame, whatever the handler did with its stack.
    #[test]
    fn legacy_ist_reentry_overwrites(ist in 1u8..8, top in 0x1000u64..0x10_0000, used in 0u64..0x800,
                                     v1 in 0u8..32, v2 in 0u8..32) {
        let top = 0xFFFF_FE00_0000_0000 + top * 16;
        let cfg = LegacyConfig::new(RSP0, 0xFFFF_FFFF_8200_0000)
            .with_ist(v1, ist, top)
            .with_ist(v2, ist, top);
        let outer = legacy::deliver(&kernel(0), &cfg, &Event::exception(v1, 0), &NoFaults);
        let o = outer.delivered.unwrap();
        let mut h = outer.after;
        h.rsp = o.new_rsp - used;
        let inner = legacy::deliver(&h, &cfg, &Event::exception(v2, 0), &NoFaults);
        let i = inner.delivered.unwrap();
        prop_assert_eq!(i.frame_top, o.frame_top);
        prop_assert!(overlaps(i.frame_range(), o.frame_range()));
    }
}
