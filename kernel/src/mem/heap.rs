//! The kernel heap: `linked_list_allocator` behind a spinlock taken with interrupts disabled
//! (an interrupt handler never allocates, but a thread may be preempted; disabling interrupts
//! keeps the lock holder running).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use spin::Mutex;

/// Heap size. Thread control blocks and bookkeeping live here; stacks do not.
pub const HEAP_SIZE: u64 = 8 << 20;
const HEAP_START: u64 = super::KVA_BASE;

struct KernelHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: `Heap` hands out disjoint, correctly aligned blocks from its arena; the mutex
// serialises all access, and interrupts are off while it is held.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::arch::x86_64::cpu::without_interrupts(|| {
            self.0
                .lock()
                .allocate_first_fit(layout)
                .map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this `layout`.
            crate::arch::x86_64::cpu::without_interrupts(|| unsafe {
                self.0.lock().deallocate(p, layout)
            });
        }
    }
}

pub(super) fn init() {
    super::kva::map_range(HEAP_START, HEAP_SIZE / 4096);
    crate::arch::x86_64::cpu::without_interrupts(|| {
        // SAFETY: [HEAP_START, HEAP_START + HEAP_SIZE) was just mapped, writable, and is used
        // by nothing but this heap; `init` runs once.
        unsafe {
            HEAP.0
                .lock()
                .init(HEAP_START as *mut u8, HEAP_SIZE as usize)
        };
    });
}

/// The heap's use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes allocated.
    pub used: usize,
    /// Bytes free.
    pub free: usize,
}

/// The heap's use now.
pub fn usage() -> HeapUsage {
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let h = HEAP.0.lock();
        HeapUsage {
            used: h.used(),
            free: h.free(),
        }
    })
}
