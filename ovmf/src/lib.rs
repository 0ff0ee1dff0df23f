//! Locating OVMF, the UEFI firmware QEMU boots the stacklab image with.
//!
//! Search order (first hit wins):
//! 1. `STACKLAB_OVMF_CODE` + `STACKLAB_OVMF_VARS` (both must be set, and both files must
//!    exist: a set-but-wrong variable is an error, never silently skipped);
//! 2. split CODE/VARS pairs from Debian's `ovmf` package:
//!    `/usr/share/OVMF/OVMF_CODE_4M.fd` + `OVMF_VARS_4M.fd`, then
//!    `/usr/share/OVMF/OVMF_CODE.fd` + `OVMF_VARS.fd`;
//! 3. combined images (code and variables in one file): `/usr/share/ovmf/OVMF.fd`,
//!    `/usr/share/qemu/OVMF.fd`.
//!
//! Split pairs are preferred: the code stays read-only and each run gets a fresh copy of the
//! variable store ([`Firmware::fresh_vars`]), so runs never see each other's NVRAM.
//! This crate only finds files and knows what the firmware prints; the QEMU flags that use
//! them are spelled in `boot-image`.
//!
//! [`gave_up_booting`] recognizes, in the serial output, the moment OVMF finds nothing
//! bootable on the disk and falls back to its built-in UEFI shell (which then waits for a
//! key forever).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the OVMF code (read-only) image.
pub const ENV_CODE: &str = "STACKLAB_OVMF_CODE";
/// Environment variable naming the OVMF variable-store template.
pub const ENV_VARS: &str = "STACKLAB_OVMF_VARS";
/// The Debian package that provides the firmware.
pub const PACKAGE: &str = "ovmf";

/// Split CODE/VARS pairs, relative to the search root, in order of preference.
pub const SPLIT_CANDIDATES: [(&str, &str); 2] = [
    (
        "usr/share/OVMF/OVMF_CODE_4M.fd",
        "usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    ("usr/share/OVMF/OVMF_CODE.fd", "usr/share/OVMF/OVMF_VARS.fd"),
];
/// Combined images, relative to the search root, tried after every split pair.
pub const COMBINED_CANDIDATES: [&str; 2] = ["usr/share/ovmf/OVMF.fd", "usr/share/qemu/OVMF.fd"];

/// The firmware files to boot with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Read-only code plus a template for the writable variable store.
    Split {
        /// The code image (`OVMF_CODE*.fd`), mapped read-only.
        code: PathBuf,
        /// The variable-store template (`OVMF_VARS*.fd`), copied for every run.
        vars: PathBuf,
    },
    /// One image holding both (loaded as the BIOS ROM; variables do not persist).
    Combined {
        /// The image (`OVMF.fd`).
        image: PathBuf,
    },
}

/// Where the firmware was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From `STACKLAB_OVMF_CODE` / `STACKLAB_OVMF_VARS`.
    Env,
    /// From the well-known system paths (Debian's `ovmf` package).
    System,
}

/// Located firmware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firmware {
    /// The files.
    pub layout: Layout,
    /// Where they were found.
    pub origin: Origin,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match self.origin {
            Origin::Env => format!("from ${ENV_CODE}/${ENV_VARS}"),
            Origin::System => format!("from the system (package `{PACKAGE}`)"),
        };
        match &self.layout {
            Layout::Split { code, vars } => {
                write!(
                    f,
                    "code {} + vars {} ({from})",
                    code.display(),
                    vars.display()
                )
            }
            Layout::Combined { image } => write!(f, "combined image {} ({from})", image.display()),
        }
    }
}

/// Why no firmware could be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OvmfError {
    /// An override variable names a file that does not exist.
    EnvMissing {
        /// The variable.
        var: &'static str,
        /// The path it names.
        path: PathBuf,
    },
    /// Only one of the two override variables is set.
    EnvIncomplete {
        /// The variable that is set.
        set: &'static str,
        /// The one that is missing.
        unset: &'static str,
    },
    /// Nothing found in any searched place.
    NotFound {
        /// Every path looked at, in order.
        searched: Vec<PathBuf>,
    },
}

impl fmt::Display for OvmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OvmfError::EnvMissing { var, path } => {
                write!(
                    f,
                    "${var} is set to {} but that file does not exist",
                    path.display()
                )
            }
            OvmfError::EnvIncomplete { set, unset } => write!(
                f,
                "${set} is set but ${unset} is not: set both (the OVMF code image and its variable store)"
            ),
            OvmfError::NotFound { searched } => {
                write!(f, "OVMF firmware not found (looked at ")?;
                for (i, p) in searched.iter().enumerate() {
                    write!(f, "{}{}", if i == 0 { "" } else { ", " }, p.display())?;
                }
                write!(
                    f,
                    "): install it with `apt-get install {PACKAGE}` (or run `cargo lab setup`), \
                     or point ${ENV_CODE} and ${ENV_VARS} at an OVMF code/vars pair"
                )
            }
        }
    }
}

impl std::error::Error for OvmfError {}

/// Where to look: the override variables and the root the system paths are relative to.
/// [`Search::system`] reads the real environment and uses `/`; tests inject their own.
#[derive(Clone, Debug)]
pub struct Search {
    /// The value of `STACKLAB_OVMF_CODE`, if set and not empty.
    pub env_code: Option<OsString>,
    /// The value of `STACKLAB_OVMF_VARS`, if set and not empty.
    pub env_vars: Option<OsString>,
    /// The directory the well-known system paths are relative to (`/`).
    pub root: PathBuf,
}

impl Search {
    /// The real environment and the real file system.
    pub fn system() -> Search {
        Search {
            env_code: std::env::var_os(ENV_CODE).filter(|v| !v.is_empty()),
            env_vars: std::env::var_os(ENV_VARS).filter(|v| !v.is_empty()),
            root: PathBuf::from("/"),
        }
    }

    /// Runs the search.
    pub fn locate(&self) -> Result<Firmware, OvmfError> {
        match (&self.env_code, &self.env_vars) {
            (Some(code), Some(vars)) => {
                let (code, vars) = (PathBuf::from(code), PathBuf::from(vars));
                for (var, path) in [(ENV_CODE, &code), (ENV_VARS, &vars)] {
                    if !path.is_file() {
                        return Err(OvmfError::EnvMissing {
                            var,
                            path: path.clone(),
                        });
                    }
                }
                return Ok(Firmware {
                    layout: Layout::Split { code, vars },
                    origin: Origin::Env,
                });
            }
            (Some(_), None) => {
                return Err(OvmfError::EnvIncomplete {
                    set: ENV_CODE,
                    unset: ENV_VARS,
                });
            }
            (None, Some(_)) => {
                return Err(OvmfError::EnvIncomplete {
                    set: ENV_VARS,
                    unset: ENV_CODE,
                });
            }
            (None, None) => {}
        }
        let mut searched = Vec::new();
        for (code, vars) in SPLIT_CANDIDATES {
            let (code, vars) = (self.root.join(code), self.root.join(vars));
            if code.is_file() && vars.is_file() {
                return Ok(Firmware {
                    layout: Layout::Split { code, vars },
                    origin: Origin::System,
                });
            }
            searched.push(code);
        }
        for image in COMBINED_CANDIDATES {
            let image = self.root.join(image);
            if image.is_file() {
                return Ok(Firmware {
                    layout: Layout::Combined { image },
                    origin: Origin::System,
                });
            }
            searched.push(image);
        }
        Err(OvmfError::NotFound { searched })
    }
}

/// Finds the firmware in the real environment (see the crate docs for the order).
pub fn locate() -> Result<Firmware, OvmfError> {
    Search::system().locate()
}

impl Firmware {
    /// A fresh, writable copy of the variable store for one run (`None` for a combined
    /// image, which needs none). The copy and its directory are removed when it is dropped.
    pub fn fresh_vars(&self) -> std::io::Result<Option<VarsCopy>> {
        match &self.layout {
            Layout::Combined { .. } => Ok(None),
            Layout::Split { vars, .. } => {
                let dir = tempfile::Builder::new()
                    .prefix("stacklab-ovmf-vars-")
                    .tempdir()?;
                let path = dir.path().join("OVMF_VARS.fd");
                std::fs::copy(vars, &path)?;
                // The packaged template is read-only; QEMU must be able to write the copy.
                let mut perm = std::fs::metadata(&path)?.permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                std::fs::set_permissions(&path, perm)?;
                Ok(Some(VarsCopy { path, _dir: dir }))
            }
        }
    }
}

/// A per-run writable copy of the OVMF variable store; deleted on drop.
#[derive(Debug)]
pub struct VarsCopy {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl VarsCopy {
    /// The copy.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a line of OVMF's serial output shows that it found nothing bootable: it is
/// starting its built-in UEFI shell instead (which then waits for input forever), or, in
/// builds without the shell, it says so and waits for a key.
///
/// OVMF's boot manager logs each boot option it tries (`BdsDxe: loading Boot0002 "EFI
/// Internal Shell" ...`, `BdsDxe: starting Boot0002 "EFI Internal Shell" ...`), the shell
/// prints its banner (`UEFI Interactive Shell v2.2`), and with no option left the boot
/// manager prints `BdsDxe: No bootable option or device was found.` A boot that reaches the
/// stacklab image prints none of these: the disk is the first boot option.
pub fn gave_up_booting(line: &str) -> bool {
    (line.contains("BdsDxe: ") && line.contains("\"EFI Internal Shell\""))
        || line.contains("UEFI Interactive Shell")
        || line.contains("BdsDxe: No bootable option or device was found")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"fd").unwrap();
        p
    }

    fn search(root: &Path) -> Search {
        Search {
            env_code: None,
            env_vars: None,
            root: root.to_path_buf(),
        }
    }

    #[test]
    fn nothing_found_names_the_package_and_the_env_vars() {
        let t = tempfile::tempdir().unwrap();
        let e = search(t.path()).locate().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("apt-get install ovmf"), "{msg}");
        assert!(msg.contains(ENV_CODE) && msg.contains(ENV_VARS), "{msg}");
        match e {
            OvmfError::NotFound { searched } => assert_eq!(searched.len(), 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn search_order_prefers_4m_pair_then_plain_pair_then_combined() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let qemu = touch(root, "usr/share/qemu/OVMF.fd");
        let s = search(root);
        assert_eq!(s.locate().unwrap().layout, Layout::Combined { image: qemu });
        let ovmf = touch(root, "usr/share/ovmf/OVMF.fd");
        assert_eq!(s.locate().unwrap().layout, Layout::Combined { image: ovmf });
        // A code file without its vars partner is not a pair.
        let code = touch(root, "usr/share/OVMF/OVMF_CODE.fd");
        assert!(matches!(
            s.locate().unwrap().layout,
            Layout::Combined { .. }
        ));
        let vars = touch(root, "usr/share/OVMF/OVMF_VARS.fd");
        assert_eq!(s.locate().unwrap().layout, Layout::Split { code, vars });
        let code4 = touch(root, "usr/share/OVMF/OVMF_CODE_4M.fd");
        let vars4 = touch(root, "usr/share/OVMF/OVMF_VARS_4M.fd");
        let fw = s.locate().unwrap();
        assert_eq!(
            fw.layout,
            Layout::Split {
                code: code4,
                vars: vars4
            }
        );
        assert_eq!(fw.origin, Origin::System);
    }

    #[test]
    fn env_override_wins_and_must_exist() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        touch(root, "usr/share/OVMF/OVMF_CODE_4M.fd");
        touch(root, "usr/share/OVMF/OVMF_VARS_4M.fd");
        let code = touch(root, "mine/CODE.fd");
        let vars = touch(root, "mine/VARS.fd");
        let mut s = search(root);
        s.env_code = Some(code.clone().into());
        s.env_vars = Some(vars.clone().into());
        let fw = s.locate().unwrap();
        assert_eq!(fw.origin, Origin::Env);
        assert_eq!(fw.layout, Layout::Split { code, vars });

        s.env_vars = Some(root.join("mine/nope.fd").into());
        let e = s.locate().unwrap_err();
        assert!(
            matches!(e, OvmfError::EnvMissing { var: ENV_VARS, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("does not exist"));

        s.env_vars = None;
        let e = s.locate().unwrap_err();
        assert_eq!(
            e,
            OvmfError::EnvIncomplete {
                set: ENV_CODE,
                unset: ENV_VARS
            }
        );
    }

    #[test]
    fn the_shell_fallback_is_recognized_and_a_normal_boot_is_not() {
        // What OVMF printed booting a disk of random bytes (terminal escapes removed).
        for line in [
            "BdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)",
            "BdsDxe: starting Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)",
            "UEFI Interactive Shell v2.2",
            // OVMF builds without the shell end here instead.
            "BdsDxe: No bootable option or device was found.",
        ] {
            assert!(gave_up_booting(line), "{line}");
        }
        // What it prints booting the stacklab image, and what the kernel might say.
        for line in [
            "BdsDxe: failed to load Boot0001 \"UEFI QEMU HARDDISK QM00001 \" from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0): Not Found",
            "BdsDxe: loading Boot0001 \"UEFI QEMU HARDDISK QM00001 \" from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)",
            "BdsDxe: starting Boot0001 \"UEFI QEMU HARDDISK QM00001 \" from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)",
            "[    0.012 INFO ] stacklab 0.1.0 ready",
            "EFI Internal Shell",
            "",
        ] {
            assert!(!gave_up_booting(line), "{line}");
        }
    }

    #[test]
    fn fresh_vars_is_a_writable_copy_removed_on_drop() {
        let t = tempfile::tempdir().unwrap();
        let code = touch(t.path(), "CODE.fd");
        let vars = touch(t.path(), "VARS.fd");
        let mut perm = std::fs::metadata(&vars).unwrap().permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&vars, perm).unwrap();
        let fw = Firmware {
            layout: Layout::Split { code, vars },
            origin: Origin::Env,
        };
        let copy = fw.fresh_vars().unwrap().unwrap();
        let p = copy.path().to_path_buf();
        assert_eq!(std::fs::read(&p).unwrap(), b"fd");
        assert!(!std::fs::metadata(&p).unwrap().permissions().readonly());
        let other = fw.fresh_vars().unwrap().unwrap();
        assert_ne!(other.path(), p);
        drop(copy);
        assert!(!p.exists() && !p.parent().unwrap().exists());
        let combined = Firmware {
            layout: Layout::Combined {
                image: PathBuf::from("/x"),
            },
            origin: Origin::System,
        };
        assert!(combined.fresh_vars().unwrap().is_none());
    }
}
