//! IDT set-up. Every vector 0-47 enters through a naked stub of `entry.rs`.
//!
//! Two tables exist and one is loaded: they differ only in where #PF is delivered, a normal
//! gate on the interrupted stack (the legacy picture, where a stack overflow escalates to #DF)
//! or its own IST stack (the `pf-ist` growth path). #DF, NMI and #MC always have their own IST
//! stacks (SDM Vol. 3A §6.14.5).

use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use super::entry::stub_addresses;
use super::gdt::Ist;

/// Where #PF is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PfDelivery {
    /// A normal interrupt gate: #PF runs on the faulting stack.
    Gate,
    /// IST: #PF always starts at the top of its own stack.
    Ist,
}

static GATE_IDT: Once<InterruptDescriptorTable> = Once::new();
static IST_IDT: Once<InterruptDescriptorTable> = Once::new();
static PF_ON_IST: AtomicBool = AtomicBool::new(false);

fn build(pf: PfDelivery) -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    for (vector, addr) in stub_addresses() {
        let addr = VirtAddr::new(addr);
        // SAFETY (for each set_handler_addr below): `addr` is a naked stub from entry.rs that
        // saves every register, calls the dispatcher and returns with iretq, as an interrupt
        // gate requires; it handles the error-code layout of exactly this vector.
        // SAFETY (for each set_stack_index below): the IST slot was filled with the top of a
        // mapped, guarded stack by gdt::init, which runs before any IDT is loaded, and no two
        // of these vectors share a slot, so one cannot overwrite the other's frame.
        let opts = unsafe {
            match vector {
                2 => idt
                    .non_maskable_interrupt
                    .set_handler_addr(addr)
                    .set_stack_index(Ist::Nmi as u16),
                8 => idt
                    .double_fault
                    .set_handler_addr(addr)
                    .set_stack_index(Ist::DoubleFault as u16),
                14 if pf == PfDelivery::Ist => idt
                    .page_fault
                    .set_handler_addr(addr)
                    .set_stack_index(Ist::PageFault as u16),
                14 => idt.page_fault.set_handler_addr(addr),
                18 => idt
                    .machine_check
                    .set_handler_addr(addr)
                    .set_stack_index(Ist::MachineCheck as u16),
                0 => idt.divide_error.set_handler_addr(addr),
                1 => idt.debug.set_handler_addr(addr),
                3 => idt.breakpoint.set_handler_addr(addr),
                4 => idt.overflow.set_handler_addr(addr),
                5 => idt.bound_range_exceeded.set_handler_addr(addr),
                6 => idt.invalid_opcode.set_handler_addr(addr),
                7 => idt.device_not_available.set_handler_addr(addr),
                10 => idt.invalid_tss.set_handler_addr(addr),
                11 => idt.segment_not_present.set_handler_addr(addr),
                12 => idt.stack_segment_fault.set_handler_addr(addr),
                13 => idt.general_protection_fault.set_handler_addr(addr),
                16 => idt.x87_floating_point.set_handler_addr(addr),
                17 => idt.alignment_check.set_handler_addr(addr),
                19 => idt.simd_floating_point.set_handler_addr(addr),
                20 => idt.virtualization.set_handler_addr(addr),
                21 => idt.cp_protection_exception.set_handler_addr(addr),
                28 => idt.hv_injection_exception.set_handler_addr(addr),
                29 => idt.vmm_communication_exception.set_handler_addr(addr),
                30 => idt.security_exception.set_handler_addr(addr),
                // Reserved exception vectors 9, 15, 22-27, 31: the x86_64 crate does not expose
                // them as entries; a CPU never raises them.
                9 | 15 | 22..=27 | 31 => continue,
                v => idt[v].set_handler_addr(addr),
            }
        };
        let _ = opts;
    }
    idt
}

/// Loads the IDT with the given #PF delivery. Safe to call again to switch.
pub fn load(pf: PfDelivery) {
    let idt = match pf {
        PfDelivery::Gate => GATE_IDT.call_once(|| build(PfDelivery::Gate)),
        PfDelivery::Ist => IST_IDT.call_once(|| build(PfDelivery::Ist)),
    };
    super::cpu::without_interrupts(|| {
        idt.load();
        PF_ON_IST.store(pf == PfDelivery::Ist, Ordering::Relaxed);
    });
}

/// The #PF delivery of the loaded IDT.
pub fn pf_delivery() -> PfDelivery {
    if PF_ON_IST.load(Ordering::Relaxed) {
        PfDelivery::Ist
    } else {
        PfDelivery::Gate
    }
}
