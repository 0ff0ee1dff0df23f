//! Runs the JSON driver: `cargo run -p stacklab-fred --features json --example fred --
//! [--explain] [FILE]` (standard input without FILE). `cargo lab fred` does the same.

use std::fs::File;
use std::io::{self, BufReader};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut explain = false;
    let mut file = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--explain" => explain = true,
            _ if file.is_none() && !a.starts_with("--") => file = Some(a),
            _ => {
                eprintln!("usage: fred [--explain] [FILE]");
                return ExitCode::from(2);
            }
        }
    }
    let out = io::stdout().lock();
    let summary = match file {
        Some(path) => match File::open(&path) {
            Ok(f) => stacklab_fred::json::run_lines(BufReader::new(f), out, explain),
            Err(e) => {
                eprintln!("fred: {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => stacklab_fred::json::run_lines(io::stdin().lock(), out, explain),
    };
    match summary {
        Ok(s) => {
            eprintln!("fred: {} ok, {} errors", s.ok, s.errors);
            if s.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("fred: {e}");
            ExitCode::from(2)
        }
    }
}
