//! Pure logic shared by the stacklab kernel and its host tool.
//!
//! Nothing in this crate touches hardware: it is `no_std` so the kernel can use it, and it is
//! tested on the host with plain `cargo test`. Hardware code lives in `kernel/src/arch`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod catalogue;
pub mod cmdline;
pub mod cmdspec;
pub mod event;
pub mod exception;
pub mod fwcfg;
pub mod growth_rules;
pub mod jitter;
pub mod line_edit;
pub mod phys_regions;
pub mod proto;
pub mod runs;
pub mod stack_bar;
pub mod stack_layout;
pub mod tsc;
