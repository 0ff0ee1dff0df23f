//! `cargo lab ...`: see `boot_image::cli` and docs/running.md.

#![forbid(unsafe_code)]

fn main() {
    // Ctrl-C: kill any QEMU we started (the run then unwinds and cleans its temp files), or
    // exit at once if none is running. A second Ctrl-C always exits.
    // The same for SIGTERM and SIGHUP; a terminal `run --shell` put in raw mode is restored.
    let _ = ctrlc::set_handler(|| {
        boot_image::cli::restore_terminal();
        static SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let again = SEEN.swap(true, std::sync::atomic::Ordering::SeqCst);
        if !boot_image::qemu::interrupt() || again {
            eprintln!("interrupted");
            std::process::exit(boot_image::exit::status::INTERRUPTED);
        }
    });
    std::process::exit(boot_image::cli::main(std::env::args_os().skip(1)));
}
