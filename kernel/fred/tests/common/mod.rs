//! Shared setup for the integration tests: one machine layout used throughout.
#![allow(dead_code)]

use stacklab_fred::{CpuState, FredConfig, FredMsrs, StackLevels};

/// The FRED entry page (canonical, page aligned).
pub const ENTRY: u64 = 0xFFFF_FFFF_8100_0000;
/// Top of the level-0 stack (IA32_FRED_RSP0): the task's kernel stack, 16 KiB.
pub const RSP0: u64 = 0xFFFF_C900_0001_0000;
/// Lowest byte of the level-0 stack; the page below is the unmapped guard.
pub const STACK0_LO: u64 = RSP0 - 0x4000;
/// The guard page below the level-0 stack.
pub const GUARD0: (u64, u64) = (STACK0_LO - 0x1000, STACK0_LO);
/// Tops of the level-1, -2 and -3 stacks.
pub const RSP1: u64 = 0xFFFF_FE00_0001_0000;
/// Level 2.
pub const RSP2: u64 = 0xFFFF_FE00_0002_0000;
/// Level 3.
pub const RSP3: u64 = 0xFFFF_FE00_0003_0000;
/// A kernel RSP inside the level-0 stack, not 64-byte aligned.
pub const KRSP: u64 = RSP0 - 0x70C8;
/// A kernel RIP.
pub const KRIP: u64 = 0xFFFF_FFFF_8123_4567;
/// A user RSP and RIP.
pub const URSP: u64 = 0x7FFF_FFFF_E018;
/// User RIP.
pub const URIP: u64 = 0x40_1000;

/// Linux's FRED MSRs (red zone 1, interrupts on level 0, #DB 1, NMI 2, #MC 2, #DF 3, #PF 0).
pub fn linux_msrs() -> FredMsrs {
    FredMsrs {
        rsp: [RSP0, RSP1, RSP2, RSP3],
        stklvls: StackLevels::linux(),
        config: FredConfig::new(ENTRY, 1, 0),
    }
}

/// Linux's MSRs with #PF moved to level 1.
pub fn pf1_msrs() -> FredMsrs {
    let mut m = linux_msrs();
    m.stklvls = m.stklvls.with_level(14, 1);
    m
}

/// A kernel state at `csl` with Linux's MSRs.
pub fn kernel(csl: u8) -> CpuState {
    CpuState::kernel(KRSP, KRIP, linux_msrs(), csl)
}

/// A user state with Linux's MSRs.
pub fn user() -> CpuState {
    CpuState::user(URSP, URIP, linux_msrs())
}
