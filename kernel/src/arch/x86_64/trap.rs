//! The Rust side of trap entry: decodes what arrived into an [`Event`] and hands it to the
//! one handler the kernel registered.
//!
//! Only what must come first happens here: the event data was captured by the stub (see
//! `entry`), the arrival stack is found from the frame's address, and a PIC line is counted
//! and acknowledged (a spurious IRQ 7/15 ends here). Everything else (what a fault means,
//! whether a stack grows, what to report) is the registered handler's business; this file
//! knows nothing above the arch layer.

use spin::Once;
use stacklab_core::event::{Arrival, Event};

use super::entry::TrapFrame;
use super::{cpu, gdt, pic, serial};

/// The policy's entry point: the decoded event and the saved registers, which it may edit
/// to resume anywhere.
pub type Handler = fn(&Event, &mut TrapFrame);

static HANDLER: Once<Handler> = Once::new();

/// Registers the handler every event goes to. The first call wins; call it before
/// interrupts are enabled.
pub fn set_handler(h: Handler) {
    HANDLER.call_once(|| h);
}

/// Which stack a frame at `addr` is on.
fn arrival_of(addr: u64) -> Arrival {
    match gdt::ist_containing(addr) {
        Some((ist, _)) => Arrival::Ist(ist.tss_index()),
        None => Arrival::Interrupted,
    }
}

/// Called by `entry::trap_common` with the saved frame.
pub(super) extern "sysv64" fn dispatch(frame: &mut TrapFrame) {
    let at = frame as *const TrapFrame as u64;
    let event = Event::decode_idt(
        frame.vector as u8,
        frame.error_code,
        frame.data,
        arrival_of(at),
    );
    run(&event, frame);
}

/// Acknowledges a PIC line (a spurious IRQ 7/15 ends here) and calls the registered handler:
/// the common step of every delivery mechanism that reaches the policy through this module
/// (the IDT stubs, real FRED).
pub(super) fn run(event: &Event, frame: &mut TrapFrame) {
    if event.vector.is_pic_line() && !pic::acknowledge(event.vector) {
        return;
    }
    match HANDLER.get() {
        Some(h) => h(event, frame),
        None => {
            use core::fmt::Write;
            let _ = writeln!(
                serial::emergency(),
                "!!! {} before a trap handler was registered; halting",
                event.vector
            );
            cpu::halt_forever()
        }
    }
}
