//! The `boot-image` binary (`cargo lab ...`): argument parsing and the commands.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use crate::build::{self, Output};
use crate::exit::{KernelExit, status};
use crate::harness::{Harness, RunOptions};
use crate::qemu::AccelChoice;
use crate::record::{self, Line, Renderer, Style};
use crate::symbols::Symbolizer;
use crate::{Error, ExitCode, paths, setup};

pub const USAGE: &str = "\
usage: cargo lab <command> [options]

commands:
  setup                 install what is missing (toolchains, targets, qemu-system-x86, ovmf)
  build [--debug] [--kernel ELF]
                        build the kernel and its UEFI image (target/stacklab/stacklab-uefi.img);
                        --kernel: make the image from this ELF instead of building the kernel
  run [options]         build, then boot the kernel in QEMU and show what it reports
      --cmdline STRING  kernel command line (default: empty)
      --json FILE       write every @stacklab record to FILE, one JSON object per line
      --timeout SECS    kill QEMU after SECS seconds (default 60)
      --accel MODE      auto | kvm | tcg (default auto: KVM only if a probe boot proves it works)
      --no-build        boot the existing image
      --image PATH      boot this image (implies --no-build)
      --raw             print serial lines verbatim
      --debug           build and boot the debug kernel
  demo                  setup + build + run the demo command line
  test [-- ARGS]        setup + build, then `cargo test --workspace [ARGS]`
  doctor                report what is installed and which accelerator `auto` would pick
  symbolize ADDR... [--offset HEX] [--kernel ELF]
                        name the kernel functions at these addresses (minus the load offset)
  help                  this text

exit status: 0 success, 1 kernel test failure, 2 usage/bad input/build failure, 3 bad kernel
command, 4 kernel panic, 5 kernel abort, 6 timeout, 7 environment, 8 no exit record (reset?),
130 interrupted";

/// `cargo lab run` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    pub cmdline: String,
    pub json: Option<PathBuf>,
    pub timeout: u64,
    pub accel: AccelChoice,
    pub no_build: bool,
    pub raw: bool,
    pub image: Option<PathBuf>,
    pub debug: bool,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            cmdline: String::new(),
            json: None,
            timeout: 60,
            accel: AccelChoice::Auto,
            no_build: false,
            raw: false,
            image: None,
            debug: false,
        }
    }
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Setup,
    Build {
        debug: bool,
        kernel: Option<PathBuf>,
    },
    Run(RunArgs),
    Demo,
    Test {
        extra: Vec<String>,
    },
    Doctor,
    Symbolize {
        addrs: Vec<u64>,
        offset: u64,
        kernel: Option<PathBuf>,
    },
}

fn parse_addr(s: &str) -> Option<u64> {
    record::parse_hex(s).or_else(|| s.parse().ok())
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, Error> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(Error::usage("no command given"));
    };
    let mut it = rest.iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| {
        it.next()
            .cloned()
            .ok_or_else(|| Error::usage(format!("{flag} needs a value")))
    };
    let unknown = |cmd: &str, a: &str| {
        if a.starts_with('-') {
            Error::usage(format!("unknown option '{a}' for `{cmd}`"))
        } else {
            Error::usage(format!("unexpected argument '{a}' for `{cmd}`"))
        }
    };
    match cmd.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "setup" | "demo" | "doctor" => {
            if let Some(a) = it.next() {
                return Err(unknown(cmd, a));
            }
            Ok(match cmd.as_str() {
                "setup" => Command::Setup,
                "demo" => Command::Demo,
                _ => Command::Doctor,
            })
        }
        "build" => {
            let (mut debug, mut kernel) = (false, None);
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--debug" => debug = true,
                    "--kernel" => kernel = Some(PathBuf::from(value(&mut it, a)?)),
                    _ => return Err(unknown(cmd, a)),
                }
            }
            Ok(Command::Build { debug, kernel })
        }
        "run" => {
            let mut r = RunArgs::default();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--cmdline" => r.cmdline = value(&mut it, a)?,
                    "--json" => r.json = Some(PathBuf::from(value(&mut it, a)?)),
                    "--timeout" => {
                        let v = value(&mut it, a)?;
                        r.timeout = v.parse().ok().filter(|t| *t > 0).ok_or_else(|| {
                            Error::usage(format!(
                                "--timeout needs a positive number of seconds, got '{v}'"
                            ))
                        })?;
                    }
                    "--accel" => r.accel = value(&mut it, a)?.parse()?,
                    "--no-build" => r.no_build = true,
                    "--raw" => r.raw = true,
                    "--debug" => r.debug = true,
                    "--image" => r.image = Some(PathBuf::from(value(&mut it, a)?)),
                    _ => return Err(unknown(cmd, a)),
                }
            }
            Ok(Command::Run(r))
        }
        "test" => {
            let extra: Vec<String> = match rest.split_first() {
                None => Vec::new(),
                Some((dd, tail)) if dd == "--" => tail.to_vec(),
                Some((a, _)) => return Err(unknown(cmd, a)),
            };
            Ok(Command::Test { extra })
        }
        "symbolize" => {
            let (mut addrs, mut offset, mut kernel) = (Vec::new(), 0, None);
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--offset" => {
                        let v = value(&mut it, a)?;
                        offset = parse_addr(&v).ok_or_else(|| {
                            Error::usage(format!("--offset: not an address: '{v}'"))
                        })?;
                    }
                    "--kernel" => kernel = Some(PathBuf::from(value(&mut it, a)?)),
                    s if s.starts_with("--") => return Err(unknown(cmd, a)),
                    s => addrs.push(parse_addr(s).ok_or_else(|| {
                        Error::usage(format!("not an address: '{s}' (use 0x… or decimal)"))
                    })?),
                }
            }
            if addrs.is_empty() {
                return Err(Error::usage("symbolize needs at least one address"));
            }
            Ok(Command::Symbolize {
                addrs,
                offset,
                kernel,
            })
        }
        other => Err(Error::usage(format!("unknown command '{other}'"))),
    }
}

/// Runs the binary: parse, dispatch, and return the process exit status.
pub fn main(args: &[String]) -> i32 {
    let cmd = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            if args.is_empty() {
                eprintln!("{USAGE}");
            } else {
                eprintln!("error: {e} (see `cargo lab help`)");
            }
            return status::USAGE;
        }
    };
    match dispatch(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_status()
        }
    }
}

fn note(msg: &str) {
    eprintln!(
        "{} {msg}",
        Style {
            color: std::io::stderr().is_terminal()
        }
        .dim("lab:")
    );
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn dispatch(cmd: Command) -> Result<i32, Error> {
    match cmd {
        Command::Help => {
            println!("{USAGE}");
            Ok(0)
        }
        Command::Setup => {
            let t = Instant::now();
            setup::setup()?;
            note(&format!("setup done in {}", secs(t.elapsed())));
            Ok(0)
        }
        Command::Build { debug, kernel } => {
            build_cmd(debug, kernel)?;
            Ok(0)
        }
        Command::Run(r) => run_cmd(&r),
        Command::Demo => {
            note("setup");
            setup::setup()?;
            let r = RunArgs {
                cmdline: paths::DEMO_CMDLINE.into(),
                ..RunArgs::default()
            };
            // The demo ends, by design, with the SDM-abort baseline: a stack overflow that
            // the #DF handler reports before stopping the machine. That abort is the
            // expected ending; anything else keeps its own exit status.
            match run_cmd(&r)? {
                5 => {
                    note(
                        "demo finished: its last scene stops the machine with the #DF report, as the SDM baseline must",
                    );
                    Ok(0)
                }
                other => Ok(other),
            }
        }
        Command::Test { extra } => test_cmd(&extra),
        Command::Doctor => {
            setup::doctor()?;
            Ok(0)
        }
        Command::Symbolize {
            addrs,
            offset,
            kernel,
        } => {
            let elf = kernel.unwrap_or_else(|| paths::kernel_elf(false));
            let syms = Symbolizer::from_file(&elf)
                .map_err(|e| Error::usage(format!("{e} (run `cargo lab build`)")))?;
            for a in addrs {
                let name = syms
                    .describe(a, offset, false)
                    .unwrap_or_else(|| "?".into());
                println!("{a:#x} {name}");
            }
            Ok(0)
        }
    }
}

/// Builds; returns (elf, image).
fn build_cmd(debug: bool, kernel: Option<PathBuf>) -> Result<(PathBuf, PathBuf), Error> {
    let total = Instant::now();
    let image = paths::default_image();
    let _lock = build::BuildLock::acquire()?;
    let elf = match kernel {
        Some(elf) => {
            crate::elf::validate_file(&elf)?;
            elf
        }
        None => {
            let t = Instant::now();
            note(&format!(
                "building the kernel ({})",
                if debug { "debug" } else { "release" }
            ));
            let elf = build::build_kernel(debug, Output::Inherit)?;
            crate::elf::validate_file(&elf)?;
            note(&format!(
                "kernel: {} ({})",
                elf.display(),
                secs(t.elapsed())
            ));
            elf
        }
    };
    let t = Instant::now();
    if build::image_up_to_date(&elf, &image) {
        note(&format!("image: {} (up to date)", image.display()));
    } else {
        note(&format!("building the UEFI image with {}", paths::NIGHTLY));
        build::build_image(&elf, &image, Output::Inherit)?;
        note(&format!(
            "image: {} ({})",
            image.display(),
            secs(t.elapsed())
        ));
    }
    note(&format!("build done in {}", secs(total.elapsed())));
    Ok((elf, image))
}

fn run_cmd(r: &RunArgs) -> Result<i32, Error> {
    let (elf, image) = match (&r.image, r.no_build) {
        (Some(img), _) => (paths::kernel_elf(r.debug), img.clone()),
        (None, true) => (paths::kernel_elf(r.debug), paths::default_image()),
        (None, false) => build_cmd(r.debug, None)?,
    };
    // Check the command line before building anything else.
    crate::qemu::fw_cfg_cmdline(&r.cmdline)?;
    let h = Harness::new(elf, image)?;
    let (accel, reason) = h.accel(r.accel)?;
    note(&format!("accelerator: {} ({reason})", accel.name()));
    let mut json = match &r.json {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |e| Error::usage(format!("cannot create {}: {e}", p.display())),
        )?)),
        None => None,
    };
    note(&format!(
        "booting {} with cmdline \"{}\" (timeout {} s)",
        h.image().display(),
        r.cmdline,
        r.timeout
    ));
    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    let mut renderer = Renderer::new(style, Some(h.symbols()));
    let mut json_err = None;
    let opts = RunOptions::new(r.cmdline.clone())
        .timeout_secs(r.timeout)
        .accel(r.accel);
    let stdout = std::io::stdout();
    let out = h.run_with(&opts, accel, reason, &mut |line, parsed| {
        let mut o = stdout.lock();
        if let (Line::Record { record, .. }, Some(j)) = (parsed, json.as_mut())
            && let Err(e) = writeln!(j, "{}", record.to_json_line()).and_then(|_| j.flush())
        {
            json_err.get_or_insert(e);
        }
        if r.raw {
            let _ = writeln!(o, "{line}");
            return;
        }
        let _ = match parsed {
            Line::Plain(p) => {
                let p = record::strip_control(p);
                if p.trim().is_empty() {
                    Ok(())
                } else {
                    writeln!(o, "{p}")
                }
            }
            Line::Record { before, record } => {
                let b = record::strip_control(before);
                if !b.trim().is_empty() {
                    let _ = writeln!(o, "{b}");
                }
                writeln!(o, "{}", renderer.render(record))
            }
            Line::Malformed { line, error } => {
                writeln!(
                    o,
                    "{} {} ({error})",
                    style.yellow("?"),
                    record::strip_control(line)
                )
            }
        };
    })?;
    if let Some(e) = json_err {
        return Err(Error::usage(format!(
            "writing the JSON records failed: {e}"
        )));
    }
    let elapsed = secs(out.elapsed);
    match (&out.exit, &out.problem) {
        (KernelExit::Kernel(code), _) => {
            let verdict = if *code == ExitCode::Success {
                style.green(code.name())
            } else {
                style.red(code.name())
            };
            note(&format!(
                "kernel exit: {verdict} after {elapsed} ({} results)",
                out.results().len()
            ));
        }
        (_, Some(p)) => note(&format!("{} [{elapsed}]", style.red(p))),
        (_, None) => note(&format!("{:?} after {elapsed}", out.exit)),
    }
    Ok(out.host_status())
}

fn test_cmd(extra: &[String]) -> Result<i32, Error> {
    let total = Instant::now();
    note("setup");
    setup::setup()?;
    build_cmd(false, None)?;
    note(&format!(
        "cargo +{} test --workspace {}",
        paths::STABLE,
        extra.join(" ")
    ));
    let status = Process::new("cargo")
        .arg(format!("+{}", paths::STABLE))
        .args(["test", "--workspace"])
        .args(extra)
        .current_dir(paths::workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::env(format!("cannot run cargo test: {e}")))?;
    note(&format!(
        "cargo test {} in {} total",
        if status.success() { "passed" } else { "failed" },
        secs(total.elapsed())
    ));
    Ok(status.code().unwrap_or(status::INTERRUPTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, Error> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn err(args: &[&str]) -> String {
        let e = p(args).unwrap_err();
        assert_eq!(e.exit_status(), 2);
        e.msg
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(p(&["setup"]).unwrap(), Command::Setup);
        assert_eq!(p(&["help"]).unwrap(), Command::Help);
        assert_eq!(
            p(&["build", "--debug"]).unwrap(),
            Command::Build {
                debug: true,
                kernel: None
            }
        );
        assert_eq!(
            p(&["build", "--kernel", "k.elf"]).unwrap(),
            Command::Build {
                debug: false,
                kernel: Some("k.elf".into())
            }
        );
        let r = p(&[
            "run",
            "--cmdline",
            "int3; exit",
            "--json",
            "o.jsonl",
            "--timeout",
            "9",
            "--accel",
            "tcg",
            "--raw",
            "--no-build",
        ])
        .unwrap();
        assert_eq!(
            r,
            Command::Run(RunArgs {
                cmdline: "int3; exit".into(),
                json: Some("o.jsonl".into()),
                timeout: 9,
                accel: AccelChoice::Tcg,
                no_build: true,
                raw: true,
                image: None,
                debug: false,
            })
        );
        assert_eq!(p(&["run"]).unwrap(), Command::Run(RunArgs::default()));
        assert_eq!(p(&["test"]).unwrap(), Command::Test { extra: vec![] });
        assert_eq!(
            p(&["test", "--", "--nocapture", "x"]).unwrap(),
            Command::Test {
                extra: vec!["--nocapture".into(), "x".into()]
            }
        );
        assert_eq!(
            p(&["symbolize", "0x10", "32", "--offset", "0x8"]).unwrap(),
            Command::Symbolize {
                addrs: vec![16, 32],
                offset: 8,
                kernel: None
            }
        );
    }

    #[test]
    fn errors_are_one_line_usage_errors() {
        assert_eq!(err(&["frobnicate"]), "unknown command 'frobnicate'");
        assert_eq!(err(&[]), "no command given");
        assert_eq!(
            err(&["run", "--bogus"]),
            "unknown option '--bogus' for `run`"
        );
        assert_eq!(err(&["run", "--timeout"]), "--timeout needs a value");
        assert_eq!(
            err(&["run", "--timeout", "0"]),
            "--timeout needs a positive number of seconds, got '0'"
        );
        assert_eq!(
            err(&["run", "--accel", "hvf"]),
            "--accel must be auto, kvm or tcg, got 'hvf'"
        );
        assert_eq!(
            err(&["setup", "now"]),
            "unexpected argument 'now' for `setup`"
        );
        assert_eq!(
            err(&["test", "--nocapture"]),
            "unknown option '--nocapture' for `test`"
        );
        assert_eq!(err(&["symbolize"]), "symbolize needs at least one address");
        assert_eq!(
            err(&["symbolize", "main"]),
            "not an address: 'main' (use 0x… or decimal)"
        );
        for e in [err(&["run", "--bogus"]), err(&["frobnicate"])] {
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn main_maps_usage_errors_to_exit_2() {
        assert_eq!(main(&["nope".to_string()]), 2);
        assert_eq!(main(&[]), 2);
    }
}
