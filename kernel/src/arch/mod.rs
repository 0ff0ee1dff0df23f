//! Hardware-facing code. Everything that needs `unsafe` to talk to the CPU or devices lives
//! below this module (or in `crate::mem`); the rest of the kernel is safe Rust.

pub mod x86_64;
