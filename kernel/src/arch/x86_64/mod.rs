//! x86_64: descriptor tables, trap entry, interrupt controllers, timers and port devices.

pub mod backtrace;
pub mod context;
pub mod cpu;
pub mod entry;
pub mod fwcfg;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod provoke;
pub mod serial;
pub mod stackswitch;
pub mod trap;

pub use stackswitch::call_on_stack as call_on_stack_returning;
