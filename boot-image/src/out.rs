//! Writing to standard output without panicking: `println!` panics when the reader has gone
//! (`cargo lab symbolize ... | head -1`); here a closed pipe becomes [`Error::broken_pipe`],
//! which the binary turns into a quiet exit 141.

use std::fmt;
use std::io::Write;

use crate::Error;

/// Writes one line (the arguments plus `\n`) to standard output.
pub fn line(args: fmt::Arguments<'_>) -> Result<(), Error> {
    let mut o = std::io::stdout().lock();
    o.write_fmt(args)
        .and_then(|()| o.write_all(b"\n"))
        .map_err(Error::stdout)
}

/// `say!("fmt", args...)`: [`line`] with `format!` syntax; evaluates to `Result<(), Error>`.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use say;
