//! The hazard catalogue's vocabulary: what one cell (one hazard under one stack policy, one
//! boot) ends in, and the `expect` entries (`POLICY=OUTCOME`) that the kernel's `catalogue`
//! command writes. The kernel writes them and the host parses them with this same code.
//!
//! Outcomes, as text:
//!
//! | text | meaning |
//! | --- | --- |
//! | `ok` | every result of the cell has ok=true and the machine exits successfully |
//! | `abort:REASON` | the machine stopped with a fatal report (an `abort` record) of that `reason` |
//! | `refused` | the command completed, ok=true, and said (a `refused` field) that it refused cleanly |
//! | `detected:WHAT` | corruption happened, the kernel detected and reported it (a `detected` field) and went on |
//! | `hang` | the machine never finished (killed at the timeout) |
//! | `triple-fault` | the machine reset without an `exit` record |

use core::fmt;

/// The stack policies of the catalogue, in the order the kernel lists them.
pub const POLICIES: [&str; 7] = [
    "fixed-16k",
    "fixed-32k",
    "pf-ist",
    "df-recover",
    "ensure",
    "fred-l1",
    "fred-l0",
];

/// What a cell ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Every result ok, exit `success`.
    Ok,
    /// A fatal report with this `reason`.
    Abort(&'a str),
    /// The command refused cleanly (ok=true, `refused`).
    Refused,
    /// Corruption detected and reported without dying (ok=true, `detected` names it).
    Detected(&'a str),
    /// Killed at the timeout.
    Hang,
    /// Reset without an `exit` record.
    TripleFault,
}

/// Why an outcome or an `expect` entry did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeError {
    /// Not one of the outcome words.
    Unknown,
    /// `abort:` or `detected:` with an empty or malformed name (lowercase letters, digits
    /// and `-` only).
    BadName,
    /// An `expect` entry without `=`.
    NoPolicy,
    /// An `expect` entry naming a policy not in [`POLICIES`].
    UnknownPolicy,
}

impl fmt::Display for OutcomeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutcomeError::Unknown => {
                "unknown outcome (ok, abort:REASON, refused, detected:WHAT, hang, triple-fault)"
            }
            OutcomeError::BadName => "the name after ':' must be lowercase letters, digits and '-'",
            OutcomeError::NoPolicy => "an expectation is POLICY=OUTCOME",
            OutcomeError::UnknownPolicy => "unknown policy",
        })
    }
}

fn name(s: &str) -> Result<&str, OutcomeError> {
    let good = !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if good {
        Ok(s)
    } else {
        Err(OutcomeError::BadName)
    }
}

impl<'a> Outcome<'a> {
    /// Parses the text form (see the module docs).
    pub fn parse(s: &'a str) -> Result<Outcome<'a>, OutcomeError> {
        match s {
            "ok" => return Ok(Outcome::Ok),
            "refused" => return Ok(Outcome::Refused),
            "hang" => return Ok(Outcome::Hang),
            "triple-fault" => return Ok(Outcome::TripleFault),
            _ => {}
        }
        if let Some(r) = s.strip_prefix("abort:") {
            return name(r).map(Outcome::Abort);
        }
        if let Some(w) = s.strip_prefix("detected:") {
            return name(w).map(Outcome::Detected);
        }
        Err(OutcomeError::Unknown)
    }
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Abort(r) => write!(f, "abort:{r}"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::Detected(w) => write!(f, "detected:{w}"),
            Outcome::Hang => f.write_str("hang"),
            Outcome::TripleFault => f.write_str("triple-fault"),
        }
    }
}

/// One `expect` entry: `POLICY=OUTCOME`, the policy one of [`POLICIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The policy's name.
    pub policy: &'a str,
    /// What the cell must end in.
    pub outcome: Outcome<'a>,
}

impl<'a> Expect<'a> {
    /// Parses `POLICY=OUTCOME`.
    pub fn parse(s: &'a str) -> Result<Expect<'a>, OutcomeError> {
        let (policy, outcome) = s.split_once('=').ok_or(OutcomeError::NoPolicy)?;
        if !POLICIES.contains(&policy) {
            return Err(OutcomeError::UnknownPolicy);
        }
        Ok(Expect {
            policy,
            outcome: Outcome::parse(outcome)?,
        })
    }
}

impl fmt::Display for Expect<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.policy, self.outcome)
    }
}

/// Checks a hazard's whole `expect` list: every entry parses and every policy of
/// [`POLICIES`] appears exactly once. Returns the outcomes in [`POLICIES`] order.
pub fn expect_all<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<[Outcome<'a>; POLICIES.len()], ExpectListError<'a>> {
    let mut out: [Option<Outcome<'a>>; POLICIES.len()] = [None; POLICIES.len()];
    for e in entries {
        let x = Expect::parse(e).map_err(|err| ExpectListError::Bad(e, err))?;
        let i = POLICIES
            .iter()
            .position(|p| *p == x.policy)
            .expect("Expect::parse accepts only listed policies");
        if out[i].replace(x.outcome).is_some() {
            return Err(ExpectListError::Twice(POLICIES[i]));
        }
    }
    let mut all = [Outcome::Ok; POLICIES.len()];
    for (i, o) in out.into_iter().enumerate() {
        all[i] = o.ok_or(ExpectListError::Missing(POLICIES[i]))?;
    }
    Ok(all)
}

/// Why an `expect` list is not one outcome per policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectListError<'a> {
    /// This entry does not parse.
    Bad(&'a str, OutcomeError),
    /// This policy is listed twice.
    Twice(&'static str),
    /// This policy is not listed.
    Missing(&'static str),
}

impl fmt::Display for ExpectListError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectListError::Bad(e, err) => write!(f, "'{e}': {err}"),
            ExpectListError::Twice(p) => write!(f, "policy {p} listed twice"),
            ExpectListError::Missing(p) => write!(f, "policy {p} not listed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn every_outcome_round_trips() {
        for s in [
            "ok",
            "abort:stack-overflow",
            "abort:ist-frame-clobbered",
            "refused",
            "detected:frame-clobbered",
            "hang",
            "triple-fault",
            "abort:x2",
        ] {
            let o = Outcome::parse(s).unwrap();
            assert_eq!(o.to_string(), s);
        }
        assert_eq!(
            Outcome::parse("abort:wild-stack-access"),
            Ok(Outcome::Abort("wild-stack-access"))
        );
        assert_eq!(Outcome::parse("detected:x"), Ok(Outcome::Detected("x")));
    }

    #[test]
    fn malformed_outcomes_are_refused() {
        for (s, e) in [
            ("", OutcomeError::Unknown),
            ("OK", OutcomeError::Unknown),
            ("abort", OutcomeError::Unknown),
            ("detected", OutcomeError::Unknown),
            ("ok ", OutcomeError::Unknown),
            ("abort:", OutcomeError::BadName),
            ("abort:Stack", OutcomeError::BadName),
            ("abort:-x", OutcomeError::BadName),
            ("abort:a b", OutcomeError::BadName),
            ("abort:a=b", OutcomeError::BadName),
            ("detected:", OutcomeError::BadName),
            ("refused:x", OutcomeError::Unknown),
        ] {
            assert_eq!(Outcome::parse(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn expect_entries() {
        assert_eq!(
            Expect::parse("fixed-16k=abort:stack-overflow"),
            Ok(Expect {
                policy: "fixed-16k",
                outcome: Outcome::Abort("stack-overflow")
            })
        );
        assert_eq!(
            Expect::parse("fred-l0=ok").unwrap().to_string(),
            "fred-l0=ok"
        );
        assert_eq!(Expect::parse("ok"), Err(OutcomeError::NoPolicy));
        assert_eq!(
            Expect::parse("fixed-8k=ok"),
            Err(OutcomeError::UnknownPolicy)
        );
        assert_eq!(Expect::parse("=ok"), Err(OutcomeError::UnknownPolicy));
        assert_eq!(Expect::parse("pf-ist=bad"), Err(OutcomeError::Unknown));
        // Only the first '=' separates: the outcome itself has none.
        assert_eq!(Expect::parse("pf-ist=ok=ok"), Err(OutcomeError::Unknown));
    }

    fn full() -> Vec<std::string::String> {
        POLICIES.iter().map(|p| std::format!("{p}=ok")).collect()
    }

    #[test]
    fn a_full_list_is_accepted_in_any_order() {
        let mut l = full();
        l[0] = "fixed-16k=abort:stack-overflow".into();
        l.reverse();
        let got = expect_all(l.iter().map(|s| s.as_str())).unwrap();
        assert_eq!(got[0], Outcome::Abort("stack-overflow"));
        assert!(got[1..].iter().all(|o| *o == Outcome::Ok));
    }

    #[test]
    fn a_list_must_name_every_policy_once() {
        let mut l = full();
        l.pop();
        assert_eq!(
            expect_all(l.iter().map(|s| s.as_str())),
            Err(ExpectListError::Missing("fred-l0"))
        );
        let mut l = full();
        l.push("pf-ist=refused".into());
        assert_eq!(
            expect_all(l.iter().map(|s| s.as_str())),
            Err(ExpectListError::Twice("pf-ist"))
        );
        let mut l = full();
        l[2] = "pf-ist=abort:".into();
        assert_eq!(
            expect_all(l.iter().map(|s| s.as_str())),
            Err(ExpectListError::Bad("pf-ist=abort:", OutcomeError::BadName))
        );
        assert_eq!(expect_all([]), Err(ExpectListError::Missing("fixed-16k")));
    }

    #[test]
    fn policy_names_are_distinct_and_well_formed() {
        for (i, p) in POLICIES.iter().enumerate() {
            assert_eq!(name(p), Ok(*p));
            assert!(!POLICIES[..i].contains(p));
        }
    }
}
