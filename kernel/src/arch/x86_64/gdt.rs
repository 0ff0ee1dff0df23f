//! GDT and TSS, with one IST stack per critical vector.
//!
//! Each IST stack is a guarded area (`mem::kva`): an unmapped page below it turns an overflow of
//! the handler's own stack into a fault instead of silent corruption of whatever lies below.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use crate::mem::kva::{self, GuardedArea};

/// IST slots (0-based, as `EntryOptions::set_stack_index` takes them; the TSS field is IST1..7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Ist {
    DoubleFault = 0,
    PageFault = 1,
    Nmi = 2,
    MachineCheck = 3,
}

impl Ist {
    pub const ALL: [Ist; 4] = [
        Ist::DoubleFault,
        Ist::PageFault,
        Ist::Nmi,
        Ist::MachineCheck,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Ist::DoubleFault => "#DF",
            Ist::PageFault => "#PF",
            Ist::Nmi => "NMI",
            Ist::MachineCheck => "#MC",
        }
    }

    /// Stack size in pages.
    const fn pages(self) -> u64 {
        match self {
            // Reports (formatting, backtrace) run here.
            Ist::DoubleFault | Ist::PageFault => 4,
            Ist::Nmi | Ist::MachineCheck => 2,
        }
    }
}

struct Tables {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss_sel: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static IST_AREAS: Once<[GuardedArea; 4]> = Once::new();
static TABLES: Once<Tables> = Once::new();

/// The IST stacks, for address-to-stack lookups in fault reports.
pub fn ist_areas() -> &'static [GuardedArea; 4] {
    IST_AREAS.get().expect("gdt::init ran")
}

/// Which IST stack (if any) contains `addr`, or has its guard page there.
pub fn ist_containing(addr: u64) -> Option<(Ist, GuardedArea)> {
    let areas = IST_AREAS.get()?;
    Ist::ALL
        .into_iter()
        .zip(areas.iter())
        .find(|(_, a)| addr >= a.bottom - 4096 && addr < a.top)
        .map(|(i, a)| (i, *a))
}

/// Builds and loads the GDT and TSS, and reloads every segment register.
pub fn init() {
    let areas = IST_AREAS.call_once(|| Ist::ALL.map(|i| kva::alloc_guarded(i.pages())));
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (ist, area) in Ist::ALL.iter().zip(areas.iter()) {
            tss.interrupt_stack_table[*ist as usize] = VirtAddr::new(area.top);
        }
        tss
    });
    let t = TABLES.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment(tss));
        Tables {
            gdt,
            code,
            data,
            tss_sel,
        }
    });
    t.gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded (64-bit code, data, and
    // an available TSS that lives in a static). SS/DS/ES must be reloaded too, or the first
    // `iretq` would restore a selector from the boot loader's GDT (facts.md §1 pitfall).
    unsafe {
        CS::set_reg(t.code);
        SS::set_reg(t.data);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        load_tss(t.tss_sel);
    }
}
