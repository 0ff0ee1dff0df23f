//! The kernel-stack overflow story under FRED and under the IDT.
//!
//! A `push` with RSP at the bottom of the 16 KiB level-0 stack writes into the unmapped guard
//! page below it: a #PF with CR2 = STACK0_LO - 8, error code 2 (supervisor write, not present).

mod common;
use common::*;

use stacklab_fred::event::vector::{DF, PF};
use stacklab_fred::legacy::{self, LegacyConfig};
use stacklab_fred::{CpuState, Event, FaultProbe, NoFaults, Outcome, Unmapped, deliver, erets};

const RF: u64 = 1 << 16;
const KENTRY: u64 = ENTRY + 256;
/// The SS word of a kernel hardware exception with `vector`, 64-bit mode.
const fn kss(vector: u8) -> u64 {
    0x18 | (vector as u64) << 32 | 3 << 48 | 1 << 57
}

/// The kernel, at CSL 0, with the stack exactly full.
fn full_stack(msrs: stacklab_fred::FredMsrs) -> CpuState {
    CpuState::kernel(STACK0_LO, KRIP, msrs, 0)
}

fn overflow_pf() -> Event {
    Event::page_fault(STACK0_LO - 8, 2)
}

#[test]
fn pf_on_level_1_is_delivered_exactly_and_erets_reruns_the_push() {
    let guard = [GUARD0];
    let mem = Unmapped(&guard);
    // The push faults.
    assert_eq!(
        mem.supervisor_write_fault(STACK0_LO - 8),
        Some(STACK0_LO - 8)
    );

    let s = full_stack(pf1_msrs());
    let d = deliver(&s, &overflow_pf(), &mem);
    assert_eq!(d.outcome, Outcome::Delivered);
    assert!(d.attempts.is_empty());
    let del = d.delivered.unwrap();
    assert_eq!(
        (del.level, del.new_csl, del.frame_top, del.new_rsp),
        (1, 1, RSP1, RSP1 - 64)
    );
    assert_eq!(
        del.frame.words,
        [
            2,
            KRIP,
            0x10,
            0x2 | RF,
            STACK0_LO,
            kss(PF),
            STACK0_LO - 8,
            0
        ]
    );
    assert_eq!(del.entry_rip, KENTRY);
    assert_eq!(
        (d.after.csl(), d.after.rsp, d.after.cr2),
        (1, RSP1 - 64, STACK0_LO - 8)
    );

    // The handler maps the guard page (here: memory without holes) and returns.
    let r = erets(&d.after, &del.frame, true).unwrap();
    assert_eq!(
        (r.state.rip, r.state.rsp, r.state.csl(), r.state.rflags),
        (KRIP, STACK0_LO, 0, 0x2 | RF)
    );
    // The same push now succeeds.
    assert_eq!(NoFaults.supervisor_write_fault(r.state.rsp - 8), None);
}

#[test]
fn linux_levels_turn_the_overflow_into_a_double_fault_on_level_3() {
    let guard = [GUARD0];
    let s = full_stack(linux_msrs());
    let d = deliver(&s, &overflow_pf(), &Unmapped(&guard));
    assert_eq!(d.outcome, Outcome::DoubleFault);
    // #PF stays on level 0: its frame top is (STACK0_LO - 64) & ~63, and its first write, at
    // top - 8, is in the guard page.
    let a: Vec<_> = d.attempts.iter().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].event.vector, a[0].level, a[0].frame_top),
        (PF, 0, STACK0_LO - 64)
    );
    assert_eq!(
        (a[0].fault.vector, a[0].fault.error_code, a[0].fault.address),
        (PF, 2, STACK0_LO - 72)
    );
    let del = d.delivered.unwrap();
    assert_eq!(
        (del.event.vector, del.level, del.new_csl, del.frame_top),
        (DF, 3, 3, RSP3)
    );
    assert!(!del.nested);
    // Bochs saves the faulting instruction's context; #DF's event data is 0, error code 0.
    assert_eq!(
        del.frame.words,
        [0, KRIP, 0x10, 0x2 | RF, STACK0_LO, kss(DF), 0, 0]
    );
    // CR2 now names the #PF frame's slot, not the push: both are in the guard page.
    assert_eq!(d.after.cr2, STACK0_LO - 72);
    assert!(d.after.cr2 >= GUARD0.0 && d.after.cr2 < GUARD0.1);
}

#[test]
fn overflow_of_the_level_1_stack_itself_still_double_faults() {
    // #PF on level 1; the level-1 stack (4 KiB) is full and its guard unmapped.
    let lo1 = RSP1 - 0x1000;
    let holes = [(lo1 - 0x1000, lo1)];
    let mut s = full_stack(pf1_msrs());
    s.set_csl(1);
    s.rsp = lo1;
    let d = deliver(&s, &Event::page_fault(lo1 - 8, 2), &Unmapped(&holes));
    assert_eq!(d.outcome, Outcome::DoubleFault);
    assert_eq!(d.delivered.unwrap().frame_top, RSP3);
    assert_eq!(d.attempts.get(0).unwrap().fault.address, lo1 - 72);
}

#[test]
fn legacy_overflow_is_a_double_fault_on_its_ist_stack() {
    // Linux mainline: #PF through a normal gate, #DF on its own IST.
    let df_ist = 0xFFFF_FE00_0004_0000;
    let cfg = LegacyConfig::new(RSP0, 0xFFFF_FFFF_8200_0000).with_ist(DF, 1, df_ist);
    let guard = [GUARD0];
    let s = full_stack(linux_msrs());
    let d = legacy::deliver(&s, &cfg, &overflow_pf(), &Unmapped(&guard));
    assert_eq!(d.outcome, Outcome::DoubleFault);
    // The #PF push of SS at STACK0_LO - 8 faults first.
    assert_eq!(d.attempts.get(0).unwrap().fault.address, STACK0_LO - 8);
    let del = d.delivered.unwrap();
    assert_eq!(
        (del.ist, del.frame_top, del.new_rsp),
        (1, df_ist, df_ist - 48)
    );
    assert_eq!(
        del.frame.words(),
        &[0, KRIP, 0x10, 0x2 | RF, STACK0_LO, 0x18]
    );
    assert_eq!(del.entry_rip, 0xFFFF_FFFF_8200_0000 + 16 * 8);
    assert_eq!(d.after.cr2, STACK0_LO - 8);
}

#[test]
fn legacy_fault_on_the_double_fault_stack_is_a_triple_fault() {
    let df_ist = 0xFFFF_FE00_0004_0000;
    let cfg = LegacyConfig::new(RSP0, 0xFFFF_FFFF_8200_0000).with_ist(DF, 1, df_ist);
    let holes = [GUARD0, (df_ist - 0x1000, df_ist)];
    let d = legacy::deliver(
        &full_stack(linux_msrs()),
        &cfg,
        &overflow_pf(),
        &Unmapped(&holes),
    );
    assert_eq!(d.outcome, Outcome::Shutdown);
    assert_eq!(d.attempts.len(), 2);
    assert_eq!(d.attempts.get(1).unwrap().fault.address, df_ist - 8);
    assert!(d.delivered.is_none());
}
