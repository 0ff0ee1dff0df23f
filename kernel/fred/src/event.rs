//! Events: their architectural type numbers, vectors, and the double-fault classes of
//! SDM Table 6-5.

/// Exception vectors the model names.
pub mod vector {
    /// #DE, divide error.
    pub const DE: u8 = 0;
    /// #DB, debug.
    pub const DB: u8 = 1;
    /// NMI.
    pub const NMI: u8 = 2;
    /// #BP, breakpoint (INT3).
    pub const BP: u8 = 3;
    /// #OF, overflow (INTO).
    pub const OF: u8 = 4;
    /// #UD, invalid opcode.
    pub const UD: u8 = 6;
    /// #NM, device not available.
    pub const NM: u8 = 7;
    /// #DF, double fault.
    pub const DF: u8 = 8;
    /// #TS, invalid TSS.
    pub const TS: u8 = 10;
    /// #NP, segment not present.
    pub const NP: u8 = 11;
    /// #SS, stack-segment fault.
    pub const SS: u8 = 12;
    /// #GP, general protection.
    pub const GP: u8 = 13;
    /// #PF, page fault.
    pub const PF: u8 = 14;
    /// #AC, alignment check.
    pub const AC: u8 = 17;
    /// #MC, machine check.
    pub const MC: u8 = 18;
    /// #VE, virtualization exception.
    pub const VE: u8 = 20;
    /// #CP, control protection.
    pub const CP: u8 = 21;
}

/// The event type, with its architectural number (the SS word's bits 51:48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventType {
    /// 0: external (maskable) interrupt.
    ExternalInterrupt = 0,
    /// 2: non-maskable interrupt.
    Nmi = 2,
    /// 3: hardware exception.
    HardwareException = 3,
    /// 4: software interrupt, INT n.
    SoftwareInterrupt = 4,
    /// 5: privileged software exception, INT1.
    PrivilegedSoftwareException = 5,
    /// 6: software exception, INT3 or INTO.
    SoftwareException = 6,
    /// 7: other event, SYSCALL (vector 1) or SYSENTER (vector 2).
    Other = 7,
}

impl EventType {
    /// The type with architectural number `n`, if there is one (1 is not a FRED type).
    pub const fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => EventType::ExternalInterrupt,
            2 => EventType::Nmi,
            3 => EventType::HardwareException,
            4 => EventType::SoftwareInterrupt,
            5 => EventType::PrivilegedSoftwareException,
            6 => EventType::SoftwareException,
            7 => EventType::Other,
            _ => return None,
        })
    }

    /// The architectural number.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// Whether the event is caused by executing an instruction (INT n, INT1, INT3/INTO,
    /// SYSCALL/SYSENTER): its frame records the instruction length and the RIP after it.
    pub const fn is_instruction(self) -> bool {
        matches!(
            self,
            EventType::SoftwareInterrupt
                | EventType::PrivilegedSoftwareException
                | EventType::SoftwareException
                | EventType::Other
        )
    }
}

/// One event to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The type.
    pub kind: EventType,
    /// The vector (for `Other`: 1 SYSCALL, 2 SYSENTER).
    pub vector: u8,
    /// The error code (pushed always under FRED; 0 when the event has none).
    pub error_code: u64,
    /// The event data quadword (CR2 for #PF, debug conditions for #DB, XFD_ERR for #NM).
    pub event_data: u64,
    /// The instruction length (kept only for instruction events, see [`EventType::is_instruction`]).
    pub ilen: u8,
}

impl Event {
    /// A hardware exception with an error code (0 if it has none).
    pub const fn exception(vector: u8, error_code: u64) -> Self {
        Event {
            kind: EventType::HardwareException,
            vector,
            error_code,
            event_data: 0,
            ilen: 0,
        }
    }

    /// A page fault at `cr2`.
    pub const fn page_fault(cr2: u64, error_code: u64) -> Self {
        Event {
            kind: EventType::HardwareException,
            vector: vector::PF,
            error_code,
            event_data: cr2,
            ilen: 0,
        }
    }

    /// A double fault (error code 0).
    pub const fn double_fault() -> Self {
        Self::exception(vector::DF, 0)
    }

    /// An external interrupt.
    pub const fn external_interrupt(vector: u8) -> Self {
        Event {
            kind: EventType::ExternalInterrupt,
            vector,
            error_code: 0,
            event_data: 0,
            ilen: 0,
        }
    }

    /// An NMI.
    pub const fn nmi() -> Self {
        Event {
            kind: EventType::Nmi,
            vector: vector::NMI,
            error_code: 0,
            event_data: 0,
            ilen: 0,
        }
    }

    /// INT n, `ilen` bytes long.
    pub const fn int_n(vector: u8, ilen: u8) -> Self {
        Event {
            kind: EventType::SoftwareInterrupt,
            vector,
            error_code: 0,
            event_data: 0,
            ilen,
        }
    }

    /// INT3 (one byte).
    pub const fn int3() -> Self {
        Event {
            kind: EventType::SoftwareException,
            vector: vector::BP,
            error_code: 0,
            event_data: 0,
            ilen: 1,
        }
    }

    /// SYSCALL (two bytes).
    pub const fn syscall() -> Self {
        Event {
            kind: EventType::Other,
            vector: 1,
            error_code: 0,
            event_data: 0,
            ilen: 2,
        }
    }

    /// Whether this is the #DF hardware exception.
    pub const fn is_double_fault(&self) -> bool {
        matches!(self.kind, EventType::HardwareException) && self.vector == vector::DF
    }

    /// The class of the event as a *first* event in SDM Table 6-5: only hardware exceptions
    /// can be contributory, #PF or #DF; every interrupt and software event is benign.
    pub const fn first_class(&self) -> ExceptionClass {
        match self.kind {
            EventType::HardwareException => ExceptionClass::of(self.vector),
            _ => ExceptionClass::Benign,
        }
    }

    /// Whether delivering this event sets RFLAGS.RF in the saved RFLAGS: hardware exceptions
    /// of the fault class other than #DB (Bochs cpu/exception.cc `exception`).
    pub const fn sets_resume_flag(&self) -> bool {
        matches!(self.kind, EventType::HardwareException)
            && self.vector != vector::DB
            && !matches!(self.vector, vector::BP | vector::OF | vector::MC)
    }
}

/// The classes of SDM Table 6-5 ("Conditions for Generating a Double Fault").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// Every other exception, and all interrupts.
    Benign,
    /// #DE, #TS, #NP, #SS, #GP (and #CP, as Bochs classes it).
    Contributory,
    /// #PF (and #VE, as Bochs classes it).
    PageFault,
    /// #DF itself.
    DoubleFault,
}

impl ExceptionClass {
    /// The class of exception `vector`.
    pub const fn of(v: u8) -> Self {
        match v {
            vector::DE | vector::TS | vector::NP | vector::SS | vector::GP | vector::CP => {
                ExceptionClass::Contributory
            }
            vector::PF | vector::VE => ExceptionClass::PageFault,
            vector::DF => ExceptionClass::DoubleFault,
            _ => ExceptionClass::Benign,
        }
    }

    /// Whether `second`, raised while delivering an event of class `self`, becomes #DF
    /// (SDM Table 6-5). A fault while delivering #DF is a shutdown, decided by the caller.
    pub const fn escalates(self, second: ExceptionClass) -> bool {
        matches!(
            (self, second),
            (ExceptionClass::Contributory, ExceptionClass::Contributory)
                | (ExceptionClass::PageFault, ExceptionClass::Contributory)
                | (ExceptionClass::PageFault, ExceptionClass::PageFault)
        )
    }
}

/// Whether exception `v` pushes an error code under legacy IDT delivery (#DF, #TS, #NP, #SS,
/// #GP, #PF, #AC, #CP).
pub const fn has_error_code(v: u8) -> bool {
    matches!(
        v,
        vector::DF
            | vector::TS
            | vector::NP
            | vector::SS
            | vector::GP
            | vector::PF
            | vector::AC
            | vector::CP
    )
}
