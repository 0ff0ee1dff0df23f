//! CPU events on the boot path: a breakpoint that returns, the timer, a #GP and a #PF that
//! are fatal, and an overflow of the boot stack into its guard page.

use stacklab_core::cmdline::ArgError;
use stacklab_core::event::Vector;
use stacklab_core::tsc;

use super::fail;
use crate::arch::x86_64::{cpu, pic, provoke};
use crate::commands::{Call, Command, command};
use crate::{events, report, time};

/// The commands of this file.
pub const COMMANDS: &[Command] = &[
    command!(
        "int3",
        "",
        "execute int3; the #BP handler returns to the caller",
        "int3",
        int3
    ),
    command!(
        "ticks",
        "MS:1..60000",
        "busy-wait MS milliseconds of TSC time and count timer interrupts",
        "ticks 20",
        ticks
    ),
    command!(
        "gp",
        "",
        "load a selector past the GDT limit: #GP(0x50), a fatal report",
        "gp",
        gp
    ),
    command!(
        "read",
        "ADDR:0..",
        "read one byte at an unmapped or demand-area ADDR (an unmapped one is a fatal #PF report)",
        "read 0x1000",
        read
    ),
    command!(
        "boot-overflow",
        "",
        "recurse on the boot stack into its guard page: #DF report, stop",
        "boot-overflow",
        boot_overflow
    ),
];

fn int3(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let before = events::breakpoints();
    provoke::breakpoint();
    let after = events::breakpoints();
    let hits = after.hits - before.hits;
    let ok = hits == 1;
    log::info!(
        "int3: handler ran {hits} time(s), returned to {:#x}",
        after.last_rip
    );
    report::result(|r| {
        r.bool("ok", ok)
            .str("handler", "breakpoint")
            .u64("vector", Vector::BREAKPOINT.0 as u64)
            .u64("hits", hits)
            .hex("rip", after.last_rip)
    });
    if !ok {
        fail();
    }
    Ok(())
}

fn ticks(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let ms = c.number(0);
    let (start, t0) = (pic::ticks(), cpu::rdtsc());
    if !time::spin_ms(ms) {
        crate::commands::shell::report_interrupted(false);
        return Ok(());
    }
    let (counted, t1) = (pic::ticks() - start, cpu::rdtsc());
    // Judged against the TSC time that passed: never more interrupts than timer periods fit
    // (the timer would run fast), never fewer than a fifth less a host stall (stopped or slow). QEMU TCG on a
    // loaded host merges late timer edges, so some loss is the emulator's (see
    // `stacklab_core::tsc::tick_window`).
    let w = tsc::tick_window(
        t1 - t0,
        time::tsc_hz(),
        time::tsc_error_ppm(),
        pic::TIMER_HZ as u64,
    );
    let ok = w.accepts(counted);
    log::info!(
        "ticks: {counted} timer interrupts in {ms} ms (expected {}, accepted {}..={})",
        w.expected,
        w.min,
        w.max
    );
    report::result(|r| {
        r.bool("ok", ok)
            .u64("ms", ms)
            .u64("ticks", counted)
            .u64("expected", w.expected)
            .u64("min", w.min)
            .u64("max", w.max)
    });
    if !ok {
        fail();
    }
    Ok(())
}

fn gp(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    provoke::general_protection()
}

fn read(c: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    let a = c.number(0);
    match crate::mem::probe_read(a) {
        Ok(v) => report::result(|r| r.bool("ok", true).hex("addr", a).u64("value", v as u64)),
        Err(_) => c.refuse(format_args!(
            "{a:#x} is mapped; read probes only unmapped addresses and the demand area"
        )),
    }
    Ok(())
}

/// Recurses with 512-byte frames until the boot stack's guard page stops it.
fn boot_overflow(_: &mut Call<'_>) -> Result<(), ArgError<'static>> {
    log::info!("boot-overflow: recursing on the boot stack until it hits its guard page");
    let depth = overflow(0);
    // Unreachable unless the guard page is missing.
    report::result(|r| r.bool("ok", false).u64("depth", depth));
    fail();
    Ok(())
}

#[inline(never)]
fn overflow(n: u64) -> u64 {
    let mut buf = [0u8; 512];
    buf[n as usize % 512] = n as u8;
    let buf = core::hint::black_box(buf);
    if core::hint::black_box(n) == u64::MAX {
        0
    } else {
        overflow(n + 1) + buf[0] as u64
    }
}
