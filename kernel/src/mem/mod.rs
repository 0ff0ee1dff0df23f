//! Memory: physical frames, page tables, the kernel's own virtual areas and the heap.
//!
//! Together with `crate::arch` this is the only place with `unsafe`. The boot loader maps all
//! physical memory at a fixed offset (`Mapping::Dynamic` in `main.rs`); page tables are edited
//! through that window.
//!
//! Kernel virtual layout (one level-4 slot that the boot loader is kept out of, see
//! [`KVA_BASE`]):
//!
//! | offset from `KVA_BASE` | what |
//! |---|---|
//! | 0 | kernel heap ([`heap::HEAP_SIZE`]) |
//! | 1 GiB | guarded areas: IST stacks and other fixed stacks, each above an unmapped page |
//! | 2 GiB | the demand-paged area ([`lazy`]) |
//! | 64 GiB | thread stack slots ([`STACK_REGION`], carved up by `crate::stacks`) |

pub mod frame;
pub mod heap;
pub mod kva;
pub mod lazy;
pub mod reserve;
pub mod stackmap;

use core::ops::Range;

use bootloader_api::BootInfo;
use spin::{Mutex, Once};
use x86_64::VirtAddr;
use x86_64::structures::paging::{OffsetPageTable, PageTable};

/// Start of the kernel's own virtual area: level-4 index 448. The boot loader's dynamic
/// mappings are confined below it by `BOOTLOADER_CONFIG` in `main.rs`.
pub const KVA_BASE: u64 = 0xffff_e000_0000_0000;
/// Highest address the boot loader may use for its dynamic mappings.
pub const BOOTLOADER_DYNAMIC_END: u64 = 0xffff_c000_0000_0000 - 1;

/// The thread-stack region: 1 GiB, 64 GiB into the kernel's area.
pub const STACK_REGION: Range<u64> = KVA_BASE + (64 << 30)..KVA_BASE + (65 << 30);

/// Whether `[lo, hi)` lies inside `r`.
fn contains(r: &Range<u64>, lo: u64, hi: u64) -> bool {
    lo >= r.start && hi <= r.end && lo <= hi
}

static PHYS_OFFSET: Once<u64> = Once::new();
static MAPPER: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);

/// The virtual address at which physical address 0 is mapped.
pub fn phys_offset() -> u64 {
    *PHYS_OFFSET.get().expect("mem::init ran")
}

/// Runs `f` with the kernel page-table mapper, interrupts disabled.
fn with_mapper<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    crate::arch::x86_64::cpu::without_interrupts(|| {
        let mut guard = MAPPER.lock();
        f(guard.as_mut().expect("mem::init ran"))
    })
}

/// Sets up frames, page tables and the heap. Must run once, before anything allocates.
pub fn init(boot_info: &BootInfo) {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("the boot loader maps physical memory (BOOTLOADER_CONFIG asks for it)");
    PHYS_OFFSET.call_once(|| offset);

    frame::init(&boot_info.memory_regions, offset);

    let (l4_frame, _) = x86_64::registers::control::Cr3::read();
    let l4_virt = offset + l4_frame.start_address().as_u64();
    // SAFETY: CR3 names the active level-4 table; with all physical memory mapped at `offset`
    // this is its virtual address. This is the only `&mut` ever made to it (it moves into
    // MAPPER, and `init` runs once).
    let l4: &mut PageTable = unsafe { &mut *(l4_virt as *mut PageTable) };
    assert!(
        l4[kva::l4_index()].is_unused(),
        "level-4 slot {} at {KVA_BASE:#x} is already used by the boot loader",
        kva::l4_index()
    );
    // SAFETY: `offset` is where the boot loader mapped all of physical memory (boot info).
    let mapper = unsafe { OffsetPageTable::new(l4, VirtAddr::new(offset)) };
    crate::arch::x86_64::cpu::without_interrupts(|| *MAPPER.lock() = Some(mapper));

    heap::init();
    lazy::init();
}

/// Why [`probe_read`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRefused;

/// Reads one byte for the `read ADDR` command, whose point is to see what a fault at `addr`
/// does: an unmapped address is read (the load faults, and the #PF handler maps memory there
/// or stops the machine), and so is the demand area. Any other mapped address is refused,
/// since reading memory that some object owns, or device registers, is not this command's job.
pub fn probe_read(addr: u64) -> Result<u8, ProbeRefused> {
    if let Some(v) = lazy::read(addr) {
        return Ok(v);
    }
    if stackmap::is_present(addr) {
        return Err(ProbeRefused);
    }
    // SAFETY: no mapping covers `addr` (checked just above, on this one CPU with nothing
    // mapping pages outside the fault path), so the load cannot touch memory: it faults, and
    // the #PF handler decides.
    Ok(unsafe { crate::arch::x86_64::provoke::read_byte(addr) })
}
