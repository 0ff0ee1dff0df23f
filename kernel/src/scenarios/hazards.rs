//! The growth paths' hazards: a timer interrupt whose delivery is the growth fault, a nested
//! #PF on an IST stack, `ensure` ahead of a deep path, and the zram-like reclaim chain of the
//! 2024 Asahi report.

use core::hint::black_box;
use stacklab_core::cmdline::ArgError;

use super::recursion::{byte, expected, mix, recurse, stack_need};
use super::threads::frame_arg;
use super::{ENSURE_REFUSED, ensure_ahead, fail, growth_fields, policy, refused_field, run_thread};
use crate::arch::x86_64::{cpu, pic, provoke};
use crate::commands::{Call, Command, command};
use crate::events::inject::{self, Injection};
use crate::mem::lazy;
use crate::mem::stackmap::KernelSpace;
use crate::{report, stacks};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "edge-irq",
        "",
        "a thread parks RSP at its mapped edge until a timer interrupt arrives",
        "edge-irq",
        edge_irq
    ),
    command!(
        "demand-nested",
        "",
        "a #PF whose handler takes a nested #PF (demand area)",
        "demand-nested",
        demand_nested
    ),
    command!(
        "ensure",
        "DEPTH:0..100000 FRAME:1..8K",
        "recurse DEPTH x FRAME after ensure_stack() mapped the needed bytes",
        "ensure 40 256",
        ensure_cmd
    ),
    command!(
        "wild-write",
        "DISTANCE:64..1M",
        "a thread writes DISTANCE bytes below its RSP, where nothing is mapped: never growth, a fatal #PF report",
        "wild-write 8K",
        wild_write
    ),
    command!(
        "ist-reenter",
        "",
        "under pf-ist: the growth #PF handler takes a #PF on its own IST stack (injected): the re-entry report",
        "ist-reenter",
        ist_reenter
    ),
    command!(
        "reclaim",
        "LEVELS:1..64 MODE:plain|ensure|extra",
        "zram-style reclaim chain: plain | ensure | extra",
        "reclaim 6 extra",
        reclaim_cmd
    ),
];

/// `edge-irq`: RSP parked exactly at the mapped edge until a timer interrupt arrives; the
/// interrupt's own frame push is the growth fault.
fn edge_irq(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    // Read before the spawn: the timer may run the new thread before `spawn` returns.
    let lost0 = pic::lost_recovered();
    let Some((j, _)) = run_thread("edge-irq", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        match provoke::spin_at(s.lo(), pic::ticks_counter(), || {}, &KernelSpace) {
            Ok(_) => s.lo(),
            Err(_) => 0,
        }
    }) else {
        return Ok(());
    };
    let lost = pic::lost_recovered() - lost0;
    let ok = j.result != 0 && j.grow_events >= 1 && j.grow_pages >= 1;
    log::info!(
        "edge-irq: survived; {} growth events, {} pages; {lost} timer interrupt(s) consumed by the faulting delivery, replayed with EOI",
        j.grow_events,
        j.grow_pages
    );
    report::result(|r| {
        growth_fields(
            r.bool("ok", ok)
                .hex("edge", j.result)
                .u64("lost_irqs_recovered", lost),
            &j,
        )
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `wild-write DISTANCE`: a stray write into the thread's own unmapped stack range, far below
/// RSP. Growth paths must refuse it (`Fault::reach` in `growth_rules`); it ends in a fatal
/// #PF report. Completing is a failure.
fn wild_write(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let distance = c.number(0);
    let ran = run_thread("wild-write", policy(), move || {
        provoke::poke_unmapped_below_rsp(distance, &KernelSpace).unwrap_or(0)
    });
    if let Some((j, _)) = ran {
        report::result(|r| {
            r.bool("ok", false)
                .hex("addr", j.result)
                .u64("pages", j.pages)
        });
        fail();
    }
    Ok(())
}

/// `ist-reenter`: arms the injection that makes the next growth #PF handler (on the #PF IST
/// stack, under `pf-ist`) take a #PF itself, then grows a stack. Ends in the re-entry report.
fn ist_reenter(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    inject::arm(Injection::FaultOnPfIst);
    let ran = run_thread("ist-reenter", policy(), || {
        let s = stacks::find(cpu::rsp()).expect("on a thread stack");
        provoke::push_below(s.lo(), &KernelSpace).unwrap_or(0)
    });
    if ran.is_some() {
        report::result(|r| r.bool("ok", false));
        fail();
    }
    Ok(())
}

/// `demand-nested`: a demand fault whose handler takes a nested demand fault.
fn demand_nested(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    lazy::reset();
    let before = inject::nested_ok();
    let addr = lazy::BASE + 0x1234;
    inject::arm(Injection::NestedDemandFault);
    lazy::write(addr, 0x5a);
    let back = lazy::read(addr).unwrap_or(0);
    let shadow = lazy::read(addr + lazy::SIZE / 2).unwrap_or(0xff);
    let nested = inject::nested_ok() - before;
    let ok = back == 0x5a && shadow == 0 && nested == 1;
    log::info!(
        "demand-nested: outer frame intact after a nested #PF ({}); value read back {back:#x}",
        crate::growth::mode().name()
    );
    report::result(|r| {
        r.bool("ok", ok)
            .str("growth", crate::growth::mode().name())
            .u64("value", back as u64)
            .u64("nested", nested)
    });
    if !ok {
        fail();
    }
    Ok(())
}

/// `ensure D F`: map the stack the recursion will need first, then recurse.
fn ensure_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let depth = c.number(0);
    let Some(frame) = frame_arg(c, 1) else {
        return Ok(());
    };
    let need = stack_need(depth, frame);
    let Some((j, _)) = run_thread("ensure", policy(), move || {
        match crate::growth::ensure(cpu::rsp(), need) {
            Ok(_) => recurse(depth, frame, 0).unwrap_or(0),
            Err(_) => u64::MAX,
        }
    }) else {
        return Ok(());
    };
    let want = expected(depth, frame);
    let refused = j.result == u64::MAX;
    let ok = refused || j.result == want;
    log::info!(
        "ensure: {} ({need} bytes asked); {} pages mapped, {} growth faults",
        if refused {
            "ensure_stack refused: the policy's maximum is too small"
        } else {
            "recursion completed"
        },
        j.pages,
        j.grow_events
    );
    report::result(|r| {
        growth_fields(
            r.bool("ok", ok)
                .bool("refused", refused)
                .u64("bytes", need)
                .hex("result", j.result)
                .hex("expected", want)
                .u64("pages", j.pages),
            &j,
        )
    });
    if !ok {
        fail();
    }
    Ok(())
}

// The reclaim chain: an allocation that enters direct reclaim, which compresses a page (with a
// large frame, like the GPU driver's Rust frame in the Asahi report) and allocates again.

const RECLAIM_FRAME: usize = 2560;
/// Stack one level of the chain needs (measured: alloc + reclaim + compress frames).
pub const RECLAIM_LEVEL_BYTES: u64 = 3584;

/// How the reclaim chain gets its stack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReclaimMode {
    /// No help: the chain runs on its own stack.
    Plain,
    /// `ensure` maps the whole chain's stack first.
    Ensure,
    /// Each reclaim level asks `with_extra_stack` for room.
    Extra,
}

#[inline(never)]
fn alloc_page(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut meta = [0u8; 256];
    meta[level as usize % 256] = level as u8 + 1;
    black_box(&mut meta);
    if level == levels {
        return Ok(level);
    }
    let inner = direct_reclaim(level, levels, mode)?;
    Ok(mix(inner, black_box(&meta).iter().map(|b| *b as u64).sum()))
}

#[inline(never)]
fn direct_reclaim(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut lru = [0u8; 512];
    lru[(level * 3) as usize % 512] = 7;
    black_box(&mut lru);
    let inner = match mode {
        ReclaimMode::Extra => {
            let need = (levels - level) * RECLAIM_LEVEL_BYTES;
            match stacks::with_extra_stack(need.min(RECLAIM_LEVEL_BYTES * 4), || {
                compress(level, levels, mode)
            }) {
                Ok(r) => r?,
                Err(stacks::ExtraError::PoolEmpty) => return Err("extra-stack pool empty"),
            }
        }
        _ => compress(level, levels, mode)?,
    };
    Ok(mix(inner, black_box(&lru).iter().map(|b| *b as u64).sum()))
}

#[inline(never)]
fn compress(level: u64, levels: u64, mode: ReclaimMode) -> Result<u64, &'static str> {
    let mut work = [0u8; RECLAIM_FRAME];
    for (i, b) in work.iter_mut().enumerate() {
        *b = byte(level, i);
    }
    black_box(&mut work);
    let inner = alloc_page(level + 1, levels, mode)?;
    Ok(mix(inner, black_box(&work).iter().map(|b| *b as u64).sum()))
}

fn reclaim_expected(levels: u64) -> u64 {
    let mut acc = levels;
    for level in (0..levels).rev() {
        let work: u64 = (0..RECLAIM_FRAME).map(|i| byte(level, i) as u64).sum();
        acc = mix(acc, work);
        acc = mix(acc, 7);
        acc = mix(acc, level % 256 + 1);
    }
    acc
}

/// `reclaim LEVELS MODE`.
fn reclaim_cmd(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let levels = c.number(0);
    let mode = match c.word(1) {
        "plain" => ReclaimMode::Plain,
        "ensure" => ReclaimMode::Ensure,
        _ => ReclaimMode::Extra,
    };
    let used0 = stacks::extra_used();
    let Some((j, _)) = run_thread("reclaim", policy(), move || {
        // Under growth mode `ensure`, the plain chain asks for its stack first too.
        let need = (levels + 1) * RECLAIM_LEVEL_BYTES;
        let refused = match mode {
            ReclaimMode::Ensure => crate::growth::ensure(cpu::rsp(), need).is_err(),
            ReclaimMode::Plain => !ensure_ahead(need),
            ReclaimMode::Extra => false,
        };
        if refused {
            return ENSURE_REFUSED;
        }
        alloc_page(0, levels, mode).unwrap_or(u64::MAX)
    }) else {
        return Ok(());
    };
    let want = reclaim_expected(levels);
    let outcome = match j.result {
        v if v == u64::MAX => "pool-empty-error",
        ENSURE_REFUSED => "ensure-refused",
        v if v == want => "completed",
        _ => "wrong-result",
    };
    let extra = stacks::extra_used() - used0;
    let ok = outcome != "wrong-result";
    log::info!(
        "reclaim: {levels} levels, {outcome}; extra stacks used {extra}; high-water {} B",
        j.high_water
    );
    report::result(|r| {
        growth_fields(
            refused_field(r, outcome == "ensure-refused")
                .bool("ok", ok)
                .u64("levels", levels)
                .str("outcome", outcome)
                .u64("extra_stacks", extra)
                .hex("result", j.result)
                .hex("expected", want)
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
