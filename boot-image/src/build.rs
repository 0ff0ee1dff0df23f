//! Building the kernel (pinned stable) and the UEFI disk image (the imager, pinned nightly).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::{self, KERNEL_PACKAGE, KERNEL_TARGET, NIGHTLY, STABLE};
use crate::{Error, elf};

/// What to do with the output of the cargo commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Stream it to the terminal (the CLI).
    Inherit,
    /// Capture it; on failure its tail goes into the error (the test harness).
    Quiet,
}

/// One build step and how long it took.
#[derive(Clone, Debug)]
pub struct Step {
    /// `kernel` or `image`.
    pub name: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// The step had nothing to do.
    pub skipped: bool,
}

/// The kernel and its image, built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The kernel ELF.
    pub elf: PathBuf,
    /// The UEFI disk image made from it.
    pub image: PathBuf,
    /// What was done, in order.
    pub steps: Vec<Step>,
}

/// Holds `target/stacklab/.build.lock` exclusively while alive.
pub struct BuildLock {
    _file: File,
}

impl BuildLock {
    /// Waits for the lock: concurrent test processes build one at a time.
    pub fn acquire() -> Result<BuildLock, Error> {
        let dir = paths::stacklab_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::env(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(".build.lock");
        let file = File::create(&path)
            .map_err(|e| Error::env(format!("cannot create {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| Error::env(format!("cannot lock {}: {e}", path.display())))?;
        Ok(BuildLock { _file: file })
    }
}

fn run_cargo(mut cmd: Command, what: &str, output: Output) -> Result<(), Error> {
    // Never let an outer cargo/rustup (e.g. `cargo test` running the harness) pick the
    // toolchain or flags: `+toolchain` on the command line decides.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    let result = match output {
        Output::Inherit => cmd.status().map(|s| (s, String::new())),
        Output::Quiet => cmd
            .output()
            .map(|o| (o.status, String::from_utf8_lossy(&o.stderr).into_owned())),
    };
    let (status, stderr) =
        result.map_err(|e| Error::env(format!("cannot run cargo for the {what}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    // The first error and what follows it (warnings before it are noise here).
    let lines: Vec<&str> = stderr.lines().collect();
    let first_error = lines
        .iter()
        .position(|l| l.starts_with("error"))
        .unwrap_or(lines.len().saturating_sub(30));
    let tail: Vec<&str> = lines[first_error..].iter().take(30).copied().collect();
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.join("\n"))
    };
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| c.to_string());
    Err(Error::build(format!(
        "the {what} build failed (cargo exited with {code}){tail}"
    )))
}

/// `cargo +STABLE build [--release] -p stacklab-kernel --target x86_64-unknown-none`.
pub fn build_kernel(debug: bool, output: Output) -> Result<PathBuf, Error> {
    let root = paths::workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{STABLE}")).arg("build");
    if !debug {
        cmd.arg("--release");
    }
    cmd.args(["-p", KERNEL_PACKAGE, "--target", KERNEL_TARGET])
        .current_dir(&root);
    if output == Output::Quiet {
        cmd.arg("--quiet");
    }
    run_cargo(cmd, "kernel", output)?;
    let elf = paths::kernel_elf(debug);
    if !elf.is_file() {
        return Err(Error::build(format!(
            "cargo succeeded but {} does not exist",
            elf.display()
        )));
    }
    Ok(elf)
}

fn stamp_path(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(".source");
    PathBuf::from(s)
}

fn stamp_text(elf: &Path) -> String {
    let elf = elf.canonicalize().unwrap_or_else(|_| elf.to_path_buf());
    format!("{}\n", elf.display())
}

/// The image exists, is newer than the ELF, and was built from this ELF path.
pub fn image_up_to_date(elf: &Path, image: &Path) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(elf), mtime(image)) {
        (Some(e), Some(i)) if i > e => std::fs::read_to_string(stamp_path(image))
            .map(|s| s == stamp_text(elf))
            .unwrap_or(false),
        _ => false,
    }
}

/// Runs the imager on `elf` unless `image` is already up to date. Returns whether it ran.
pub fn build_image(elf: &Path, image: &Path, output: Output) -> Result<bool, Error> {
    elf::validate_file(elf)?;
    if image_up_to_date(elf, image) {
        return Ok(false);
    }
    if !crate::toolchain::toolchain_installed(NIGHTLY) {
        return Err(Error::env(format!(
            "the image builder needs the {NIGHTLY} toolchain with rust-src: run `cargo lab setup`"
        )));
    }
    if let Some(dir) = image.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::env(format!("cannot create {}: {e}", dir.display())))?;
    }
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let manifest = paths::imager_manifest();
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{NIGHTLY}"))
        .args(["run", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        // `--target-dir`, not CARGO_TARGET_DIR: bootloader's build script runs a nested
        // `cargo install`, which would inherit the variable, try to lock the very target
        // directory its parent build holds, and wait forever.
        .arg("--target-dir")
        .arg(paths::imager_target_dir())
        .env_remove("CARGO_TARGET_DIR")
        .arg("--")
        .arg(abs(elf))
        .arg(abs(image))
        .current_dir(manifest.parent().unwrap_or(Path::new(".")));
    let _ = std::fs::remove_file(stamp_path(image));
    run_cargo(cmd, "UEFI image", output)?;
    std::fs::write(stamp_path(image), stamp_text(elf))
        .map_err(|e| Error::env(format!("cannot write {}: {e}", stamp_path(image).display())))?;
    Ok(true)
}

/// Kernel + image, under the build lock.
pub fn ensure_built(debug: bool, output: Output) -> Result<Built, Error> {
    let _lock = BuildLock::acquire()?;
    let t = Instant::now();
    let elf = build_kernel(debug, output)?;
    let mut steps = vec![Step {
        name: "kernel",
        elapsed: t.elapsed(),
        skipped: false,
    }];
    let image = paths::default_image();
    let t = Instant::now();
    let built = build_image(&elf, &image, output)?;
    steps.push(Step {
        name: "image",
        elapsed: t.elapsed(),
        skipped: !built,
    });
    Ok(Built { elf, image, steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_freshness_needs_newer_mtime_and_matching_source() {
        let dir = tempfile::tempdir().unwrap();
        let elf = dir.path().join("kernel");
        let other = dir.path().join("other");
        let img = dir.path().join("x.img");
        std::fs::write(&elf, b"elf").unwrap();
        std::fs::write(&other, b"elf").unwrap();
        assert!(!image_up_to_date(&elf, &img));
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&img, b"img").unwrap();
        assert!(!image_up_to_date(&elf, &img), "no stamp yet");
        std::fs::write(stamp_path(&img), stamp_text(&elf)).unwrap();
        assert!(image_up_to_date(&elf, &img));
        assert!(!image_up_to_date(&other, &img), "built from another ELF");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&elf, b"elf2").unwrap();
        assert!(!image_up_to_date(&elf, &img), "ELF is newer");
    }

    #[test]
    fn a_bad_elf_is_rejected_before_the_imager_runs() {
        let dir = tempfile::tempdir().unwrap();
        let elf = dir.path().join("kernel");
        let mut h = crate::elf::tests::header(1, 1, 2, 3);
        h.truncate(52);
        std::fs::write(&elf, &h).unwrap();
        let e = build_image(&elf, &dir.path().join("x.img"), Output::Quiet).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        assert!(
            e.msg.ends_with("is a 32-bit ELF; the kernel must be ELF64"),
            "{}",
            e.msg
        );
    }
}
