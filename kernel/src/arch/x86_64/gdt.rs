//! GDT and TSS, with one IST stack per critical vector.
//!
//! Each IST stack is handed in by the memory layer as an [`OwnedStack`] with an unmapped page
//! below it, which turns an overflow of the handler's own stack into a fault instead of silent
//! corruption of whatever lies below.

use core::ops::Range;
use spin::Once;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::space::OwnedStack;

const PAGE: u64 = 4096;

/// IST slots (0-based, as `EntryOptions::set_stack_index` takes them; the TSS field is IST1..7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
#[allow(missing_docs)] // named for their vectors
pub enum Ist {
    DoubleFault = 0,
    PageFault = 1,
    Nmi = 2,
    MachineCheck = 3,
}

impl Ist {
    /// Every IST stack, in TSS order.
    pub const ALL: [Ist; 4] = [
        Ist::DoubleFault,
        Ist::PageFault,
        Ist::Nmi,
        Ist::MachineCheck,
    ];

    /// The vector's mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            Ist::DoubleFault => "#DF",
            Ist::PageFault => "#PF",
            Ist::Nmi => "NMI",
            Ist::MachineCheck => "#MC",
        }
    }

    /// The IST number an IDT gate names (1-7).
    pub const fn tss_index(self) -> u8 {
        self as u8 + 1
    }

    /// Stack size in pages the kernel should give it.
    pub const fn pages(self) -> u64 {
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
/// The IST stacks, owned by the TSS for good.
static IST_STACKS: Once<[OwnedStack; 4]> = Once::new();
static TABLES: Once<Tables> = Once::new();

/// The mapped part `[bottom, top)` of an IST stack.
pub fn ist_area(ist: Ist) -> Range<u64> {
    let s = &IST_STACKS.get().expect("gdt::init ran")[ist as usize];
    s.bottom().as_u64()..s.top().as_u64()
}

/// Which IST stack (if any) contains `addr`, or has its guard page there; with its mapped
/// part.
pub fn ist_containing(addr: u64) -> Option<(Ist, Range<u64>)> {
    IST_STACKS.get()?;
    Ist::ALL
        .into_iter()
        .map(|i| (i, ist_area(i)))
        .find(|(_, a)| addr >= a.start - PAGE && addr < a.end)
}

/// Builds and loads the GDT and TSS with the given IST stacks (in [`Ist::ALL`] order, each
/// with an unmapped page below it), and reloads every segment register. Runs once.
pub fn init(ist: [OwnedStack; 4]) {
    let stacks = IST_STACKS.call_once(|| ist);
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (i, s) in Ist::ALL.iter().zip(stacks.iter()) {
            tss.interrupt_stack_table[*i as usize] = s.top();
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
    // `iretq` would restore a selector from the boot loader's GDT.
    unsafe {
        CS::set_reg(t.code);
        SS::set_reg(t.data);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        load_tss(t.tss_sel);
    }
}
