//! The FRED MSRs: stack pointers, stack levels and configuration, kept as raw values with
//! accessors for their fields.

/// IA32_FRED_RSP0: the level-0 stack pointer.
pub const IA32_FRED_RSP0: u32 = 0x1CC;
/// IA32_FRED_RSP1.
pub const IA32_FRED_RSP1: u32 = 0x1CD;
/// IA32_FRED_RSP2.
pub const IA32_FRED_RSP2: u32 = 0x1CE;
/// IA32_FRED_RSP3.
pub const IA32_FRED_RSP3: u32 = 0x1CF;
/// IA32_FRED_STKLVLS: two bits of stack level per exception vector 0-31.
pub const IA32_FRED_STKLVLS: u32 = 0x1D0;
/// IA32_FRED_SSP1 (SSP0 is IA32_PL0_SSP).
pub const IA32_FRED_SSP1: u32 = 0x1D1;
/// IA32_FRED_CONFIG.
pub const IA32_FRED_CONFIG: u32 = 0x1D4;

/// The raw value of IA32_FRED_CONFIG.
///
/// Bits 1:0 hold the current stack level (CSL), bit 3 the shadow-stack adjustment, bits 8:6
/// the red zone in 64-byte units, bits 10:9 the level of maskable interrupts, bits 63:12 the
/// entry page; bits 2, 4, 5 and 11 are reserved (Bochs cpu/msr.cc rejects a WRMSR setting
/// them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FredConfig(pub u64);

impl FredConfig {
    /// The reserved bits 2, 4, 5 and 11.
    pub const RESERVED: u64 = 0x834;

    /// Builds a configuration from its fields (CSL 0).
    pub const fn new(entry_page: u64, red_zone_units: u8, interrupt_level: u8) -> Self {
        FredConfig(
            (entry_page & !0xFFF)
                | (((red_zone_units & 7) as u64) << 6)
                | (((interrupt_level & 3) as u64) << 9),
        )
    }

    /// Current stack level, bits 1:0.
    pub const fn csl(self) -> u8 {
        (self.0 & 3) as u8
    }

    /// The same value with bits 1:0 replaced.
    pub const fn with_csl(self, csl: u8) -> Self {
        FredConfig((self.0 & !3) | (csl & 3) as u64)
    }

    /// Shadow-stack adjustment, bit 3 (not modelled beyond this accessor).
    pub const fn shadow_stack_adjust(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// The red zone in 64-byte units, bits 8:6.
    pub const fn red_zone_units(self) -> u8 {
        ((self.0 >> 6) & 7) as u8
    }

    /// The red zone in bytes (bits 8:6 read in place: `units * 64`).
    pub const fn red_zone_bytes(self) -> u64 {
        self.0 & 0x1C0
    }

    /// Stack level of maskable (external) interrupts, bits 10:9.
    pub const fn interrupt_level(self) -> u8 {
        ((self.0 >> 9) & 3) as u8
    }

    /// The entry page, bits 63:12 (the ring-3 entry point).
    pub const fn entry_page(self) -> u64 {
        self.0 & !0xFFF
    }

    /// The reserved bits that are set (0 for a value WRMSR accepts).
    pub const fn reserved_bits(self) -> u64 {
        self.0 & Self::RESERVED
    }
}

/// The raw value of IA32_FRED_STKLVLS: bits 2v+1:2v give the stack level of exception vector v.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StackLevels(pub u64);

impl StackLevels {
    /// The level of `vector` (vectors 32 and above have none: 0).
    pub const fn level(self, vector: u8) -> u8 {
        if vector >= 32 {
            0
        } else {
            ((self.0 >> (2 * vector as u32)) & 3) as u8
        }
    }

    /// The same value with `vector`'s level replaced (vectors >= 32 are ignored).
    pub const fn with_level(self, vector: u8, level: u8) -> Self {
        if vector >= 32 {
            return self;
        }
        let shift = 2 * vector as u32;
        StackLevels((self.0 & !(3 << shift)) | (((level & 3) as u64) << shift))
    }

    /// Linux's value (arch/x86/kernel/fred.c cpu_init_fred_rsps): #DB 1, NMI 2, #MC 2, #DF 3,
    /// everything else (#PF included) 0.
    pub const fn linux() -> Self {
        StackLevels(0)
            .with_level(crate::event::vector::DB, 1)
            .with_level(crate::event::vector::NMI, 2)
            .with_level(crate::event::vector::MC, 2)
            .with_level(crate::event::vector::DF, 3)
    }
}

/// The FRED MSRs the model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FredMsrs {
    /// IA32_FRED_RSP0..3 (architecturally canonical and 64-byte aligned; WRMSR enforces it).
    pub rsp: [u64; 4],
    /// IA32_FRED_STKLVLS.
    pub stklvls: StackLevels,
    /// IA32_FRED_CONFIG; its bits 1:0 are the CSL.
    pub config: FredConfig,
}
