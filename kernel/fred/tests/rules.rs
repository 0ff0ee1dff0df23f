//! One row per rule of FRED delivery, each naming its source. Every row states exact values.

mod common;
use common::*;

use stacklab_fred::deliver::{SS_64BIT, SS_NESTED, SS_NMI, SS_SOFTWARE_EVENT, SS_STI_BLOCKING};
use stacklab_fred::event::vector::*;
use stacklab_fred::{
    CpuState, Delivery, Event, EventType, FredConfig, NestedPolicy, NoTrace, Options, Outcome,
    Rule, Unmapped, deliver_with,
};

const RF: u64 = 1 << 16;

/// What a row expects; `None` fields are not checked by that row.
#[derive(Default)]
struct Want {
    outcome: Option<Outcome>,
    vector: Option<u8>,
    nested: Option<bool>,
    level: Option<u8>,
    new_csl: Option<u8>,
    frame_top: Option<u64>,
    entry_rip: Option<u64>,
    /// (index ascending from the new RSP, value).
    words: Vec<(usize, u64)>,
    /// (index, vector, fault address) of failed attempts.
    attempts: Option<Vec<(u8, u64)>>,
    after: Option<fn(&CpuState) -> bool>,
}

struct Row {
    rule: Rule,
    state: CpuState,
    event: Event,
    unmapped: &'static [(u64, u64)],
    opts: Options,
    want: Want,
}

fn check(row: &Row) {
    let d: Delivery = deliver_with(
        &row.state,
        &row.event,
        &Unmapped(row.unmapped),
        &row.opts,
        &mut NoTrace,
    );
    let name = row.rule.name();
    let w = &row.want;
    if let Some(o) = w.outcome {
        assert_eq!(d.outcome, o, "{name}: outcome");
    }
    if let Some(a) = &w.attempts {
        let got: Vec<(u8, u64)> = d
            .attempts
            .iter()
            .map(|a| (a.event.vector, a.fault.address))
            .collect();
        assert_eq!(&got, a, "{name}: attempts (vector, fault address)");
    }
    if let Some(f) = w.after {
        assert!(f(&d.after), "{name}: state after: {:x?}", d.after);
    }
    let Some(del) = d.delivered else {
        assert!(
            w.vector.is_none() && w.words.is_empty(),
            "{name}: nothing delivered"
        );
        return;
    };
    if let Some(v) = w.vector {
        assert_eq!(del.event.vector, v, "{name}: vector");
    }
    if let Some(n) = w.nested {
        assert_eq!(del.nested, n, "{name}: nested");
    }
    if let Some(l) = w.level {
        assert_eq!(del.level, l, "{name}: level");
    }
    if let Some(c) = w.new_csl {
        assert_eq!(del.new_csl, c, "{name}: new CSL");
    }
    if let Some(t) = w.frame_top {
        assert_eq!(del.frame_top, t, "{name}: frame top");
        assert_eq!(del.new_rsp, t - 64, "{name}: new RSP");
        assert_eq!(d.after.rsp, t - 64, "{name}: RSP after");
    }
    if let Some(e) = w.entry_rip {
        assert_eq!(del.entry_rip, e, "{name}: entry RIP");
        assert_eq!(d.after.rip, e, "{name}: RIP after");
    }
    for &(i, v) in &w.words {
        assert_eq!(
            del.frame.words[i], v,
            "{name}: frame word {i}: {:#x} != {v:#x}",
            del.frame.words[i]
        );
    }
}

fn with_sti(mut s: CpuState) -> CpuState {
    s.sti_blocking = true;
    s
}

fn with_wfe(mut s: CpuState) -> CpuState {
    s.wfe = true;
    s
}

fn with_rflags(mut s: CpuState, f: u64) -> CpuState {
    s.rflags = f;
    s
}

fn with_config(mut s: CpuState, c: FredConfig) -> CpuState {
    s.msrs.config = c.with_csl(s.csl());
    s
}

fn with_msrs(mut s: CpuState, m: stacklab_fred::FredMsrs) -> CpuState {
    let csl = s.csl();
    s.msrs = m;
    s.set_csl(csl);
    s
}

/// Same-level frame top with Linux's one-unit red zone: (KRSP - 64) & !63.
const KTOP: u64 = (KRSP - 64) & !63;
/// The ring-0 entry point.
const KENTRY: u64 = ENTRY + 256;
/// The SS word's event information for (vector, type), 64-bit mode.
const fn info(vector: u8, kind: u8) -> u64 {
    ((vector as u64) << 32) | ((kind as u64) << 48) | SS_64BIT
}

fn rows() -> Vec<Row> {
    let d = Options::default();
    let bochs = Options {
        nested: NestedPolicy::HardwareExceptionsOnly,
    };
    vec![
        // Bochs cpu/fred.cc FRED_EventDelivery (CPL == 3 && !nested && vector != #DF); Linux
        // arch/x86/kernel/fred.c: user events take level 0 even for NMI (STKLVLS[2] = 2), enter
        // at the page base and save the ring-3 context with old CSL 0.
        Row {
            rule: Rule::LevelFromRing3,
            state: user(),
            event: Event::nmi(),
            unmapped: &[],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Delivered),
                level: Some(0),
                new_csl: Some(0),
                frame_top: Some(RSP0),
                entry_rip: Some(ENTRY),
                words: vec![
                    (1, URIP),
                    (2, 0x33),
                    (3, 0x202),
                    (4, URSP),
                    (5, 0x2B | SS_NMI | info(2, 2)),
                ],
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: external interrupts use CONFIG[10:9].
        Row {
            rule: Rule::LevelExternalInterrupt,
            state: with_config(kernel(0), FredConfig::new(ENTRY, 1, 2)),
            event: Event::external_interrupt(0x30),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(2),
                new_csl: Some(2),
                frame_top: Some(RSP2),
                words: vec![(5, 0x18 | info(0x30, 0))],
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/kernel/fred.c (#DB on level 1).
        Row {
            rule: Rule::LevelStklvls,
            state: kernel(0),
            event: Event::exception(DB, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(1),
                new_csl: Some(1),
                frame_top: Some(RSP1),
                words: vec![(2, 0x10), (3, 0x2)], // old CSL 0; #DB does not set RF
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: INT n takes level 0 even for vector 2, whose
        // STKLVLS entry is 2.
        Row {
            rule: Rule::LevelSoftware,
            state: kernel(0),
            event: Event::int_n(2, 2),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(0),
                new_csl: Some(0),
                frame_top: Some(KTOP),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery (new CSL = max); Linux Documentation fred.rst:
        // at CSL 2 a level-0 #UD stays at level 2, on the current stack.
        Row {
            rule: Rule::CslNeverLowered,
            state: kernel(2),
            event: Event::exception(UD, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(0),
                new_csl: Some(2),
                frame_top: Some(KTOP),
                words: vec![(2, 0x10 | 2 << 16)],
                after: Some(|s| s.csl() == 2),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: a rising level loads IA32_FRED_RSP[new CSL].
        Row {
            rule: Rule::StackSwitch,
            state: kernel(1),
            event: Event::nmi(),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(2),
                new_csl: Some(2),
                frame_top: Some(RSP2),
                words: vec![(2, 0x10 | 1 << 16), (4, KRSP)],
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: (RSP - CONFIG[8:6]*64) & ~63 with a two-unit
        // red zone: KRSP = ...8F38 -> ...8EB8 -> ...8E80.
        Row {
            rule: Rule::StackStay,
            state: with_config(kernel(0), FredConfig::new(ENTRY, 2, 0)),
            event: Event::exception(UD, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                frame_top: Some(0xFFFF_C900_0000_8E80),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/entry/entry_64_fred.S.
        Row {
            rule: Rule::EntryRip,
            state: kernel(0),
            event: Event::exception(UD, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                entry_rip: Some(KENTRY),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: a non-canonical entry is #GP; #UD -> #GP
        // (serial, benign first) -> #GP again (contributory twice: #DF) -> #GP on #DF: shutdown.
        Row {
            rule: Rule::EntryCanonical,
            state: with_config(kernel(0), FredConfig::new(0x0000_8000_0000_0000, 1, 0)),
            event: Event::exception(UD, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Shutdown),
                attempts: Some(vec![(UD, 0), (GP, 0), (DF, 0)]),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery; Linux ptrace.h struct fred_ss: INT 0x80 with STI
        // blocking: bits 16, 17, vector, type 4, 64-bit, length 2.
        Row {
            rule: Rule::SsWord,
            state: with_sti(kernel(0)),
            event: Event::int_n(0x80, 2),
            unmapped: &[],
            opts: d,
            want: Want {
                words: vec![(
                    5,
                    0x18 | SS_STI_BLOCKING | SS_SOFTWARE_EVENT | info(0x80, 4) | 2 << 60,
                )],
                ..Want::default()
            },
        },
        // Linux ptrace.h struct fred_cs; Bochs FRED_EventDelivery: selector, old CSL, WFE.
        Row {
            rule: Rule::CsWord,
            state: with_wfe(kernel(1)),
            event: Event::exception(UD, 0),
            unmapped: &[],
            opts: d,
            want: Want {
                words: vec![(2, 0x10 | 1 << 16 | 1 << 18)],
                ..Want::default()
            },
        },
        // Linux ptrace.h struct fred_ss ("only set for INTO, INT1, INT3, INT n, SYSCALL and
        // SYSENTER"): a hardware exception records length 0 whatever it is given.
        Row {
            rule: Rule::InstructionLength,
            state: kernel(0),
            event: Event {
                ilen: 3,
                ..Event::exception(UD, 0)
            },
            unmapped: &[],
            opts: d,
            want: Want {
                words: vec![(1, KRIP), (5, 0x18 | info(UD, 3))],
                ..Want::default()
            },
        },
        // Linux ptrace.h struct fred_ss (nested exception during FRED delivery): an interrupt
        // from ring 3 whose RSP0 frame faults; #PF (level 1 here) is delivered nested.
        Row {
            rule: Rule::NestedBit,
            state: with_msrs(user(), pf1_msrs()),
            event: Event::external_interrupt(0x30),
            unmapped: &[(RSP0 - 0x1000, RSP0)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Nested),
                vector: Some(PF),
                nested: Some(true),
                level: Some(1),
                frame_top: Some(RSP1),
                entry_rip: Some(ENTRY),
                attempts: Some(vec![(0x30, RSP0 - 8)]),
                words: vec![
                    (0, 2),
                    (1, URIP),
                    (2, 0x33),
                    (3, 0x202 | RF),
                    (4, URSP),
                    (5, 0x2B | info(PF, 3) | SS_NESTED),
                    (6, RSP0 - 8),
                ],
                ..Want::default()
            },
        },
        // Bochs cpu/exception.cc exception: only an exception raised while delivering an
        // exception is flagged; the same interrupt gives an unflagged #PF on level 0 (RSP0
        // again), which faults again: #PF then #PF is #DF, on level 3.
        Row {
            rule: Rule::NestedBit,
            state: with_msrs(user(), pf1_msrs()),
            event: Event::external_interrupt(0x30),
            unmapped: &[(RSP0 - 0x1000, RSP0)],
            opts: bochs,
            want: Want {
                outcome: Some(Outcome::DoubleFault),
                vector: Some(DF),
                nested: Some(false),
                level: Some(3),
                frame_top: Some(RSP3),
                attempts: Some(vec![(0x30, RSP0 - 8), (PF, RSP0 - 8)]),
                words: vec![(0, 0), (5, 0x2B | info(DF, 3)), (6, 0)],
                ..Want::default()
            },
        },
        // Bochs cpu/exception.cc exception (assert_RF for faults other than #DB).
        Row {
            rule: Rule::ResumeFlag,
            state: with_rflags(kernel(0), 0x246),
            event: Event::exception(GP, 0x18),
            unmapped: &[],
            opts: d,
            want: Want {
                words: vec![(0, 0x18), (3, 0x246 | RF)],
                ..Want::default()
            },
        },
        // Bochs cpu/soft_int.cc (INT3 delivered after RIP advanced); Linux ptrace.h: INT3 saves
        // RIP + 1 and records length 1, type 6.
        Row {
            rule: Rule::SavedRip,
            state: kernel(0),
            event: Event::int3(),
            unmapped: &[],
            opts: d,
            want: Want {
                level: Some(0),
                words: vec![(1, KRIP + 1), (3, 0x2), (5, 0x18 | info(BP, 6) | 1 << 60)],
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery; Linux fred.h struct fred_frame: every word of a
        // kernel #PF frame.
        Row {
            rule: Rule::FrameWrite,
            state: kernel(0),
            event: Event::page_fault(0xDEAD_B000, 0x3),
            unmapped: &[],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Delivered),
                frame_top: Some(KTOP),
                words: vec![
                    (0, 0x3),
                    (1, KRIP),
                    (2, 0x10),
                    (3, 0x2 | RF),
                    (4, KRSP),
                    (5, 0x18 | info(PF, 3)),
                    (6, 0xDEAD_B000),
                    (7, 0),
                ],
                after: Some(|s| s.cr2 == 0xDEAD_B000),
                ..Want::default()
            },
        },
        // SDM Vol. 3A 4.7 (error code); Bochs FRED_EventDelivery writes from the top down: only
        // the lowest quadword (the error code slot) unmapped, so the 8th write faults. #UD then
        // #PF is serial; #PF's level 0 frame lands on the same hole: #PF then #PF is #DF.
        Row {
            rule: Rule::FrameWriteFault,
            state: kernel(0),
            event: Event::exception(UD, 0),
            unmapped: &[(KTOP - 64, KTOP - 56)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::DoubleFault),
                attempts: Some(vec![(UD, KTOP - 64), (PF, KTOP - 64)]),
                frame_top: Some(RSP3),
                after: Some(|s| s.cr2 == KTOP - 64),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc get_fred_event_data: #DF's event data is 0, even after a #PF.
        Row {
            rule: Rule::EventData,
            state: kernel(0),
            event: Event::page_fault(0x1000, 2),
            unmapped: &[(KTOP - 64, KTOP)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::DoubleFault),
                vector: Some(DF),
                words: vec![(6, 0), (0, 0), (1, KRIP), (3, 0x2 | RF)],
                after: Some(|s| s.cr2 == KTOP - 8),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery: CS/SS from IA32_STAR, RFLAGS = 2, CPL 0.
        Row {
            rule: Rule::AfterDelivery,
            state: user(),
            event: Event::syscall(),
            unmapped: &[],
            opts: d,
            want: Want {
                words: vec![
                    (1, URIP + 2),
                    (5, 0x2B | SS_SOFTWARE_EVENT | info(1, 7) | 2 << 60),
                ],
                after: Some(|s| {
                    s.cpl == 0 && s.cs == 0x10 && s.ss == 0x18 && s.rflags == 2 && s.csl() == 0
                }),
                ..Want::default()
            },
        },
        // Bochs cpu/fred.cc FRED_EventDelivery (mask_event NMI).
        Row {
            rule: Rule::NmiBlocked,
            state: kernel(0),
            event: Event::nmi(),
            unmapped: &[],
            opts: d,
            want: Want {
                frame_top: Some(RSP2),
                after: Some(|s| s.nmi_blocked),
                ..Want::default()
            },
        },
        // SDM Table 6-5 (contributory, then #PF: serial); Bochs is_exception_OK: #GP's frame on
        // level 0 faults, and #PF goes to level 1 as a nested exception.
        Row {
            rule: Rule::DoubleFaultClasses,
            state: with_msrs(kernel(0), pf1_msrs()),
            event: Event::exception(GP, 0),
            unmapped: &[(KTOP - 64, KTOP)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Nested),
                vector: Some(PF),
                nested: Some(true),
                frame_top: Some(RSP1),
                words: vec![(0, 2), (6, KTOP - 8), (5, 0x18 | info(PF, 3) | SS_NESTED)],
                ..Want::default()
            },
        },
        // SDM Table 6-5 (benign, then anything: serial); Bochs is_exception_OK: #UD's frame
        // faults, #PF is delivered as a nested exception on its level 1 with #UD's context.
        Row {
            rule: Rule::DoubleFaultClasses,
            state: with_msrs(kernel(0), pf1_msrs()),
            event: Event::exception(UD, 0),
            unmapped: &[(KTOP - 64, KTOP)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Nested),
                vector: Some(PF),
                nested: Some(true),
                level: Some(1),
                frame_top: Some(RSP1),
                attempts: Some(vec![(UD, KTOP - 8)]),
                words: vec![(0, 2), (1, KRIP), (3, 0x2 | RF), (4, KRSP), (6, KTOP - 8)],
                after: Some(|s| s.csl() == 1 && s.cr2 == KTOP - 8),
                ..Want::default()
            },
        },
        // SDM 6.15 Interrupt 8; Bochs exception (last_exception_type == DOUBLE_FAULT): the
        // level-3 stack is unmapped too.
        Row {
            rule: Rule::Shutdown,
            state: kernel(0),
            event: Event::page_fault(0x1000, 2),
            unmapped: &[(KTOP - 64, KTOP), (RSP3 - 64, RSP3)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Shutdown),
                attempts: Some(vec![(PF, KTOP - 8), (DF, RSP3 - 8)]),
                after: Some(|s| s.cpl == 0 && s.rip == KRIP && s.cr2 == RSP3 - 8),
                ..Want::default()
            },
        },
        // Bochs exception (RIP = prev_rip): a fault while delivering INT n saves the INT's own
        // RIP (restartable), the untouched RSP, and RF.
        Row {
            rule: Rule::NestedContext,
            state: with_msrs(kernel(0), pf1_msrs()),
            event: Event::int_n(0x80, 2),
            unmapped: &[(KTOP - 64, KTOP)],
            opts: d,
            want: Want {
                outcome: Some(Outcome::Nested),
                words: vec![(1, KRIP), (3, 0x2 | RF), (4, KRSP), (2, 0x10)],
                ..Want::default()
            },
        },
    ]
}

#[test]
fn every_row() {
    let rows = rows();
    assert_eq!(rows.len(), 25);
    for row in &rows {
        check(row);
    }
}

#[test]
fn every_delivery_rule_has_a_row() {
    let rows = rows();
    for rule in [
        Rule::LevelFromRing3,
        Rule::LevelExternalInterrupt,
        Rule::LevelStklvls,
        Rule::LevelSoftware,
        Rule::CslNeverLowered,
        Rule::StackSwitch,
        Rule::StackStay,
        Rule::EntryRip,
        Rule::EntryCanonical,
        Rule::SsWord,
        Rule::CsWord,
        Rule::InstructionLength,
        Rule::NestedBit,
        Rule::ResumeFlag,
        Rule::SavedRip,
        Rule::FrameWrite,
        Rule::FrameWriteFault,
        Rule::EventData,
        Rule::AfterDelivery,
        Rule::NmiBlocked,
        Rule::DoubleFaultClasses,
        Rule::Shutdown,
        Rule::NestedContext,
    ] {
        assert!(rows.iter().any(|r| r.rule == rule), "no row for {rule:?}");
    }
}

#[test]
fn type_numbers_are_architectural() {
    // Linux ptrace.h / Bochs cpu.h event types: 0, 2-7; 1 is not a FRED type.
    for (n, t) in [
        (0, EventType::ExternalInterrupt),
        (2, EventType::Nmi),
        (3, EventType::HardwareException),
        (4, EventType::SoftwareInterrupt),
        (5, EventType::PrivilegedSoftwareException),
        (6, EventType::SoftwareException),
        (7, EventType::Other),
    ] {
        assert_eq!(EventType::from_number(n), Some(t));
        assert_eq!(t.number() as u64, n);
    }
    assert_eq!(EventType::from_number(1), None);
    assert_eq!(EventType::from_number(8), None);
}

#[test]
fn config_fields() {
    // Bochs cpu/msr.cc: reserved bits 2, 4, 5, 11 (mask 0x834).
    let c = FredConfig(0xFFFF_FFFF_8100_0000 | 3 << 9 | 5 << 6 | 1 << 3 | 2);
    assert_eq!(c.csl(), 2);
    assert!(c.shadow_stack_adjust());
    assert_eq!(c.red_zone_units(), 5);
    assert_eq!(c.red_zone_bytes(), 320);
    assert_eq!(c.interrupt_level(), 3);
    assert_eq!(c.entry_page(), 0xFFFF_FFFF_8100_0000);
    assert_eq!(c.reserved_bits(), 0);
    assert_eq!(FredConfig(0xFFF).reserved_bits(), 0x834);
    assert_eq!(c.with_csl(1).0, c.0 & !3 | 1);
}

#[test]
fn linux_stack_levels() {
    // Linux arch/x86/kernel/fred.c cpu_init_fred_rsps.
    let l = stacklab_fred::StackLevels::linux();
    assert_eq!(l.0, 1 << 2 | 2 << 4 | 3 << 16 | 2 << 36);
    assert_eq!(
        (
            l.level(DB),
            l.level(NMI),
            l.level(DF),
            l.level(MC),
            l.level(PF)
        ),
        (1, 2, 3, 2, 0)
    );
    assert_eq!(l.level(200), 0);
}

#[test]
fn table_6_5_double_fault_classes() {
    // SDM Vol. 3A Table 6-5; Bochs cpu/exception.cc is_exception_OK (and its class table,
    // which also puts #CP with the contributory exceptions and #VE with #PF).
    use stacklab_fred::event::ExceptionClass::{self, *};
    for (v, c) in [
        (DE, Contributory),
        (DB, Benign),
        (NMI, Benign),
        (UD, Benign),
        (DF, DoubleFault),
        (TS, Contributory),
        (NP, Contributory),
        (SS, Contributory),
        (GP, Contributory),
        (PF, PageFault),
        (MC, Benign),
        (CP, Contributory),
        (VE, PageFault),
        (0x30, Benign),
    ] {
        assert_eq!(ExceptionClass::of(v), c, "vector {v}");
    }
    let classes = [Benign, Contributory, PageFault];
    // Rows: first exception; columns: second. true = #DF.
    let want = [
        [false, false, false],
        [false, true, false],
        [false, true, true],
    ];
    for (i, first) in classes.iter().enumerate() {
        for (j, second) in classes.iter().enumerate() {
            assert_eq!(
                first.escalates(*second),
                want[i][j],
                "{first:?} then {second:?}"
            );
        }
    }
    // Interrupts and software events are benign first events whatever their vector.
    assert_eq!(Event::external_interrupt(14).first_class(), Benign);
    assert_eq!(Event::int_n(13, 2).first_class(), Benign);
}

#[test]
fn unmapped_ranges_are_half_open_and_report_the_first_faulting_byte() {
    use stacklab_fred::FaultProbe;
    let holes = [(0x1004, 0x2000), (0x3000, 0x3001)];
    let m = Unmapped(&holes);
    assert_eq!(m.supervisor_write_fault(0x0FF8), None); // 0xff8..0x1000
    assert_eq!(m.supervisor_write_fault(0x1000), Some(0x1004));
    assert_eq!(m.supervisor_write_fault(0x1FF8), Some(0x1FF8));
    assert_eq!(m.supervisor_write_fault(0x2000), None); // hi is excluded
    assert_eq!(m.supervisor_write_fault(0x2FF9), Some(0x3000));
    assert_eq!(m.supervisor_write_fault(0x3001), None);
}
