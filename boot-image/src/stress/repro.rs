//! Reproducer files: everything needed to boot a failed stress run again exactly (command
//! line, accelerator, timeout, memory) and to check that it fails the same way, plus the
//! evidence of the first time (serial log, classification).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Error;
use crate::qemu::AccelChoice;
use crate::snapshot::BootKind;
use crate::stress::classify::Class;
use crate::stress::program::Expect;

/// One failed run, as written to `repro-SEED-RUN.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repro {
    /// The stress run's seed.
    pub seed: u64,
    /// The run's index.
    pub run: u64,
    /// The kernel command line.
    pub cmdline: String,
    /// The accelerator the run used (`kvm` or `tcg`; replayed with exactly that one).
    pub accel: AccelChoice,
    /// The timeout in seconds.
    pub timeout_secs: u64,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// How the run started (files without the field were cold boots).
    pub boot: BootKind,
    /// What the program had to do (as the checker was told).
    pub expect: Expect,
    /// How the run was classified.
    pub class: Class,
    /// Why.
    pub detail: String,
    /// The whole serial output of the run.
    pub serial: String,
}

fn accel_name(a: AccelChoice) -> &'static str {
    match a {
        AccelChoice::Auto => "auto",
        AccelChoice::Kvm => "kvm",
        AccelChoice::Tcg => "tcg",
    }
}

impl Repro {
    /// The file name of the reproducer of run `run` of seed `seed`.
    pub fn file_name(seed: u64, run: u64) -> String {
        format!("repro-{seed}-{run}.json")
    }

    /// As a JSON document.
    pub fn to_json(&self) -> String {
        let v = json!({
            "seed": self.seed,
            "run": self.run,
            "cmdline": self.cmdline,
            "accel": accel_name(self.accel),
            "timeout_secs": self.timeout_secs,
            "memory_mib": self.memory_mib,
            "boot": self.boot.name(),
            "expect": self.expect.name(),
            "classification": self.class.name(),
            "detail": self.detail,
            "serial": self.serial,
        });
        let mut s = serde_json::to_string_pretty(&v).expect("a JSON value serializes");
        s.push('\n');
        s
    }

    /// Parses [`Repro::to_json`]'s output; the error names the missing or bad field.
    pub fn from_json(text: &str) -> Result<Repro, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("field '{k}' missing or not a number"))
        };
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("field '{k}' missing or not a string"))
        };
        Ok(Repro {
            seed: u("seed")?,
            run: u("run")?,
            cmdline: s("cmdline")?.into(),
            accel: s("accel")?
                .parse()
                .map_err(|_| "field 'accel' must be auto, kvm or tcg".to_string())?,
            timeout_secs: u("timeout_secs")?,
            memory_mib: u("memory_mib")?,
            boot: match v.get("boot").map(|b| b.as_str()) {
                None => BootKind::Cold,
                Some(Some("cold")) => BootKind::Cold,
                Some(Some("snapshot")) => BootKind::Snapshot,
                Some(_) => return Err("field 'boot' must be cold or snapshot".into()),
            },
            expect: Expect::parse(s("expect")?)
                .ok_or_else(|| "field 'expect' must be ok or abort:REASON".to_string())?,
            class: Class::from_name(s("classification")?)
                .ok_or_else(|| "field 'classification' names no class".to_string())?,
            detail: s("detail")?.into(),
            serial: s("serial")?.into(),
        })
    }

    /// Writes it into `dir` (created if missing); returns the file's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::env(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(Repro::file_name(self.seed, self.run));
        std::fs::write(&path, self.to_json())
            .map_err(|e| Error::env(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// Reads a reproducer file.
    pub fn read(path: &Path) -> Result<Repro, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
        Repro::from_json(&text)
            .map_err(|e| Error::usage(format!("{} is not a reproducer: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Repro {
        Repro {
            seed: u64::MAX,
            run: 3,
            cmdline: "jitter 1 50; policy fixed 16K; growth abort; recurse 9 256, \"x\"".into(),
            accel: AccelChoice::Tcg,
            timeout_secs: 60,
            memory_mib: 512,
            boot: BootKind::Snapshot,
            expect: Expect::Abort("stack-overflow".into()),
            class: Class::MissingAbort,
            detail: "expected an abort".into(),
            serial: "line 1\n@stacklab {\"kind\":\"exit\",\"code\":\"success\"}\n\u{1b}[0m\n"
                .into(),
        }
    }

    #[test]
    fn round_trip_through_text_and_file() {
        let r = sample();
        assert_eq!(Repro::from_json(&r.to_json()), Ok(r.clone()));
        let dir = tempfile::tempdir().unwrap();
        let path = r.write(&dir.path().join("sub")).unwrap();
        assert!(path.ends_with(format!("repro-{}-3.json", u64::MAX)));
        assert_eq!(Repro::read(&path).unwrap(), r);
    }

    #[test]
    fn the_boot_kind_is_kept_and_older_files_were_cold() {
        let mut v: Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["boot"], json!("snapshot"));
        v.as_object_mut().unwrap().remove("boot");
        assert_eq!(
            Repro::from_json(&v.to_string()).unwrap().boot,
            BootKind::Cold
        );
        v["boot"] = json!("warm");
        assert_eq!(
            Repro::from_json(&v.to_string()).unwrap_err(),
            "field 'boot' must be cold or snapshot"
        );
    }

    #[test]
    fn bad_files_name_the_field() {
        let mut v: Value = serde_json::from_str(&sample().to_json()).unwrap();
        v["classification"] = json!("fine");
        let e = Repro::from_json(&v.to_string()).unwrap_err();
        assert!(e.contains("classification"), "{e}");
        v.as_object_mut().unwrap().remove("seed");
        assert!(
            Repro::from_json(&v.to_string())
                .unwrap_err()
                .contains("'seed'")
        );
        assert!(Repro::from_json("{").unwrap_err().starts_with("not JSON"));
    }
}
