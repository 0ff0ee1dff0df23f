//! The pure half of the kernel's `fred-sim` mode: what a simulated FRED delivery on top of a
//! legacy IDT arrival needs besides [`crate::deliver`] and [`crate::erets`].
//!
//! The kernel's trampoline (`kernel/src/arch/x86_64/fredsim.rs`) receives every event through an
//! IDT gate, turns the IDT frame into a [`CpuState`] and an [`Event`] ([`idt_event`],
//! [`state_rip`]), lets the model deliver it against its page tables (wrapped in
//! [`WithSaveArea`]), writes the frame, runs the policy on a view it may edit, copies the edits
//! back ([`apply_edits`]), checks the return with ERETS and leaves with `iretq`
//! ([`iret_frame`]). The stack levels come from a [`LevelTable`].

use crate::deliver::Frame;
use crate::eret::Returned;
use crate::event::{Event, EventType, has_error_code, vector};
use crate::mem::FaultProbe;
use crate::msr::StackLevels;

/// The stack levels the simulation uses: one per event class it can deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelTable {
    /// #PF (vector 14).
    pub pf: u8,
    /// #DB (vector 1).
    pub db: u8,
    /// NMI (vector 2).
    pub nmi: u8,
    /// #MC (vector 18).
    pub mc: u8,
    /// #DF (vector 8).
    pub df: u8,
    /// External interrupts (IA32_FRED_CONFIG bits 10:9).
    pub irq: u8,
}

/// Why a level assignment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelError {
    /// Not `NAME=LEVEL`.
    Syntax,
    /// The name is none of [`LevelTable::NAMES`].
    UnknownName,
    /// The level is not 0-3.
    BadLevel,
}

impl LevelError {
    /// One line for an error record.
    pub const fn message(self) -> &'static str {
        match self {
            LevelError::Syntax => "expected NAME=LEVEL",
            LevelError::UnknownName => "NAME is one of pf, db, nmi, mc, df, irq",
            LevelError::BadLevel => "LEVEL is 0, 1, 2 or 3",
        }
    }
}

impl LevelTable {
    /// The simulation's default: #PF 1 (a stack overflow is delivered on the level-1 stack
    /// with exact RIP, RSP and CR2), otherwise Linux's choices (arch/x86/kernel/fred.c
    /// `cpu_init_fred_rsps`): #DB 1, NMI 2, #MC 2, #DF 3, interrupts 0.
    pub const DEFAULT: LevelTable = LevelTable {
        pf: 1,
        db: 1,
        nmi: 2,
        mc: 2,
        df: 3,
        irq: 0,
    };

    /// The names [`LevelTable::set`] accepts, in report order.
    pub const NAMES: [&'static str; 6] = ["pf", "db", "nmi", "mc", "df", "irq"];

    /// The level named `name`.
    pub fn get(&self, name: &str) -> Option<u8> {
        Some(match name {
            "pf" => self.pf,
            "db" => self.db,
            "nmi" => self.nmi,
            "mc" => self.mc,
            "df" => self.df,
            "irq" => self.irq,
            _ => return None,
        })
    }

    /// Applies one `NAME=LEVEL` assignment (`pf=0`).
    pub fn assign(&mut self, text: &str) -> Result<(), LevelError> {
        let (name, level) = text.split_once('=').ok_or(LevelError::Syntax)?;
        let level = match level {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            "3" => 3,
            "" => return Err(LevelError::Syntax),
            _ => return Err(LevelError::BadLevel),
        };
        let slot = match name {
            "pf" => &mut self.pf,
            "db" => &mut self.db,
            "nmi" => &mut self.nmi,
            "mc" => &mut self.mc,
            "df" => &mut self.df,
            "irq" => &mut self.irq,
            _ => return Err(LevelError::UnknownName),
        };
        *slot = level;
        Ok(())
    }

    /// IA32_FRED_STKLVLS for this table (every other exception vector on level 0).
    pub const fn stklvls(&self) -> StackLevels {
        StackLevels(0)
            .with_level(vector::PF, self.pf)
            .with_level(vector::DB, self.db)
            .with_level(vector::NMI, self.nmi)
            .with_level(vector::MC, self.mc)
            .with_level(vector::DF, self.df)
    }
}

impl Default for LevelTable {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// First vector of the kernel's remapped 8259 pair; vectors 32-47 are its lines.
pub const PIC_BASE: u8 = 32;

/// The model's event for vector `vector` delivered through an IDT gate, with the error code
/// the gate's stub recorded and the CR2 it captured. The IDT does not say what kind of event
/// arrived, so the kind comes from the vector as in the kernel (`stacklab_core::event::Event::
/// decode_idt`): 2 NMI; 3 and 4 `INT3`/`INTO` (one byte); other exceptions hardware
/// exceptions (#PF with CR2 as event data); the 16 PIC lines external interrupts; anything
/// else `INT n` (two bytes).
pub const fn idt_event(v: u8, error_code: u64, cr2: u64) -> Event {
    let code = if has_error_code(v) { error_code } else { 0 };
    match v {
        vector::NMI => Event::nmi(),
        vector::BP | vector::OF => Event {
            kind: EventType::SoftwareException,
            vector: v,
            error_code: 0,
            event_data: 0,
            ilen: 1,
        },
        vector::PF => Event::page_fault(cr2, code),
        0..32 => Event::exception(v, code),
        _ if v >= PIC_BASE && v < PIC_BASE + 16 => Event::external_interrupt(v),
        _ => Event::int_n(v, 2),
    }
}

/// The RIP the model's state names for `event`, from the RIP an IDT frame saved: for an
/// instruction event (INT n, INT3, INTO) the IDT saved the address after the instruction,
/// while the model takes the instruction's own and adds the length itself (the `saved-rip`
/// rule).
pub const fn state_rip(idt_rip: u64, event: &Event) -> u64 {
    if event.kind.is_instruction() {
        idt_rip.wrapping_sub(event.ilen as u64)
    } else {
        idt_rip
    }
}

/// Writes a handler's edits of the interrupted context back into a FRED frame: RIP, RSP and
/// RFLAGS as given, the CS selector into bits 15:0 of the CS word (its old CSL and WFE bits
/// stay).
pub const fn apply_edits(frame: &mut Frame, rip: u64, cs: u64, rflags: u64, rsp: u64) {
    frame.words[1] = rip;
    frame.words[2] = (frame.words[2] & !0xFFFF) | (cs & 0xFFFF);
    frame.words[3] = rflags;
    frame.words[4] = rsp;
}

/// The five quadwords `iretq` pops (RIP, CS, RFLAGS, RSP, SS, lowest first) that resume the
/// state an ERETS returned to.
pub const fn iret_frame(r: &Returned) -> [u64; 5] {
    let s = &r.state;
    [s.rip, s.cs as u64, s.rflags, s.rsp, s.ss as u64]
}

/// A [`FaultProbe`] that adds, below every frame, the area the trampoline's entry code saves
/// registers into.
///
/// The simulation writes a frame and then, right below it, the general registers the
/// interrupted code had (its save area, `bytes` long). On hardware the entry code would push
/// them after delivery, and a push that faulted would be a new event; the simulation cannot
/// take a fault there (it still runs on its delivery stack), so it counts the save area as
/// part of the delivery: when the frame's lowest quadword (the only one at a 64-byte-aligned
/// address) is probed, the save area is probed too, top down, and its first unmapped quadword
/// is reported as the fault. The consequence (documented in `docs/fred.md`): a stack with room
/// for the frame but not for the save area faults during delivery, one step earlier than
/// hardware, with the same nested #PF or #DF.
#[derive(Clone, Copy, Debug)]
pub struct WithSaveArea<P> {
    /// The memory being probed.
    pub inner: P,
    /// The save area's size in bytes (a multiple of 8).
    pub bytes: u64,
}

impl<P: FaultProbe> FaultProbe for WithSaveArea<P> {
    fn supervisor_write_fault(&self, addr: u64) -> Option<u64> {
        if let Some(a) = self.inner.supervisor_write_fault(addr) {
            return Some(a);
        }
        if !addr.is_multiple_of(64) {
            return None;
        }
        let mut off = 8;
        while off <= self.bytes {
            let a = addr.wrapping_sub(off);
            if let Some(f) = self.inner.supervisor_write_fault(a) {
                return Some(f);
            }
            off += 8;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::{Outcome, deliver};
    use crate::eret::erets;
    use crate::mem::{NoFaults, Unmapped};
    use crate::msr::{FredConfig, FredMsrs};
    use crate::state::CpuState;

    const TOP: u64 = 0xffff_e010_0001_0000;
    const L1: u64 = 0xffff_e000_4010_0000;
    const RIP: u64 = 0xffff_ffff_8000_1234;

    fn msrs(t: LevelTable) -> FredMsrs {
        FredMsrs {
            rsp: [0, L1, L1 + 0x10000, L1 + 0x20000],
            stklvls: t.stklvls(),
            config: FredConfig::new(RIP & !0xFFF, 1, t.irq),
        }
    }

    #[test]
    fn default_table_is_linux_with_pf_on_level_1() {
        let t = LevelTable::default();
        let s = t.stklvls();
        assert_eq!(
            [1, 2, 14, 18, 8].map(|v| s.level(v)),
            [1, 2, 1, 2, 3],
            "#DB NMI #PF #MC #DF"
        );
        let mut linux = t;
        linux.assign("pf=0").unwrap();
        assert_eq!(linux.stklvls(), StackLevels::linux());
        for v in [0u8, 3, 6, 13, 32, 255] {
            assert_eq!(s.level(v), 0, "{v}");
        }
    }

    #[test]
    fn assignments_parse_or_say_why_not() {
        let mut t = LevelTable::default();
        assert_eq!(t.assign("irq=2"), Ok(()));
        assert_eq!(t.get("irq"), Some(2));
        assert_eq!(t.assign("pf"), Err(LevelError::Syntax));
        assert_eq!(t.assign("pf="), Err(LevelError::Syntax));
        assert_eq!(t.assign("gp=1"), Err(LevelError::UnknownName));
        assert_eq!(t.assign("pf=4"), Err(LevelError::BadLevel));
        assert_eq!(t.assign("pf=01"), Err(LevelError::BadLevel));
        assert_eq!(t.get("pf"), Some(1), "refused assignments change nothing");
        assert_eq!(t.get("gp"), None);
        assert_eq!(LevelTable::NAMES.map(|n| t.get(n).is_some()), [true; 6]);
    }

    #[test]
    fn idt_vectors_become_model_events() {
        let cases: [(u8, EventType, u64, u64, u8); 8] = [
            (0, EventType::HardwareException, 0, 0, 0),
            (2, EventType::Nmi, 0, 0, 0),
            (3, EventType::SoftwareException, 0, 0, 1),
            (8, EventType::HardwareException, 7, 0, 0),
            (13, EventType::HardwareException, 7, 0, 0),
            (14, EventType::HardwareException, 7, 0xdead_b000, 0),
            (32, EventType::ExternalInterrupt, 0, 0, 0),
            (48, EventType::SoftwareInterrupt, 0, 0, 2),
        ];
        for (v, kind, code, data, ilen) in cases {
            let e = idt_event(v, 7, 0xdead_b000);
            assert_eq!(
                (e.kind, e.vector, e.error_code, e.event_data, e.ilen),
                (kind, v, code, data, ilen),
                "vector {v}"
            );
        }
    }

    #[test]
    fn int3_frame_saves_the_rip_the_idt_saved() {
        let ev = idt_event(3, 0, 0);
        let after_int3 = RIP + 1;
        let s = CpuState::kernel(
            TOP,
            state_rip(after_int3, &ev),
            msrs(LevelTable::DEFAULT),
            0,
        );
        let d = deliver(&s, &ev, &NoFaults).delivered.unwrap();
        assert_eq!(d.frame.rip(), after_int3);
        let pf = idt_event(14, 2, TOP - 8);
        assert_eq!(state_rip(RIP, &pf), RIP, "faults keep their RIP");
    }

    #[test]
    fn save_area_below_the_frame_counts_as_part_of_the_delivery() {
        // The frame [TOP-128, TOP-64) fits in the mapped page; the 192-byte save area below it
        // reaches into the unmapped page under TOP - 0x1000.
        let rsp = TOP - 0x1000 + 128;
        let hole = [(TOP - 0x2000, TOP - 0x1000)];
        let ev = idt_event(32, 0, 0);
        let plain = Unmapped(&hole);
        let s = CpuState::kernel(rsp, RIP, msrs(LevelTable::DEFAULT), 0);
        assert_eq!(deliver(&s, &ev, &plain).outcome, Outcome::Delivered);
        let probe = WithSaveArea {
            inner: plain,
            bytes: 192,
        };
        let d = deliver(&s, &ev, &probe);
        assert_eq!(d.outcome, Outcome::Nested);
        let pf = d.delivered.unwrap();
        assert_eq!((pf.event.vector, pf.level, pf.frame_top), (14, 1, L1));
        assert_eq!(
            pf.frame.event_data(),
            TOP - 0x1000 - 8,
            "the highest hole quadword"
        );
        assert_eq!((pf.frame.rip(), pf.frame.rsp()), (RIP, rsp));
        // Only 64-byte-aligned probes look below themselves.
        assert_eq!(probe.supervisor_write_fault(TOP - 0x1000 + 8), None);
        assert_eq!(
            probe.supervisor_write_fault(TOP - 0x1000 + 64),
            Some(TOP - 0x1000 - 8)
        );
    }

    #[test]
    fn overflow_on_level_0_is_a_double_fault_on_level_3_and_on_level_1_a_pf() {
        let bottom = TOP - 0x1000;
        let guard = [(bottom - 0x1000, bottom)];
        let ev = idt_event(14, 2, bottom - 8);
        let probe = WithSaveArea {
            inner: Unmapped(&guard),
            bytes: 192,
        };
        let mut t = LevelTable::default();
        let s = CpuState::kernel(bottom, RIP, msrs(t), 0);
        let d = deliver(&s, &ev, &probe);
        assert_eq!(d.outcome, Outcome::Delivered);
        let pf = d.delivered.unwrap();
        assert_eq!((pf.level, pf.new_csl, pf.frame_top), (1, 1, L1));
        assert_eq!(
            (pf.frame.rip(), pf.frame.rsp(), pf.frame.event_data()),
            (RIP, bottom, bottom - 8)
        );
        t.assign("pf=0").unwrap();
        let s = CpuState::kernel(bottom, RIP, msrs(t), 0);
        let d = deliver(&s, &ev, &probe);
        assert_eq!(d.outcome, Outcome::DoubleFault);
        let df = d.delivered.unwrap();
        assert_eq!(
            (df.event.vector, df.level, df.frame_top),
            (8, 3, L1 + 0x20000)
        );
        assert_eq!(d.after.cr2, bottom - 64 - 8, "the #PF frame's top quadword");
    }

    #[test]
    fn edits_survive_erets_and_become_the_iret_frame() {
        let t = LevelTable::default();
        let ev = idt_event(14, 2, TOP - 0x1008);
        let s = CpuState::kernel(TOP - 0x1000, RIP, msrs(t), 0);
        let d = deliver(&s, &ev, &NoFaults).delivered.unwrap();
        let mut f = d.frame;
        apply_edits(&mut f, RIP + 4, 0x10, 0x202, TOP - 0x800);
        assert_eq!(f.old_csl(), 0, "the CS word keeps its old CSL");
        let mut now = CpuState::kernel(d.new_rsp, 0, msrs(t), d.new_csl);
        now.cs = 0x10;
        let r = erets(&now, &f, true).unwrap();
        assert_eq!(r.state.csl(), 0);
        assert_eq!(iret_frame(&r), [RIP + 4, 0x10, 0x202, TOP - 0x800, 0x18]);
        // A CS selector the CPU is not running with is ERETS's #GP.
        let mut bad = d.frame;
        apply_edits(&mut bad, RIP, 0x33, 0x202, TOP);
        assert!(erets(&now, &bad, true).is_err());
    }
}
