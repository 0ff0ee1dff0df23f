//! Smoke test of the harness API exactly as the QEMU integration tests in `tests/` use it.
//! Boots the real kernel (TCG unless a KVM probe boot succeeds): needs `cargo lab setup`.

use boot_image::{ExitCode, Harness, KernelExit, Outcome, RunOptions};

#[test]
fn int3_round_trip_through_the_harness() -> Result<(), Box<dyn std::error::Error>> {
    let h = Harness::get();
    let out: Outcome = h.run(RunOptions::new("int3").timeout_secs(60))?;
    assert_eq!(out.exit, KernelExit::Kernel(ExitCode::Success), "{out:?}");
    let ready = out.find("ready").ok_or("no ready record")?;
    assert!(ready.hex("kernel_offset").is_some(), "{out:?}");
    assert_eq!(out.results().len(), 1, "{out:?}");
    let r = out.result_for("int3").ok_or("no int3 result")?;
    assert_eq!(r.bool("ok"), Some(true), "{out:?}");
    assert!(out.serial.contains("@stacklab "), "{out:?}");
    assert_eq!(out.host_status(), 0);
    Ok(())
}

#[test]
fn a_comma_reaches_the_kernel_intact_and_is_a_bad_command() -> Result<(), Box<dyn std::error::Error>>
{
    let out = Harness::get().run(RunOptions::new("no,such,command").timeout_secs(60))?;
    assert_eq!(
        out.exit,
        KernelExit::Kernel(ExitCode::BadCommand),
        "{out:?}"
    );
    let e = out.find("error").ok_or("no error record")?;
    assert_eq!(e.str("cmd"), Some("no,such,command"), "{out:?}");
    assert_eq!(out.host_status(), 3);
    Ok(())
}

/// The memory a run asks for is what the kernel finds: `info` counts the usable frames.
#[test]
fn memory_mib_sets_the_guest_memory() -> Result<(), Box<dyn std::error::Error>> {
    let usable_mib = |out: &Outcome| -> Option<u64> {
        let frames = out.result_for("info")?.u64("frames_total")?;
        Some((frames * 4096) >> 20)
    };
    let h = Harness::get();
    let small = h.run(RunOptions::new("info").timeout_secs(60))?;
    assert_eq!(
        small.exit,
        KernelExit::Kernel(ExitCode::Success),
        "{small:?}"
    );
    let big = h.run(RunOptions::new("info").memory_mib(1024).timeout_secs(60))?;
    assert_eq!(big.exit, KernelExit::Kernel(ExitCode::Success), "{big:?}");
    let (small, big) = (usable_mib(&small).unwrap(), usable_mib(&big).unwrap());
    assert!(
        small > 256 && small <= 512,
        "default (512 MiB): {small} MiB usable"
    );
    assert!(big > 768 && big <= 1024, "1024 MiB: {big} MiB usable");
    let e = h.run(RunOptions::new("info").memory_mib(16)).unwrap_err();
    assert_eq!(e.exit_status(), 2);
    assert_eq!(e.msg, "16 MiB of guest memory is too little; at least 64M");
    Ok(())
}
