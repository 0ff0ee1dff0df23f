//! A pure model of FRED (Flexible Return and Event Delivery) and, for comparison, of legacy
//! IDT event delivery in 64-bit mode.
//!
//! Everything here is arithmetic on a described CPU state: nothing touches hardware, nothing
//! allocates and nothing uses floating point, so the kernel can run the same code to perform a
//! *simulated* delivery on the real machine (probing its own page tables through
//! [`mem::FaultProbe`]), while the host tests it exhaustively.
//!
//! * [`deliver::deliver`]: FRED event delivery, including faults while writing the frame
//!   (nested exceptions, escalation to #DF, shutdown).
//! * [`eret::erets`] and [`eret::eretu`]: the FRED return instructions and every check that makes
//!   them fault.
//! * [`legacy::deliver`]: IDT delivery with IST stacks, for the comparison.
//! * `json` (feature `json`): the line-oriented driver behind `cargo lab fred`.
//!
//! Each rule the model applies is a [`rule::Rule`] naming its source; `docs/fred.md` lists them
//! and says where the sources disagree.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod deliver;
pub mod eret;
pub mod escalate;
pub mod event;
pub mod legacy;
pub mod mem;
pub mod msr;
pub mod real;
pub mod rule;
pub mod sim;
pub mod state;

#[cfg(feature = "json")]
pub mod json;

pub use deliver::{Delivered, Delivery, NestedPolicy, Options, Outcome, deliver, deliver_with};
pub use eret::{EretError, Returned, erets, eretu};
pub use event::{Event, EventType};
pub use mem::{FaultProbe, NoFaults, Unmapped};
pub use msr::{FredConfig, FredMsrs, StackLevels};
pub use rule::{NoTrace, Rule, Trace};
pub use state::CpuState;

/// Whether `addr` is canonical for 4-level paging (bits 63:47 all equal).
pub const fn is_canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}
