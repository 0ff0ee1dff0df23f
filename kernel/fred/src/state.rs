//! The CPU state delivery reads and writes.

use crate::msr::FredMsrs;

/// Linux's 64-bit kernel code selector (`__KERNEL_CS`).
pub const KERNEL_CS: u16 = 0x10;
/// Linux's kernel data/stack selector (`__KERNEL_DS`).
pub const KERNEL_SS: u16 = 0x18;
/// Linux's 64-bit user code selector (`__USER_CS`).
pub const USER_CS: u16 = 0x33;
/// Linux's user data/stack selector (`__USER_DS`).
pub const USER_SS: u16 = 0x2B;
/// Linux's IA32_STAR: bits 47:32 the kernel CS (SS = CS + 8), bits 63:48 the 32-bit user CS
/// (`__USER32_CS` = 0x23; 64-bit user CS = +16, user SS = +8).
pub const LINUX_STAR: u64 = (0x23 << 48) | ((KERNEL_CS as u64) << 32);

/// RFLAGS.TF.
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS.RF.
pub const RFLAGS_RF: u64 = 1 << 16;
/// RFLAGS.VM.
pub const RFLAGS_VM: u64 = 1 << 17;
/// RFLAGS bit 1, always set.
pub const RFLAGS_FIXED: u64 = 1 << 1;

/// The state of one CPU as far as FRED delivery and return are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// Current privilege level: 0 or 3.
    pub cpl: u8,
    /// RSP.
    pub rsp: u64,
    /// RIP: for faults and interrupts the RIP the frame saves; for instruction events
    /// (INT n, INT1, INT3/INTO, SYSCALL) the address of the instruction (the frame saves
    /// RIP + length).
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// CS selector.
    pub cs: u16,
    /// SS selector.
    pub ss: u16,
    /// The FRED MSRs (the CSL is IA32_FRED_CONFIG bits 1:0).
    pub msrs: FredMsrs,
    /// IA32_STAR: the selectors loaded on entry from ring 3 and checked by ERETU.
    pub star: u64,
    /// CR2.
    pub cr2: u64,
    /// Whether the CPU is in 64-bit mode (the SS word's bit 57).
    pub long64: bool,
    /// Blocking by STI is in effect (the SS word's bit 16).
    pub sti_blocking: bool,
    /// Indirect-branch tracking is waiting for ENDBRANCH (the CS word's bit 18, WFE).
    pub wfe: bool,
    /// NMIs are blocked.
    pub nmi_blocked: bool,
}

impl CpuState {
    /// A ring-0 state with Linux's selectors, RFLAGS = 2, at stack level `csl`.
    pub const fn kernel(rsp: u64, rip: u64, mut msrs: FredMsrs, csl: u8) -> Self {
        msrs.config = msrs.config.with_csl(csl);
        CpuState {
            cpl: 0,
            rsp,
            rip,
            rflags: RFLAGS_FIXED,
            cs: KERNEL_CS,
            ss: KERNEL_SS,
            msrs,
            star: LINUX_STAR,
            cr2: 0,
            long64: true,
            sti_blocking: false,
            wfe: false,
            nmi_blocked: false,
        }
    }

    /// A ring-3 state with Linux's user selectors, IF set, CSL 0.
    pub const fn user(rsp: u64, rip: u64, msrs: FredMsrs) -> Self {
        let mut s = Self::kernel(rsp, rip, msrs, 0);
        s.cpl = 3;
        s.rflags = RFLAGS_FIXED | RFLAGS_IF;
        s.cs = USER_CS;
        s.ss = USER_SS;
        s
    }

    /// The current stack level (IA32_FRED_CONFIG bits 1:0).
    pub const fn csl(&self) -> u8 {
        self.msrs.config.csl()
    }

    /// Sets the current stack level.
    pub fn set_csl(&mut self, csl: u8) {
        self.msrs.config = self.msrs.config.with_csl(csl);
    }

    /// The kernel CS loaded on entry from ring 3: IA32_STAR bits 47:32 with RPL 0.
    pub const fn star_kernel_cs(&self) -> u16 {
        ((self.star >> 32) as u16) & 0xFFFC
    }

    /// The kernel SS loaded on entry from ring 3: IA32_STAR bits 47:32 plus 8, RPL 0.
    pub const fn star_kernel_ss(&self) -> u16 {
        ((self.star >> 32) as u16).wrapping_add(8) & 0xFFFC
    }
}
