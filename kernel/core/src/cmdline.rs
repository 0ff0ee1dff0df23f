//! The kernel command line: a `;`-separated list of commands, each a name followed by
//! whitespace-separated arguments, e.g. `int3; recurse 200 256; stats`.
//!
//! This module only splits and converts; the kernel decides what each name means. Every
//! conversion error says which argument was wrong and why, so the kernel can put it in an
//! `error` record verbatim.

use core::fmt;

/// Longest command line the kernel accepts (bytes).
pub const MAX_CMDLINE: usize = 4096;

/// Iterates over the non-empty commands of a command line.
pub fn commands(line: &str) -> impl Iterator<Item = Command<'_>> {
    line.split(';').filter_map(Command::parse)
}

/// One command: its name and arguments, borrowed from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// The whole command text, trimmed (for error messages).
    pub text: &'a str,
    /// The command's name (its first word).
    pub name: &'a str,
    rest: &'a str,
}

impl<'a> Command<'a> {
    /// Parses one command; `None` if it is blank.
    pub fn parse(text: &'a str) -> Option<Command<'a>> {
        let text = text.trim();
        let mut it = text.splitn(2, char::is_whitespace);
        let name = it.next().filter(|n| !n.is_empty())?;
        Some(Command {
            text,
            name,
            rest: it.next().unwrap_or("").trim(),
        })
    }

    /// The arguments, in order.
    pub fn args(&self) -> Args<'a> {
        Args {
            cmd: self.name,
            it: self.rest.split_whitespace(),
            index: 0,
        }
    }
}

/// Why an argument could not be read. `cmd` is the command's name, `what` the argument's,
/// `got` what was typed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are named the same in every variant, documented above
pub enum ArgError<'a> {
    /// No argument was left.
    Missing { cmd: &'a str, what: &'static str },
    /// Not a number.
    NotANumber {
        cmd: &'a str,
        what: &'static str,
        got: &'a str,
    },
    /// A number outside `min..=max`.
    OutOfRange {
        cmd: &'a str,
        what: &'static str,
        got: u64,
        min: u64,
        max: u64,
    },
    /// An argument after the last one the command takes.
    Unexpected { cmd: &'a str, got: &'a str },
    /// Not one of the alternatives.
    BadChoice {
        cmd: &'a str,
        what: &'static str,
        got: &'a str,
        /// The alternatives, separated by `|`.
        choices: &'static str,
    },
    /// The arguments parse but do not make sense together.
    Invalid { cmd: &'a str, msg: &'static str },
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Missing { cmd, what } => write!(f, "{cmd}: missing argument {what}"),
            ArgError::NotANumber { cmd, what, got } => {
                write!(
                    f,
                    "{cmd}: {what} must be a number (like 42, 0x2a or 16K), got '{got}'"
                )
            }
            ArgError::OutOfRange {
                cmd,
                what,
                got,
                min,
                max,
            } => {
                write!(
                    f,
                    "{cmd}: {what} must be between {min} and {max}, got {got}"
                )
            }
            ArgError::Unexpected { cmd, got } => write!(f, "{cmd}: unexpected argument '{got}'"),
            ArgError::Invalid { cmd, msg } => write!(f, "{cmd}: {msg}"),
            ArgError::BadChoice {
                cmd,
                what,
                got,
                choices,
            } => {
                write!(f, "{cmd}: {what} must be one of ")?;
                for (i, c) in choices.split('|').enumerate() {
                    write!(f, "{}{c}", if i == 0 { "" } else { ", " })?;
                }
                write!(f, "; got '{got}'")
            }
        }
    }
}

/// Arguments of one command, read in order.
#[derive(Clone, Debug)]
pub struct Args<'a> {
    cmd: &'a str,
    it: core::str::SplitWhitespace<'a>,
    index: usize,
}

impl<'a> Args<'a> {
    /// The next argument as a raw word.
    pub fn word(&mut self, what: &'static str) -> Result<&'a str, ArgError<'a>> {
        self.index += 1;
        self.it.next().ok_or(ArgError::Missing {
            cmd: self.cmd,
            what,
        })
    }

    /// The name of the command these arguments belong to.
    pub fn command(&self) -> &'a str {
        self.cmd
    }

    /// The next argument, without taking it.
    pub fn peek(&self) -> Option<&'a str> {
        self.it.clone().next()
    }

    /// The next argument if there is one.
    pub fn optional_word(&mut self) -> Option<&'a str> {
        self.it.next()
    }

    /// The next argument as a number in `min..=max`. Accepts decimal, `0x` hex and the size
    /// suffixes `K`, `M` (powers of 1024).
    pub fn number(&mut self, what: &'static str, min: u64, max: u64) -> Result<u64, ArgError<'a>> {
        let w = self.word(what)?;
        self.convert(what, w, min, max)
    }

    /// Like [`Args::number`], but returns `default` when no argument is left.
    pub fn number_or(
        &mut self,
        what: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ArgError<'a>> {
        match self.it.next() {
            None => Ok(default),
            Some(w) => self.convert(what, w, min, max),
        }
    }

    /// The next argument, which must be one of `choices` (alternatives separated by `|`).
    pub fn choice(
        &mut self,
        what: &'static str,
        choices: &'static str,
    ) -> Result<&'static str, ArgError<'a>> {
        let w = self.word(what)?;
        choices
            .split('|')
            .find(|c| *c == w)
            .ok_or(ArgError::BadChoice {
                cmd: self.cmd,
                what,
                got: w,
                choices,
            })
    }

    /// Like [`Args::choice`], but `None` when no argument is left.
    pub fn optional_choice(
        &mut self,
        what: &'static str,
        choices: &'static str,
    ) -> Result<Option<&'static str>, ArgError<'a>> {
        let mut peek = self.it.clone();
        if peek.next().is_none() {
            return Ok(None);
        }
        self.choice(what, choices).map(Some)
    }

    fn convert(
        &self,
        what: &'static str,
        w: &'a str,
        min: u64,
        max: u64,
    ) -> Result<u64, ArgError<'a>> {
        let n = parse_number(w).ok_or(ArgError::NotANumber {
            cmd: self.cmd,
            what,
            got: w,
        })?;
        if n < min || n > max {
            return Err(ArgError::OutOfRange {
                cmd: self.cmd,
                what,
                got: n,
                min,
                max,
            });
        }
        Ok(n)
    }

    /// Fails if any argument is left over.
    pub fn finish(mut self) -> Result<(), ArgError<'a>> {
        match self.it.next() {
            None => Ok(()),
            Some(got) => Err(ArgError::Unexpected { cmd: self.cmd, got }),
        }
    }
}

/// Parses `42`, `0x2a`, `16K`, `1M` (binary units). `None` on anything else or on overflow.
pub fn parse_number(w: &str) -> Option<u64> {
    let (digits, mul) = match w.as_bytes().last()? {
        b'K' | b'k' => (&w[..w.len() - 1], 1024),
        b'M' | b'm' => (&w[..w.len() - 1], 1024 * 1024),
        _ => (w, 1),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else {
        if digits.starts_with('+') {
            return None;
        }
        digits.parse::<u64>().ok()?
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn splits_commands_and_skips_blanks() {
        let cmds: Vec<_> = commands(" int3 ;; recurse  10 64 ;\n stats ").collect();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].name, "int3");
        assert_eq!(cmds[1].name, "recurse");
        assert_eq!(cmds[1].text, "recurse  10 64");
        assert_eq!(cmds[2].name, "stats");
        assert_eq!(commands("  ; ;").count(), 0);
    }

    #[test]
    fn numbers_accept_decimal_hex_and_suffixes() {
        assert_eq!(parse_number("42"), Some(42));
        assert_eq!(parse_number("0x2a"), Some(42));
        assert_eq!(parse_number("16K"), Some(16384));
        assert_eq!(parse_number("2m"), Some(2 << 20));
        assert_eq!(parse_number("0x10K"), Some(16 * 1024));
        for bad in [
            "",
            "K",
            "-1",
            "+1",
            "1.5",
            "abc",
            "0x",
            "99999999999999999999",
            "18014398509481984K",
        ] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn args_report_what_is_wrong() {
        let c = Command::parse("recurse ten").unwrap();
        let mut a = c.args();
        assert_eq!(
            a.number("DEPTH", 1, 100).unwrap_err().to_string(),
            "recurse: DEPTH must be a number (like 42, 0x2a or 16K), got 'ten'"
        );
        let c = Command::parse("recurse 500 8 9").unwrap();
        let mut a = c.args();
        assert_eq!(
            a.number("DEPTH", 1, 100).unwrap_err().to_string(),
            "recurse: DEPTH must be between 1 and 100, got 500"
        );
        assert_eq!(a.number("FRAME", 0, 10), Ok(8));
        assert_eq!(
            a.clone().finish().unwrap_err().to_string(),
            "recurse: unexpected argument '9'"
        );
        assert_eq!(a.number("X", 0, 10), Ok(9));
        assert_eq!(
            a.clone().number("Y", 0, 1).unwrap_err().to_string(),
            "recurse: missing argument Y"
        );
        assert_eq!(a.clone().number_or("Y", 7, 0, 10), Ok(7));
        assert!(a.finish().is_ok());
    }

    #[test]
    fn choice_lists_the_alternatives() {
        let c = Command::parse("policy bogus").unwrap();
        let e = c.args().choice("MODE", "fixed|grow").unwrap_err();
        assert_eq!(
            e.to_string(),
            "policy: MODE must be one of fixed, grow; got 'bogus'"
        );
        let c = Command::parse("policy grow").unwrap();
        assert_eq!(c.args().choice("MODE", "fixed|grow"), Ok("grow"));
    }

    #[test]
    fn optional_choice_is_none_only_when_nothing_is_left() {
        const MODES: &str = "refill|hold";
        let c = Command::parse("reserve 1").unwrap();
        let mut a = c.args();
        assert_eq!(a.number("N", 0, 9), Ok(1));
        assert_eq!(a.optional_choice("MODE", MODES), Ok(None));
        assert!(a.finish().is_ok());
        let c = Command::parse("reserve 1 hold").unwrap();
        let mut a = c.args();
        assert_eq!(a.number("N", 0, 9), Ok(1));
        assert_eq!(a.optional_choice("MODE", MODES), Ok(Some("hold")));
        assert!(a.finish().is_ok());
        let c = Command::parse("reserve 1 frozen").unwrap();
        let mut a = c.args();
        a.number("N", 0, 9).unwrap();
        assert_eq!(
            a.optional_choice("MODE", MODES).unwrap_err().to_string(),
            "reserve: MODE must be one of refill, hold; got 'frozen'"
        );
    }
}
