//! The boot stack: the kernel's own guard-paged stack for the boot path (thread 1), entered
//! once from the entry point and never left.

use core::ops::Range;
use spin::Once;

use crate::arch::x86_64::stackswitch;
use crate::mem::kva;

/// Size of the boot stack.
pub const BOOT_STACK_PAGES: u64 = 16;

static BOOT_STACK: Once<Range<u64>> = Once::new();

/// Allocates the boot stack, records where it is (for `find`) and moves onto it for good,
/// running `f`. Called once, from the entry point.
pub fn enter_boot_stack(f: extern "sysv64" fn(u64) -> !) -> ! {
    assert!(BOOT_STACK.get().is_none(), "the boot stack is entered once");
    let (area, stack) = kva::alloc_stack(BOOT_STACK_PAGES);
    BOOT_STACK.call_once(|| area.bottom..area.top);
    stackswitch::run_forever(stack, f, 0)
}

/// The boot stack's mapped part, once entered.
pub(super) fn area() -> Option<Range<u64>> {
    BOOT_STACK.get().cloned()
}
