//! The Rust side of trap entry: routes each vector to its handler.
//!
//! Policy (what a fault means, what to report) lives in safe code in `crate::fault`; this file
//! only reads the registers that must be read first (CR2 before anything can fault again) and
//! acknowledges interrupts.

use super::entry::TrapFrame;
use super::{cpu, pic};

/// Called by `entry::trap_common` with the saved frame.
pub(super) extern "sysv64" fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        3 => crate::fault::breakpoint(frame),
        8 => {
            // CR2 first: it still names the address of the #PF that escalated (SDM Vol. 3A,
            // Interrupt 8), and a later fault would overwrite it.
            let cr2 = cpu::cr2();
            crate::fault::double_fault(frame, cr2);
        }
        14 => {
            let cr2 = cpu::cr2();
            crate::fault::page_fault(frame, cr2)
        }
        pic::TIMER_VECTOR => {
            pic::irq_window(true);
            pic::tick();
            pic::end_of_interrupt(vector);
            pic::irq_window(false);
            crate::fault::timer(frame);
        }
        v if v > pic::TIMER_VECTOR && v < pic::PIC_BASE + 16 => {
            if !pic::is_spurious(v) {
                pic::end_of_interrupt(v);
            } else if v == pic::PIC_BASE + 15 {
                // A spurious IRQ 15 still needs an EOI at the master (for the cascade line).
                pic::end_of_interrupt(pic::PIC_BASE);
            }
        }
        _ => crate::fault::fatal(frame, cpu::cr2()),
    }
}
