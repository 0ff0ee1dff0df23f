//! Which stack an address belongs to. Fault handlers find stacks from the faulting address,
//! never from "the current thread" alone (facts.md §3: during a context switch `current` and
//! RSP disagree for a moment).

use spin::Once;

use crate::arch::x86_64::gdt;
use crate::mem::kva::{self, GuardedArea};

/// What kind of stack an address is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The stack the kernel's boot path runs on after leaving the boot loader's.
    Boot,
    /// An IST stack of the named vector.
    Ist(&'static str),
}

/// A stack and its guard, as found from an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    pub kind: StackKind,
    /// Lowest mapped address.
    pub lo: u64,
    /// One past the highest address (the initial RSP).
    pub hi: u64,
    /// The unmapped guard range below `lo`.
    pub guard: (u64, u64),
}

impl StackInfo {
    pub fn name(&self) -> &'static str {
        match self.kind {
            StackKind::Boot => "boot",
            StackKind::Ist(n) => n,
        }
    }

    /// Whether `addr` is in this stack's guard range.
    pub fn in_guard(&self, addr: u64) -> bool {
        addr >= self.guard.0 && addr < self.guard.1
    }

    /// Whether `addr` is in the mapped part.
    pub fn in_mapped(&self, addr: u64) -> bool {
        addr >= self.lo && addr < self.hi
    }

    fn from_area(kind: StackKind, a: GuardedArea) -> StackInfo {
        StackInfo { kind, lo: a.bottom, hi: a.top, guard: a.guard() }
    }
}

/// Size of the boot stack.
pub const BOOT_STACK_PAGES: u64 = 16;

static BOOT_STACK: Once<GuardedArea> = Once::new();

/// Allocates the boot stack; returns its top.
pub fn alloc_boot_stack() -> u64 {
    BOOT_STACK.call_once(|| kva::alloc_guarded(BOOT_STACK_PAGES)).top
}

/// The stack (mapped part or guard page) that contains `addr`.
pub fn find(addr: u64) -> Option<StackInfo> {
    if let Some(b) = BOOT_STACK.get() {
        let info = StackInfo::from_area(StackKind::Boot, *b);
        if info.in_guard(addr) || info.in_mapped(addr) {
            return Some(info);
        }
    }
    gdt::ist_containing(addr).map(|(ist, a)| StackInfo::from_area(StackKind::Ist(ist.name()), a))
}
