//! Looking at the HTML report the way a reader will: Debian's `chromium`, headless, takes a
//! screenshot and logs the page's console to stderr. Installed on demand
//! (`cargo lab setup --with-chromium`); only the test of the report needs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// The Debian package.
pub const PACKAGE: &str = "chromium";
/// Names the browser goes by on `PATH`.
const NAMES: [&str; 2] = ["chromium", "chromium-browser"];

/// The browser on `PATH`, if installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| NAMES.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// What a headless load of a page gave.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The screenshot written.
    pub png: PathBuf,
    /// Everything the browser logged (stderr), console messages included.
    pub log: String,
}

impl Rendered {
    /// Lines of the page's console, and any failed resource load. Chromium logs every
    /// console message (whatever its level, `console.error` included) as `INFO:CONSOLE`, so
    /// for a page without scripts any console line is an error.
    pub fn console_errors(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| {
                l.contains(":CONSOLE")
                    || l.contains("Failed to load resource")
                    || l.contains("net::ERR_")
            })
            .collect()
    }
}

/// Loads `html` headless (no network: a self-contained page needs none), writes a screenshot
/// of `width` x `height` pixels to `png`, and returns the browser's log.
pub fn screenshot(
    browser: &Path,
    html: &Path,
    png: &Path,
    width: u32,
    height: u32,
) -> Result<Rendered, Error> {
    let html = html
        .canonicalize()
        .map_err(|e| Error::usage(format!("{}: {e}", html.display())))?;
    let profile =
        tempfile::tempdir().map_err(|e| Error::env(format!("temporary directory: {e}")))?;
    let out = Command::new(browser)
        .args([
            "--headless",
            // Root (the project's machines) cannot use the sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            // Nothing may come from outside the file.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::env(format!("cannot run {}: {e}", browser.display())))?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !png.is_file() {
        return Err(Error::env(format!(
            "{} did not write {} ({}):\n{log}",
            browser.display(),
            png.display(),
            out.status
        )));
    }
    Ok(Rendered {
        png: png.to_path_buf(),
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_errors_are_picked_out_of_the_log() {
        let r = Rendered {
            png: PathBuf::new(),
            log: "[9:9:1121/220012.3:ERROR:dbus/bus.cc:405] Failed to connect to the bus\n\
                  [9:9:1121/220012.9:INFO:CONSOLE:1] \"boom\", source: file:///tmp/bad.html (1)\n\
                  1744 bytes written to file /tmp/bad.png\n\
                  Failed to load resource: net::ERR_FILE_NOT_FOUND\n"
                .into(),
        };
        let e = r.console_errors();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("boom"));
    }
}
