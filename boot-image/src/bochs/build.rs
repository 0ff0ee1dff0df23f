//! `cargo lab setup --with-bochs SRC`: builds Bochs with FRED from a source tree or a tarball
//! into `target/stacklab/bochs/` (a tarball is extracted to `src/`, the build is out of tree
//! in `build/`), copies the source's OVMF image next to it, and records which source and
//! flags it was built from (`source.key`), so a second run with the same source does nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::out::say;
use crate::qemu::which;
use crate::setup::{is_root, run_step};
use crate::{Error, bochs};

/// Bochs's configure options: 64-bit CPU with FRED, and what the `wildcat_lake` model (the
/// CPU that has FRED) needs besides: AVX, EVEX, VMX, CET. No GUI, no plugins (one binary).
pub const CONFIGURE_FLAGS: [&str; 9] = [
    "--enable-x86-64",
    "--enable-fred",
    "--enable-cpu-level=6",
    "--enable-avx",
    "--enable-evex",
    "--enable-vmx=2",
    "--enable-cet",
    "--with-nogui",
    "--disable-plugins",
];

/// The OVMF image in a Bochs source tree (under `bios/OVMF/`) and in the build directory.
pub const OVMF_NAME: &str = "OVMF-pure-efi.fd";

/// The VGA BIOS in a Bochs source tree (under `bios/VGABIOS-lgpl/`) and in the build directory.
pub const VGA_ROM_NAME: &str = "VGABIOS-lgpl-latest.bin";

/// Debian packages that provide what building Bochs needs.
pub const BUILD_PACKAGES: [&str; 3] = ["build-essential", "tar", "xz-utils"];

/// Bumped when the way Bochs is built changes, so an older build is redone.
const KEY_VERSION: u32 = 1;

/// Where the Bochs sources come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An archive `tar` can extract (`.tar`, `.tar.gz`/`.tgz`, `.tar.xz`, `.tar.bz2`).
    Tarball(PathBuf),
    /// A directory: the Bochs repository or its `bochs/` subdirectory.
    Tree(PathBuf),
}

const TAR_SUFFIXES: [&str; 6] = [".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2"];

impl Source {
    /// Classifies SRC: a directory, or a file named like a tar archive. Anything else is a
    /// usage error saying what was expected.
    pub fn detect(path: &Path) -> Result<Source, Error> {
        let meta = fs::metadata(path).map_err(|e| {
            Error::usage(format!(
                "--with-bochs {}: {e} (expected a Bochs source directory or a .tar.xz/.tar.gz archive)",
                path.display()
            ))
        })?;
        if meta.is_dir() {
            return Ok(Source::Tree(path.to_path_buf()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if TAR_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            Ok(Source::Tarball(path.to_path_buf()))
        } else {
            Err(Error::usage(format!(
                "--with-bochs {}: not a directory and not a tar archive (expected a Bochs source \
                 directory or one of {})",
                path.display(),
                TAR_SUFFIXES.join(" ")
            )))
        }
    }

    fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Tree(p) => p,
        }
    }
}

/// Whether `dir` is the top of Bochs's own sources (its `configure` and `cpu/`).
fn is_bochs_root(dir: &Path) -> bool {
    dir.join("configure").is_file() && dir.join("cpu").is_dir() && dir.join("bochs.h").is_file()
}

/// The Bochs source directory in or under `dir`: `dir` itself, or a subdirectory at most two
/// levels down (`bochs/` of the repository, `bochs-src/bochs/` of an archive); the first in
/// name order.
pub fn find_root(dir: &Path) -> Option<PathBuf> {
    if is_bochs_root(dir) {
        return Some(dir.to_path_buf());
    }
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for a in subdirs(dir) {
        if is_bochs_root(&a) {
            return Some(a);
        }
    }
    for a in subdirs(dir) {
        for b in subdirs(&a) {
            if is_bochs_root(&b) {
                return Some(b);
            }
        }
    }
    None
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The newest modification time of any file under `dir` (`.git` and symlinks skipped).
fn newest_mtime(dir: &Path) -> u128 {
    let mut newest = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                if e.file_name() != ".git" {
                    stack.push(e.path());
                }
            } else if meta.is_file() {
                newest = newest.max(mtime_ns(&meta));
            }
        }
    }
    newest
}

/// What a build is a function of: the source (a tarball's absolute path, size and time; a
/// tree's absolute path and the newest time of its files) and the configure flags. Equal
/// keys mean the existing build is the one asked for.
pub fn source_key(src: &Source) -> Result<String, Error> {
    let abs = fs::canonicalize(src.path())
        .map_err(|e| Error::usage(format!("{}: {e}", src.path().display())))?;
    let what = match src {
        Source::Tarball(_) => {
            let meta =
                fs::metadata(&abs).map_err(|e| Error::usage(format!("{}: {e}", abs.display())))?;
            format!(
                "tarball {} size {} mtime {}",
                abs.display(),
                meta.len(),
                mtime_ns(&meta)
            )
        }
        Source::Tree(_) => format!("tree {} newest {}", abs.display(), newest_mtime(&abs)),
    };
    Ok(format!(
        "stacklab-bochs-build {KEY_VERSION}\n{what}\nconfigure {}\n",
        CONFIGURE_FLAGS.join(" ")
    ))
}

/// The files of a Bochs build under one directory (`target/stacklab/bochs` for setup).
#[derive(Clone, Debug)]
pub struct Layout {
    out: PathBuf,
}

impl Layout {
    /// The build under `out`.
    pub fn new(out: PathBuf) -> Layout {
        Layout { out }
    }
    /// The `bochs` binary (`build/bochs`).
    pub fn binary(&self) -> PathBuf {
        self.out.join("build").join("bochs")
    }
    /// The copied OVMF image.
    pub fn firmware(&self) -> PathBuf {
        self.out.join(OVMF_NAME)
    }
    /// The copied VGA BIOS.
    pub fn vga_rom(&self) -> PathBuf {
        self.out.join(VGA_ROM_NAME)
    }
    fn key_file(&self) -> PathBuf {
        self.out.join("source.key")
    }
    fn log(&self, step: &str) -> PathBuf {
        self.out.join(format!("{step}.log"))
    }
    /// Whether this build was made from `key` and is complete.
    pub fn is_built(&self, key: &str) -> bool {
        fs::read_to_string(self.key_file()).is_ok_and(|k| k == key)
            && [self.binary(), self.firmware(), self.vga_rom()]
                .iter()
                .all(|p| p.is_file())
    }
    /// The source a complete build came from (the second line of its key), for doctor.
    pub fn built_from(&self) -> Option<String> {
        let k = fs::read_to_string(self.key_file()).ok()?;
        k.lines().nth(1).map(str::to_string)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Installs the C/C++ compiler, make and tar if one is missing (as root), or says how.
fn ensure_build_tools(tarball: bool) -> Result<(), Error> {
    let mut tools = vec!["cc", "c++", "make"];
    if tarball {
        tools.extend(["tar", "xz"]);
    }
    let missing: Vec<&str> = tools
        .into_iter()
        .filter(|t| which(t.as_ref()).is_none())
        .collect();
    if missing.is_empty() {
        say!("  ✓ build tools (cc, c++, make): present")?;
        return Ok(());
    }
    let pkgs = BUILD_PACKAGES.join(" ");
    if !is_root() {
        return Err(Error::env(format!(
            "building Bochs needs {} (missing); install them with: sudo apt-get update && \
             sudo apt-get install -y {pkgs}",
            missing.join(", ")
        )));
    }
    run_step("apt-get", &["update", "-q"], &[])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(BUILD_PACKAGES);
    run_step("apt-get", &args, &[("DEBIAN_FRONTEND", "noninteractive")])?;
    say!("  ✓ build tools: installed ({pkgs})")?;
    Ok(())
}

/// Runs `cmd` with its output in `log`, printing a progress line every 20 s (objects
/// compiled so far, counted from the log). A failure names the log and quotes its end.
fn logged(what: &str, cmd: &mut Command, log: &Path) -> Result<(), Error> {
    let file = fs::File::create(log)
        .map_err(|e| Error::env(format!("cannot create {}: {e}", log.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| Error::env(format!("{}: {e}", log.display())))?;
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::env(format!("cannot start {what}: {e}")))?;
    let mut next = Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(|e| Error::env(format!("waiting for {what}: {e}")))?
        {
            break s;
        }
        if start.elapsed() >= next {
            let text = fs::read_to_string(log).unwrap_or_default();
            let objects = text.lines().filter(|l| l.contains(" -c ")).count();
            say!(
                "    {what}: {} so far, {objects} files compiled",
                secs(start.elapsed())
            )?;
            next += Duration::from_secs(20);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::build(format!(
        "{what} failed ({status}); the whole output is in {} (it ends: {})",
        log.display(),
        crate::exit::one_line(&tail.join(" | "))
    )))
}

fn fresh_dir(d: &Path) -> Result<(), Error> {
    if d.exists() {
        fs::remove_dir_all(d)
            .map_err(|e| Error::env(format!("cannot remove {}: {e}", d.display())))?;
    }
    fs::create_dir_all(d).map_err(|e| Error::env(format!("cannot create {}: {e}", d.display())))
}

/// `cargo lab setup --with-bochs SRC`: builds Bochs into `target/stacklab/bochs` unless
/// this source was built there already.
pub fn setup_bochs(src: &Path) -> Result<(), Error> {
    build_into(src, &Layout::new(bochs::dir()))
}

/// Extracts a tarball into `dir` (made afresh) and returns the Bochs sources in it.
fn extract(t: &Path, dir: &Path, out: &Layout) -> Result<Option<PathBuf>, Error> {
    fresh_dir(dir)?;
    say!("  extracting {} into {}", t.display(), dir.display())?;
    let t0 = Instant::now();
    let mut tar = Command::new("tar");
    tar.arg("-xf").arg(t).arg("-C").arg(dir);
    logged("tar", &mut tar, &out.log("extract"))?;
    say!("    extracted in {}", secs(t0.elapsed()))?;
    Ok(find_root(dir))
}

/// Builds Bochs from `src` into `out` unless that build is there already. An existing build
/// is only replaced once the new source proved to hold Bochs.
pub fn build_into(src: &Path, out: &Layout) -> Result<(), Error> {
    let source = Source::detect(src)?;
    let key = source_key(&source)?;
    if out.is_built(&key) {
        say!(
            "  ✓ Bochs: present ({}, built from {})",
            out.binary().display(),
            src.display()
        )?;
        return Ok(());
    }
    ensure_build_tools(matches!(source, Source::Tarball(_)))?;
    let total = Instant::now();
    let not_bochs = || {
        Error::usage(format!(
            "--with-bochs {}: no Bochs sources found (a directory with `configure`, `bochs.h` and \
             `cpu/`, at most two levels down)",
            src.display()
        ))
    };
    fs::create_dir_all(&out.out)
        .map_err(|e| Error::env(format!("cannot create {}: {e}", out.out.display())))?;
    let root = match &source {
        Source::Tree(d) => find_root(d).ok_or_else(not_bochs)?,
        Source::Tarball(t) => {
            let incoming = out.out.join("src.incoming");
            let Some(found) = extract(t, &incoming, out)? else {
                let _ = fs::remove_dir_all(&incoming);
                return Err(not_bochs());
            };
            let dest = out.out.join("src");
            if dest.exists() {
                fs::remove_dir_all(&dest)
                    .map_err(|e| Error::env(format!("cannot remove {}: {e}", dest.display())))?;
            }
            fs::rename(&incoming, &dest)
                .map_err(|e| Error::env(format!("cannot rename {}: {e}", incoming.display())))?;
            dest.join(found.strip_prefix(&incoming).unwrap_or(Path::new("")))
        }
    };
    let ovmf = root.join("bios").join("OVMF").join(OVMF_NAME);
    let vga = root.join("bios").join("VGABIOS-lgpl").join(VGA_ROM_NAME);
    if let Some(missing) = [&ovmf, &vga].into_iter().find(|p| !p.is_file()) {
        return Err(Error::usage(format!(
            "--with-bochs {}: {} is missing; a Bochs with UEFI support ships it",
            src.display(),
            missing.display()
        )));
    }
    // From here on the old build (another source) is replaced.
    let _ = fs::remove_file(out.key_file());
    let build = out.out.join("build");
    fresh_dir(&build)?;
    say!("  configuring Bochs ({})", CONFIGURE_FLAGS.join(" "))?;
    let t0 = Instant::now();
    let mut cmd = Command::new("sh");
    cmd.arg(root.join("configure"))
        .args(CONFIGURE_FLAGS)
        .current_dir(&build);
    logged("configure", &mut cmd, &out.log("configure"))?;
    say!("    configured in {}", secs(t0.elapsed()))?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    say!(
        "  compiling Bochs (make -j{jobs}; output in {})",
        out.log("make").display()
    )?;
    let t0 = Instant::now();
    let mut make = Command::new("make");
    make.arg(format!("-j{jobs}")).current_dir(&build);
    logged("make", &mut make, &out.log("make"))?;
    say!("    compiled in {}", secs(t0.elapsed()))?;
    if !out.binary().is_file() {
        return Err(Error::build(format!(
            "make succeeded but {} does not exist",
            out.binary().display()
        )));
    }
    for (from, to) in [(&ovmf, out.firmware()), (&vga, out.vga_rom())] {
        fs::copy(from, &to)
            .map_err(|e| Error::env(format!("cannot copy {}: {e}", from.display())))?;
    }
    fs::write(out.key_file(), &key)
        .map_err(|e| Error::env(format!("cannot write {}: {e}", out.key_file().display())))?;
    say!(
        "  ✓ Bochs: built in {} ({})",
        secs(total.elapsed()),
        out.binary().display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
