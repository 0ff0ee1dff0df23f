//! Argument specifications for the kernel's command registry.
//!
//! Each registry row states its arguments in one short string, and the same string drives the
//! parser, the `help` text and the host test that parses every row's example. The grammar,
//! arguments separated by spaces:
//!
//! | text                  | meaning                                                        |
//! |-----------------------|----------------------------------------------------------------|
//! | `MS:1..60000`         | a number from 1 to 60000 (bounds take `K`/`M` and `0x`)        |
//! | `ADDR:0..`            | a number with no upper bound                                   |
//! | `MODE:plain|extra`    | one of the words                                               |
//! | `[N:12..2000=240]`    | optional (only at the end), with a default                     |
//! | `[MODE:refill|hold]`  | optional, absent when not given                                |
//! | `...`                 | the command reads further arguments itself (last)              |

use core::fmt;

use crate::cmdline::{ArgError, Args, parse_number};

/// Most arguments a specification may name.
pub const MAX_ARGS: usize = 4;

/// A command's argument specification (see the module docs for the grammar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec(pub &'static str);

/// What one argument accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A number in `min..=max`.
    Number {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// One of the words, separated by `|`.
    Choice(&'static str),
}

/// One argument of a specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    /// Its name, as errors and `help` show it.
    pub name: &'static str,
    /// What it accepts.
    pub kind: ArgKind,
    /// Whether it may be left out.
    pub optional: bool,
    /// The value of an optional argument left out, as text (`None`: absent).
    pub default: Option<&'static str>,
}

/// Why a specification string is malformed (a bug in a registry row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The offending part of the specification.
    pub at: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "argument spec '{}': {}", self.at, self.why)
    }
}

/// A value bound to an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// A number.
    Number(u64),
    /// A word (a choice).
    Word(&'a str),
    /// An optional argument that was not given and has no default.
    Absent,
}

/// The arguments of one command call, bound to its specification.
#[derive(Clone, Debug)]
pub struct Bound<'a> {
    values: [Value<'a>; MAX_ARGS],
    /// Arguments after the specified ones, for a specification ending in `...`.
    pub rest: Args<'a>,
}

impl<'a> Bound<'a> {
    /// The `i`th argument as a number (0 if it is not one: a bug in the row).
    pub fn number(&self, i: usize) -> u64 {
        match self.values[i] {
            Value::Number(n) => n,
            _ => 0,
        }
    }

    /// The `i`th argument as a word ("" if it is absent).
    pub fn word(&self, i: usize) -> &'a str {
        match self.values[i] {
            Value::Word(w) => w,
            _ => "",
        }
    }

    /// The `i`th argument's value.
    pub fn value(&self, i: usize) -> Value<'a> {
        self.values[i]
    }
}

impl Spec {
    /// The arguments in order, or the first malformed part.
    pub fn args(&self) -> Result<([Option<ArgSpec>; MAX_ARGS], bool), SpecError> {
        let mut out = [None; MAX_ARGS];
        let mut rest = false;
        let mut seen_optional = false;
        for (i, part) in self.0.split_whitespace().enumerate() {
            if rest {
                return Err(SpecError {
                    at: part,
                    why: "nothing may follow '...'",
                });
            }
            if part == "..." {
                rest = true;
                continue;
            }
            if i >= MAX_ARGS {
                return Err(SpecError {
                    at: part,
                    why: "too many arguments",
                });
            }
            let a = parse_arg(part)?;
            if seen_optional && !a.optional {
                return Err(SpecError {
                    at: part,
                    why: "a required argument cannot follow an optional one",
                });
            }
            seen_optional |= a.optional;
            out[i] = Some(a);
        }
        Ok((out, rest))
    }

    /// Checks the specification itself.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.args().map(|_| ())
    }

    /// Reads `args` as this specification says: the errors are those of [`Args`], so every
    /// command reports a bad argument in the same words. Without a trailing `...`, arguments
    /// left over are an error.
    pub fn bind<'a>(&self, mut args: Args<'a>) -> Result<Bound<'a>, ArgError<'a>> {
        let (specs, rest) = match self.args() {
            Ok(s) => s,
            Err(e) => {
                return Err(ArgError::Invalid {
                    cmd: args.command(),
                    msg: e.why,
                });
            }
        };
        let mut values = [Value::Absent; MAX_ARGS];
        for (slot, a) in values.iter_mut().zip(specs.iter()) {
            let Some(a) = a else { break };
            *slot = match (a.kind, a.optional) {
                (ArgKind::Number { min, max }, false) => {
                    Value::Number(args.number(a.name, min, max)?)
                }
                (ArgKind::Number { min, max }, true) => match args.peek() {
                    None => a
                        .default
                        .and_then(parse_number)
                        .map_or(Value::Absent, Value::Number),
                    Some(_) => Value::Number(args.number(a.name, min, max)?),
                },
                (ArgKind::Choice(c), false) => Value::Word(args.choice(a.name, c)?),
                (ArgKind::Choice(c), true) => match args.optional_choice(a.name, c)? {
                    Some(w) => Value::Word(w),
                    None => a.default.map_or(Value::Absent, Value::Word),
                },
            };
        }
        if !rest {
            args.clone().finish()?;
        }
        Ok(Bound { values, rest: args })
    }

    /// The usage line `help` shows: names, optional ones in brackets.
    pub fn usage(&self) -> Usage {
        Usage(*self)
    }
}

/// A specification rendered for `help` (`DEPTH FRAME`, `N [MODE]`, `KIND ...`).
#[derive(Clone, Copy, Debug)]
pub struct Usage(Spec);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok((specs, rest)) = self.0.args() else {
            return f.write_str("?");
        };
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " " };
            first = false;
            f.write_str(s)
        };
        for a in specs.iter().flatten() {
            sep(f)?;
            if a.optional {
                write!(f, "[{}]", a.name)?;
            } else {
                f.write_str(a.name)?;
            }
        }
        if rest {
            sep(f)?;
            f.write_str("..")?;
        }
        Ok(())
    }
}

fn parse_arg(part: &'static str) -> Result<ArgSpec, SpecError> {
    let bad = |why| SpecError { at: part, why };
    let (optional, body) = match part.strip_prefix('[') {
        Some(b) => (true, b.strip_suffix(']').ok_or(bad("'[' without ']'"))?),
        None => (false, part),
    };
    let (name, kind) = body.split_once(':').ok_or(bad("expected NAME:KIND"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return Err(bad("names are upper case"));
    }
    let (kind, default) = match kind.split_once('=') {
        Some((k, d)) if optional => (k, Some(d)),
        Some(_) => return Err(bad("only an optional argument has a default")),
        None => (kind, None),
    };
    let kind = if let Some((lo, hi)) = kind.split_once("..") {
        let min = parse_number(lo).ok_or(bad("bad lower bound"))?;
        let max = if hi.is_empty() {
            u64::MAX
        } else {
            parse_number(hi).ok_or(bad("bad upper bound"))?
        };
        if min > max {
            return Err(bad("empty range"));
        }
        if let Some(d) = default {
            let v = parse_number(d).ok_or(bad("default is not a number"))?;
            if v < min || v > max {
                return Err(bad("default out of range"));
            }
        }
        ArgKind::Number { min, max }
    } else {
        if kind.is_empty() || kind.split('|').any(str::is_empty) {
            return Err(bad("empty choice"));
        }
        if let Some(d) = default
            && !kind.split('|').any(|c| c == d)
        {
            return Err(bad("default is not one of the choices"));
        }
        ArgKind::Choice(kind)
    };
    Ok(ArgSpec {
        name,
        kind,
        optional,
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Command;
    use std::format;
    use std::string::ToString;

    fn bind(spec: &'static str, line: &'static str) -> Result<Bound<'static>, std::string::String> {
        let c = Command::parse(line).unwrap();
        Spec(spec).bind(c.args()).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_choices_bind_in_order() {
        let b = bind("DEPTH:0..100000 FRAME:1..8K", "recurse 40 256").unwrap();
        assert_eq!((b.number(0), b.number(1)), (40, 256));
        let b = bind("LEVELS:1..64 MODE:plain|ensure|extra", "reclaim 6 extra").unwrap();
        assert_eq!((b.number(0), b.word(1)), (6, "extra"));
    }

    #[test]
    fn errors_are_the_same_words_as_args() {
        assert_eq!(
            bind("DEPTH:0..100000 FRAME:1..8K", "recurse ten 64").unwrap_err(),
            "recurse: DEPTH must be a number (like 42, 0x2a or 16K), got 'ten'"
        );
        assert_eq!(
            bind("MS:1..60000", "ticks").unwrap_err(),
            "ticks: missing argument MS"
        );
        assert_eq!(
            bind("MS:1..60000", "ticks 0").unwrap_err(),
            "ticks: MS must be between 1 and 60000, got 0"
        );
        assert_eq!(
            bind("", "int3 now").unwrap_err(),
            "int3: unexpected argument 'now'"
        );
        assert_eq!(
            bind("LEVELS:1..64 MODE:plain|extra", "reclaim 2 deep").unwrap_err(),
            "reclaim: MODE must be one of plain, extra; got 'deep'"
        );
    }

    #[test]
    fn optional_arguments_take_defaults_or_are_absent() {
        let b = bind("[N:12..2000=240]", "bench").unwrap();
        assert_eq!(b.number(0), 240);
        let b = bind("[N:12..2000=240]", "bench 12").unwrap();
        assert_eq!(b.number(0), 12);
        assert_eq!(
            bind("[N:12..2000=240]", "bench 11").unwrap_err(),
            "bench: N must be between 12 and 2000, got 11"
        );
        let b = bind("N:0..256 [MODE:refill|hold]", "reserve 4").unwrap();
        assert_eq!((b.number(0), b.value(1)), (4, Value::Absent));
        let b = bind("N:0..256 [MODE:refill|hold]", "reserve 4 hold").unwrap();
        assert_eq!(b.word(1), "hold");
    }

    #[test]
    fn rest_leaves_the_remaining_arguments_to_the_command() {
        let mut b = bind("KIND:fixed|grow ...", "policy grow 4K 32K").unwrap();
        assert_eq!(b.word(0), "grow");
        assert_eq!(b.rest.number("INITIAL", 0, 1 << 20), Ok(4096));
        assert_eq!(b.rest.number("MAX", 0, 1 << 20), Ok(32768));
        assert!(bind("KIND:fixed|grow", "policy grow 4K").is_err());
    }

    #[test]
    fn open_ranges_reach_u64_max() {
        let b = bind("ADDR:0..", "read 0xffffffffffffffff").unwrap();
        assert_eq!(b.number(0), u64::MAX);
    }

    #[test]
    fn malformed_specs_are_refused_with_the_part_named() {
        for (spec, at) in [
            ("N", "N"),
            ("n:1..2", "n:1..2"),
            ("N:5..1", "N:5..1"),
            ("[N:1..2", "[N:1..2"),
            ("[N:1..2] M:1..2", "M:1..2"),
            ("N:1..2=1", "N:1..2=1"),
            ("[N:1..2=3]", "[N:1..2=3]"),
            ("[M:a|b=c]", "[M:a|b=c]"),
            ("M:a||b", "M:a||b"),
            ("... N:1..2", "N:1..2"),
            ("A:1..2 B:1..2 C:1..2 D:1..2 E:1..2", "E:1..2"),
        ] {
            let e = Spec(spec).validate().unwrap_err();
            assert_eq!(e.at, at, "{spec}: {e}");
        }
    }

    #[test]
    fn usage_shows_names_and_brackets() {
        let u = |s| format!("{}", Spec(s).usage());
        assert_eq!(u("DEPTH:0..9 FRAME:1..2"), "DEPTH FRAME");
        assert_eq!(u("N:0..256 [MODE:refill|hold]"), "N [MODE]");
        assert_eq!(u("KIND:fixed|grow ..."), "KIND ..");
        assert_eq!(u(""), "");
    }
}
