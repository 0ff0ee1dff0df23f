//! The explicit API: `ensure` maps stack ahead of a known-deep path (Wilcox's "ensure at
//! least N bytes of stack"; Windows' KeExpandKernelStackAndCallout), and `with_extra_stack`
//! runs a closure on a pooled stack when the current one cannot provide the bytes, failing
//! with an error instead of overflowing when the pool is empty (Owens, "Handling kernel stack
//! overflows", 2007).

use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, Once};

use super::slots::{self, FrameSource, GrowError};
use crate::arch::x86_64::space::OwnedStack;
use crate::arch::x86_64::{cpu, stackswitch};
use crate::mem::kva;

/// Why `ensure` could not provide the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnsureError {
    /// `rsp` is on no stack the kernel knows.
    UnknownStack,
    /// The policy's maximum is too small.
    TooDeep {
        /// Bytes the policy allows below `rsp`.
        available: u64,
    },
    /// The frame allocator is empty.
    NoMemory,
}

/// Makes sure `bytes` below `rsp` are mapped, mapping pages from the general allocator
/// (process context, no fault). Returns how many pages were mapped. On a stack that does not
/// grow (the boot stack, a pool stack) it only checks that the bytes are there.
pub fn ensure(rsp: u64, bytes: u64) -> Result<u64, EnsureError> {
    let Some(s) = slots::live_slot(rsp) else {
        let info = super::find(rsp)
            .filter(|i| i.in_mapped(rsp))
            .ok_or(EnsureError::UnknownStack)?;
        return match rsp.checked_sub(bytes) {
            Some(need) if need >= info.lo() => Ok(0),
            _ => Err(EnsureError::TooDeep {
                available: rsp - info.lo(),
            }),
        };
    };
    let need = rsp.saturating_sub(bytes);
    if need < s.floor {
        return Err(EnsureError::TooDeep {
            available: rsp - s.floor,
        });
    }
    let page = need & !(stacklab_core::stack_layout::PAGE - 1);
    cpu::without_interrupts(|| slots::grow_down_to(page, FrameSource::Allocator)).map_err(|e| {
        match e {
            GrowError::ReserveEmpty | GrowError::OutOfMemory | GrowError::MapFailed => {
                EnsureError::NoMemory
            }
        }
    })
}

/// Stacks in the extra-stack pool.
pub const EXTRA_STACKS: usize = 2;
/// Size of each.
pub const EXTRA_STACK_BYTES: u64 = 32 * 1024;

static POOL: Mutex<Vec<OwnedStack>> = Mutex::new(Vec::new());
static AREAS: Once<[Range<u64>; EXTRA_STACKS]> = Once::new();
static USED: AtomicU64 = AtomicU64::new(0);

fn pool_init() {
    AREAS.call_once(|| {
        core::array::from_fn(|_| {
            let (area, stack) = kva::alloc_stack(EXTRA_STACK_BYTES / 4096);
            cpu::without_interrupts(|| POOL.lock().push(stack));
            area.bottom..area.top
        })
    });
}

/// The pool stacks' mapped parts (for `find`), once the pool exists.
pub(super) fn areas() -> impl Iterator<Item = Range<u64>> {
    AREAS.get().into_iter().flatten().cloned()
}

/// Times a pool stack was used.
pub fn extra_used() -> u64 {
    USED.load(Ordering::Relaxed)
}

/// Why `with_extra_stack` could not run its closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraError {
    /// The current stack could not provide the bytes and the pool is empty.
    PoolEmpty,
}

/// Runs `f` on the current stack if `bytes` more can be mapped there (`ensure`), otherwise on a
/// stack from the pool; returns an error instead of overflowing when the pool is empty.
pub fn with_extra_stack<R>(bytes: u64, f: impl FnOnce() -> R) -> Result<R, ExtraError> {
    if ensure(cpu::rsp(), bytes).is_ok() {
        return Ok(f());
    }
    pool_init();
    let mut s = cpu::without_interrupts(|| POOL.lock().pop()).ok_or(ExtraError::PoolEmpty)?;
    USED.fetch_add(1, Ordering::Relaxed);
    let mut f = Some(f);
    let mut out = None;
    stackswitch::call_on(&mut s, &mut || out = f.take().map(|f| f()));
    cpu::without_interrupts(|| POOL.lock().push(s));
    Ok(out.expect("the closure ran"))
}
