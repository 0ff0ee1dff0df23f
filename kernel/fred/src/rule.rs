//! The rules the model applies, each with the source that states it, and the [`Trace`] through
//! which a caller can watch them being applied (the JSON driver's `--explain`).

/// One rule of the model. [`Rule::what`] says what it decides, [`Rule::source`] where it comes
/// from. The list is the table in `docs/fred.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// From ring 3, an event that is neither #DF nor a nested exception takes level 0.
    LevelFromRing3,
    /// External interrupts take the level in IA32_FRED_CONFIG bits 10:9.
    LevelExternalInterrupt,
    /// NMI, hardware exceptions, INT1, INT3 and INTO take IA32_FRED_STKLVLS\[vector\].
    LevelStklvls,
    /// INT n, SYSCALL and SYSENTER take level 0.
    LevelSoftware,
    /// New CSL = max(event level, old CSL); the old CSL counts as 0 in ring 3.
    CslNeverLowered,
    /// From ring 3, or when the level rises, the frame's top is IA32_FRED_RSPi of the new level.
    StackSwitch,
    /// Otherwise the frame's top is (RSP - red zone) & !63: subtract first, then align.
    StackStay,
    /// Entry RIP = CONFIG & !0xFFF from ring 3, plus 256 from ring 0.
    EntryRip,
    /// A non-canonical entry RIP makes delivery raise #GP(0).
    EntryCanonical,
    /// The SS word of the frame: selector, STI blocking, software event, NMI, event information.
    SsWord,
    /// The CS word of the frame: selector, old CSL, WFE.
    CsWord,
    /// The instruction length is recorded only for INT n, INT1, INT3/INTO, SYSCALL/SYSENTER.
    InstructionLength,
    /// The nested bit: set on an exception raised while delivering another event, never on #DF.
    NestedBit,
    /// Saved RFLAGS.RF is set for fault-class exceptions other than #DB.
    ResumeFlag,
    /// Software events (INT n, INT1, INT3/INTO, SYSCALL) save the RIP after the instruction.
    SavedRip,
    /// The frame is 8 quadwords written top down with supervisor writes.
    FrameWrite,
    /// A write to a not-present page raises #PF: error code 2, CR2 = the address.
    FrameWriteFault,
    /// The event data quadword (CR2 for #PF, 0 for #DF).
    EventData,
    /// After delivery: CPL 0, RFLAGS = 2, RSP = frame bottom, CS/SS from STAR if from ring 3.
    AfterDelivery,
    /// NMI delivery blocks NMIs.
    NmiBlocked,
    /// SDM Table 6-5: which second exception turns into #DF.
    DoubleFaultClasses,
    /// A fault while delivering #DF is a shutdown (triple fault).
    Shutdown,
    /// A fault during delivery is delivered against the original context: the faulting
    /// delivery changed nothing.
    NestedContext,
    /// ERETS/ERETU: #UD if FRED is not enabled in CR4.
    EretFredDisabled,
    /// ERETS/ERETU: #UD at CPL > 0.
    EretCpl,
    /// ERETU: #GP unless CSL = 0.
    EretuCsl,
    /// ERET: #GP unless the RIP in the frame is canonical.
    EretRipCanonical,
    /// ERETS: #GP unless the CS word equals CS with bits 18:16 ignored.
    EretsCs,
    /// ERETS: #GP unless SS word bits 31:0 equal SS with bits 18:16 ignored.
    EretsSs,
    /// ERETS: #GP unless RFLAGS bit 1 is set and VM and the reserved bits are clear.
    EretsRflags,
    /// ERETU: #GP unless CS word bits 63:16 are 0 and the RPL is 3.
    EretuCs,
    /// ERETU: #GP unless SS word bits 31:19 are 0 and the RPL is 3.
    EretuSs,
    /// ERETU: #GP unless RFLAGS is valid and IOPL is 0 (Bochs).
    EretuRflags,
    /// ERETU: the selectors are checked against IA32_STAR's user selectors.
    EretuStar,
    /// ERETS: CSL = min(CSL, CS word bits 17:16).
    EretsCsl,
    /// ERET: NMIs are unblocked only if the frame's NMI bit is set.
    EretNmi,
    /// ERETS: STI blocking is re-established from the frame's bit 16 when IF is set.
    EretStiBlocking,
    /// ERET: the frame's bit 17 with RFLAGS.TF set schedules a single-step #DB.
    EretPendingDebug,
    /// Legacy: an IST gate loads RSP from TSS.ISTn on every entry, whatever the current stack.
    LegacyIst,
    /// Legacy: from ring 3 without IST, RSP = TSS.RSP0; from ring 0 the current RSP.
    LegacyRsp0,
    /// Legacy: the new RSP is aligned down to 16 bytes before the pushes.
    LegacyAlign,
    /// Legacy: SS, RSP, RFLAGS, CS, RIP, then an error code for the vectors that have one.
    LegacyFrame,
}

impl Rule {
    /// A short stable name (used as the `rule` key in the JSON driver's steps).
    pub const fn name(self) -> &'static str {
        match self {
            Rule::LevelFromRing3 => "level-from-ring3",
            Rule::LevelExternalInterrupt => "level-external-interrupt",
            Rule::LevelStklvls => "level-stklvls",
            Rule::LevelSoftware => "level-software",
            Rule::CslNeverLowered => "csl-never-lowered",
            Rule::StackSwitch => "stack-switch",
            Rule::StackStay => "stack-stay",
            Rule::EntryRip => "entry-rip",
            Rule::EntryCanonical => "entry-canonical",
            Rule::SsWord => "ss-word",
            Rule::CsWord => "cs-word",
            Rule::InstructionLength => "instruction-length",
            Rule::NestedBit => "nested-bit",
            Rule::ResumeFlag => "resume-flag",
            Rule::SavedRip => "saved-rip",
            Rule::FrameWrite => "frame-write",
            Rule::FrameWriteFault => "frame-write-fault",
            Rule::EventData => "event-data",
            Rule::AfterDelivery => "after-delivery",
            Rule::NmiBlocked => "nmi-blocked",
            Rule::DoubleFaultClasses => "double-fault-classes",
            Rule::Shutdown => "shutdown",
            Rule::NestedContext => "nested-context",
            Rule::EretFredDisabled => "eret-fred-disabled",
            Rule::EretCpl => "eret-cpl",
            Rule::EretuCsl => "eretu-csl",
            Rule::EretRipCanonical => "eret-rip-canonical",
            Rule::EretsCs => "erets-cs",
            Rule::EretsSs => "erets-ss",
            Rule::EretsRflags => "erets-rflags",
            Rule::EretuCs => "eretu-cs",
            Rule::EretuSs => "eretu-ss",
            Rule::EretuRflags => "eretu-rflags",
            Rule::EretuStar => "eretu-star",
            Rule::EretsCsl => "erets-csl",
            Rule::EretNmi => "eret-nmi",
            Rule::EretStiBlocking => "eret-sti-blocking",
            Rule::EretPendingDebug => "eret-pending-debug",
            Rule::LegacyIst => "legacy-ist",
            Rule::LegacyRsp0 => "legacy-rsp0",
            Rule::LegacyAlign => "legacy-align",
            Rule::LegacyFrame => "legacy-frame",
        }
    }

    /// What the rule decides, in one sentence.
    pub const fn what(self) -> &'static str {
        match self {
            Rule::LevelFromRing3 => {
                "from ring 3 an event that is neither #DF nor a nested exception takes stack level 0"
            }
            Rule::LevelExternalInterrupt => {
                "an external interrupt takes the stack level in IA32_FRED_CONFIG[10:9]"
            }
            Rule::LevelStklvls => {
                "NMI, hardware exceptions, INT1, INT3 and INTO take IA32_FRED_STKLVLS[vector]"
            }
            Rule::LevelSoftware => "INT n, SYSCALL and SYSENTER take stack level 0",
            Rule::CslNeverLowered => {
                "new CSL = max(event level, old CSL); old CSL counts as 0 in ring 3"
            }
            Rule::StackSwitch => {
                "from ring 3 or when the level rises, the frame top is IA32_FRED_RSP[new CSL]"
            }
            Rule::StackStay => {
                "same level in ring 0: frame top = (RSP - red zone) & ~63, red zone subtracted first"
            }
            Rule::EntryRip => {
                "entry RIP = IA32_FRED_CONFIG & ~0xFFF, plus 256 for events in ring 0"
            }
            Rule::EntryCanonical => "a non-canonical entry RIP makes delivery raise #GP(0)",
            Rule::SsWord => {
                "SS word: selector 15:0, STI blocking 16, software event 17, NMI 18, vector 39:32, type 51:48, 64-bit 57, nested 58, length 63:60"
            }
            Rule::CsWord => "CS word: selector 15:0, old CSL 17:16, WFE 18",
            Rule::InstructionLength => {
                "the instruction length is recorded only for INT n, INT1, INT3/INTO, SYSCALL/SYSENTER"
            }
            Rule::NestedBit => {
                "the nested bit is set on an exception raised during delivery, never on #DF"
            }
            Rule::ResumeFlag => "saved RFLAGS.RF is set for fault-class exceptions other than #DB",
            Rule::SavedRip => {
                "software events save the RIP after the instruction (RIP + instruction length)"
            }
            Rule::FrameWrite => {
                "8 quadwords written top down: 0, event data, SS, RSP, RFLAGS, CS, RIP, error code"
            }
            Rule::FrameWriteFault => {
                "a supervisor write to a not-present page raises #PF(2) with CR2 = the address"
            }
            Rule::EventData => "event data: CR2 for #PF, 0 for #DF, else as the event supplies",
            Rule::AfterDelivery => {
                "after delivery: CPL 0, RFLAGS = 2, RSP = frame bottom, CS/SS from IA32_STAR if from ring 3"
            }
            Rule::NmiBlocked => "delivering an NMI blocks NMIs",
            Rule::DoubleFaultClasses => {
                "Table 6-5: contributory then contributory, or #PF then contributory or #PF, is #DF; otherwise serial"
            }
            Rule::Shutdown => "a fault while delivering #DF is a shutdown (triple fault)",
            Rule::NestedContext => {
                "a fault during delivery is delivered against the original context, RIP of the instruction"
            }
            Rule::EretFredDisabled => "ERETS/ERETU raise #UD when CR4.FRED is clear",
            Rule::EretCpl => "ERETS/ERETU raise #UD at CPL > 0",
            Rule::EretuCsl => "ERETU raises #GP unless CSL = 0",
            Rule::EretRipCanonical => "ERETS/ERETU raise #GP unless the frame's RIP is canonical",
            Rule::EretsCs => "ERETS: #GP unless the CS word (bits 18:16 ignored) equals CS",
            Rule::EretsSs => {
                "ERETS: #GP unless SS word bits 31:0 (bits 18:16 ignored) equal SS; bits 63:32 ignored"
            }
            Rule::EretsRflags => {
                "ERETS: #GP unless RFLAGS bit 1 is set and bits 3, 5, 15, 17 (VM), 63:22 are clear"
            }
            Rule::EretuCs => "ERETU: #GP unless CS word bits 63:16 are 0 and its RPL is 3",
            Rule::EretuSs => "ERETU: #GP unless SS word bits 31:19 are 0 and its RPL is 3",
            Rule::EretuRflags => {
                "ERETU: #GP unless RFLAGS is valid as for ERETS and IOPL (13:12) is 0 (Bochs)"
            }
            Rule::EretuStar => {
                "ERETU: CS/SS equal to IA32_STAR[63:48]+16/+8 return to 64-bit mode, [63:48]/+8 to compatibility mode"
            }
            Rule::EretsCsl => "ERETS: CSL = min(CSL, CS word bits 17:16); it never raises CSL",
            Rule::EretNmi => "ERETS/ERETU unblock NMIs only if the frame's SS word bit 18 is set",
            Rule::EretStiBlocking => {
                "ERETS: SS word bit 16 with IF set re-establishes STI blocking"
            }
            Rule::EretPendingDebug => {
                "ERETS/ERETU: SS word bit 17 with RFLAGS.TF set schedules a single-step #DB"
            }
            Rule::LegacyIst => {
                "IDT: a gate with an IST index loads RSP from TSS.IST[n] on every entry (rewinds to the top)"
            }
            Rule::LegacyRsp0 => "IDT: from ring 3 RSP = TSS.RSP0, from ring 0 the current RSP",
            Rule::LegacyAlign => "IDT: RSP is aligned down to 16 bytes before the pushes",
            Rule::LegacyFrame => {
                "IDT: push SS, RSP, RFLAGS, CS, RIP, then the error code if the vector has one"
            }
        }
    }

    /// The sources that state the rule, by their own names.
    pub const fn source(self) -> &'static str {
        match self {
            Rule::LevelFromRing3 => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/kernel/fred.c cpu_init_fred_rsps comment"
            }
            Rule::LevelExternalInterrupt | Rule::LevelStklvls | Rule::LevelSoftware => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/kernel/fred.c"
            }
            Rule::CslNeverLowered => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux Documentation/arch/x86/x86_64/fred.rst (Stack levels)"
            }
            Rule::StackSwitch => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux Documentation/arch/x86/x86_64/fred.rst (Stack levels)"
            }
            Rule::StackStay => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/include/asm/fred.h FRED_STACK_FRAME_RSP_MASK, FRED_CONFIG_REDZONE"
            }
            Rule::EntryRip => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/entry/entry_64_fred.S asm_fred_entrypoint_kernel"
            }
            Rule::EntryCanonical => "Bochs cpu/fred.cc FRED_EventDelivery",
            Rule::SsWord | Rule::CsWord => {
                "Bochs cpu/fred.cc FRED_EventDelivery, get_fred_event_info; Linux arch/x86/include/asm/ptrace.h struct fred_ss, struct fred_cs"
            }
            Rule::InstructionLength | Rule::NestedBit => {
                "Bochs cpu/fred.cc get_fred_event_info, cpu/exception.cc exception; Linux arch/x86/include/asm/ptrace.h struct fred_ss"
            }
            Rule::ResumeFlag => {
                "Bochs cpu/exception.cc exception (assert_RF); SDM Vol. 3B, Debug chapter, Instruction-Breakpoint Exception Condition"
            }
            Rule::SavedRip => "Bochs cpu/soft_int.cc (INT n, INT1, INT3, INTO); cpu/fred.cc",
            Rule::FrameWrite => {
                "Bochs cpu/fred.cc FRED_EventDelivery; Linux arch/x86/include/asm/fred.h struct fred_frame"
            }
            Rule::FrameWriteFault => "SDM Vol. 3A 4.7 Page-Fault Exceptions (error code)",
            Rule::EventData => {
                "Bochs cpu/fred.cc get_fred_event_data; Linux arch/x86/include/asm/fred.h struct fred_info"
            }
            Rule::AfterDelivery => "Bochs cpu/fred.cc FRED_EventDelivery",
            Rule::NmiBlocked => "Bochs cpu/fred.cc FRED_EventDelivery",
            Rule::DoubleFaultClasses => {
                "SDM Vol. 3A Table 6-5; Bochs cpu/exception.cc exception, is_exception_OK"
            }
            Rule::Shutdown => {
                "SDM Vol. 3A 6.15 Interrupt 8 (Double Fault); Bochs cpu/exception.cc exception"
            }
            Rule::NestedContext => "Bochs cpu/exception.cc exception (prev_rip, prev_rsp)",
            Rule::EretFredDisabled
            | Rule::EretCpl
            | Rule::EretRipCanonical
            | Rule::EretNmi
            | Rule::EretPendingDebug => "Bochs cpu/fred.cc ERETS, ERETU",
            Rule::EretsCs
            | Rule::EretsSs
            | Rule::EretsRflags
            | Rule::EretsCsl
            | Rule::EretStiBlocking => "Bochs cpu/fred.cc ERETS",
            Rule::EretuCsl
            | Rule::EretuCs
            | Rule::EretuSs
            | Rule::EretuRflags
            | Rule::EretuStar => "Bochs cpu/fred.cc ERETU",
            Rule::LegacyIst => {
                "SDM Vol. 3A 6.14.5 Interrupt Stack Table; Linux Documentation/arch/x86/kernel-stacks.rst"
            }
            Rule::LegacyRsp0 => "SDM Vol. 3A 6.14.4 Stack Switching in IA-32e Mode",
            Rule::LegacyAlign | Rule::LegacyFrame => "SDM Vol. 3A 6.14.2 64-Bit Mode Stack Frame",
        }
    }
}

/// Receives each decision of the model: the rule applied and the value it produced (an
/// address, a level, a quadword; 0 where the rule decides nothing numeric).
pub trait Trace {
    /// Called once per decision, in order.
    fn step(&mut self, rule: Rule, value: u64);
}

/// A [`Trace`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

impl Trace for NoTrace {
    fn step(&mut self, _rule: Rule, _value: u64) {}
}
