//! Stack growth as a mechanism: which path is active ([`Mode`]), the step every path shares
//! once a fault has been judged to be growth ([`grow`]), and what growth has cost
//! ([`stats`]). The decisions themselves (is this fault growth?) are pure and host-tested in
//! `stacklab_core::growth_rules`; the fault paths that ask them are in `crate::events`.

pub mod stats;

use core::sync::atomic::{AtomicU8, Ordering};

use crate::arch::x86_64::idt::{self, PfDelivery};
use crate::arch::x86_64::{cpu, pic};
use crate::stacks::{self, EnsureError, FrameSource, GrowError};
pub use stats::Path;

/// How an overflow of a growable stack is turned into growth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No growth: #PF on a normal gate, an overflow becomes #DF, which reports and stops (the
    /// SDM-abort baseline). A growable policy then only has its initial pages.
    Abort,
    /// #PF on its own IST stack; non-growth faults move back to the thread's stack.
    PfIst,
    /// Like `PfIst` but without moving other faults off the IST stack: the hazard a nested
    /// #PF exposes (kept for demonstration).
    PfIstNaive,
    /// #PF on a normal gate; the overflow escalates to #DF, whose handler maps pages and
    /// returns (outside the SDM).
    DfRecover,
    /// Every event delivered FRED-style in software (`crate::fredsim`): #PF on its stack level
    /// (1 by default), growth by the same #PF handler.
    FredSim,
    /// No fault-driven growth (the IDT of `Abort`): a growable stack gets pages only from
    /// `ensure_stack`, which scenarios call before their deep part when this mode is on
    /// ([`Mode::ensures`]). An overflow the scenario did not announce is the #DF report.
    Ensure,
    /// Real FRED (`crate::fred`): the CPU delivers every event on its stack level; #PF on
    /// level 1 by default, growth by the same #PF handler. Only on a CPU with FRED.
    Fred,
}

impl Mode {
    /// Every mode, in `Mode as u8` order.
    pub const ALL: [Mode; 7] = [
        Mode::Abort,
        Mode::PfIst,
        Mode::PfIstNaive,
        Mode::DfRecover,
        Mode::FredSim,
        Mode::Ensure,
        Mode::Fred,
    ];

    /// The mode a `growth` argument names.
    pub fn from_name(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Abort => "abort",
            Mode::PfIst => "pf-ist",
            Mode::PfIstNaive => "pf-ist-naive",
            Mode::DfRecover => "df-recover",
            Mode::FredSim => "fred-sim",
            Mode::Ensure => "ensure",
            Mode::Fred => "fred",
        }
    }

    /// Whether a fault may grow a stack in this mode.
    pub fn grows_on_fault(self) -> bool {
        !matches!(self, Mode::Abort | Mode::Ensure)
    }

    /// Whether scenarios call `ensure_stack` before their deep part.
    pub fn ensures(self) -> bool {
        self == Mode::Ensure
    }
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Abort as u8);

/// Selects the growth path (and loads the matching IDT, or turns real FRED on; leaving `fred`
/// clears CR4.FRED first). `fred` on a CPU without FRED changes nothing: check
/// `arch::x86_64::fred::available` first.
pub fn set_mode(m: Mode) {
    if m == Mode::Fred {
        if let Err(e) = crate::fred::enable() {
            log::error!("growth fred: {}", crate::fred::refusal(e));
        } else {
            MODE.store(m as u8, Ordering::Relaxed);
        }
        return;
    }
    crate::arch::x86_64::fred::disable();
    MODE.store(m as u8, Ordering::Relaxed);
    match m {
        Mode::PfIst | Mode::PfIstNaive => idt::load(PfDelivery::Ist),
        Mode::Abort | Mode::DfRecover | Mode::Ensure => idt::load(PfDelivery::Gate),
        Mode::FredSim => crate::fredsim::enable(),
        Mode::Fred => {}
    }
}

/// `ensure_stack`: maps the `bytes` below `rsp` ahead of a known-deep path
/// ([`stacks::ensure`]) and counts what it mapped on the [`Path::Ensure`] path (cycles of the
/// call, pages, depth; no faulting instruction, so its RIP is 0), so `stats` and the growth
/// trace show explicit growth beside the fault-driven paths.
pub fn ensure(rsp: u64, bytes: u64) -> Result<u64, EnsureError> {
    let t0 = cpu::rdtsc();
    let pages = stacks::ensure(rsp, bytes)?;
    if pages > 0 {
        let now = cpu::rdtsc();
        let live = stacks::live_slot(rsp);
        let depth = live.map_or(0, |s| s.range.top - rsp.saturating_sub(bytes));
        stats::record(Path::Ensure, now - t0, 0, depth, pages);
        if let Some(s) = live {
            stats::trace(now, s.range.index, (s.range.top - s.mapped_lo) / 4096);
        }
    }
    Ok(pages)
}

/// The active growth path.
pub fn mode() -> Mode {
    Mode::ALL[MODE.load(Ordering::Relaxed) as usize]
}

/// Maps the pages from the stack's mapped edge down to `page` with frames from the reserve,
/// records the event (handler cycles since `t0`, the faulting RIP, the depth CR2 reached),
/// and replays an interrupt whose delivery was the growth fault. Fault path: no lock, no
/// allocation.
pub fn grow(path: Path, page: u64, t0: u64, rip: u64, cr2: u64) -> Result<(), GrowError> {
    let pages = stacks::grow_down_to(page, FrameSource::Reserve)?;
    let live = stacks::live_slot(cr2);
    let depth = live.map_or(0, |s| s.range.top - cr2);
    let now = cpu::rdtsc();
    stats::record(path, now - t0, rip, depth, pages);
    if let Some(s) = live {
        stats::trace(now, s.range.index, (s.range.top - s.mapped_lo) / 4096);
    }
    pic::recover_lost_irq();
    Ok(())
}
