//! `cargo lab fred`: the FRED event-delivery model (`stacklab-fred`) as a tool. Reads JSON
//! objects, one per line, from FILE or standard input, and writes one JSON result per line
//! (docs/fred.md lists the operations). A bad line gets an error object naming the field, and
//! the next line is read; the exit status is 2 if any line was bad.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use crate::Error;
use crate::exit::status;

/// Runs the model on every line of `file` (standard input if `None`).
pub fn fred_cmd(file: Option<&Path>, explain: bool) -> Result<i32, Error> {
    let out = io::stdout().lock();
    let summary = match file {
        Some(path) => {
            let f = File::open(path)
                .map_err(|e| Error::usage(format!("fred: {}: {e}", path.display())))?;
            stacklab_fred::json::run_lines(BufReader::new(f), out, explain)
        }
        None => stacklab_fred::json::run_lines(io::stdin().lock(), out, explain),
    };
    let s = summary.map_err(|e| match e.kind() {
        io::ErrorKind::BrokenPipe => Error::broken_pipe(),
        _ => Error::usage(format!("fred: {e}")),
    })?;
    let _ = writeln!(io::stderr(), "fred: {} ok, {} bad", s.ok, s.errors);
    Ok(if s.errors == 0 { 0 } else { status::USAGE })
}
