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
