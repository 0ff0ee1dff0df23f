//! Real FRED event delivery (`growth fred`), for CPUs that implement it (CPUID.(EAX=7,ECX=1):
//! EAX bit 17; among the emulators at hand, Bochs with its `wildcat_lake` CPU model).
//!
//! Intel's FRED specification is followed for what is set up here: the MSRs of its chapter
//! "FRED MSRs" (IA32_FRED_RSP0..3, IA32_FRED_STKLVLS, IA32_FRED_CONFIG; the values are composed
//! and checked by `stacklab_fred::real::Setup`), the entry page of "Event delivery" (events from
//! ring 3 enter at IA32_FRED_CONFIG & ~0xFFF, events from ring 0 at +256), the stack frame of
//! the same chapter (64 bytes at a 64-byte-aligned RSP: error code, RIP, CS word with the old
//! CSL in bits 17:16, RFLAGS, RSP, SS word with the vector in bits 39:32 and the event type in
//! bits 51:48, event data, a zero word), ERETS of "Event return", and CR4.FRED (bit 32) of
//! "Enabling FRED".
//!
//! **Entry.** [`entry_page`] is one 4 KiB-aligned page of hand-written code. Nothing runs in
//! ring 3, so the ring-3 entry at +0 is `ud2` (a #UD from ring 0 then reaches the policy as a
//! fatal event at this address). The ring-0 entry at +256 counts a PIC line as entered (event
//! type 0) before it touches the stack, as the IDT stubs do (`pic::recover_lost_irq`), then
//! pushes the event data and a vector slot and saves the registers, so that the 64-byte FRED
//! frame's lower six words (error code, RIP, CS, RFLAGS, RSP, SS) become the top of a
//! [`TrapFrame`]: the policy reads and edits the same words ERETS pops. [`dispatch`] decodes
//! the frame into an `Event` (`Arrival::FredLevel(CSL)`), shows the policy plain selectors in
//! the CS and SS words while it runs, and restores their upper bits before ERETS.
//!
//! **Event data.** A #PF frame carries CR2 as event data; a #DF frame carries none, so the
//! entry reads the CR2 a #PF escalating to it left, and clears CR2 after #PF and #DF as the
//! IDT stubs do (a #DF that finds CR2 zero knows that no page fault escalated).
//!
//! **Level stacks.** IA32_FRED_RSP1..3 are the fred-sim level stacks (`fredsim::install`): the
//! two mechanisms never run at once (CR4.FRED is set only while the growth mode is `fred`, and
//! the fred-sim IDT is then unused), and they switch only at CSL 0, when no frame lives on any
//! level stack. Sharing them makes a frame's place comparable between the two.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use stacklab_core::event::{Event, EventKind, Vector};
use stacklab_fred::msr::IA32_FRED_CONFIG;
use stacklab_fred::real::{CR4_FRED, Setup, SetupError};
use stacklab_fred::sim::LevelTable;
use x86_64::registers::model_specific::Msr;

use super::entry::TrapFrame;
use super::{fredcap, fredsim, trap};

/// The red zone in 64-byte units (IA32_FRED_CONFIG bits 8:6): the same as fred-sim's.
const RED_ZONE_UNITS: u8 = 1;

/// The red zone a same-level delivery leaves below the interrupted RSP.
pub const RED_ZONE: u64 = RED_ZONE_UNITS as u64 * 64;

/// How far below the interrupted RSP a same-level delivery writes: the red zone, up to 63
/// bytes of alignment and the 64-byte frame. (The entry code's pushes below the frame are
/// ordinary pushes of its own, with its own RSP.)
pub const FRAME_REACH: u64 = RED_ZONE + 63 + 64;

/// Offset of the ring-0 entry in the entry page (`stacklab_fred::real::RING0_ENTRY`).
const RING0: u64 = stacklab_fred::real::RING0_ENTRY;

global_asm!(
    ".pushsection .text.stacklab_fred_entry,\"ax\",@progbits",
    ".balign 4096",
    ".global stacklab_fred_entry_page",
    // A function symbol with a size, so that reports and backtraces name addresses in it.
    ".type stacklab_fred_entry_page, @function",
    "stacklab_fred_entry_page:",
    // Ring 3: nothing runs there.
    "ud2",
    ".org stacklab_fred_entry_page + {ring0}",
    // Ring 0. RSP = the frame: error code at +0, ..., SS word at +40 (type in byte 46's low
    // nibble), event data at +48.
    "test byte ptr [rsp + 46], 0x0f",
    "jnz 2f",
    "lock inc qword ptr [rip + {irq_entered}]",
    "2:",
    // TrapFrame.data and .vector (filled in by `dispatch`), then the pad and the registers.
    "push qword ptr [rsp + 48]",
    "push 0",
    "push 0",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // 64-byte-aligned frame minus 18 quadwords: the call is 16-byte aligned.
    "cld",
    "mov rdi, rsp",
    "call {dispatch}",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    // Drop the pad, vector and data: RSP = the error code, where ERETS starts.
    "add rsp, 24",
    // ERETS (F2 0F 01 CA), spelled out for assemblers that do not know it.
    ".byte 0xf2, 0x0f, 0x01, 0xca",
    ".size stacklab_fred_entry_page, . - stacklab_fred_entry_page",
    ".popsection",
    ring0 = const RING0,
    irq_entered = sym super::pic::IRQ_ENTERED,
    dispatch = sym dispatch,
);

unsafe extern "C" {
    /// The FRED entry page (the `global_asm!` above).
    safe static stacklab_fred_entry_page: u8;
}

/// Address of the entry page.
pub fn entry_page() -> u64 {
    (&raw const stacklab_fred_entry_page) as u64
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Events delivered and ERETS executed under real FRED.
static COUNTS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

/// Whether the CPU implements FRED.
pub fn available() -> bool {
    fredsim::fred_available()
}

/// Whether CR4.FRED is set (by [`enable`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `"absent"`, `"available"` or `"enabled"`, as the `ready` and `growth` records say it.
pub fn status() -> &'static str {
    if enabled() {
        "enabled"
    } else if available() {
        "available"
    } else {
        "absent"
    }
}

/// Events delivered through real FRED since boot, and ERETS executed.
pub fn counts() -> (u64, u64) {
    (
        COUNTS[0].load(Ordering::Relaxed),
        COUNTS[1].load(Ordering::Relaxed),
    )
}

/// Why [`enable`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The CPU does not implement FRED.
    Absent,
    /// The level stacks do not exist yet (`fredsim::install` has not run).
    NoLevelStacks,
    /// A value would make WRMSR fault.
    Setup(SetupError),
}

fn setup(levels: LevelTable) -> Setup {
    Setup {
        entry_page: entry_page(),
        level_tops: fredsim::level_stack_tops(),
        levels,
        red_zone_units: RED_ZONE_UNITS,
    }
}

/// Writes the FRED MSRs for `levels` (and the current level stacks) and sets CR4.FRED: from
/// now on every event is delivered by the CPU through [`entry_page`]. Safe to call again
/// (with FRED on, it rewrites the MSRs: a new level table takes effect at once).
pub fn enable(levels: LevelTable) -> Result<(), Refused> {
    if !available() {
        return Err(Refused::Absent);
    }
    if !fredsim::installed() {
        return Err(Refused::NoLevelStacks);
    }
    let writes = setup(levels).msr_writes().map_err(Refused::Setup)?;
    super::cpu::without_interrupts(|| {
        for (msr, value) in writes {
            // SAFETY: the CPU implements FRED (checked), so these MSRs exist, and
            // `Setup::msr_writes` checked every value against what WRMSR accepts. The values
            // name the entry page above (code that handles every event), the level stacks
            // fred-sim owns for good (mapped, guarded, used by nothing while the CSL is below
            // their level), and CONFIG's CSL field 0, which is the level the caller runs at
            // (a command, not an event handler). Nothing else depends on these MSRs.
            unsafe { Msr::new(msr).write(value) };
        }
        // SAFETY: CR4.FRED may be set on a CPU with FRED in IA-32e mode (the kernel runs in
        // 64-bit mode); the MSRs above were written first, so the first event finds them.
        unsafe { set_cr4_fred(true) };
    });
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Clears CR4.FRED, so events go through the IDT again (the caller loads the table it wants).
/// Call only at CSL 0 (a command, not an event handler).
pub fn disable() {
    if !enabled() {
        return;
    }
    super::cpu::without_interrupts(|| {
        // SAFETY: clearing CR4.FRED returns event delivery to the IDT, which stays loaded
        // with valid stubs the whole time (FRED never unloads it); interrupts are off until
        // the caller's table is in place.
        unsafe { set_cr4_fred(false) };
        ENABLED.store(false, Ordering::Relaxed);
    });
}

/// Sets or clears CR4 bit 32.
///
/// # Safety
/// Setting it requires a CPU with FRED and its MSRs configured; clearing it requires a loaded
/// IDT with valid gates.
unsafe fn set_cr4_fred(on: bool) {
    let mut cr4: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags)) };
    cr4 = if on { cr4 | CR4_FRED } else { cr4 & !CR4_FRED };
    // SAFETY: only bit 32 changed, under the caller's promise.
    unsafe { asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags)) };
}

/// The current stack level, IA32_FRED_CONFIG bits 1:0 (0 when FRED is off).
pub fn csl() -> u8 {
    if !enabled() {
        return 0;
    }
    // SAFETY: with FRED enabled the MSR exists; reading it has no side effects.
    (unsafe { Msr::new(IA32_FRED_CONFIG).read() } & 3) as u8
}

/// Clears CR2 (see the module docs).
fn clear_cr2() {
    // SAFETY: CR2 only reports the last page-fault address; nothing but the fault paths
    // reads it, and they have captured it.
    unsafe { asm!("mov cr2, {}", in(reg) 0u64, options(nomem, nostack, preserves_flags)) };
}

/// The Rust side of the ring-0 entry: `tf` is the [`TrapFrame`] whose top six words are the
/// FRED frame's lower six.
extern "sysv64" fn dispatch(tf: &mut TrapFrame) {
    let (cs_word, ss_word) = (tf.cs, tf.ss);
    let frame_at = &raw const tf.error_code as u64;
    // SAFETY: the CPU wrote the 64-byte frame at `frame_at` (64-byte aligned, on the stack of
    // the new CSL) right before entering; the entry code pushed only below it, and nothing
    // writes it until ERETS pops it.
    let words = unsafe { core::ptr::read_volatile(frame_at as *const [u64; 8]) };
    let csl = csl();
    fredcap::record(&words, frame_at, csl);
    COUNTS[0].fetch_add(1, Ordering::Relaxed);
    let vector = Vector((ss_word >> 32) as u8);
    let hardware = (ss_word >> 48) & 0xF == EventKind::HardwareException.fred_type() as u64;
    let data = if hardware && vector == Vector::DOUBLE_FAULT {
        let cr2 = super::cpu::cr2();
        clear_cr2();
        cr2
    } else {
        if hardware && vector == Vector::PAGE_FAULT {
            clear_cr2();
        }
        words[6]
    };
    tf.vector = vector.0 as u64;
    tf.data = data;
    tf.cs = cs_word & 0xFFFF;
    tf.ss = ss_word & 0xFFFF;
    let event = Event::decode_fred(ss_word, tf.error_code, data, csl);
    trap::run(&event, tf);
    // The policy may have edited RIP, RSP, RFLAGS or the CS selector; the CSL and WFE bits of
    // the CS word and the event information of the SS word go back for ERETS.
    tf.cs = (cs_word & !0xFFFF) | (tf.cs & 0xFFFF);
    tf.ss = ss_word;
    COUNTS[1].fetch_add(1, Ordering::Relaxed);
}
