//! IDT set-up. Every vector 0-47 enters through a naked stub of `entry.rs`.
//!
//! Two legacy tables exist: they differ only in where #PF is delivered, a normal gate on the
//! interrupted stack (the legacy picture, where a stack overflow escalates to #DF) or its own
//! IST stack (the `pf-ist` growth path). #DF, NMI and #MC always have their own IST stacks
//! (SDM Vol. 3A §6.14.5). A third table, for the `fred-sim` mode, sends every vector to the
//! trampoline of `fredsim.rs` on one IST slot. One table is loaded at a time.

use spin::Once;
use stacklab_core::event::Vector;
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

use super::entry::stub_addresses;
use super::gdt::Ist;

/// Where #PF is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PfDelivery {
    /// A normal interrupt gate: #PF runs on the faulting stack.
    Gate,
    /// IST: #PF always starts at the top of its own stack.
    Ist,
}

static GATE_IDT: Once<InterruptDescriptorTable> = Once::new();
static IST_IDT: Once<InterruptDescriptorTable> = Once::new();

/// The IST slot of `vector`'s gate in the legacy tables: #DF, NMI and #MC always, #PF under
/// [`PfDelivery::Ist`].
fn legacy_ist(pf: PfDelivery, vector: Vector) -> Option<Ist> {
    match vector {
        Vector::NMI => Some(Ist::Nmi),
        Vector::DOUBLE_FAULT => Some(Ist::DoubleFault),
        Vector::PAGE_FAULT if pf == PfDelivery::Ist => Some(Ist::PageFault),
        Vector::MACHINE_CHECK => Some(Ist::MachineCheck),
        _ => None,
    }
}

fn build(pf: PfDelivery) -> InterruptDescriptorTable {
    build_with(&stub_addresses(), |v| legacy_ist(pf, v))
}

/// A table whose gate for each `(vector, address)` enters at `address`, on the IST slot
/// `ist(vector)` names (or the interrupted stack for `None`).
///
/// Every address must be a naked stub that handles exactly its vector's error-code layout,
/// saves every register it uses and returns with `iretq` (entry.rs, fredsim.rs); every slot
/// named must have been filled with the top of a mapped, guarded stack by `gdt::init`, which
/// runs before any IDT is loaded.
fn build_with(
    stubs: &[(Vector, u64)],
    ist: impl Fn(Vector) -> Option<Ist>,
) -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    for &(vector, addr) in stubs {
        let addr = VirtAddr::new(addr);
        // SAFETY: for each set_handler_addr below, `addr` is a stub as this function's
        // contract requires (entry.rs and fredsim.rs are the only sources of addresses).
        let opts = unsafe {
            match vector {
                Vector::NMI => idt.non_maskable_interrupt.set_handler_addr(addr),
                Vector::DOUBLE_FAULT => idt.double_fault.set_handler_addr(addr),
                Vector::PAGE_FAULT => idt.page_fault.set_handler_addr(addr),
                Vector::MACHINE_CHECK => idt.machine_check.set_handler_addr(addr),
                Vector::DIVIDE_ERROR => idt.divide_error.set_handler_addr(addr),
                Vector::DEBUG => idt.debug.set_handler_addr(addr),
                Vector::BREAKPOINT => idt.breakpoint.set_handler_addr(addr),
                Vector::OVERFLOW => idt.overflow.set_handler_addr(addr),
                Vector::BOUND_RANGE => idt.bound_range_exceeded.set_handler_addr(addr),
                Vector::INVALID_OPCODE => idt.invalid_opcode.set_handler_addr(addr),
                Vector::DEVICE_NOT_AVAILABLE => idt.device_not_available.set_handler_addr(addr),
                Vector::INVALID_TSS => idt.invalid_tss.set_handler_addr(addr),
                Vector::SEGMENT_NOT_PRESENT => idt.segment_not_present.set_handler_addr(addr),
                Vector::STACK_SEGMENT => idt.stack_segment_fault.set_handler_addr(addr),
                Vector::GENERAL_PROTECTION => idt.general_protection_fault.set_handler_addr(addr),
                Vector::X87_FLOATING_POINT => idt.x87_floating_point.set_handler_addr(addr),
                Vector::ALIGNMENT_CHECK => idt.alignment_check.set_handler_addr(addr),
                Vector::SIMD_FLOATING_POINT => idt.simd_floating_point.set_handler_addr(addr),
                Vector::VIRTUALIZATION => idt.virtualization.set_handler_addr(addr),
                Vector::CONTROL_PROTECTION => idt.cp_protection_exception.set_handler_addr(addr),
                Vector::HV_INJECTION => idt.hv_injection_exception.set_handler_addr(addr),
                Vector::VMM_COMMUNICATION => idt.vmm_communication_exception.set_handler_addr(addr),
                Vector::SECURITY => idt.security_exception.set_handler_addr(addr),
                // Reserved exception vectors 9, 15, 22-27, 31: the x86_64 crate does not expose
                // them as entries; a CPU never raises them.
                Vector(9 | 15 | 22..=27 | 31) => continue,
                Vector(v) => idt[v].set_handler_addr(addr),
            }
        };
        if let Some(slot) = ist(vector) {
            // SAFETY: the slot holds the top of a mapped, guarded stack (this function's
            // contract). In the legacy tables no two vectors share a slot, so one cannot
            // overwrite the other's frame; the fred-sim table shares one slot among all
            // vectors, and its trampoline leaves that stack before anything can nest
            // (fredsim.rs).
            unsafe {
                opts.set_stack_index(slot as u16);
            }
        }
    }
    idt
}

static SIM_IDT: Once<InterruptDescriptorTable> = Once::new();

/// Loads the fred-sim table: every vector of `stubs` enters at its stub on the IST slot
/// `slot` (see [`build_with`] for what the stubs must be). Built on the first call.
pub(super) fn load_all_on(stubs: &[(Vector, u64)], slot: Ist) {
    let idt = SIM_IDT.call_once(|| build_with(stubs, |_| Some(slot)));
    super::cpu::without_interrupts(|| idt.load());
}

/// Loads the IDT with the given #PF delivery. Safe to call again to switch.
pub fn load(pf: PfDelivery) {
    let idt = match pf {
        PfDelivery::Gate => GATE_IDT.call_once(|| build(PfDelivery::Gate)),
        PfDelivery::Ist => IST_IDT.call_once(|| build(PfDelivery::Ist)),
    };
    super::cpu::without_interrupts(|| idt.load());
}
