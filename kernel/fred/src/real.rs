//! The pure half of real FRED in the kernel (`growth fred`): the MSR values that switch it on,
//! and the word-by-word comparison of a hardware frame with a simulated one (`fred-compare`).
//!
//! Intel's FRED specification ("Flexible Return and Event Delivery", chapters on the new MSRs
//! and on enabling): IA32_FRED_RSP0..3 are canonical and 64-byte aligned; IA32_FRED_CONFIG
//! holds the entry page in bits 63:12 (events from ring 3 enter at its start, events from ring
//! 0 at +256), the red zone in bits 8:6 and the interrupt level in bits 10:9, with bits 2, 4, 5
//! and 11 reserved; CR4 bit 32 enables FRED (in IA-32e mode only). A WRMSR that breaks one of
//! these rules raises #GP, so the kernel checks the values here, on the host, before it writes
//! any.

use crate::deliver::{Frame, NestedPolicy};
use crate::event::{Event, EventType};
use crate::is_canonical;
use crate::msr::{
    FredConfig, FredMsrs, IA32_FRED_CONFIG, IA32_FRED_RSP0, IA32_FRED_RSP1, IA32_FRED_RSP2,
    IA32_FRED_RSP3, IA32_FRED_STKLVLS,
};
use crate::sim::LevelTable;
use crate::state::{CpuState, RFLAGS_RF};

/// CR4.FRED, bit 32.
pub const CR4_FRED: u64 = 1 << 32;

/// Offset of the ring-0 entry point in the entry page.
pub const RING0_ENTRY: u64 = 256;

/// What the kernel configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The entry page (4 KiB aligned): ring-3 entry at +0, ring-0 entry at +256.
    pub entry_page: u64,
    /// Tops of the level-1, -2 and -3 stacks (IA32_FRED_RSP1..3).
    pub level_tops: [u64; 3],
    /// Stack levels of the exceptions (STKLVLS) and of interrupts (CONFIG bits 10:9).
    pub levels: LevelTable,
    /// The red zone in 64-byte units (CONFIG bits 8:6).
    pub red_zone_units: u8,
}

/// Why a [`Setup`] cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The entry page is not 4 KiB aligned or not canonical.
    EntryPage,
    /// A level stack top (index 0 = level 1) is not canonical or not 64-byte aligned.
    StackTop(usize),
    /// A level in the table is above 3.
    Level,
    /// The red zone does not fit bits 8:6.
    RedZone,
}

impl SetupError {
    /// One line for a report.
    pub const fn message(self) -> &'static str {
        match self {
            SetupError::EntryPage => "the entry page must be 4 KiB aligned and canonical",
            SetupError::StackTop(_) => "a level stack top must be canonical and 64-byte aligned",
            SetupError::Level => "stack levels are 0-3",
            SetupError::RedZone => "the red zone is 0-7 units of 64 bytes",
        }
    }
}

impl Setup {
    /// IA32_FRED_CONFIG with CSL 0.
    pub const fn config(&self) -> FredConfig {
        FredConfig::new(self.entry_page, self.red_zone_units, self.levels.irq)
    }

    /// The same values as the model's [`FredMsrs`] (RSP0 0, CSL 0).
    pub const fn msrs(&self) -> FredMsrs {
        FredMsrs {
            rsp: [
                0,
                self.level_tops[0],
                self.level_tops[1],
                self.level_tops[2],
            ],
            stklvls: self.levels.stklvls(),
            config: self.config(),
        }
    }

    /// The MSR writes that configure FRED, in order: RSP0 (0: nothing runs in ring 3), RSP1..3,
    /// STKLVLS, CONFIG. Every value is checked against the rules WRMSR enforces.
    pub fn msr_writes(&self) -> Result<[(u32, u64); 6], SetupError> {
        let e = self.entry_page;
        // A canonical 4 KiB-aligned page's +256 is canonical too (no page straddles the hole).
        if e & 0xFFF != 0 || !is_canonical(e) {
            return Err(SetupError::EntryPage);
        }
        for (i, &t) in self.level_tops.iter().enumerate() {
            if t & 63 != 0 || !is_canonical(t) {
                return Err(SetupError::StackTop(i));
            }
        }
        let t = &self.levels;
        if [t.pf, t.db, t.nmi, t.mc, t.df, t.irq]
            .iter()
            .any(|&l| l > 3)
        {
            return Err(SetupError::Level);
        }
        if self.red_zone_units > 7 {
            return Err(SetupError::RedZone);
        }
        let config = self.config();
        debug_assert!(config.reserved_bits() == 0 && config.csl() == 0);
        Ok([
            (IA32_FRED_RSP0, 0),
            (IA32_FRED_RSP1, self.level_tops[0]),
            (IA32_FRED_RSP2, self.level_tops[1]),
            (IA32_FRED_RSP3, self.level_tops[2]),
            (IA32_FRED_STKLVLS, self.levels.stklvls().0),
            (IA32_FRED_CONFIG, config.0),
        ])
    }
}

/// The state before delivery and the event that a delivered frame records, as the model takes
/// them (`fred-compare` feeds the pure model what the CPU wrote): RSP, RFLAGS (without the RF
/// the delivery of a fault added), the CS and SS selectors, the old CSL, STI blocking and WFE
/// from the frame; the event from the SS word, the error code and the event data; for an
/// instruction event the RIP of the instruction (the frame saved the one after it).
pub fn recorded_input(frame: &Frame, msrs: FredMsrs) -> (CpuState, Event) {
    let kind =
        EventType::from_number(frame.event_type() as u64).unwrap_or(EventType::HardwareException);
    let ilen = if kind.is_instruction() {
        frame.ilen()
    } else {
        0
    };
    let event = Event {
        kind,
        vector: frame.vector(),
        error_code: frame.error_code(),
        event_data: frame.event_data(),
        ilen,
    };
    let rip = frame.rip().wrapping_sub(ilen as u64);
    let mut s = CpuState::kernel(frame.rsp(), rip, msrs, frame.old_csl());
    s.rflags = if event.sets_resume_flag() {
        frame.rflags() & !RFLAGS_RF
    } else {
        frame.rflags()
    };
    s.cs = frame.cs_word() as u16;
    s.ss = frame.ss_word() as u16;
    s.sti_blocking = frame.ss_word() & (1 << 16) != 0;
    s.wfe = frame.cs_word() & (1 << 18) != 0;
    (s, event)
}

/// Writes `state`, `event`, the unmapped ranges and the nested-bit policy as one input line of
/// the JSON driver (`cargo lab fred`, op `deliver`), so what the kernel fed the model can be
/// run again on the host.
pub fn write_json_input(
    out: &mut impl core::fmt::Write,
    state: &CpuState,
    event: &Event,
    unmapped: &[(u64, u64)],
    nested: NestedPolicy,
) -> core::fmt::Result {
    let m = &state.msrs;
    write!(
        out,
        "{{\"op\": \"deliver\", \"cpl\": {}, \"csl\": {}, \"rsp\": \"{:#x}\", \"rip\": \"{:#x}\", \
         \"rflags\": \"{:#x}\", \"cs\": \"{:#x}\", \"ss\": \"{:#x}\", \"sti_blocking\": {}, \"wfe\": {}, \
         \"event\": {{\"type\": {}, \"vector\": {}, \"error_code\": \"{:#x}\", \"event_data\": \"{:#x}\", \"ilen\": {}}}, \
         \"stklvls\": \"{:#x}\", \"config\": \"{:#x}\", \"rsp_msrs\": [\"{:#x}\", \"{:#x}\", \"{:#x}\", \"{:#x}\"], \
         \"unmapped\": [",
        state.cpl,
        state.csl(),
        state.rsp,
        state.rip,
        state.rflags,
        state.cs,
        state.ss,
        state.sti_blocking,
        state.wfe,
        event.kind.number(),
        event.vector,
        event.error_code,
        event.event_data,
        event.ilen,
        m.stklvls.0,
        m.config.0,
        m.rsp[0],
        m.rsp[1],
        m.rsp[2],
        m.rsp[3],
    )?;
    for (i, (lo, hi)) in unmapped.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(out, "{sep}[\"{lo:#x}\", \"{hi:#x}\"]")?;
    }
    out.write_str(match nested {
        NestedPolicy::AnyEvent => "], \"nested_policy\": \"any_event\"}",
        NestedPolicy::HardwareExceptionsOnly => {
            "], \"nested_policy\": \"hardware_exceptions_only\"}"
        }
    })
}

/// Bits of frame words left out of a comparison, one mask per word (a set bit is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mask(pub [u64; 8]);

impl Mask {
    /// Compare everything.
    pub const NONE: Mask = Mask([0; 8]);

    /// The same mask with `bits` of word `word` ignored too.
    pub const fn ignore(self, word: usize, bits: u64) -> Mask {
        let mut m = self.0;
        m[word] |= bits;
        Mask(m)
    }
}

/// Word 4 of a frame: the interrupted RSP.
pub const WORD_RSP: usize = 4;
/// Word 5 of a frame: the SS word; its bits 15:0 are the selector.
pub const WORD_SS: usize = 5;
/// Word 1 of a frame: the interrupted RIP.
pub const WORD_RIP: usize = 1;
/// Word 3 of a frame: RFLAGS.
pub const WORD_RFLAGS: usize = 3;

/// One differing word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Word index, 0 = error code (lowest address) ... 7 = the zero word.
    pub word: usize,
    /// The first frame's word (real FRED).
    pub a: u64,
    /// The second frame's word (simulated).
    pub b: u64,
}

/// The words of `a` and `b` that differ outside `mask`, lowest word first (at most 8).
pub fn compare<'a>(
    a: &'a [u64; 8],
    b: &'a [u64; 8],
    mask: Mask,
) -> impl Iterator<Item = Mismatch> + 'a {
    (0..8)
        .filter(move |&i| (a[i] ^ b[i]) & !mask.0[i] != 0)
        .map(move |i| Mismatch {
            word: i,
            a: a[i],
            b: b[i],
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const SETUP: Setup = Setup {
        entry_page: 0xffff_8000_0012_3000,
        level_tops: [
            0xffff_e000_4000_5000,
            0xffff_e000_4000_8000,
            0xffff_e000_4000_d000,
        ],
        levels: LevelTable::DEFAULT,
        red_zone_units: 1,
    };

    #[test]
    fn msr_values_follow_the_field_layout() {
        let w = SETUP.msr_writes().unwrap();
        let by = |msr| w.iter().find(|(m, _)| *m == msr).unwrap().1;
        assert_eq!(by(0x1CC), 0);
        assert_eq!(by(0x1CD), 0xffff_e000_4000_5000);
        assert_eq!(by(0x1CF), 0xffff_e000_4000_d000);
        // #DB (1) level 1, NMI (2) 2, #DF (8) 3, #PF (14) 1, #MC (18) 2: two bits per vector.
        assert_eq!(
            by(0x1D0),
            (1 << 2) | (2 << 4) | (3 << 16) | (1 << 28) | (2 << 36)
        );
        // Entry page, red zone of one unit in bits 8:6, interrupt level 0, CSL 0.
        assert_eq!(by(0x1D4), 0xffff_8000_0012_3000 | (1 << 6));
        assert_eq!(w.last().unwrap().0, 0x1D4, "CONFIG is written last");
        let irq2 = Setup {
            levels: LevelTable {
                irq: 2,
                ..LevelTable::DEFAULT
            },
            red_zone_units: 3,
            ..SETUP
        };
        assert_eq!(irq2.config().0, 0xffff_8000_0012_3000 | (3 << 6) | (2 << 9));
        assert_eq!(irq2.config().red_zone_bytes(), 192);
    }

    #[test]
    fn values_wrmsr_would_refuse_are_refused() {
        let bad = |s: Setup| s.msr_writes().unwrap_err();
        assert_eq!(
            bad(Setup {
                entry_page: SETUP.entry_page + 0x100,
                ..SETUP
            }),
            SetupError::EntryPage
        );
        assert_eq!(
            bad(Setup {
                entry_page: 0x0000_8000_0000_0000,
                ..SETUP
            }),
            SetupError::EntryPage
        );
        // The last page below the canonical hole.
        assert!(
            Setup {
                entry_page: 0x0000_7fff_ffff_f000,
                ..SETUP
            }
            .msr_writes()
            .is_ok()
        );
        let mut tops = SETUP.level_tops;
        tops[1] += 8;
        assert_eq!(
            bad(Setup {
                level_tops: tops,
                ..SETUP
            }),
            SetupError::StackTop(1)
        );
        tops[1] = 0x0000_9000_0000_0000;
        assert_eq!(
            bad(Setup {
                level_tops: tops,
                ..SETUP
            }),
            SetupError::StackTop(1)
        );
        let mut levels = LevelTable::DEFAULT;
        levels.df = 4;
        assert_eq!(bad(Setup { levels, ..SETUP }), SetupError::Level);
        assert_eq!(
            bad(Setup {
                red_zone_units: 8,
                ..SETUP
            }),
            SetupError::RedZone
        );
    }

    use crate::event::Event;
    use crate::state::CpuState;

    #[test]
    fn a_frame_fed_back_to_the_model_gives_the_same_frame() {
        use crate::{Unmapped, deliver};
        let msrs = SETUP.msrs();
        let top = 0xffff_e010_0000_8000u64;
        let cases = [
            // int3 at level 0 with RSP inside the stack: stays, RIP + 1 saved.
            (Event::int3(), top - 1024, 0u8, 0x46u64),
            // A #PF at level 1: the level rises; RF added to the saved RFLAGS.
            (Event::page_fault(top - 4104, 2), top - 4096, 0, 0x246),
            // A #PF from level 1 (nested in a handler): stays on level 1.
            (
                Event::page_fault(0xffff_e000_8000_0000, 2),
                0xffff_e000_4000_4e28,
                1,
                0x86,
            ),
            // The timer at level 0.
            (Event::external_interrupt(32), top - 1024, 0, 0x246),
        ];
        for (event, rsp, csl, rflags) in cases {
            let mut state = CpuState::kernel(rsp, 0xffff_8000_0001_2345, msrs, csl);
            state.rflags = rflags;
            let first = deliver(&state, &event, &Unmapped(&[])).delivered.unwrap();
            let (s2, e2) = recorded_input(&first.frame, msrs);
            assert_eq!(e2, event, "{event:?}");
            assert_eq!(
                (s2.rsp, s2.rip, s2.rflags, s2.csl()),
                (rsp, state.rip, rflags, csl)
            );
            let again = deliver(&s2, &e2, &Unmapped(&[])).delivered.unwrap();
            assert_eq!(again.frame, first.frame, "{event:?}");
            assert_eq!(again.new_rsp, first.new_rsp);
        }
    }

    #[test]
    fn the_json_input_line_gives_the_driver_the_same_delivery() {
        use crate::{Unmapped, deliver};
        use std::string::String;
        // A #PF at level 0 at a stack's edge: its frame write faults, #DF on level 3.
        let msrs = Setup {
            levels: LevelTable {
                pf: 0,
                ..LevelTable::DEFAULT
            },
            ..SETUP
        }
        .msrs();
        let edge = 0xffff_e010_0000_7000u64;
        let mut state = CpuState::kernel(edge, 0xffff_8000_0001_2345, msrs, 0);
        state.rflags = 0x46;
        let event = Event::page_fault(edge - 8, 2);
        let unmapped = [(edge - 4096, edge)];
        let d = deliver(&state, &event, &Unmapped(&unmapped));
        let mut line = String::new();
        write_json_input(&mut line, &state, &event, &unmapped, NestedPolicy::AnyEvent).unwrap();
        let mut out = Vec::new();
        let sum = crate::json::run_lines(line.as_bytes(), &mut out, false).unwrap();
        assert_eq!((sum.ok, sum.errors), (1, 0), "{line}");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["outcome"], "double_fault", "{v}");
        let words: Vec<u64> = v["frame"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| u64::from_str_radix(w.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
            .collect();
        assert_eq!(words, d.delivered.unwrap().frame.words);
        // The timer at the same edge: its frame faults, and the #PF is nested or not as the
        // policy says (Linux's wording, or Bochs's behaviour).
        // With #PF on level 1 (the default table), so the #PF's own frame fits.
        let timer = Event::external_interrupt(32);
        let mut state = CpuState::kernel(edge, 0xffff_8000_0001_2345, SETUP.msrs(), 0);
        state.rflags = 0x246;
        for (policy, nested) in [
            (NestedPolicy::AnyEvent, true),
            (NestedPolicy::HardwareExceptionsOnly, false),
        ] {
            let mut line = String::new();
            write_json_input(&mut line, &state, &timer, &unmapped, policy).unwrap();
            let mut out = Vec::new();
            crate::json::run_lines(line.as_bytes(), &mut out, false).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["outcome"], "nested", "{v}");
            assert_eq!(v["delivered_event"]["vector"], 14, "{v}");
            assert_eq!(v["delivered_event"]["nested"], nested, "{policy:?}: {v}");
        }
    }

    #[test]
    fn comparison_names_each_differing_word_outside_the_mask() {
        let a = [
            2,
            0x1000,
            0x10,
            0x10002,
            0x8000,
            0x0203_000e_0000_0018,
            0xb000,
            0,
        ];
        let mut b = a;
        assert_eq!(compare(&a, &b, Mask::NONE).count(), 0);
        b[5] = a[5] & !0xFFFF; // a null SS selector
        b[1] = 0x1001;
        let all: Vec<Mismatch> = compare(&a, &b, Mask::NONE).collect();
        assert_eq!(
            all,
            [
                Mismatch {
                    word: 1,
                    a: 0x1000,
                    b: 0x1001
                },
                Mismatch {
                    word: 5,
                    a: a[5],
                    b: b[5]
                },
            ]
        );
        let masked: Vec<usize> = compare(&a, &b, Mask::NONE.ignore(WORD_SS, 0xFFFF))
            .map(|m| m.word)
            .collect();
        assert_eq!(masked, [1]);
        // A mask of the selector does not hide the event information above it.
        b[5] ^= 1 << 58;
        let nested: Vec<usize> = compare(&a, &b, Mask::NONE.ignore(WORD_SS, 0xFFFF).ignore(1, !0))
            .map(|m| m.word)
            .collect();
        assert_eq!(nested, [5]);
    }
}
