//! The kernel's hazard catalogue as the host reads it: the `policy` and `hazard` records the
//! kernel's `catalogue` command writes, checked (known policy names in every expectation,
//! outcomes in the catalogue's vocabulary, no name twice), and narrowed by `--only` and
//! `--policy`.

use stacklab_core::catalogue as vocab;

use crate::record::Record;

/// One stack policy: a column of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Short name (`fixed-16k`).
    pub name: String,
    /// The commands that select it (`policy fixed 16K; growth abort`).
    pub setup: String,
    /// One line for people.
    pub title: String,
}

/// One hazard scenario: a row of the matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hazard {
    /// Short name (`deep-recursion`).
    pub name: String,
    /// The commands that provoke it (`recurse 100 256`).
    pub run: String,
    /// One line for people.
    pub title: String,
    /// A paragraph for a talk.
    pub story: String,
    /// The documented outcome under each policy named: (policy, outcome).
    pub expect: Vec<(String, String)>,
}

/// Every policy and hazard, in the kernel's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// The columns.
    pub policies: Vec<Policy>,
    /// The rows.
    pub hazards: Vec<Hazard>,
}

/// Whether `outcome` is a word of the catalogue's outcome vocabulary
/// (`stacklab_core::catalogue::Outcome`: `ok`, `refused`, `hang`, `triple-fault`,
/// `abort:<reason>`, `detected:<what>`).
pub fn valid_outcome(outcome: &str) -> bool {
    vocab::Outcome::parse(outcome).is_ok()
}

fn field(r: &Record, key: &str) -> Result<String, String> {
    r.str(key).map(String::from).ok_or_else(|| {
        format!(
            "{} record without string field '{key}': {}",
            r.kind,
            r.to_json_line()
        )
    })
}

impl Catalogue {
    /// Reads the catalogue from a run's records (other kinds are skipped) and checks it.
    pub fn from_records(records: &[Record]) -> Result<Catalogue, String> {
        let mut c = Catalogue::default();
        for r in records {
            match r.kind.as_str() {
                "policy" => c.policies.push(Policy {
                    name: field(r, "name")?,
                    setup: field(r, "setup")?,
                    title: r.str("title").unwrap_or_default().to_string(),
                }),
                "hazard" => {
                    let mut expect = Vec::new();
                    let list = r.get("expect").and_then(|v| v.as_array());
                    for e in list.into_iter().flatten() {
                        let s = e.as_str().unwrap_or_default();
                        let x = vocab::Expect::parse(s).map_err(|err| {
                            format!(
                                "hazard '{}': expectation '{s}': {err}",
                                field(r, "name").unwrap_or_default()
                            )
                        })?;
                        expect.push((x.policy.to_string(), x.outcome.to_string()));
                    }
                    c.hazards.push(Hazard {
                        name: field(r, "name")?,
                        run: field(r, "run")?,
                        title: r.str("title").unwrap_or_default().to_string(),
                        story: r.str("story").unwrap_or_default().to_string(),
                        expect,
                    });
                }
                "result" if r.str("cmd") == Some("catalogue") && r.bool("ok") != Some(true) => {
                    return Err(format!(
                        "the kernel found problems in its catalogue: {}",
                        r.to_json_line()
                    ));
                }
                _ => {}
            }
        }
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        if self.policies.is_empty() || self.hazards.is_empty() {
            return Err(format!(
                "the catalogue lists {} policies and {} hazards (does the kernel have the `catalogue` command?)",
                self.policies.len(),
                self.hazards.len()
            ));
        }
        let names = |v: Vec<&str>, what: &str| -> Result<(), String> {
            let mut seen = std::collections::HashSet::new();
            match v.into_iter().find(|n| !seen.insert(*n)) {
                Some(n) => Err(format!("{what} '{n}' is listed twice")),
                None => Ok(()),
            }
        };
        names(
            self.policies.iter().map(|p| p.name.as_str()).collect(),
            "policy",
        )?;
        names(
            self.hazards.iter().map(|h| h.name.as_str()).collect(),
            "hazard",
        )?;
        for h in &self.hazards {
            names(
                h.expect.iter().map(|(p, _)| p.as_str()).collect(),
                "expectation for policy",
            )?;
            for (p, o) in &h.expect {
                if self.policy(p).is_none() {
                    return Err(format!(
                        "hazard '{}' expects '{o}' of unknown policy '{p}'",
                        h.name
                    ));
                }
                if !valid_outcome(o) {
                    return Err(format!("hazard '{}': '{o}' is not an outcome", h.name));
                }
            }
        }
        Ok(())
    }

    /// The policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The hazard called `name`.
    pub fn hazard(&self, name: &str) -> Option<&Hazard> {
        self.hazards.iter().find(|h| h.name == name)
    }

    /// Only the hazards and policies named (all of either when `None`), in catalogue order;
    /// an unknown name is an error that lists the known ones.
    pub fn select(
        &self,
        only: Option<&[String]>,
        policies: Option<&[String]>,
    ) -> Result<Catalogue, String> {
        fn pick<T: Clone>(
            all: &[T],
            name: impl Fn(&T) -> &str,
            want: Option<&[String]>,
            what: &str,
        ) -> Result<Vec<T>, String> {
            let Some(want) = want else {
                return Ok(all.to_vec());
            };
            if let Some(bad) = want
                .iter()
                .find(|w| !all.iter().any(|x| name(x) == w.as_str()))
            {
                let known: Vec<&str> = all.iter().map(&name).collect();
                return Err(format!(
                    "unknown {what} '{bad}' (the catalogue has: {})",
                    known.join(", ")
                ));
            }
            Ok(all
                .iter()
                .filter(|x| want.iter().any(|w| w == name(x)))
                .cloned()
                .collect())
        }
        Ok(Catalogue {
            policies: pick(&self.policies, |p| &p.name, policies, "policy")?,
            hazards: pick(&self.hazards, |h| &h.name, only, "hazard")?,
        })
    }
}

impl Hazard {
    /// The documented outcome under `policy`, if the catalogue states one.
    pub fn expected(&self, policy: &str) -> Option<&str> {
        self.expect
            .iter()
            .find(|(p, _)| p == policy)
            .map(|(_, o)| o.as_str())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic catalogue run: two policies, two hazards.
    pub(crate) fn records() -> Vec<Record> {
        [
            r#"{"kind":"ready","version":"0.1.0"}"#,
            r#"{"kind":"policy","name":"fixed-16k","setup":"policy fixed 16K; growth abort","title":"16 KiB fixed"}"#,
            r#"{"kind":"policy","name":"pf-ist","setup":"policy grow 4K 32K; growth pf-ist","title":"growth by #PF"}"#,
            r#"{"kind":"hazard","name":"deep-recursion","run":"recurse 100 256","title":"Deep <recursion>","story":"A \"deep\" call & more.","expect":["fixed-16k=abort:stack-overflow","pf-ist=ok"]}"#,
            r#"{"kind":"hazard","name":"irq-at-edge","run":"edge-irq","title":"An IRQ at the edge","story":"s","expect":["pf-ist=ok"]}"#,
            r#"{"kind":"result","cmd":"catalogue","ok":true}"#,
        ]
        .iter()
        .map(|l| Record::parse_json(l).unwrap())
        .collect()
    }

    #[test]
    fn reads_and_checks_the_records() {
        let c = Catalogue::from_records(&records()).unwrap();
        assert_eq!(c.policies.len(), 2);
        assert_eq!(c.policies[1].setup, "policy grow 4K 32K; growth pf-ist");
        let h = c.hazard("deep-recursion").unwrap();
        assert_eq!(h.expected("fixed-16k"), Some("abort:stack-overflow"));
        assert_eq!(h.expected("pf-ist"), Some("ok"));
        assert_eq!(c.hazard("irq-at-edge").unwrap().expected("fixed-16k"), None);
        let bad = |line: &str| {
            let mut r = records();
            r.push(Record::parse_json(line).unwrap());
            Catalogue::from_records(&r).unwrap_err()
        };
        assert!(
            bad(r#"{"kind":"hazard","name":"x","run":"r","expect":["nope=ok"]}"#)
                .contains("'nope=ok': unknown policy")
        );
        assert!(
            bad(r#"{"kind":"hazard","name":"x","run":"r","expect":["pf-ist=fine"]}"#)
                .contains("'pf-ist=fine': unknown outcome")
        );
        assert!(
            bad(r#"{"kind":"hazard","name":"x","run":"r","expect":["pf-ist"]}"#)
                .contains("POLICY=OUTCOME")
        );
        assert!(bad(r#"{"kind":"policy","name":"pf-ist","setup":"s"}"#).contains("listed twice"));
        assert!(bad(r#"{"kind":"hazard","name":"x"}"#).contains("'run'"));
        assert!(
            Catalogue::from_records(&[])
                .unwrap_err()
                .contains("0 policies")
        );
        let mut r = records();
        r.push(
            Record::parse_json(
                r#"{"kind":"result","cmd":"catalogue","ok":false,"problems":["x"]}"#,
            )
            .unwrap(),
        );
        assert!(
            Catalogue::from_records(&r)
                .unwrap_err()
                .contains("problems")
        );
    }

    #[test]
    fn a_planted_expectation_is_wrong() {
        let mut c = Catalogue::from_records(&records()).unwrap();
        super::super::plant(&mut c, "deep-recursion/pf-ist").unwrap();
        assert_eq!(
            c.hazard("deep-recursion").unwrap().expected("pf-ist"),
            Some("hang")
        );
        assert_eq!(
            c.hazard("deep-recursion").unwrap().expected("fixed-16k"),
            Some("abort:stack-overflow")
        );
        super::super::plant(&mut c, "deep-recursion/pf-ist").unwrap();
        assert_eq!(
            c.hazard("deep-recursion").unwrap().expected("pf-ist"),
            Some("ok")
        );
        assert!(super::super::plant(&mut c, "x/pf-ist").is_err());
        assert!(super::super::plant(&mut c, "deep-recursion/x").is_err());
        assert!(super::super::plant(&mut c, "deep-recursion").is_err());
    }

    #[test]
    fn vocabulary() {
        for o in [
            "ok",
            "refused",
            "hang",
            "triple-fault",
            "abort:stack-overflow",
            "detected:ist-frame-clobbered",
        ] {
            assert!(valid_outcome(o), "{o}");
        }
        for o in ["", "abort:", "crash", "detected:a b", "ok:x", "abort:Stack"] {
            assert!(!valid_outcome(o), "{o}");
        }
    }

    #[test]
    fn selects_by_name() {
        let c = Catalogue::from_records(&records()).unwrap();
        let s = c
            .select(Some(&["irq-at-edge".into()]), Some(&["pf-ist".into()]))
            .unwrap();
        assert_eq!((s.hazards.len(), s.policies.len()), (1, 1));
        assert_eq!(s.policies[0].name, "pf-ist");
        assert_eq!(c.select(None, None).unwrap(), c);
        let e = c.select(Some(&["nope".into()]), None).unwrap_err();
        assert_eq!(
            e,
            "unknown hazard 'nope' (the catalogue has: deep-recursion, irq-at-edge)"
        );
    }
}
