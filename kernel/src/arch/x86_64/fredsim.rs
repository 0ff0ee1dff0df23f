//! `fred-sim`: FRED-style event delivery performed in software on the real machine, by the
//! rules of the model crate `stacklab_fred`, on top of a third IDT.
//!
//! **Entry.** Every gate of the fred-sim table enters a stub of this file on one IST slot,
//! [`DELIVERY_IST`], the *delivery stack*: the CPU's own frame always lands on a fresh,
//! mapped stack, so the CPU's delivery never faults and never escalates to #DF by itself. The
//! stub captures CR2 (for #PF) before anything else, pushes the vector and the registers in
//! the [`TrapFrame`] layout and calls [`deliver_entry`], which does what FRED hardware would:
//! with the simulated MSRs (IA32_FRED_RSP1..3 = the level stacks handed to [`install`],
//! STKLVLS and the interrupt level from [`set_levels`], CONFIG with a red zone of 64 bytes)
//! and the software CSL it asks `stacklab_fred::deliver` for the event's level, the new CSL,
//! the frame's place and its eight words, probing the kernel's page tables through the
//! registered [`AddressSpace`]. If the model says a frame write faults, what it delivers
//! instead (a nested #PF, or #DF) is what arrives; a shutdown goes to the `stop` hook.
//!
//! **The stack picture** at the frame's place (lowest address first):
//!
//! ```text
//!   new RSP - 192   TrapFrame view: 15 registers, pad, vector, event data, error code,
//!                   RIP, CS, RFLAGS, RSP, SS (what the policy reads and may edit)
//!   new RSP         FRED frame: error code, RIP, CS word, RFLAGS, RSP, SS word, data, 0
//!   frame top       level stack top, or (interrupted RSP - 64) & ~63
//! ```
//!
//! The delivery writes both, switches RSP to the view and calls [`handle_entry`] there, which
//! hands a typed `Event` (`Arrival::FredLevel(CSL)`) and the view to the registered policy.
//! The delivery stack is left before anything can nest, so a nested event reuses it safely.
//!
//! **Return.** The policy's edits of RIP, CS, RFLAGS and RSP are copied into the FRED frame,
//! `stacklab_fred::erets` checks it and lowers the CSL to the frame's, and its result is
//! written as an `iretq` frame over the FRED frame's upper words; the exit path restores the
//! registers from the view and executes `iretq`. A growth #PF thus re-runs the faulting
//! instruction.
//!
//! `docs/fred.md` ("The kernel's fred-sim mode") says what differs from hardware.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use spin::Once;
use stacklab_core::event::{Event, EventKind, Vector};
use stacklab_fred::sim::{self, LevelTable, WithSaveArea};
use stacklab_fred::{
    CpuState, EventType, FaultProbe, FredConfig, FredMsrs, Outcome, StackLevels, deliver,
    deliver::Frame, erets,
};
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, Segment};

use super::entry::{TRAP_FRAME_SIZE, TrapFrame};
use super::gdt::Ist;
use super::space::{AddressSpace, OwnedStack};
use super::trap::Handler;
use super::{cpu, idt, pic};

/// The IST slot every gate of the fred-sim table uses. The #DF slot: under fred-sim the CPU's
/// own deliveries never fault, so no hardware #DF needs it, and a simulated #DF goes to its
/// level stack like every other event.
pub const DELIVERY_IST: Ist = Ist::DoubleFault;

/// Bytes of the register view saved below each FRED frame.
pub const SAVE_AREA: u64 = TRAP_FRAME_SIZE as u64;

/// Red zone in 64-byte units (IA32_FRED_CONFIG bits 8:6; Linux uses 1).
const RED_ZONE_UNITS: u8 = 1;

/// The red zone a same-level delivery leaves below the interrupted RSP (CONFIG bits 8:6).
pub const RED_ZONE: u64 = RED_ZONE_UNITS as u64 * 64;
/// How far below the interrupted RSP a same-level delivery writes: the red zone, up to 63
/// bytes of 64-byte alignment, the 64-byte FRED frame and the register view below it.
pub const FRAME_REACH: u64 = RED_ZONE + 63 + 64 + SAVE_AREA;

/// Why the simulation stopped the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// Delivering #DF faulted (the model's `shutdown`).
    Shutdown,
    /// ERETS refused the frame the policy left (the rule it broke).
    EretsFault(&'static str),
}

/// What the `stop` hook is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Why.
    pub kind: StopKind,
    /// The event that arrived (for an ERETS fault: the vector of the frame).
    pub vector: u8,
    /// The interrupted RIP and RSP.
    pub rip: u64,
    /// See `rip`.
    pub rsp: u64,
    /// The simulated CR2 (the last frame write that faulted).
    pub cr2: u64,
    /// The CSL at the time.
    pub csl: u8,
    /// Deliveries that faulted before the stop.
    pub attempts: u8,
}

/// What the simulation calls: the policy, the page tables it probes, and where it reports a
/// stop. The `stop` hook must not return.
pub struct Hooks {
    /// The one policy handler (the same one the IDT paths call).
    pub handler: Handler,
    /// The page tables the model probes frame writes against.
    pub space: &'static (dyn AddressSpace + Sync),
    /// Reports a shutdown or an ERETS fault and stops the machine.
    pub stop: fn(&Stop) -> !,
}

struct Sim {
    hooks: Hooks,
    /// IA32_FRED_RSP0..3 (RSP0 is unused: nothing runs in ring 3).
    rsp: [u64; 4],
    /// The level stacks, owned by the simulation for good.
    _stacks: [OwnedStack; 3],
    /// The simulated CPU's CS: the kernel's, as [`install`] found it (FRED delivery from ring
    /// 0 loads no selector). ERETS checks the frame's CS against it.
    cs: u16,
}

static SIM: Once<Sim> = Once::new();
static CSL: AtomicU8 = AtomicU8::new(0);
static STKLVLS: AtomicU64 = AtomicU64::new(LevelTable::DEFAULT.stklvls().0);
static IRQ_LEVEL: AtomicU8 = AtomicU8::new(LevelTable::DEFAULT.irq);
/// Deliveries by outcome: delivered, nested, double fault; then ERETS executed.
static COUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// The highest CSL a delivery has reached.
static MAX_CSL: AtomicU8 = AtomicU8::new(0);

/// Sets up the simulation with its hooks and the level-1, -2 and -3 stacks (each above an
/// unmapped page, as every kernel stack). The first call wins; later calls change nothing.
pub fn install(hooks: Hooks, level_stacks: [OwnedStack; 3]) {
    SIM.call_once(|| {
        let [a, b, c] = &level_stacks;
        let rsp = [0, a.top().as_u64(), b.top().as_u64(), c.top().as_u64()];
        Sim {
            hooks,
            rsp,
            _stacks: level_stacks,
            cs: CS::get_reg().0,
        }
    });
}

/// Whether [`install`] ran.
pub fn installed() -> bool {
    SIM.get().is_some()
}

/// The simulated IA32_FRED_RSP1..3.
pub fn level_stack_tops() -> [u64; 3] {
    SIM.get().map_or([0; 3], |s| [s.rsp[1], s.rsp[2], s.rsp[3]])
}

/// Sets the simulated STKLVLS and interrupt level.
pub fn set_levels(t: LevelTable) {
    STKLVLS.store(t.stklvls().0, Ordering::Relaxed);
    IRQ_LEVEL.store(t.irq, Ordering::Relaxed);
}

/// Loads the fred-sim table. [`install`] must have run (else nothing happens: returns false).
pub fn load() -> bool {
    if !installed() {
        return false;
    }
    CSL.store(0, Ordering::Relaxed);
    idt::load_all_on(&stub_addresses(), DELIVERY_IST);
    true
}

/// The software CSL.
pub fn csl() -> u8 {
    CSL.load(Ordering::Relaxed)
}

/// Simulated deliveries since boot by outcome, and ERETS executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Delivered as they arrived.
    pub delivered: u64,
    /// A frame write faulted and a nested exception was delivered instead.
    pub nested: u64,
    /// A frame write faulted and #DF was delivered.
    pub double_fault: u64,
    /// Returns through the simulated ERETS.
    pub erets: u64,
    /// The highest CSL a delivery has reached.
    pub max_csl: u8,
}

/// The counters.
pub fn counts() -> Counts {
    let c = |i: usize| COUNTS[i].load(Ordering::Relaxed);
    Counts {
        delivered: c(0),
        nested: c(1),
        double_fault: c(2),
        erets: c(3),
        max_csl: MAX_CSL.load(Ordering::Relaxed),
    }
}

/// Whether the CPU implements FRED: CPUID.(EAX=7,ECX=1):EAX bit 17. Nothing enables it.
pub fn fred_available() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaf 7 subleaf 1 is only read when leaf 0 reports leaf 7 and leaf 7 reports subleaf 1.
    let max = __cpuid(0).eax;
    let sub = if max >= 7 { __cpuid_count(7, 0).eax } else { 0 };
    let eax = if sub >= 1 { __cpuid_count(7, 1).eax } else { 0 };
    max >= 7 && sub >= 1 && eax & (1 << 17) != 0
}

/// Frame writes probed against the registered page tables: an 8-byte, 8-aligned write faults
/// exactly when its page is not mapped, and CR2 is its address.
struct Probe(&'static (dyn AddressSpace + Sync));

impl FaultProbe for Probe {
    fn supervisor_write_fault(&self, addr: u64) -> Option<u64> {
        (!self.0.is_mapped(VirtAddr::new_truncate(addr))).then_some(addr)
    }
}

fn msrs(sim: &Sim) -> FredMsrs {
    FredMsrs {
        rsp: sim.rsp,
        stklvls: StackLevels(STKLVLS.load(Ordering::Relaxed)),
        config: FredConfig::new(
            fred_common as *const () as u64,
            RED_ZONE_UNITS,
            IRQ_LEVEL.load(Ordering::Relaxed),
        ),
    }
}

fn installed_or_halt() -> &'static Sim {
    match SIM.get() {
        Some(s) => s,
        // The table is only loaded after `install`.
        None => cpu::halt_forever(),
    }
}

/// Simulated delivery, on the delivery stack: `idt` is what the CPU and the stub saved there.
/// Writes the FRED frame and the register view at the place the model computed and returns
/// the view's address, where the stub continues.
extern "sysv64" fn deliver_entry(idt: &TrapFrame) -> u64 {
    let sim = installed_or_halt();
    let event = sim::idt_event(idt.vector as u8, idt.error_code, idt.data);
    let csl = CSL.load(Ordering::Relaxed);
    let mut state = CpuState::kernel(idt.rsp, sim::state_rip(idt.rip, &event), msrs(sim), csl);
    state.rflags = idt.rflags;
    state.cs = idt.cs as u16;
    state.ss = idt.ss as u16;
    state.cr2 = idt.data;
    let probe = WithSaveArea {
        inner: Probe(sim.hooks.space),
        bytes: SAVE_AREA,
    };
    let d = deliver(&state, &event, &probe);
    let Some(del) = d.delivered else {
        (sim.hooks.stop)(&Stop {
            kind: StopKind::Shutdown,
            vector: event.vector,
            rip: idt.rip,
            rsp: idt.rsp,
            cr2: d.after.cr2,
            csl,
            attempts: d.attempts.len() as u8,
        })
    };
    let counter = match d.outcome {
        Outcome::Nested => 1,
        Outcome::DoubleFault => 2,
        _ => 0,
    };
    COUNTS[counter].fetch_add(1, Ordering::Relaxed);
    let f = del.frame;
    let view = TrapFrame {
        pad: 0,
        vector: f.vector() as u64,
        // #DF carries no event data; the policy gets the CR2 the faulting frame write left,
        // as the IDT path's #DF stub captures it.
        data: if del.event.is_double_fault() {
            d.after.cr2
        } else {
            f.event_data()
        },
        error_code: f.error_code(),
        rip: f.rip(),
        cs: f.cs_word() & 0xFFFF,
        rflags: f.rflags(),
        rsp: f.rsp(),
        ss: f.ss_word() & 0xFFFF,
        ..*idt
    };
    let at = del.new_rsp;
    // SAFETY: the model probed every quadword of the frame [at, at + 64) and of the save area
    // [at - 192, at) through the registered AddressSpace (`WithSaveArea`), so all of it is
    // mapped, writable, ordinary memory. It is free: a delivery that raised the level uses the
    // level stack of the new CSL, which nothing uses while the CSL is below that level (the
    // CSL only rises by delivery and only falls by ERETS from a frame on that stack); one at
    // the same level goes below the interrupted RSP minus the red zone, where the interrupted
    // code keeps nothing (the kernel has no red zone). The trampoline itself runs on the
    // delivery stack, not there. `at` is 64-byte aligned, so both writes are aligned.
    unsafe {
        core::ptr::write_volatile(at as *mut Frame, f);
        core::ptr::write_volatile((at - SAVE_AREA) as *mut TrapFrame, view);
    }
    super::fredcap::record(&f.words, at, del.new_csl);
    CSL.store(del.new_csl, Ordering::Relaxed);
    MAX_CSL.fetch_max(del.new_csl, Ordering::Relaxed);
    if del.event.kind == EventType::ExternalInterrupt && Vector(del.event.vector).is_pic_line() {
        // Entered the moment its delivery succeeded, as the IDT stub counts itself before it
        // touches the stack: a growth fault taken anywhere after this (in `handle_entry`'s
        // own frames, say) must not replay it. An interrupt whose delivery faulted never gets
        // here and is replayed by the growth path as lost.
        pic::IRQ_ENTERED.fetch_add(1, Ordering::Relaxed);
    }
    at - SAVE_AREA
}

/// The handler side, on the stack of the new CSL: `view` is the register view right below the
/// FRED frame. Calls the policy, then the simulated ERETS, and leaves the `iretq` frame over
/// the FRED frame's upper five words for the stub's exit.
extern "sysv64" fn handle_entry(view: &mut TrapFrame) {
    let sim = installed_or_halt();
    let at = view as *mut TrapFrame as u64 + SAVE_AREA;
    // SAFETY: `deliver_entry` wrote the frame at `at`, right above the view, and it stays
    // this event's until the ERETS below; nothing else writes it (nested events go below the
    // view or to a higher level's stack).
    let mut frame = unsafe { core::ptr::read_volatile(at as *const Frame) };
    let event = Event::decode_fred(
        frame.ss_word(),
        frame.error_code(),
        view.data,
        CSL.load(Ordering::Relaxed),
    );
    let (vector, kind) = (event.vector, event.kind);
    let run = if kind == EventKind::ExternalInterrupt && vector.is_pic_line() {
        // `deliver_entry` counted it as entered; this closes that window after the EOI.
        pic::acknowledge(vector)
    } else {
        true
    };
    if run {
        (sim.hooks.handler)(&event, view);
    }
    sim::apply_edits(&mut frame, view.rip, view.cs, view.rflags, view.rsp);
    let csl = CSL.load(Ordering::Relaxed);
    let mut now = CpuState::kernel(at, 0, msrs(sim), csl);
    now.cs = sim.cs;
    // The simulated CPU's SS is the one the event interrupted: FRED delivery from ring 0
    // loads none, while the IST delivery underneath leaves a null SS in the real register
    // (QEMU `do_interrupt64` loads one on every stack switch, IST included), and kernel code
    // runs with either. So `erets-ss` compares the frame's SS with itself here; only the CS
    // check can catch an edit.
    now.ss = frame.ss_word() as u16;
    match erets(&now, &frame, true) {
        Ok(r) => {
            CSL.store(r.state.csl(), Ordering::Relaxed);
            COUNTS[3].fetch_add(1, Ordering::Relaxed);
            let iret = sim::iret_frame(&r);
            // SAFETY: [at + 24, at + 64) is the upper part of this event's FRED frame, read
            // above and no longer needed; the stub's exit pops the view's registers and then
            // executes iretq from exactly there.
            unsafe { core::ptr::write_volatile((at + 24) as *mut [u64; 5], iret) };
        }
        Err(e) => (sim.hooks.stop)(&Stop {
            kind: StopKind::EretsFault(e.rule().name()),
            vector: frame.vector(),
            rip: frame.rip(),
            rsp: frame.rsp(),
            cr2: view.data,
            csl,
            attempts: 0,
        }),
    }
}

/// The shared tail of every stub (see the module docs for the stack picture).
///
/// # Safety
/// Only for the fred-sim stubs, entered by the CPU through a gate of the fred-sim IDT on the
/// delivery stack, with the stub's three words pushed; never called.
#[unsafe(naked)]
unsafe extern "sysv64" fn fred_common() {
    // Preconditions: on the delivery stack, the stub pushed the error code (or 0), the event
    // data and the vector.
    naked_asm!(
        super::entry::save_registers!(),
        "cld",
        "mov rdi, rsp",
        "call {deliver}",
        // Leave the delivery stack for the view below the FRED frame.
        "mov rsp, rax",
        "mov rdi, rsp",
        "call {handle}",
        super::entry::restore_registers!(),
        // Skip the rest of the view (9 words) and the FRED frame's lower 3 words: the iretq
        // frame `handle_entry` left starts there.
        "add rsp, {skip}",
        "iretq",
        deliver = sym deliver_entry,
        handle = sym handle_entry,
        skip = const 9 * 8 + 3 * 8,
    );
}

/// Defines the fred-sim stub of one vector: error code (the CPU's, or 0), CR2 for #PF and #DF
/// (read before anything else can fault: nothing here can, being on the delivery stack), the
/// vector, then the common tail.
macro_rules! fred_stub {
    ($name:ident, $vector:literal) => {
        /// The fred-sim entry of one vector.
        ///
        /// # Safety
        /// Only entered by the CPU through the vector's gate of the fred-sim IDT; never called.
        #[unsafe(naked)]
        unsafe extern "sysv64" fn $name() {
            naked_asm!(
                ".if {no_code}",
                "push 0",
                ".endif",
                ".if {capture}",
                "push rax",
                "mov rax, cr2",
                "xchg [rsp], rax",
                ".else",
                "push 0",
                ".endif",
                "push {v}",
                "jmp {common}",
                no_code = const !Vector($vector).pushes_error_code() as u8,
                capture = const ($vector == Vector::PAGE_FAULT.0 || $vector == Vector::DOUBLE_FAULT.0) as u8,
                v = const $vector,
                common = sym fred_common,
            );
        }
    };
}

macro_rules! fred_stubs {
    ($( $name:ident $vector:literal ),* $(,)?) => {
        $( fred_stub!($name, $vector); )*
        /// Entry addresses by vector, for the fred-sim table.
        fn stub_addresses() -> [(Vector, u64); 48] {
            [ $( (Vector($vector), $name as *const () as u64) ),* ]
        }
    };
}

fred_stubs! {
    f0 0, f1 1, f2 2, f3 3, f4 4, f5 5, f6 6, f7 7, f8 8, f9 9, f10 10, f11 11, f12 12,
    f13 13, f14 14, f15 15, f16 16, f17 17, f18 18, f19 19, f20 20, f21 21, f22 22, f23 23,
    f24 24, f25 25, f26 26, f27 27, f28 28, f29 29, f30 30, f31 31, f32 32, f33 33, f34 34,
    f35 35, f36 36, f37 37, f38 38, f39 39, f40 40, f41 41, f42 42, f43 43, f44 44, f45 45,
    f46 46, f47 47,
}
