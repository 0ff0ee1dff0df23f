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
mod fredsim;
mod growth;
mod mem;
mod report;
mod scenarios;
mod stacks;
mod startup;
mod thread;
mod time;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};
use stacklab_core::proto::ExitCode;

use arch::x86_64::gdt::Ist;
use arch::x86_64::{cpu, gdt, pic, serial, trap};

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
    let startup::CommandLine {
        text: cmdline,
        start,
        ready_tsc,
    } = startup::command_line();
    let ready_ns = time::cycles_to_ns(ready_tsc - time::entry_tsc());
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
            .str("start", start.name())
            .str(
                "fred",
                if arch::x86_64::fredsim::fred_available() {
                    "available"
                } else {
                    "absent"
                },
            )
    });
    commands::run_all(&cmdline)
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
