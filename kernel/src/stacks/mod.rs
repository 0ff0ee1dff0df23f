//! Kernel stacks as a mechanism: which stack an address is on, thread-stack slots, the frame
//! reserve that growth draws on, and the explicit API (`ensure`, `with_extra_stack`).
//!
//! Fault handlers find stacks from the faulting address, never from "the current thread"
//! alone: during a context switch `current` and RSP disagree for a moment (tglx's objection to
//! the dynamic-stacks RFC, LKML 2024). The pure geometry (slot arithmetic, zones, policies)
//! is `stacklab_core::stack_layout`; the decisions about growth are
//! `stacklab_core::growth_rules`.

mod boot;
mod extra;
mod reserve;
mod slots;

use core::ops::Range;

use crate::arch::x86_64::gdt;

pub use boot::enter_boot_stack;
pub use extra::{EnsureError, ExtraError, ensure, extra_used, with_extra_stack};
pub use reserve::{
    DEFAULT_RESERVE, refill as reserve_refill, set as reserve_set, stats as reserve_stats,
    store as reserve_store,
};
pub use slots::{
    FrameSource, GrowError, SpanError, StackError, ThreadStack, create, grow_down_to, histogram,
    layout, live_slot, release, set_span,
};

/// What kind of stack an address is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The stack the kernel's boot path (thread 1) runs on.
    Boot,
    /// An IST stack of the named vector.
    Ist(&'static str),
    /// A stack of the extra-stack pool.
    Extra,
    /// A thread-stack slot.
    Thread {
        /// Slot index.
        slot: usize,
        /// Owner thread.
        tid: u64,
    },
}

/// A stack and its guard, as found from an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackInfo {
    /// What it is.
    pub kind: StackKind,
    /// The mapped part; its end is the initial RSP.
    pub mapped: Range<u64>,
    /// The unmapped range below the mapped part that counts as guard.
    pub guard: Range<u64>,
    /// Thread name (threads only), NUL-padded.
    pub name: [u8; NAME_LEN],
}

/// Bytes of a thread name kept in the slot table.
pub const NAME_LEN: usize = 24;

impl StackInfo {
    /// The name reports use: the thread's, or the stack's kind.
    pub fn name(&self) -> &str {
        match self.kind {
            StackKind::Boot => "boot",
            StackKind::Ist(n) => n,
            StackKind::Extra => "extra-stack",
            StackKind::Thread { .. } => {
                let n = self.name.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
                core::str::from_utf8(&self.name[..n]).unwrap_or("?")
            }
        }
    }

    /// Lowest mapped address.
    pub fn lo(&self) -> u64 {
        self.mapped.start
    }

    /// One past the highest address (the initial RSP).
    pub fn hi(&self) -> u64 {
        self.mapped.end
    }

    /// Whether `addr` is in this stack's guard range.
    pub fn in_guard(&self, addr: u64) -> bool {
        self.guard.contains(&addr)
    }

    /// Whether `addr` is in the mapped part.
    pub fn in_mapped(&self, addr: u64) -> bool {
        self.mapped.contains(&addr)
    }

    fn fixed(kind: StackKind, mapped: Range<u64>) -> StackInfo {
        StackInfo {
            kind,
            guard: mapped.start - 4096..mapped.start,
            mapped,
            name: [0; NAME_LEN],
        }
    }
}

/// The stack (mapped part or guard) that contains `addr`.
pub fn find(addr: u64) -> Option<StackInfo> {
    if let Some(info) = slots::find(addr) {
        return Some(info);
    }
    let fixed = boot::area()
        .map(|a| (StackKind::Boot, a))
        .into_iter()
        .chain(extra::areas().map(|a| (StackKind::Extra, a)));
    for (kind, a) in fixed {
        let info = StackInfo::fixed(kind, a);
        if info.in_guard(addr) || info.in_mapped(addr) {
            return Some(info);
        }
    }
    gdt::ist_containing(addr).map(|(ist, a)| StackInfo::fixed(StackKind::Ist(ist.name()), a))
}
