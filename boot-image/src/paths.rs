//! Where things are: the workspace, build outputs, and the pinned toolchains.

use std::path::PathBuf;

/// The pinned stable toolchain (kernel and every host crate). Same as rust-toolchain.toml.
pub const STABLE: &str = "1.95.0";
/// The pinned nightly, used only to build the image builder (`boot-image/imager`).
pub const NIGHTLY: &str = "nightly-2026-10-30";
/// The kernel's target triple.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The kernel's package (and binary) name.
pub const KERNEL_PACKAGE: &str = "stacklab-kernel";

/// The workspace root (this crate lives in `<root>/boot-image`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory (`$CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// `target/stacklab`: images, locks, probe cache.
pub fn stacklab_dir() -> PathBuf {
    target_dir().join("stacklab")
}

/// The kernel ELF cargo produces.
pub fn kernel_elf(debug: bool) -> PathBuf {
    let profile = if debug { "debug" } else { "release" };
    target_dir()
        .join(KERNEL_TARGET)
        .join(profile)
        .join(KERNEL_PACKAGE)
}

/// The bootable UEFI disk image.
pub fn default_image() -> PathBuf {
    stacklab_dir().join("stacklab-uefi.img")
}

/// The image builder's manifest.
pub fn imager_manifest() -> PathBuf {
    workspace_root()
        .join("boot-image")
        .join("imager")
        .join("Cargo.toml")
}

/// The image builder's own target directory (nightly artifacts never mix with stable ones).
pub fn imager_target_dir() -> PathBuf {
    target_dir().join("imager")
}
