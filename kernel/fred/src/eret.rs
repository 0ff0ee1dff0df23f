//! ERETS and ERETU, with every check that makes them fault, in the order of Bochs
//! cpu/fred.cc `ERETS` and `ERETU`.
//!
//! The model does not read memory: the caller passes the frame that RSP points at (the error
//! code quadword first, which both instructions skip), and the state the instruction runs in.

use crate::deliver::{Frame, SS_NMI, SS_SOFTWARE_EVENT, SS_STI_BLOCKING};
use crate::is_canonical;
use crate::rule::{NoTrace, Rule, Trace};
use crate::state::{CpuState, RFLAGS_IF, RFLAGS_TF};

/// Why an ERET faulted (the rule that decided).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EretError {
    /// #UD.
    InvalidOpcode(Rule),
    /// #GP(0).
    GeneralProtection(Rule),
    /// ERETU to selectors other than IA32_STAR's flat user selectors: the hardware loads them
    /// from the descriptor tables as IRET would, which the model does not do.
    NotModelled(Rule),
}

impl EretError {
    /// The name the JSON driver prints: `#UD`, `#GP` or `not_modelled`.
    pub const fn name(self) -> &'static str {
        match self {
            EretError::InvalidOpcode(_) => "#UD",
            EretError::GeneralProtection(_) => "#GP",
            EretError::NotModelled(_) => "not_modelled",
        }
    }

    /// The rule that decided.
    pub const fn rule(self) -> Rule {
        match self {
            EretError::InvalidOpcode(r)
            | EretError::GeneralProtection(r)
            | EretError::NotModelled(r) => r,
        }
    }
}

/// The result of a successful ERETS or ERETU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Returned {
    /// The state afterwards.
    pub state: CpuState,
    /// Whether the instruction unblocked NMIs (the frame's SS word bit 18).
    pub nmi_unblocked: bool,
    /// Whether a single-step #DB is now pending (SS word bit 17 with RFLAGS.TF).
    pub pending_debug: bool,
}

/// RFLAGS bits ERETS requires to be 0 (bits 3, 5, 15, 17 = VM, 63:22), with bit 1 required
/// set: Bochs cpu/fred.cc `ERETS`.
const ERETS_RFLAGS_CHECKED: u64 = 0xFFFF_FFFF_FFC2_802A;
/// As for ERETS plus IOPL (bits 13:12): Bochs cpu/fred.cc `ERETU`.
const ERETU_RFLAGS_CHECKED: u64 = 0xFFFF_FFFF_FFC2_B02A;

/// ERETS from `state` (RSP at `frame`), `fred_enabled` = CR4.FRED.
pub fn erets(state: &CpuState, frame: &Frame, fred_enabled: bool) -> Result<Returned, EretError> {
    erets_with(state, frame, fred_enabled, &mut NoTrace)
}

/// [`erets`], reporting each rule to `trace`.
pub fn erets_with<T: Trace>(
    state: &CpuState,
    frame: &Frame,
    fred_enabled: bool,
    trace: &mut T,
) -> Result<Returned, EretError> {
    common_checks(state, fred_enabled, trace)?;
    rip_check(frame, trace)?;
    if frame.cs_word() & 0xFFFF_FFFF_FFF8_FFFF != state.cs as u64 {
        trace.step(Rule::EretsCs, frame.cs_word());
        return Err(EretError::GeneralProtection(Rule::EretsCs));
    }
    if frame.rflags() & ERETS_RFLAGS_CHECKED != 2 {
        trace.step(Rule::EretsRflags, frame.rflags());
        return Err(EretError::GeneralProtection(Rule::EretsRflags));
    }
    if frame.ss_word() & 0xFFF8_FFFF != state.ss as u64 {
        trace.step(Rule::EretsSs, frame.ss_word());
        return Err(EretError::GeneralProtection(Rule::EretsSs));
    }
    let new_csl = state.csl().min(frame.old_csl());
    trace.step(Rule::EretsCsl, new_csl as u64);

    let mut after = *state;
    after.rip = frame.rip();
    after.rflags = frame.rflags();
    after.rsp = frame.rsp();
    after.set_csl(new_csl);
    // Bochs re-establishes STI blocking only when IF (of the restored RFLAGS) is set.
    after.sti_blocking = frame.ss_word() & SS_STI_BLOCKING != 0 && after.rflags & RFLAGS_IF != 0;
    trace.step(Rule::EretStiBlocking, after.sti_blocking as u64);
    // WFE (CS word bit 18) is restored only with indirect-branch tracking enabled in ring 0,
    // which the model does not have: it is left clear.
    after.wfe = false;
    Ok(finish(after, frame, trace))
}

/// ERETU from `state` (RSP at `frame`), `fred_enabled` = CR4.FRED.
pub fn eretu(state: &CpuState, frame: &Frame, fred_enabled: bool) -> Result<Returned, EretError> {
    eretu_with(state, frame, fred_enabled, &mut NoTrace)
}

/// [`eretu`], reporting each rule to `trace`.
pub fn eretu_with<T: Trace>(
    state: &CpuState,
    frame: &Frame,
    fred_enabled: bool,
    trace: &mut T,
) -> Result<Returned, EretError> {
    common_checks(state, fred_enabled, trace)?;
    if state.csl() != 0 {
        trace.step(Rule::EretuCsl, state.csl() as u64);
        return Err(EretError::GeneralProtection(Rule::EretuCsl));
    }
    rip_check(frame, trace)?;
    if frame.cs_word() & 0xFFFF_FFFF_FFFF_0003 != 3 {
        trace.step(Rule::EretuCs, frame.cs_word());
        return Err(EretError::GeneralProtection(Rule::EretuCs));
    }
    if frame.rflags() & ERETU_RFLAGS_CHECKED != 2 {
        trace.step(Rule::EretuRflags, frame.rflags());
        return Err(EretError::GeneralProtection(Rule::EretuRflags));
    }
    if frame.ss_word() & 0xFFF8_0003 != 3 {
        trace.step(Rule::EretuSs, frame.ss_word());
        return Err(EretError::GeneralProtection(Rule::EretuSs));
    }
    // Bochs compares the selectors with bit 15 masked off.
    let base = (state.star >> 48) as u16 as u64;
    let cs = frame.cs_word() & 0x7FFF;
    let ss = frame.ss_word() & 0x7FFF;
    let mut after = *state;
    after.rip = frame.rip();
    after.rsp = frame.rsp();
    if cs == base + 16 && ss == base + 8 {
        trace.step(Rule::EretuStar, 64);
        after.long64 = true;
    } else if cs == base && ss == base + 8 {
        trace.step(Rule::EretuStar, 32);
        after.long64 = false;
        after.rip &= 0xFFFF_FFFF;
        after.rsp &= 0xFFFF_FFFF;
    } else {
        trace.step(Rule::EretuStar, cs);
        return Err(EretError::NotModelled(Rule::EretuStar));
    }
    after.cpl = 3;
    after.cs = cs as u16;
    after.ss = ss as u16;
    after.rflags = frame.rflags();
    after.sti_blocking = false;
    after.wfe = false;
    Ok(finish(after, frame, trace))
}

fn common_checks<T: Trace>(state: &CpuState, fred: bool, trace: &mut T) -> Result<(), EretError> {
    if !fred {
        trace.step(Rule::EretFredDisabled, 0);
        return Err(EretError::InvalidOpcode(Rule::EretFredDisabled));
    }
    if state.cpl != 0 {
        trace.step(Rule::EretCpl, state.cpl as u64);
        return Err(EretError::InvalidOpcode(Rule::EretCpl));
    }
    Ok(())
}

fn rip_check<T: Trace>(frame: &Frame, trace: &mut T) -> Result<(), EretError> {
    if !is_canonical(frame.rip()) {
        trace.step(Rule::EretRipCanonical, frame.rip());
        return Err(EretError::GeneralProtection(Rule::EretRipCanonical));
    }
    Ok(())
}

fn finish<T: Trace>(mut after: CpuState, frame: &Frame, trace: &mut T) -> Returned {
    let pending_debug = frame.ss_word() & SS_SOFTWARE_EVENT != 0 && after.rflags & RFLAGS_TF != 0;
    trace.step(Rule::EretPendingDebug, pending_debug as u64);
    let nmi_unblocked = frame.ss_word() & SS_NMI != 0;
    trace.step(Rule::EretNmi, nmi_unblocked as u64);
    if nmi_unblocked {
        after.nmi_blocked = false;
    }
    Returned {
        state: after,
        nmi_unblocked,
        pending_debug,
    }
}

impl core::fmt::Display for EretError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.name(), self.rule().what())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EretError {}
