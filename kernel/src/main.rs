//! stacklab: an x86_64 kernel for experiments with kernel stacks that grow on demand.
//!
//! Boot path (see docs/architecture.md): the UEFI boot loader enters [`kernel_main`] on its
//! own stack; the kernel sets up serial, memory, GDT/TSS/IST, IDT and the timer, moves onto its
//! own guard-paged boot stack, reads its command line from fw_cfg, reports `ready`, and runs
//! the commands.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod commands;
mod events;
mod fred;
mod fredsim;
mod growth;
mod mem;
mod report;
mod scenarios;
mod stacks;
mod thread;
mod time;

use alloc::string::String;
use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};
use stacklab_core::bochs::{CMDLINE_REQUEST, CmdlineReceiver, Progress};
use stacklab_core::cmdline::MAX_CMDLINE;
use stacklab_core::proto::{ExitCode, FW_CFG_CMDLINE};

use arch::x86_64::gdt::Ist;
use arch::x86_64::{cpu, fwcfg, gdt, pic, platform, serial, trap};

const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut c = BootloaderConfig::new_default();
    c.mappings.physical_memory = Some(Mapping::Dynamic);
    // Keep the boot loader's dynamic mappings out of the kernel's own level-4 slot.
    c.mappings.dynamic_range_end = Some(mem::BOOTLOADER_DYNAMIC_END);
    c
};

entry_point!(kernel_main, config = &BOOTLOADER_CONFIG);

static KERNEL_OFFSET: spin::Once<u64> = spin::Once::new();

fn kernel_main(boot_info: &mut BootInfo) -> ! {
    time::mark_entry(cpu::rdtsc());
    serial::init();
    KERNEL_OFFSET.call_once(|| boot_info.kernel_image_offset);
    mem::init(boot_info);
    report::init_logger();
    mem::frame::log_regions();
    gdt::init(Ist::ALL.map(|i| mem::kva::alloc_stack(i.pages()).1));
    trap::set_handler(events::handle);
    growth::set_mode(growth::Mode::Abort);
    pic::init();
    cpu::enable_interrupts();
    stacks::enter_boot_stack(on_boot_stack)
}

extern "sysv64" fn on_boot_stack(_: u64) -> ! {
    thread::init();
    time::calibrate();
    let cmdline = read_cmdline();
    let ready_ns = time::cycles_to_ns(cpu::rdtsc() - time::entry_tsc());
    log::info!(
        "stacklab {} ready in {}.{:03} ms (tsc {}.{:03} MHz +/- {} ppm, {}); command line: '{cmdline}'",
        env!("CARGO_PKG_VERSION"),
        ready_ns / 1_000_000,
        ready_ns / 1000 % 1000,
        time::tsc_hz() / 1_000_000,
        time::tsc_hz() / 1000 % 1000,
        time::tsc_error_ppm(),
        time::tsc_source().name()
    );
    report::emit("ready", |r| {
        r.str("version", env!("CARGO_PKG_VERSION"))
            .u64("tsc_hz", time::tsc_hz())
            .str("tsc_source", time::tsc_source().name())
            .u64("tsc_error_ppm", time::tsc_error_ppm())
            .u64("entry_to_ready_ns", ready_ns)
            .hex("kernel_offset", *KERNEL_OFFSET.get().unwrap_or(&0))
            .str("cmdline", &cmdline)
            .str("fred", platform::fred_state())
            .str("emulator", platform::emulator().name())
    });
    commands::run_all(&cmdline)
}

/// The command line: the fw_cfg file under QEMU; on Bochs (whose fw_cfg carries no user
/// files) the host's answer over COM1 to the request line (`stacklab_core::bochs`), waited for
/// at most 10 s.
fn read_cmdline() -> String {
    let mut buf = [0u8; MAX_CMDLINE];
    let n = if platform::emulator() == platform::Emulator::Bochs {
        serial::write_fmt(format_args!("{CMDLINE_REQUEST}\n"));
        let mut rx = CmdlineReceiver::new();
        let give_up = cpu::rdtsc() + time::tsc_hz() * 10;
        loop {
            match serial::try_read().map(|b| rx.feed(b, &mut buf)) {
                Some(Progress::Done(n)) => break n,
                Some(Progress::BadLength) => {
                    report::bad_command("cmdline", format_args!("bad answer on COM1"));
                    break 0;
                }
                _ if cpu::rdtsc() > give_up => {
                    report::bad_command("cmdline", format_args!("no answer on COM1 in 10 s"));
                    break 0;
                }
                _ => core::hint::spin_loop(),
            }
        }
    } else {
        match fwcfg::read_file(FW_CFG_CMDLINE, &mut buf) {
            Some((n, size)) if n < size => {
                report::bad_command(
                    "cmdline",
                    format_args!("command line is {size} bytes; the limit is {MAX_CMDLINE}"),
                );
                return String::new();
            }
            Some((n, _)) => n,
            None => 0,
        }
    };
    match core::str::from_utf8(&buf[..n]) {
        Ok(s) => String::from(s.trim_end_matches('\0')),
        Err(_) => {
            report::bad_command("cmdline", format_args!("command line is not UTF-8"));
            String::new()
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    cpu::without_interrupts(|| {
        let mut w = serial::emergency();
        let _ = writeln!(w, "!!! PANIC: {info}");
        report::emit_fatal("abort", |r| {
            r.str("reason", "panic")
                .fmt("msg", format_args!("{}", info.message()))
        });
        report::exit_fatal(ExitCode::Panic)
    })
}
