//! The hazard catalogue's own scenarios (see `catalogue`): a #DF that is not an overflow, a
//! stale CR2, a string store that crosses the edge part way, a frame larger than a page, the
//! stack's limit and one push further, a wild write below the mapped edge, a nested #PF that
//! overwrites CR2, and an NMI whose handler faults while a #PF is being handled. Each parks
//! RSP at an exact offset or injects at one named point: no timing luck.

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use stacklab_core::cmdline::ArgError;
use stacklab_core::stack_layout::PAGE;

use super::recursion::{byte, mix};
use super::{ENSURE_REFUSED, ensure_ahead, fail, growth_fields, policy, refused_field, run_thread};
use crate::arch::x86_64::{cpu, provoke};
use crate::commands::{Call, Command, command};
use crate::events::{self, inject};
use crate::growth;
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "df-contributory",
        "",
        "a #SS whose delivery raises #SS again (non-canonical RSP): a #DF that is no overflow, never recovered",
        "df-contributory",
        df_contributory
    ),
    command!(
        "stale-cr2",
        "",
        "like df-contributory, with CR2 planted to name the thread's guard page: must not be diagnosed as an overflow",
        "stale-cr2",
        stale_cr2
    ),
    command!(
        "rep-stos",
        "BYTES:8..32K",
        "one 'rep stosq' (DF=1) fills a BYTES frame from 64 bytes above the mapped edge down; checks RCX, RDI and every quadword",
        "rep-stos 8K",
        rep_stos
    ),
    command!(
        "big-frame",
        "",
        "a function with a 12 KiB frame called 256 bytes above the mapped edge (stack probes walk down page by page)",
        "big-frame",
        big_frame_cmd
    ),
    command!(
        "span-limit",
        "",
        "a thread grows its stack to the policy's maximum, writes the lowest word, then pushes once more",
        "span-limit",
        span_limit
    ),
    command!(
        "wild-edge",
        "",
        "a thread writes 2 KiB below its mapped edge, far below RSP: never growth",
        "wild-edge",
        wild_edge
    ),
    command!(
        "cr2-nested",
        "",
        "a demand #PF whose handler takes a nested #PF before using the address: CR2 is overwritten",
        "cr2-nested",
        cr2_nested
    ),
    command!(
        "nmi-in-pf",
        "",
        "an NMI-like event (int 2) arrives at the start of a #PF handler, and its handler takes a #PF",
        "nmi-in-pf",
        nmi_in_pf
    ),
];

/// Values a scenario's thread leaves for the command to report (a thread returns one word).
static SEEN: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

fn seen(i: usize) -> u64 {
    SEEN[i].load(Ordering::Relaxed)
}

fn set_seen(i: usize, v: u64) {
    SEEN[i].store(v, Ordering::Relaxed);
}

/// `df-contributory`: never returns if the kernel is right.
fn df_contributory(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    log::info!(
        "df-contributory: RSP := {:#x}, push",
        provoke::NON_CANONICAL_RSP
    );
    provoke::double_fault_by_stack_segment()
}

/// `stale-cr2`: plants the thread's guard address in CR2, then the #DF of `df-contributory`.
fn stale_cr2(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let ran = run_thread("stale-cr2", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        let planted = s.lo() - 8;
        report::emit("planted", |r| {
            r.hex("cr2", planted)
                .hex("stack_lo", s.lo())
                .hex("stack_hi", s.hi())
        });
        provoke::plant_cr2(planted);
        provoke::double_fault_by_stack_segment()
    });
    if ran.is_some() {
        report::result(|r| r.bool("ok", false));
        fail();
    }
    Ok(())
}

/// The quadword `rep-stos` stores.
const STOS_VALUE: u64 = 0x5354_4f53_5354_4f53;

/// `rep-stos BYTES`.
fn rep_stos(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let bytes = c.number(0);
    if !bytes.is_multiple_of(8) {
        c.refuse(format_args!("BYTES must be a multiple of 8"));
        return Ok(());
    }
    let Some((j, _)) = run_thread("rep-stos", policy(), move || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        let at = s.lo() + 64;
        set_seen(3, at);
        if !ensure_ahead(cpu::rsp() - (at - bytes) + 256) {
            return ENSURE_REFUSED;
        }
        match cpu::without_interrupts(|| {
            provoke::rep_stos_down(at, bytes, STOS_VALUE, &KernelSpace)
        }) {
            Ok(r) => {
                set_seen(0, r.rcx);
                set_seen(1, r.rdi);
                set_seen(2, r.left);
                u64::from(r.equal)
            }
            Err(_) => u64::MAX,
        }
    }) else {
        return Ok(());
    };
    let (rcx, rdi, left, at) = (seen(0), seen(1), seen(2), seen(3));
    let refused = j.result == ENSURE_REFUSED;
    let want_rdi = at - 8 - bytes;
    let ok = refused || (j.result == 1 && rcx == 0 && rdi == want_rdi && left == 0);
    log::info!(
        "rep-stos: {bytes} B from {at:#x} down: RCX {rcx}, RDI {rdi:#x} (want {want_rdi:#x}), {left} unequal left; {} growth events, {} pages",
        j.grow_events,
        j.grow_pages
    );
    report::result(|r| {
        growth_fields(
            refused_field(r, refused)
                .bool("ok", ok)
                .u64("bytes", bytes)
                .hex("at", at)
                .u64("rcx", rcx)
                .hex("rdi", rdi)
                .hex("rdi_expected", want_rdi)
                .u64("unequal_left", left)
                .bool("all_equal", j.result == 1)
                .u64("pages", j.pages),
            &j,
        )
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// Bytes of `big_frame`'s buffer.
const BIG: usize = 12 * 1024;

/// One function whose frame is three pages: the compiler probes each page on the way down.
#[inline(never)]
fn big_frame(seed: u64) -> u64 {
    let mut buf = [0u8; BIG];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(seed, i);
    }
    black_box(&mut buf);
    mix(seed, black_box(&buf).iter().map(|b| *b as u64).sum())
}

fn big_frame_expected(seed: u64) -> u64 {
    mix(seed, (0..BIG).map(|i| byte(seed, i) as u64).sum())
}

/// `big-frame`.
fn big_frame_cmd(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let Some((j, _)) = run_thread("big-frame", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        let at = s.lo() + 256;
        if !ensure_ahead(cpu::rsp() - at + BIG as u64 + 1024) {
            return ENSURE_REFUSED;
        }
        let mut got = 0;
        // Interrupts off: a timer interrupt taken inside the frame would push its own frame
        // and handler below it and grow pages the probes did not (seen under load).
        match cpu::without_interrupts(|| {
            provoke::call_at(at, &mut || got = big_frame(9), &KernelSpace)
        }) {
            Ok(()) => got,
            Err(_) => 0,
        }
    }) else {
        return Ok(());
    };
    let refused = j.result == ENSURE_REFUSED;
    let want = big_frame_expected(9);
    // Fault-driven growth sees one fault per page: each probe touches the next page down.
    let page_by_page = !growth::mode().grows_on_fault() || j.grow_events == j.grow_pages;
    let ok = refused || (j.result == want && page_by_page);
    log::info!(
        "big-frame: {} growth events for {} pages, {} pages mapped, high-water {} B",
        j.grow_events,
        j.grow_pages,
        j.pages,
        j.high_water
    );
    report::result(|r| {
        growth_fields(
            refused_field(r, refused)
                .bool("ok", ok)
                .hex("result", j.result)
                .hex("expected", want)
                .bool("page_by_page", page_by_page)
                .u64("high_water", j.high_water)
                .u64("pages", j.pages),
            &j,
        )
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `span-limit`: grows to the floor one push at a time (or with `ensure_stack`), writes the
/// lowest word, reports, and pushes below the floor, which must stop the machine (or, under
/// growth mode `ensure`, asks `ensure_stack` for one more word, which must refuse).
fn span_limit(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let Some((j, _)) = run_thread("span-limit", policy(), || {
        let Some(slot) = stacks::live_slot(cpu::rsp()) else {
            return u64::MAX;
        };
        let floor = slot.floor;
        if growth::mode().ensures() {
            if growth::ensure(cpu::rsp(), cpu::rsp() - floor).is_err() {
                return u64::MAX;
            }
        } else {
            loop {
                let lo = stacks::find(cpu::rsp()).map_or(0, |s| s.lo());
                if lo <= floor || provoke::push_below(lo, &KernelSpace).is_err() {
                    break;
                }
            }
        }
        let lo = stacks::find(cpu::rsp()).map_or(0, |s| s.lo());
        if lo != floor || provoke::mark_stack_word(floor, &KernelSpace).is_err() {
            return u64::MAX;
        }
        report::emit("limit", |r| {
            r.hex("floor", floor)
                .u64("pages", (slot.range.top - floor) / PAGE)
                .hex("lowest_word", floor)
        });
        if growth::mode().ensures() {
            return match growth::ensure(cpu::rsp(), cpu::rsp() - floor + 8) {
                Err(_) => ENSURE_REFUSED,
                Ok(_) => u64::MAX,
            };
        }
        let _ = provoke::push_below(floor, &KernelSpace);
        u64::MAX
    }) else {
        return Ok(());
    };
    // Only a refused `ensure_stack` may come back.
    let refused = j.result == ENSURE_REFUSED;
    report::result(|r| {
        refused_field(r, refused)
            .bool("ok", refused)
            .u64("pages", j.pages)
    });
    if !refused {
        fail();
    }
    Ok(())
}

/// `wild-edge`: a stray write 2 KiB below the mapped edge of the thread's stack.
fn wild_edge(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let ran = run_thread("wild-edge", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        let target = s.lo() - 2048;
        provoke::poke_unmapped_below_rsp(cpu::rsp() - target, &KernelSpace).unwrap_or(0)
    });
    if let Some((j, _)) = ran {
        report::result(|r| r.bool("ok", false).hex("addr", j.result));
        fail();
    }
    Ok(())
}

/// The demand address the injected scenarios fault on first (first half of the area).
const DEMAND_AT: u64 = lazy::BASE + 0x3018;

/// Arms `inj`, writes `value` at [`DEMAND_AT`] (a demand fault whose handler runs the
/// injection) and reads it back; also whether the injection's own fault mapped the shadow page
/// (reading it then faults no more).
fn demand_write_with(inj: inject::Injection, value: u8) -> (u8, bool) {
    lazy::reset();
    inject::arm(inj);
    lazy::write(DEMAND_AT, value);
    let back = lazy::read(DEMAND_AT).unwrap_or(0);
    let faults = lazy::faults();
    let shadow = lazy::read(DEMAND_AT + lazy::SIZE / 2) == Some(0) && lazy::faults() == faults;
    (back, shadow)
}

/// `cr2-nested`.
fn cr2_nested(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let (back, nested_mapped) = demand_write_with(inject::Injection::FaultAtPfEntry, 0xc2);
    let (data, live) = inject::at_entry_cr2();
    let ok = back == 0xc2 && data == DEMAND_AT && live != DEMAND_AT && nested_mapped;
    log::info!(
        "cr2-nested: event data {data:#x}, CR2 after the nested #PF {live:#x}; value read back {back:#x}"
    );
    report::result(|r| {
        r.bool("ok", ok)
            .str("growth", growth::mode().name())
            .hex("addr", DEMAND_AT)
            .hex("event_data", data)
            .hex("cr2_after_nested", live)
            .u64("value", back as u64)
            .bool("nested_mapped", nested_mapped)
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `nmi-in-pf`.
fn nmi_in_pf(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let nmis0 = events::nmis();
    let (back, nmi_mapped) = demand_write_with(inject::Injection::NmiAtPfEntry, 0x4e);
    let nmis = events::nmis() - nmis0;
    let ok = back == 0x4e && nmis == 1 && nmi_mapped;
    log::info!("nmi-in-pf: {nmis} NMI, its #PF served: {nmi_mapped}; value read back {back:#x}");
    report::result(|r| {
        r.bool("ok", ok)
            .str("growth", growth::mode().name())
            .u64("nmis", nmis)
            .u64("value", back as u64)
            .bool("nmi_fault_mapped", nmi_mapped)
    });
    if !ok {
        fail();
    }
    Ok(())
}
