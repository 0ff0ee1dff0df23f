//! An image the firmware cannot boot must fail fast with a clear message, not wait out the
//! timeout at OVMF's UEFI shell. Boots real QEMU with OVMF (TCG): needs `cargo lab setup`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_boot-image");

#[test]
fn a_garbage_image_fails_fast_as_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("garbage.img");
    // 1 MiB of deterministic noise: no partition table, no EFI system partition.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(&image, bytes).unwrap();
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(["run", "--image"])
        .arg(&image)
        .args(["--accel", "tcg"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stderr}\n{stdout}");
    assert!(
        stderr.contains(&format!(
            "error: the firmware found no bootable image in {}: OVMF started its UEFI shell",
            image.display()
        )),
        "{stderr}"
    );
    // The default timeout is 60 s; OVMF gives up after about 5 s under TCG.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // It was stopped at the shell's start, before the shell's countdown.
    assert!(stdout.contains("EFI Internal Shell"), "{stdout}");
    assert!(!stdout.contains("Shell>"), "{stdout}");
}
