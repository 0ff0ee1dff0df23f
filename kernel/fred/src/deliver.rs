//! FRED event delivery.
//!
//! The order of the checks and writes follows Bochs cpu/fred.cc `FRED_EventDelivery`: the
//! entry point is computed (and checked for canonicality) first, then the stack level, the
//! frame's top, and the eight quadwords written from the top down. A write that faults stops
//! the delivery with nothing changed; [`crate::escalate`] decides what is delivered instead.

pub use crate::escalate::Outcome;
use crate::escalate::{self, Fault};
use crate::event::{Event, EventType};
use crate::is_canonical;
use crate::mem::FaultProbe;
use crate::rule::{NoTrace, Rule, Trace};
use crate::state::{CpuState, RFLAGS_FIXED, RFLAGS_RF};

/// The 64-byte FRED frame, as 8 quadwords ascending from the new RSP:
/// error code, RIP, CS word, RFLAGS, RSP, SS word, event data, 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Frame {
    /// The quadwords, `words[0]` at the lowest address (the new RSP).
    pub words: [u64; 8],
}

/// SS word bit 16: blocking by STI was in effect.
pub const SS_STI_BLOCKING: u64 = 1 << 16;
/// SS word bit 17: software event (SYSCALL, SYSENTER, INT n); on return, "pending #DB if TF".
pub const SS_SOFTWARE_EVENT: u64 = 1 << 17;
/// SS word bit 18: the event is an NMI; on return, "unblock NMIs".
pub const SS_NMI: u64 = 1 << 18;
/// SS word bit 57: the CPU was in 64-bit mode.
pub const SS_64BIT: u64 = 1 << 57;
/// SS word bit 58: nested exception.
pub const SS_NESTED: u64 = 1 << 58;
/// CS word bit 18: WFE (indirect-branch tracking waiting for ENDBRANCH).
pub const CS_WFE: u64 = 1 << 18;

impl Frame {
    /// The error code (0 if the event has none).
    pub const fn error_code(&self) -> u64 {
        self.words[0]
    }
    /// The saved RIP.
    pub const fn rip(&self) -> u64 {
        self.words[1]
    }
    /// The CS word.
    pub const fn cs_word(&self) -> u64 {
        self.words[2]
    }
    /// The saved RFLAGS.
    pub const fn rflags(&self) -> u64 {
        self.words[3]
    }
    /// The saved RSP.
    pub const fn rsp(&self) -> u64 {
        self.words[4]
    }
    /// The SS word.
    pub const fn ss_word(&self) -> u64 {
        self.words[5]
    }
    /// The event data.
    pub const fn event_data(&self) -> u64 {
        self.words[6]
    }
    /// The stack level saved in the CS word (bits 17:16).
    pub const fn old_csl(&self) -> u8 {
        ((self.words[2] >> 16) & 3) as u8
    }
    /// The vector (SS word bits 39:32).
    pub const fn vector(&self) -> u8 {
        (self.words[5] >> 32) as u8
    }
    /// The event type number (SS word bits 51:48).
    pub const fn event_type(&self) -> u8 {
        ((self.words[5] >> 48) & 0xF) as u8
    }
    /// The nested bit (SS word bit 58).
    pub const fn nested(&self) -> bool {
        self.words[5] & SS_NESTED != 0
    }
    /// The instruction length (SS word bits 63:60).
    pub const fn ilen(&self) -> u8 {
        (self.words[5] >> 60) as u8
    }
}

/// Which exceptions carry the nested bit (the sources word this differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NestedPolicy {
    /// Any exception raised while delivering any event (interrupts, NMI, software events
    /// included), except #DF: the wording of Linux arch/x86/include/asm/ptrace.h `struct
    /// fred_ss` ("nested exception during FRED delivery, not set for #DF").
    #[default]
    AnyEvent,
    /// Only an exception raised while delivering a hardware exception: what Bochs
    /// cpu/exception.cc `exception` does (it tracks only exceptions as first events, so a
    /// fault while delivering an interrupt, NMI or INT n is delivered unflagged, and from ring
    /// 3 on level 0).
    HardwareExceptionsOnly,
}

/// Choices where the sources disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Options {
    /// Which exceptions carry the nested bit.
    pub nested: NestedPolicy,
}

/// An event that was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The event (for `Nested`/`DoubleFault` outcomes, the exception finally delivered).
    pub event: Event,
    /// Whether it was delivered as a nested exception.
    pub nested: bool,
    /// The event's stack level.
    pub level: u8,
    /// The CSL before delivery (0 from ring 3).
    pub old_csl: u8,
    /// The CSL after delivery: `max(level, old_csl)`.
    pub new_csl: u8,
    /// The frame's top (64-byte aligned).
    pub frame_top: u64,
    /// The RSP after delivery: `frame_top - 64`.
    pub new_rsp: u64,
    /// The frame.
    pub frame: Frame,
    /// The entry point.
    pub entry_rip: u64,
}

impl Delivered {
    /// The address range `[new_rsp, frame_top)` the frame occupies.
    pub const fn frame_range(&self) -> (u64, u64) {
        (self.new_rsp, self.frame_top)
    }
}

/// The result of a FRED delivery.
pub type Delivery = crate::escalate::Report<Delivered>;

/// Delivers `event` from `state` with the default [`Options`] and no trace.
pub fn deliver(state: &CpuState, event: &Event, mem: &impl FaultProbe) -> Delivery {
    deliver_with(state, event, mem, &Options::default(), &mut NoTrace)
}

/// Delivers `event` from `state`, writing the frame through `mem`, reporting every rule
/// applied to `trace`.
pub fn deliver_with<T: Trace>(
    state: &CpuState,
    event: &Event,
    mem: &impl FaultProbe,
    opts: &Options,
    trace: &mut T,
) -> Delivery {
    let policy = opts.nested;
    let esc = escalate::run(
        *event,
        |ev, nested, t: &mut T| attempt(state, ev, nested, mem, t),
        |prev| match policy {
            NestedPolicy::AnyEvent => true,
            NestedPolicy::HardwareExceptionsOnly => {
                matches!(prev.kind, EventType::HardwareException)
            }
        },
        trace,
    );
    let mut after = *state;
    if let Some(cr2) = esc.cr2 {
        after.cr2 = cr2;
    }
    let delivered = esc.delivered.map(|(d, ev, _)| {
        if ev.kind == EventType::HardwareException && ev.vector == crate::event::vector::PF {
            // CR2 holds the address of the #PF being delivered.
            after.cr2 = ev.event_data;
        }
        trace.step(Rule::AfterDelivery, d.new_rsp);
        if state.cpl == 3 {
            after.cs = state.star_kernel_cs();
            after.ss = state.star_kernel_ss();
        }
        after.cpl = 0;
        after.set_csl(d.new_csl);
        after.rsp = d.new_rsp;
        after.rip = d.entry_rip;
        // Bochs sets RFLAGS to 2; Xen's FRED design note says IA32_FMASK applies to every
        // delivery. The model follows Bochs (docs/fred.md).
        after.rflags = RFLAGS_FIXED;
        after.sti_blocking = false;
        after.wfe = false;
        if ev.kind == EventType::Nmi {
            trace.step(Rule::NmiBlocked, 1);
            after.nmi_blocked = true;
        }
        d
    });
    Delivery {
        outcome: esc.outcome,
        delivered,
        attempts: esc.attempts,
        after,
    }
}

/// The stack level of `ev` delivered from `state` (`nested`: it is a nested exception).
pub fn event_level<T: Trace>(state: &CpuState, ev: &Event, nested: bool, trace: &mut T) -> u8 {
    let msrs = &state.msrs;
    if state.cpl == 3 && !nested && !ev.is_double_fault() {
        trace.step(Rule::LevelFromRing3, 0);
        return 0;
    }
    match ev.kind {
        EventType::ExternalInterrupt => {
            let l = msrs.config.interrupt_level();
            trace.step(Rule::LevelExternalInterrupt, l as u64);
            l
        }
        EventType::Nmi
        | EventType::HardwareException
        | EventType::PrivilegedSoftwareException
        | EventType::SoftwareException => {
            let l = msrs.stklvls.level(ev.vector);
            trace.step(Rule::LevelStklvls, l as u64);
            l
        }
        EventType::SoftwareInterrupt | EventType::Other => {
            trace.step(Rule::LevelSoftware, 0);
            0
        }
    }
}

/// One try at delivering `ev`; on a fault, the fault with the level and frame top it used.
fn attempt<T: Trace>(
    state: &CpuState,
    ev: &Event,
    nested: bool,
    mem: &impl FaultProbe,
    trace: &mut T,
) -> Result<Delivered, (Fault, u8, u64)> {
    // A nested exception over a ring-3 event: Bochs still sees CPL 3 here (nothing changed
    // yet), so it enters at the page base and switches to IA32_FRED_RSP[level], saving the
    // ring-3 context; only the level follows the ring-0 rule. Xen's FRED design note says such
    // exceptions "originate from Ring0"; docs/fred.md discusses the difference.
    let from_ring3 = state.cpl == 3;
    let old_csl = if from_ring3 { 0 } else { state.csl() };

    let entry_rip = state
        .msrs
        .config
        .entry_page()
        .wrapping_add(if from_ring3 { 0 } else { 256 });
    trace.step(Rule::EntryRip, entry_rip);

    let level = event_level(state, ev, nested, trace);
    let new_csl = level.max(old_csl);
    trace.step(Rule::CslNeverLowered, new_csl as u64);

    let frame_top = if from_ring3 || new_csl > old_csl {
        let top = state.msrs.rsp[new_csl as usize];
        trace.step(Rule::StackSwitch, top);
        top
    } else {
        let top = state.rsp.wrapping_sub(state.msrs.config.red_zone_bytes()) & !63;
        trace.step(Rule::StackStay, top);
        top
    };

    if !is_canonical(entry_rip) {
        // Bochs checks the entry point before the stack; the order does not change the
        // outcome since neither check has side effects.
        trace.step(Rule::EntryCanonical, entry_rip);
        return Err((Fault::general_protection(), level, frame_top));
    }

    let ilen = if ev.kind.is_instruction() {
        ev.ilen & 0xF
    } else {
        0
    };
    trace.step(Rule::InstructionLength, ilen as u64);
    let saved_rip = if ev.kind.is_instruction() {
        let r = state.rip.wrapping_add(ilen as u64);
        trace.step(Rule::SavedRip, r);
        r
    } else {
        state.rip
    };
    // #DF: the SDM (Vol. 3A, Interrupt 8) calls it an abort whose saved CS:RIP is undefined;
    // Bochs cpu/exception.cc saves the context of the instruction whose delivery faulted and,
    // classing #DF as a fault, sets RF. The model does what Bochs does; nothing should rely
    // on those two words of a #DF frame.
    let rflags = if ev.sets_resume_flag() {
        trace.step(Rule::ResumeFlag, 1);
        state.rflags | RFLAGS_RF
    } else {
        state.rflags
    };
    let nested_bit = nested && !ev.is_double_fault();
    trace.step(Rule::NestedBit, nested_bit as u64);

    let mut ss_word = state.ss as u64;
    // Linux ptrace.h `struct fred_ss` has the STI bit. Bochs computes it in
    // FRED_EventDelivery, but its caller `interrupt` (cpu/exception.cc) clears the inhibit
    // mask first, so Bochs's frames never carry it; the model records the state it is given.
    if state.sti_blocking {
        ss_word |= SS_STI_BLOCKING;
    }
    if matches!(ev.kind, EventType::SoftwareInterrupt | EventType::Other) {
        ss_word |= SS_SOFTWARE_EVENT;
    } else if ev.kind == EventType::Nmi {
        ss_word |= SS_NMI;
    }
    ss_word |= (ev.vector as u64) << 32;
    ss_word |= (ev.kind.number() as u64) << 48;
    if state.long64 {
        ss_word |= SS_64BIT;
    }
    if nested_bit {
        ss_word |= SS_NESTED;
    }
    ss_word |= (ilen as u64) << 60;
    trace.step(Rule::SsWord, ss_word);

    let mut cs_word = state.cs as u64 | (old_csl as u64) << 16;
    if state.wfe {
        cs_word |= CS_WFE;
    }
    trace.step(Rule::CsWord, cs_word);

    let event_data = if ev.is_double_fault() {
        0
    } else {
        ev.event_data
    };
    trace.step(Rule::EventData, event_data);

    let frame = Frame {
        words: [
            ev.error_code,
            saved_rip,
            cs_word,
            rflags,
            state.rsp,
            ss_word,
            event_data,
            0,
        ],
    };
    // Written from the top down, as Bochs does: the first write that faults is the highest,
    // and it is the one CR2 names. No source at hand states the hardware's order; the frame
    // is 64-byte aligned, so it never straddles a page and the order only matters for holes
    // smaller than a page (which the host's byte ranges allow and page tables do not).
    for i in (0..8).rev() {
        let addr = frame_top.wrapping_sub(64).wrapping_add(8 * i as u64);
        if let Some(cr2) = mem.supervisor_write_fault(addr) {
            trace.step(Rule::FrameWriteFault, cr2);
            return Err((Fault::frame_write(cr2), level, frame_top));
        }
    }
    let new_rsp = frame_top.wrapping_sub(64);
    trace.step(Rule::FrameWrite, new_rsp);
    Ok(Delivered {
        event: *ev,
        nested: nested_bit,
        level,
        old_csl,
        new_csl,
        frame_top,
        new_rsp,
        frame,
        entry_rip,
    })
}
