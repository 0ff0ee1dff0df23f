//! Small, safe wrappers around single CPU instructions and registers.

use core::arch::asm;
use stacklab_core::proto::{DEBUG_EXIT_PORT, ExitCode};
use x86_64::instructions::port::Port;

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is always available in 64-bit mode (CR4.TSD is
    // clear: the kernel runs at CPL 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads CR2, the linear address of the last page fault.
#[inline(always)]
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The current stack pointer.
#[inline(always)]
pub fn rsp() -> u64 {
    let v: u64;
    // SAFETY: copies RSP into a register; no memory is touched.
    unsafe { asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Stops the machine through QEMU's isa-debug-exit device, or on Bochs through its shutdown
/// port (after writing the status QEMU would exit with on port 0xE9). If neither works (a
/// real machine, or QEMU without the device), halts forever with interrupts off.
pub fn exit(code: ExitCode) -> ! {
    if super::platform::emulator() == super::platform::Emulator::Bochs {
        super::platform::bochs_power_off(code.qemu_status());
    }
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is QEMU's debug-exit device (or nothing); writing it has no effect
    // on memory safety, only on whether the machine keeps running.
    unsafe { port.write(code.code() as u32) };
    halt_forever()
}

/// Disables interrupts and halts for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Waits for the next interrupt (with interrupts enabled).
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Runs `f` with maskable interrupts disabled, restoring the previous state after.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(f)
}

/// Whether maskable interrupts are enabled.
pub fn interrupts_enabled() -> bool {
    x86_64::instructions::interrupts::are_enabled()
}

/// Disables maskable interrupts.
pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}

/// Enables maskable interrupts.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

unsafe extern "C" {
    /// First byte of the kernel image's first loadable segment (the linker defines it).
    safe static __executable_start: u8;
    /// One past the last byte of executable code (the linker defines it).
    safe static etext: u8;
}

/// The kernel's executable code, as loaded (the linker's `__executable_start` up to `etext`):
/// where a saved RIP that is safe to return to must lie.
pub fn kernel_text() -> core::ops::Range<u64> {
    (&raw const __executable_start) as u64..(&raw const etext) as u64
}
