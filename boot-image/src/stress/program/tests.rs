use super::*;

fn programs(seed: u64, n: u64) -> Vec<Program> {
    (0..n)
        .map(|i| generate(seed, i, &GenConfig::default()))
        .collect()
}

#[test]
fn same_seed_same_programs() {
    assert_eq!(programs(1, 50), programs(1, 50));
    assert_eq!(
        generate(99, 7, &GenConfig::default()),
        generate(99, 7, &GenConfig::default())
    );
}

#[test]
fn different_seeds_and_runs_differ() {
    let a: Vec<String> = programs(1, 20).iter().map(Program::cmdline).collect();
    let b: Vec<String> = programs(2, 20).iter().map(Program::cmdline).collect();
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    let mut uniq = a.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), a.len());
}

#[test]
fn programs_start_with_jitter_policy_growth() {
    for p in programs(5, 200) {
        assert!(p.commands[0].starts_with("jitter "), "{p:?}");
        assert_eq!(p.commands[1], format!("policy {}", p.policy));
        assert_eq!(p.commands[2], format!("growth {}", p.mode));
        assert!(POLICIES.contains(&p.policy.as_str()));
        assert!(MODES.contains(&p.mode.as_str()));
        assert!(p.cmdline().len() < 4096);
    }
}

#[test]
fn only_the_last_command_overflows_and_only_if_expected() {
    let all = programs(3, 500);
    let aborts = all.iter().filter(|p| p.expect != Expect::Ok).count();
    assert!(aborts > 50 && aborts < 300, "{aborts}");
    for p in &all {
        let cap = capacity(&p.policy, &p.mode);
        let uses: Vec<Option<u64>> = p
            .commands
            .iter()
            .map(|c| {
                let w: Vec<&str> = c.split_whitespace().collect();
                (w[0] == "recurse")
                    .then(|| recursion_use(w[1].parse().unwrap(), w[2].parse().unwrap()))
            })
            .collect();
        let (last, body) = uses.split_last().unwrap();
        for u in body.iter().flatten() {
            assert!(*u <= cap / 2, "{p:?}");
        }
        match &p.expect {
            Expect::Ok => assert!(last.is_none_or(|u| u <= cap / 2), "{p:?}"),
            Expect::Abort(r) => {
                assert_eq!(r, OVERFLOW_REASON);
                let w: Vec<u64> = p.commands.last().unwrap()[8..]
                    .split(' ')
                    .map(|x| x.parse().unwrap())
                    .collect();
                assert!(w[0] * w[1] >= 2 * cap, "{p:?}");
            }
        }
        for c in &p.commands {
            if let Some(b) = c.strip_prefix("hwm ") {
                let most = if p.policy.starts_with("grow") {
                    3840
                } else {
                    cap / 2
                };
                assert!((512..=most).contains(&b.parse().unwrap()), "{p:?}");
            }
        }
        if cap < 16 << 10 {
            assert!(!p.cmdline().contains("threads"), "{p:?}");
        }
    }
}

#[test]
fn config_restricts_policies_and_modes() {
    let cfg = GenConfig {
        policies: vec!["fixed 32K".into()],
        modes: vec!["abort".into()],
        max_body: 2,
        overflow_percent: 0,
    };
    for i in 0..50 {
        let p = generate(11, i, &cfg);
        assert_eq!((p.policy.as_str(), p.mode.as_str()), ("fixed 32K", "abort"));
        assert_eq!(p.expect, Expect::Ok);
        assert!(p.commands.len() <= 5);
    }
}

#[test]
fn expect_names_round_trip() {
    for e in [Expect::Ok, Expect::Abort("stack-overflow".into())] {
        assert_eq!(Expect::parse(&e.name()), Some(e));
    }
    assert_eq!(Expect::parse("abort:"), None);
    assert_eq!(Expect::parse("fine"), None);
}

#[test]
fn rng_ranges_stay_in_bounds() {
    let mut r = Rng::new(0);
    for _ in 0..1000 {
        assert!((3..=9).contains(&r.range(3, 9)));
    }
    assert_eq!(Rng::new(4).next_u64(), Rng::new(4).next_u64());
}
