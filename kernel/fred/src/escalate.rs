//! What happens when delivering an event faults: SDM Table 6-5, shared by FRED and legacy
//! delivery. Each failed delivery is kept as an [`Attempt`].
//!
//! The chain is short: after the first failure every event is a hardware exception and every
//! further fault is #PF (a frame write) or #GP (a non-canonical entry point). #PF or #GP while
//! delivering #PF, or #GP while delivering #GP, is #DF; #PF while delivering #GP is serial, so at
//! most one more #PF comes before #DF; and any fault while delivering #DF is a shutdown. That is
//! at most four failed deliveries.

use crate::event::{Event, EventType, ExceptionClass, vector};
use crate::rule::{Rule, Trace};

/// How a delivery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The event was delivered at the first try.
    Delivered,
    /// Delivering the event faulted and the fault was itself delivered as an exception
    /// (serially, not as #DF).
    Nested,
    /// Delivery faulted in a way SDM Table 6-5 turns into #DF, and #DF was delivered.
    DoubleFault,
    /// Delivering #DF faulted: shutdown (triple fault). Nothing was delivered.
    Shutdown,
}

impl Outcome {
    /// The name the JSON driver prints.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Nested => "nested",
            Outcome::DoubleFault => "double_fault",
            Outcome::Shutdown => "shutdown",
        }
    }
}

/// The fault that stopped a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Its vector (#PF for a frame write, #GP for a non-canonical entry point).
    pub vector: u8,
    /// Its error code.
    pub error_code: u64,
    /// For #PF, the linear address (CR2); else 0.
    pub address: u64,
}

impl Fault {
    /// A not-present #PF on a supervisor write at `address` (error code 2: W/R set, P and
    /// U/S clear).
    pub const fn frame_write(address: u64) -> Self {
        Fault {
            vector: vector::PF,
            error_code: 2,
            address,
        }
    }

    /// #GP(0).
    pub const fn general_protection() -> Self {
        Fault {
            vector: vector::GP,
            error_code: 0,
            address: 0,
        }
    }
}

/// One delivery that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The event being delivered.
    pub event: Event,
    /// Whether it was itself a nested exception.
    pub nested: bool,
    /// The stack level it would have used (legacy delivery: the IST index, 0 for none).
    pub level: u8,
    /// The top of the frame it was writing.
    pub frame_top: u64,
    /// What went wrong.
    pub fault: Fault,
}

/// The failed deliveries, in order (at most four; the module documentation says why no more
/// can happen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    items: [Option<Attempt>; 4],
    len: usize,
}

impl Default for Attempts {
    fn default() -> Self {
        Self::new()
    }
}

impl Attempts {
    /// No attempts.
    pub const fn new() -> Self {
        Attempts {
            items: [None; 4],
            len: 0,
        }
    }

    fn push(&mut self, a: Attempt) -> bool {
        if self.len == self.items.len() {
            return false;
        }
        self.items[self.len] = Some(a);
        self.len += 1;
        true
    }

    /// How many deliveries faulted.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether none did.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th failed delivery.
    pub fn get(&self, i: usize) -> Option<&Attempt> {
        self.items.get(i).and_then(Option::as_ref)
    }

    /// All of them, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Attempt> {
        self.items[..self.len].iter().flatten()
    }
}

/// The result of a delivery, FRED ([`crate::deliver::Delivery`]) or legacy
/// ([`crate::legacy::LegacyDelivery`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report<D> {
    /// How it ended.
    pub outcome: Outcome,
    /// What was delivered (`None` only for a shutdown).
    pub delivered: Option<D>,
    /// The deliveries that faulted, in order.
    pub attempts: Attempts,
    /// The CPU state afterwards (for a shutdown: the state before, with CR2 updated).
    pub after: crate::state::CpuState,
}

/// The result of [`run`]: how it ended, what was finally delivered (with its nested flag),
/// the failed attempts, and the last CR2 a #PF wrote.
pub(crate) struct Escalation<D> {
    pub outcome: Outcome,
    pub delivered: Option<(D, Event, bool)>,
    pub attempts: Attempts,
    pub cr2: Option<u64>,
}

/// Delivers `first` with `try_deliver(event, nested)`, and on each fault applies SDM Table 6-5:
/// the fault becomes #DF, or is delivered serially as a (nested) exception, or, while
/// delivering #DF, a shutdown. `nested_for(prev)` says whether an exception raised while
/// delivering `prev` carries the nested flag.
///
/// The sequence is bounded (at most four failures, see the module documentation); should a
/// fifth ever be needed the attempt list is full and the result is a shutdown.
pub(crate) fn run<D, T: Trace>(
    first: Event,
    mut try_deliver: impl FnMut(&Event, bool, &mut T) -> Result<D, (Fault, u8, u64)>,
    nested_for: impl Fn(&Event) -> bool,
    trace: &mut T,
) -> Escalation<D> {
    let mut ev = first;
    let mut nested = false;
    let mut attempts = Attempts::new();
    let mut cr2 = None;
    loop {
        match try_deliver(&ev, nested, trace) {
            Ok(d) => {
                let outcome = if attempts.is_empty() {
                    Outcome::Delivered
                } else if ev.is_double_fault() {
                    Outcome::DoubleFault
                } else {
                    Outcome::Nested
                };
                return Escalation {
                    outcome,
                    delivered: Some((d, ev, nested)),
                    attempts,
                    cr2,
                };
            }
            Err((fault, level, frame_top)) => {
                let recorded = attempts.push(Attempt {
                    event: ev,
                    nested,
                    level,
                    frame_top,
                    fault,
                });
                if fault.vector == vector::PF {
                    cr2 = Some(fault.address);
                }
                if ev.is_double_fault() || !recorded {
                    trace.step(Rule::Shutdown, 0);
                    return Escalation {
                        outcome: Outcome::Shutdown,
                        delivered: None,
                        attempts,
                        cr2,
                    };
                }
                trace.step(Rule::NestedContext, fault.vector as u64);
                let second = ExceptionClass::of(fault.vector);
                if ev.first_class().escalates(second) {
                    trace.step(Rule::DoubleFaultClasses, vector::DF as u64);
                    ev = Event::double_fault();
                    nested = false;
                } else {
                    trace.step(Rule::DoubleFaultClasses, fault.vector as u64);
                    nested = nested_for(&ev);
                    ev = Event {
                        kind: EventType::HardwareException,
                        vector: fault.vector,
                        error_code: fault.error_code,
                        event_data: if fault.vector == vector::PF {
                            fault.address
                        } else {
                            0
                        },
                        ilen: 0,
                    };
                }
            }
        }
    }
}

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
