//! What the CPU delivered, as one typed value: the seam between trap entry and policy.
//!
//! Every delivery mechanism (the IDT today, a simulated FRED-style delivery next to it)
//! decodes what arrived into an [`Event`] and hands it, with the saved registers, to the same
//! policy code. The vocabulary follows FRED's event types (a FRED frame records the type in
//! bits 51:48 of its SS word): the legacy IDT path does not say what kind of event arrived, so
//! [`Event::decode_idt`] infers it from the vector, and documents where that is ambiguous.

use core::fmt;

/// An interrupt or exception vector (0-255).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vector(pub u8);

impl Vector {
    /// #DE, divide error.
    pub const DIVIDE_ERROR: Vector = Vector(0);
    /// #DB, debug.
    pub const DEBUG: Vector = Vector(1);
    /// NMI, non-maskable interrupt.
    pub const NMI: Vector = Vector(2);
    /// #BP, breakpoint (`int3`).
    pub const BREAKPOINT: Vector = Vector(3);
    /// #OF, overflow (`into`).
    pub const OVERFLOW: Vector = Vector(4);
    /// #BR, bound range exceeded.
    pub const BOUND_RANGE: Vector = Vector(5);
    /// #UD, invalid opcode.
    pub const INVALID_OPCODE: Vector = Vector(6);
    /// #NM, device not available.
    pub const DEVICE_NOT_AVAILABLE: Vector = Vector(7);
    /// #DF, double fault.
    pub const DOUBLE_FAULT: Vector = Vector(8);
    /// #TS, invalid TSS.
    pub const INVALID_TSS: Vector = Vector(10);
    /// #NP, segment not present.
    pub const SEGMENT_NOT_PRESENT: Vector = Vector(11);
    /// #SS, stack-segment fault.
    pub const STACK_SEGMENT: Vector = Vector(12);
    /// #GP, general protection.
    pub const GENERAL_PROTECTION: Vector = Vector(13);
    /// #PF, page fault.
    pub const PAGE_FAULT: Vector = Vector(14);
    /// #MF, x87 floating-point error.
    pub const X87_FLOATING_POINT: Vector = Vector(16);
    /// #AC, alignment check.
    pub const ALIGNMENT_CHECK: Vector = Vector(17);
    /// #MC, machine check.
    pub const MACHINE_CHECK: Vector = Vector(18);
    /// #XM, SIMD floating-point.
    pub const SIMD_FLOATING_POINT: Vector = Vector(19);
    /// #VE, virtualization exception.
    pub const VIRTUALIZATION: Vector = Vector(20);
    /// #CP, control protection.
    pub const CONTROL_PROTECTION: Vector = Vector(21);
    /// #HV, hypervisor injection.
    pub const HV_INJECTION: Vector = Vector(28);
    /// #VC, VMM communication.
    pub const VMM_COMMUNICATION: Vector = Vector(29);
    /// #SX, security exception.
    pub const SECURITY: Vector = Vector(30);
    /// First vector of the remapped 8259 master (IRQ 0, the PIT timer).
    pub const PIC_BASE: Vector = Vector(32);
    /// The timer interrupt (IRQ 0).
    pub const TIMER: Vector = Vector::PIC_BASE;
    /// Legacy PIC lines: vectors 32-47 after remapping.
    pub const PIC_LINES: u8 = 16;

    /// Whether the CPU pushes an error code when it delivers this vector through the IDT
    /// (SDM Vol. 3A, Table 6-1: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX). This table
    /// is the only place in the project that says so; the entry stubs are generated from it.
    pub const fn pushes_error_code(self) -> bool {
        matches!(self.0, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
    }

    /// Whether this is one of the 32 architecturally defined exception vectors.
    pub const fn is_exception(self) -> bool {
        self.0 < 32
    }

    /// Whether this is a line of the remapped legacy PIC pair.
    pub const fn is_pic_line(self) -> bool {
        self.0 >= Vector::PIC_BASE.0 && self.0 < Vector::PIC_BASE.0 + Vector::PIC_LINES
    }

    /// The mnemonic of an exception ("#PF"), "IRQ" for interrupts, "RSV" for reserved ones.
    pub fn mnemonic(self) -> &'static str {
        crate::exception::name(self.0).0
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (vector {})", self.mnemonic(), self.0)
    }
}

/// What kind of event arrived, in FRED's terms (the event-type field of a FRED frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An external (hardware) interrupt: FRED type 0.
    ExternalInterrupt,
    /// A non-maskable interrupt: FRED type 2.
    Nmi,
    /// A hardware exception (a fault or abort the CPU raised): FRED type 3.
    HardwareException,
    /// `INT n`: FRED type 4.
    SoftwareInterrupt,
    /// `INT1`: FRED type 5.
    PrivilegedSoftwareException,
    /// `INT3` or `INTO`: FRED type 6.
    SoftwareException,
    /// SYSCALL or SYSENTER: FRED type 7.
    Other,
}

impl EventKind {
    /// The FRED event-type number.
    pub const fn fred_type(self) -> u8 {
        match self {
            EventKind::ExternalInterrupt => 0,
            EventKind::Nmi => 2,
            EventKind::HardwareException => 3,
            EventKind::SoftwareInterrupt => 4,
            EventKind::PrivilegedSoftwareException => 5,
            EventKind::SoftwareException => 6,
            EventKind::Other => 7,
        }
    }

    /// The kind with this FRED event-type number (1 is reserved).
    pub const fn from_fred_type(t: u8) -> Option<EventKind> {
        Some(match t {
            0 => EventKind::ExternalInterrupt,
            2 => EventKind::Nmi,
            3 => EventKind::HardwareException,
            4 => EventKind::SoftwareInterrupt,
            5 => EventKind::PrivilegedSoftwareException,
            6 => EventKind::SoftwareException,
            7 => EventKind::Other,
            _ => return None,
        })
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ExternalInterrupt => "external-interrupt",
            EventKind::Nmi => "nmi",
            EventKind::HardwareException => "exception",
            EventKind::SoftwareInterrupt => "software-interrupt",
            EventKind::PrivilegedSoftwareException => "int1",
            EventKind::SoftwareException => "software-exception",
            EventKind::Other => "other",
        }
    }
}

/// Which stack the event was delivered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arrival {
    /// The interrupted code's own stack (a normal IDT gate, no privilege change).
    Interrupted,
    /// The top of an IST stack (1-7, as the IDT gate names it): rewound on every delivery.
    Ist(u8),
    /// A FRED stack level (0-3).
    FredLevel(u8),
}

/// One delivered event, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The vector.
    pub vector: Vector,
    /// What kind of event it is.
    pub kind: EventKind,
    /// The error code, for vectors that have one.
    pub error_code: Option<u64>,
    /// Event data as FRED defines it: for #PF the faulting linear address (CR2), captured at
    /// delivery before anything else could fault; for #DF the CR2 a #PF left behind it, or 0
    /// if none did (see the #DF entry path); 0 otherwise.
    pub data: u64,
    /// The stack it arrived on.
    pub stack: Arrival,
}

impl Event {
    /// Decodes an event delivered through the IDT. The IDT does not say what kind of event
    /// arrived, so the kind is inferred from the vector: vector 3 and 4 can only come from
    /// `INT3` and `INTO` here (software exceptions); 2 is NMI; the PIC's 16 lines are external
    /// interrupts; other vectors of 32 and above, which nothing else raises in this kernel, are
    /// `INT n`. A `INT n` naming an exception vector (say `int 14`) looks like the exception
    /// itself on this path, without an error code on the stack: the entry stubs never execute
    /// one, and under FRED the event type tells the two apart. `raw_error_code` is ignored for
    /// vectors that push none.
    pub fn decode_idt(vector: u8, raw_error_code: u64, data: u64, stack: Arrival) -> Event {
        let v = Vector(vector);
        let kind = match v {
            Vector::NMI => EventKind::Nmi,
            Vector::BREAKPOINT | Vector::OVERFLOW => EventKind::SoftwareException,
            v if v.is_exception() => EventKind::HardwareException,
            v if v.is_pic_line() => EventKind::ExternalInterrupt,
            _ => EventKind::SoftwareInterrupt,
        };
        Event {
            vector: v,
            kind,
            error_code: v.pushes_error_code().then_some(raw_error_code),
            data,
            stack,
        }
    }

    /// Decodes an event from the words of a FRED stack frame (Intel FRED specification,
    /// "Event delivery": the frame holds the error code, the interrupted context and, in the
    /// SS word, the event information): the vector is SS-word bits 39:32, the event type bits
    /// 51:48. The error code is kept for hardware exceptions of vectors that have one (the
    /// frame always has a slot for it, 0 when there is none). `data` is the event data the
    /// caller takes from the frame (CR2 for #PF), or what it captured itself (for #DF, whose
    /// frame carries none). A reserved event type (1) is decoded as a hardware exception.
    pub fn decode_fred(ss_word: u64, error_code: u64, data: u64, csl: u8) -> Event {
        let v = Vector((ss_word >> 32) as u8);
        let kind = EventKind::from_fred_type(((ss_word >> 48) & 0xF) as u8)
            .unwrap_or(EventKind::HardwareException);
        Event {
            vector: v,
            kind,
            error_code: (kind == EventKind::HardwareException && v.pushes_error_code())
                .then_some(error_code),
            data,
            stack: Arrival::FredLevel(csl),
        }
    }

    /// The error code, or 0 when the vector has none (as a FRED frame stores it).
    pub fn error_code_or_zero(&self) -> u64 {
        self.error_code.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn error_code_vectors_follow_sdm_table_6_1() {
        let with: Vec<u8> = (0..=255u8)
            .filter(|v| Vector(*v).pushes_error_code())
            .collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn idt_events_decode_by_vector() {
        let cases: [(u8, EventKind, Option<u64>); 9] = [
            (0, EventKind::HardwareException, None),
            (2, EventKind::Nmi, None),
            (3, EventKind::SoftwareException, None),
            (4, EventKind::SoftwareException, None),
            (8, EventKind::HardwareException, Some(0x77)),
            (14, EventKind::HardwareException, Some(0x77)),
            (32, EventKind::ExternalInterrupt, None),
            (47, EventKind::ExternalInterrupt, None),
            (48, EventKind::SoftwareInterrupt, None),
        ];
        for (v, kind, code) in cases {
            let e = Event::decode_idt(v, 0x77, 0, Arrival::Interrupted);
            assert_eq!(
                (e.vector, e.kind, e.error_code),
                (Vector(v), kind, code),
                "{v}"
            );
        }
    }

    #[test]
    fn idt_decode_keeps_event_data_and_arrival() {
        let e = Event::decode_idt(14, 2, 0xdead_b000, Arrival::Ist(2));
        assert_eq!(e.data, 0xdead_b000);
        assert_eq!(e.stack, Arrival::Ist(2));
        assert_eq!(e.error_code_or_zero(), 2);
        let t = Event::decode_idt(32, 99, 0, Arrival::Interrupted);
        assert_eq!(t.error_code_or_zero(), 0, "a timer has no error code");
    }

    #[test]
    fn fred_frames_decode_by_event_type_not_vector() {
        // SS word: vector 39:32, type 51:48, 64-bit mode 57 (Bochs and Linux `struct fred_ss`).
        let ss = |v: u64, t: u64| (v << 32) | (t << 48) | (1 << 57) | 0x18;
        let pf = Event::decode_fred(ss(14, 3), 2, 0xdead_b000, 1);
        assert_eq!(
            (pf.vector, pf.kind, pf.error_code, pf.data, pf.stack),
            (
                Vector::PAGE_FAULT,
                EventKind::HardwareException,
                Some(2),
                0xdead_b000,
                Arrival::FredLevel(1)
            )
        );
        let bp = Event::decode_fred(ss(3, 6), 0, 0, 0);
        assert_eq!(
            (bp.kind, bp.error_code),
            (EventKind::SoftwareException, None)
        );
        let irq = Event::decode_fred(ss(32, 0), 0, 0, 0);
        assert_eq!(
            (irq.vector, irq.kind),
            (Vector::TIMER, EventKind::ExternalInterrupt)
        );
        // `int 14` is an INT n under FRED, not a #PF: no error code even though #PF has one.
        let int14 = Event::decode_fred(ss(14, 4), 0x77, 0, 0);
        assert_eq!(
            (int14.kind, int14.error_code),
            (EventKind::SoftwareInterrupt, None)
        );
        let df = Event::decode_fred(ss(8, 3), 0, 0x1234, 3);
        assert_eq!(
            (df.error_code, df.data, df.stack),
            (Some(0), 0x1234, Arrival::FredLevel(3))
        );
        let reserved = Event::decode_fred(ss(13, 1), 5, 0, 0);
        assert_eq!(
            (reserved.kind, reserved.error_code),
            (EventKind::HardwareException, Some(5))
        );
    }

    #[test]
    fn fred_types_round_trip_and_1_is_reserved() {
        for t in 0..=8u8 {
            match EventKind::from_fred_type(t) {
                Some(k) => assert_eq!(k.fred_type(), t),
                None => assert!(t == 1 || t == 8, "{t}"),
            }
        }
    }

    #[test]
    fn vector_display_names_the_exception() {
        use std::string::ToString;
        assert_eq!(Vector::PAGE_FAULT.to_string(), "#PF (vector 14)");
        assert_eq!(Vector::TIMER.to_string(), "IRQ (vector 32)");
        assert!(Vector::TIMER.is_pic_line() && !Vector(48).is_pic_line());
    }
}
