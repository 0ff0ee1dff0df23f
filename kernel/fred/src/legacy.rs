//! Legacy IDT event delivery in 64-bit mode, for comparison with FRED: interrupt gates with
//! an optional IST index, the TSS's RSP0 and IST stacks, the 5-quadword frame (plus an error
//! code for the vectors that have one), and the same double-fault rules.
//!
//! The decisive difference: an IST gate reloads RSP from TSS.ISTn on *every* entry, so an
//! event that nests on the same IST stack writes its frame exactly over the live outer frame
//! (Linux Documentation/arch/x86/kernel-stacks.rst; SDM Vol. 3A 6.14.5).

pub use crate::escalate::Outcome;
use crate::escalate::{self, Fault};
use crate::event::{Event, has_error_code};
use crate::mem::FaultProbe;
use crate::rule::{NoTrace, Rule, Trace};
use crate::state::{CpuState, KERNEL_CS, RFLAGS_IF, RFLAGS_RF, RFLAGS_TF, RFLAGS_VM};

/// RFLAGS.NT.
const RFLAGS_NT: u64 = 1 << 14;

/// The IDT and TSS as far as stacks are concerned. Every gate is a present 64-bit interrupt
/// gate with selector `gate_cs` and handler `handler_base + 16 * vector`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyConfig {
    /// TSS.RSP0, the stack for events from ring 3 through gates without IST.
    pub rsp0: u64,
    /// TSS.IST1..IST7.
    pub ist: [u64; 7],
    /// Each vector's gate IST field (0: no IST, 1-7: TSS.ISTn).
    pub gate_ist: [u8; 256],
    /// The code selector of every gate.
    pub gate_cs: u16,
    /// Handler of vector v: `handler_base + 16 * v`.
    pub handler_base: u64,
}

impl LegacyConfig {
    /// No IST gates, kernel CS 0x10.
    pub const fn new(rsp0: u64, handler_base: u64) -> Self {
        LegacyConfig {
            rsp0,
            ist: [0; 7],
            gate_ist: [0; 256],
            gate_cs: KERNEL_CS,
            handler_base,
        }
    }

    /// The same configuration with `vector`'s gate using IST `index` (1-7) at `top`.
    pub const fn with_ist(mut self, vector: u8, index: u8, top: u64) -> Self {
        self.gate_ist[vector as usize] = index;
        if index >= 1 && index <= 7 {
            self.ist[index as usize - 1] = top;
        }
        self
    }
}

/// A legacy frame, ascending from the new RSP: [error code,] RIP, CS, RFLAGS, RSP, SS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LegacyFrame {
    words: [u64; 6],
    len: usize,
}

impl LegacyFrame {
    /// The quadwords, lowest address first (5, or 6 with an error code).
    pub fn words(&self) -> &[u64] {
        &self.words[..self.len]
    }

    /// Whether an error code was pushed.
    pub const fn has_error_code(&self) -> bool {
        self.len == 6
    }

    /// The saved RIP.
    pub const fn rip(&self) -> u64 {
        self.words[self.len - 5]
    }

    /// The saved RSP.
    pub const fn rsp(&self) -> u64 {
        self.words[self.len - 2]
    }
}

/// An event delivered through the IDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegacyDelivered {
    /// The event (for `Nested`/`DoubleFault`, the exception finally delivered).
    pub event: Event,
    /// The gate's IST index (0: none).
    pub ist: u8,
    /// Where the pushes started (after the stack switch and the 16-byte alignment).
    pub frame_top: u64,
    /// The RSP after delivery.
    pub new_rsp: u64,
    /// The frame.
    pub frame: LegacyFrame,
    /// The handler.
    pub entry_rip: u64,
}

impl LegacyDelivered {
    /// The address range `[new_rsp, frame_top)` the frame occupies.
    pub const fn frame_range(&self) -> (u64, u64) {
        (self.new_rsp, self.frame_top)
    }
}

/// The result of a legacy delivery (`Shutdown` is the triple fault; the FRED fields of
/// `after` are left as they were).
pub type LegacyDelivery = crate::escalate::Report<LegacyDelivered>;

/// Delivers `event` through the IDT from `state`, with no trace.
pub fn deliver(
    state: &CpuState,
    cfg: &LegacyConfig,
    event: &Event,
    mem: &impl FaultProbe,
) -> LegacyDelivery {
    deliver_with(state, cfg, event, mem, &mut NoTrace)
}

/// Delivers `event` through the IDT from `state`, reporting each rule to `trace`.
pub fn deliver_with<T: Trace>(
    state: &CpuState,
    cfg: &LegacyConfig,
    event: &Event,
    mem: &impl FaultProbe,
    trace: &mut T,
) -> LegacyDelivery {
    let esc = escalate::run(
        *event,
        |ev, _nested, t: &mut T| attempt(state, cfg, ev, mem, t),
        |_| false,
        trace,
    );
    let mut after = *state;
    if let Some(cr2) = esc.cr2 {
        after.cr2 = cr2;
    }
    let delivered = esc.delivered.map(|(d, ev, _)| {
        if ev.kind == crate::event::EventType::HardwareException
            && ev.vector == crate::event::vector::PF
        {
            after.cr2 = ev.event_data;
        }
        if state.cpl == 3 {
            // SDM 6.14.4: on a privilege change in 64-bit mode SS is loaded with NULL.
            after.ss = 0;
        }
        after.cpl = 0;
        after.cs = cfg.gate_cs;
        after.rsp = d.new_rsp;
        after.rip = d.entry_rip;
        after.rflags = state.rflags & !(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM | RFLAGS_IF);
        d
    });
    LegacyDelivery {
        outcome: esc.outcome,
        delivered,
        attempts: esc.attempts,
        after,
    }
}

fn attempt<T: Trace>(
    state: &CpuState,
    cfg: &LegacyConfig,
    ev: &Event,
    mem: &impl FaultProbe,
    trace: &mut T,
) -> Result<LegacyDelivered, (Fault, u8, u64)> {
    let ist = cfg.gate_ist[ev.vector as usize] & 7;
    let base = if ist != 0 {
        let top = cfg.ist[ist as usize - 1];
        trace.step(Rule::LegacyIst, top);
        top
    } else if state.cpl == 3 {
        trace.step(Rule::LegacyRsp0, cfg.rsp0);
        cfg.rsp0
    } else {
        trace.step(Rule::LegacyRsp0, state.rsp);
        state.rsp
    };
    let top = base & !15;
    trace.step(Rule::LegacyAlign, top);

    let saved_rip = if ev.kind.is_instruction() {
        trace.step(Rule::SavedRip, state.rip.wrapping_add(ev.ilen as u64));
        state.rip.wrapping_add(ev.ilen as u64)
    } else {
        state.rip
    };
    let rflags = if ev.sets_resume_flag() {
        trace.step(Rule::ResumeFlag, 1);
        state.rflags | RFLAGS_RF
    } else {
        state.rflags
    };
    let with_ec =
        ev.kind == crate::event::EventType::HardwareException && has_error_code(ev.vector);
    // Pushed in this order, each 8 bytes below the last.
    let pushes = [
        state.ss as u64,
        state.rsp,
        rflags,
        state.cs as u64,
        saved_rip,
        ev.error_code,
    ];
    let n = if with_ec { 6 } else { 5 };
    let mut frame = LegacyFrame {
        words: [0; 6],
        len: n,
    };
    for (i, &w) in pushes[..n].iter().enumerate() {
        let addr = top.wrapping_sub(8 * (i as u64 + 1));
        if let Some(cr2) = mem.supervisor_write_fault(addr) {
            trace.step(Rule::FrameWriteFault, cr2);
            return Err((Fault::frame_write(cr2), ist, top));
        }
        frame.words[n - 1 - i] = w;
    }
    let new_rsp = top.wrapping_sub(8 * n as u64);
    trace.step(Rule::LegacyFrame, new_rsp);
    Ok(LegacyDelivered {
        event: *ev,
        ist,
        frame_top: top,
        new_rsp,
        frame,
        entry_rip: cfg.handler_base.wrapping_add(16 * ev.vector as u64),
    })
}
