//! x86_64: descriptor tables, trap entry, interrupt controllers, timers and port devices.
//!
//! The bottom layer: nothing here names a module of the kernel above it. What it needs from
//! above arrives as arguments: an [`space::AddressSpace`] to ask about mappings, an
//! [`space::OwnedStack`] to run code on a stack, and one registered [`trap::Handler`] that
//! every decoded event goes to.

pub mod backtrace;
pub mod context;
pub mod cpu;
pub mod entry;
pub mod fred;
pub mod fredcap;
pub mod fredsim;
pub mod fwcfg;
pub mod gdt;
pub mod idt;
pub mod parked;
pub mod pic;
pub mod pit;
pub mod platform;
pub mod provoke;
pub mod serial;
pub mod space;
pub mod stackswitch;
pub mod trap;
