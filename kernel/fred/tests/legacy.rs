//! Legacy IDT delivery: frames, stacks, and the IST re-entry hazard next to FRED.

mod common;
use common::*;

use stacklab_fred::event::vector::{GP, MC, NMI, PF, UD};
use stacklab_fred::legacy::{self, LegacyConfig};
use stacklab_fred::{CpuState, Event, NoFaults, Outcome, Unmapped, deliver};

const HANDLERS: u64 = 0xFFFF_FFFF_8200_0000;
const NMI_IST: u64 = 0xFFFF_FE00_0005_0000;

fn cfg() -> LegacyConfig {
    LegacyConfig::new(RSP0, HANDLERS)
        .with_ist(NMI, 2, NMI_IST)
        .with_ist(MC, 2, NMI_IST)
}

#[test]
fn kernel_gp_frame_has_six_words_aligned_to_16() {
    // SDM Vol. 3A 6.14.2: RSP aligned down to 16, SS RSP RFLAGS CS RIP error code.
    let s = kernel(0);
    let d = legacy::deliver(&s, &cfg(), &Event::exception(GP, 0x28), &NoFaults);
    let del = d.delivered.unwrap();
    assert_eq!(del.frame_top, KRSP & !15);
    assert_eq!(del.new_rsp, (KRSP & !15) - 48);
    assert_eq!(
        del.frame.words(),
        &[0x28, KRIP, 0x10, 0x2 | 1 << 16, KRSP, 0x18]
    );
    assert_eq!(
        (d.after.rsp, d.after.rip),
        (del.new_rsp, HANDLERS + 16 * 13)
    );
}

#[test]
fn user_interrupt_uses_rsp0_and_loads_null_ss() {
    // SDM Vol. 3A 6.14.4.
    let d = legacy::deliver(&user(), &cfg(), &Event::external_interrupt(0x30), &NoFaults);
    let del = d.delivered.unwrap();
    assert_eq!((del.frame_top, del.new_rsp), (RSP0, RSP0 - 40));
    assert_eq!(del.frame.words(), &[URIP, 0x33, 0x202, URSP, 0x2B]);
    assert_eq!(
        (d.after.cpl, d.after.ss, d.after.cs, d.after.rflags),
        (0, 0, 0x10, 0x2)
    );
}

#[test]
fn ist_reentry_overwrites_the_live_outer_frame() {
    // Linux Documentation/arch/x86/kernel-stacks.rst: an NMI nests on its own IST stack
    // (here #MC shares it, as the nested case needs no NMI unblocking).
    let outer = legacy::deliver(&kernel(0), &cfg(), &Event::nmi(), &NoFaults);
    let o = outer.delivered.unwrap();
    assert_eq!(o.frame_range(), (NMI_IST - 40, NMI_IST));
    assert_eq!(o.frame.rip(), KRIP);

    // The handler runs a little and takes #MC.
    let mut inner_state = outer.after;
    inner_state.rsp -= 0x128;
    inner_state.rip = HANDLERS + 16 * 2 + 7;
    let inner = legacy::deliver(&inner_state, &cfg(), &Event::exception(MC, 0), &NoFaults);
    let i = inner.delivered.unwrap();
    // Same addresses: the outer frame (the way back to KRIP) is gone.
    assert_eq!(i.frame_range(), o.frame_range());
    assert_eq!(i.frame.rip(), HANDLERS + 16 * 2 + 7);
    assert_ne!(i.frame.rip(), o.frame.rip());
}

#[test]
fn fred_same_level_nesting_goes_below_the_live_frame() {
    // The FRED counterpart: NMI and #MC both on level 2 (Linux); the nested frame goes below.
    let outer = deliver(&kernel(0), &Event::nmi(), &NoFaults);
    let o = outer.delivered.unwrap();
    assert_eq!(o.frame_range(), (RSP2 - 64, RSP2));
    let mut inner_state = outer.after;
    inner_state.rsp -= 0x128;
    let inner = deliver(&inner_state, &Event::exception(MC, 0), &NoFaults);
    let i = inner.delivered.unwrap();
    // (RSP2 - 64 - 0x128 - 64) & ~63
    assert_eq!(i.frame_top, (RSP2 - 64 - 0x128 - 64) & !63);
    assert!(i.frame_top <= o.new_rsp);
    assert_eq!(i.frame.old_csl(), 2);
}

#[test]
fn legacy_pf_during_pf_push_is_a_double_fault_and_benign_first_is_serial() {
    // #UD's push faults; #UD is benign, so #PF is delivered (serially) ... on the same
    // stack, whose push faults again: #PF then #PF is #DF (no IST for #DF here: same stack,
    // which faults a third time: triple fault).
    let holes = [(KRSP - 0x1000, KRSP + 0x1000)];
    let cfg = LegacyConfig::new(RSP0, HANDLERS);
    let d = legacy::deliver(
        &kernel(0),
        &cfg,
        &Event::exception(UD, 0),
        &Unmapped(&holes),
    );
    assert_eq!(d.outcome, Outcome::Shutdown);
    let vs: Vec<u8> = d.attempts.iter().map(|a| a.event.vector).collect();
    assert_eq!(vs, [UD, PF, 8]);
}

#[test]
fn shutdown_leaves_the_interrupted_context_unchanged() {
    let s: CpuState = kernel(0);
    let holes = [(0, u64::MAX)];
    let d = legacy::deliver(&s, &cfg(), &Event::nmi(), &Unmapped(&holes));
    assert_eq!(d.outcome, Outcome::Shutdown);
    assert_eq!((d.after.rip, d.after.rsp, d.after.cpl), (s.rip, s.rsp, 0));
}
