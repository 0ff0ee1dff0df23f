//! `growth fred`: real FRED event delivery, where the CPU has it.
//!
//! Under QEMU (TCG has no FRED) the kernel reports `"fred": "absent"` and refuses `growth
//! fred`, `fred-compare` and `edge-sweep fred` with one clear message each, leaving the growth
//! mode as it was.

use stacklab_tests::*;

/// The one message every refusal carries.
const ABSENT: &str = "this CPU has no FRED (CPUID.(EAX=7,ECX=1):EAX bit 17 is clear); 'growth fred-sim' simulates it";

static QEMU: Shared = Shared::new(
    "growth pf-ist; growth fred; fred-compare; edge-sweep fred int3 0 8; fred-state; info",
);

#[test]
fn without_fred_growth_fred_is_refused_and_nothing_changes() {
    let out = QEMU.get();
    assert_eq!(out.find("ready").unwrap().str("fred"), Some("absent"));
    assert_eq!(
        sequence(out),
        [
            "ready",
            "result:growth",
            "error:growth fred",
            "error:fred-compare",
            "error:edge-sweep fred int3 0 8",
            "result:fred-state",
            "result:info",
            "exit"
        ],
        "{out:?}"
    );
    let errors: Vec<(&str, &str)> = out
        .find_all("error")
        .into_iter()
        .map(|r| (r.str("cmd").unwrap(), r.str("msg").unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("growth fred", ABSENT),
            ("fred-compare", ABSENT),
            ("edge-sweep fred int3 0 8", ABSENT),
        ]
    );
    // The refused mode did not replace the one before it, FRED stayed off, and the level
    // stacks were not even allocated.
    let s = out.result_for("fred-state").unwrap();
    assert_eq!(s.str("growth"), Some("pf-ist"), "{out:?}");
    assert_eq!(s.bool("installed"), Some(false));
    assert_eq!(s.str("fred"), Some("absent"));
    assert_eq!((num(s, "fred_delivered"), num(s, "fred_csl")), (0, 0));
    assert_exit(out, ExitCode::BadCommand);
}

// ---- on Bochs (the CPU model `wildcat_lake` has FRED) ----

/// The growth scenarios under real FRED; the last command overflows past the maximum.
static GROWTH: BochsBoot = BochsBoot::new(
    "policy grow 4K 32K; growth fred; fred-levels; recurse 40 256; edge-irq; ensure 40 256; \
     reclaim 6 plain; demand-nested; stats; fred-state; recurse 200 256",
);
/// Linux's level table: #PF on level 0, so the overflow is #DF on level 3.
static PF0: BochsBoot =
    BochsBoot::new("policy grow 4K 32K; growth fred; fred-levels pf=0; recurse 200 256");
/// The comparison, the sweep at the edge, and one bench figure, after the mode switched back
/// and forth (one boot runs every path).
static COMPARE: BochsBoot = BochsBoot::new(
    "growth fred; growth pf-ist; growth fred; fred-compare; edge-sweep fred; bench fred 24; \
     fred-state",
);

#[test]
fn real_fred_grows_the_recursion_by_exactly_the_pages_it_touches() {
    let Some(out) = GROWTH.get() else { return };
    assert_eq!(out.find("ready").unwrap().str("fred"), Some("available"));
    let g = out.result_for("growth").unwrap();
    assert_eq!(
        (g.str("growth"), g.str("fred")),
        (Some("fred"), Some("enabled"))
    );
    let r = out.result_for("recurse").unwrap();
    assert_checked_result(r);
    assert_eq!(r.str("growth"), Some("fred"));
    assert_grown_exactly(r);
    assert_eq!((num(r, "pages"), num(r, "grow_events")), (4, 3), "{out:?}");
    // An interrupt whose delivery was the growth fault is replayed once.
    let irq = out.result_for("edge-irq").unwrap();
    assert_eq!(
        (irq.bool("ok"), num(irq, "lost_irqs_recovered")),
        (Some(true), 1)
    );
    for cmd in ["ensure", "reclaim"] {
        assert_checked_result(out.result_for(cmd).unwrap());
    }
    let d = out.result_for("demand-nested").unwrap();
    assert_eq!((d.bool("ok"), num(d, "nested")), (Some(true), 1), "{out:?}");
    // Every growth went through real FRED, none through another path.
    let by_path = |p: &str| {
        out.find_all("stats")
            .into_iter()
            .find(|s| s.str("path") == Some(p))
            .map(|s| num(s, "events"))
    };
    let grown = num(r, "grow_events")
        + num(irq, "grow_events")
        + num(out.result_for("reclaim").unwrap(), "grow_events");
    assert_eq!(by_path("fred"), Some(grown), "{out:?}");
    for p in ["pf-ist", "df-recover", "fred-sim"] {
        assert_eq!(by_path(p), Some(0), "{p}: {out:?}");
    }
    let s = out.result_for("fred-state").unwrap();
    assert_eq!((s.str("fred"), num(s, "fred_csl")), (Some("enabled"), 0));
    assert_eq!(num(s, "fred_delivered"), num(s, "fred_returns"), "{out:?}");
    assert_eq!(num(s, "delivered"), 0, "fred-sim delivered nothing");
    // Past the maximum: the overflow report, from the #PF on its level-1 stack.
    let a = the_abort(out);
    assert_eq!(
        (a.str("reason"), a.str("via"), num(a, "vector")),
        (Some("stack-overflow"), Some("#PF"), 14),
        "{out:?}"
    );
    assert_eq!(hex(a, "guard_addr"), hex(a, "cr2"));
    assert!(hex(a, "cr2") < hex(a, "stack_lo"));
    assert_exit(out, ExitCode::Abort);
}

#[test]
fn real_fred_with_pf_on_level_0_ends_the_overflow_in_a_double_fault() {
    let Some(out) = PF0.get() else { return };
    assert_eq!(
        sequence(out).join(" "),
        "ready result:policy result:growth result:fred-levels abort exit",
        "{out:?}"
    );
    let a = the_abort(out);
    assert_eq!(
        (a.str("reason"), a.str("via"), num(a, "vector")),
        (Some("stack-overflow"), Some("#DF"), 8),
        "{out:?}"
    );
    assert_eq!(a.str("error_code"), Some("0x0"));
    // The #DF saves the context of the access whose #PF had no room for its frame, and CR2
    // (which the entry reads: a #DF frame carries no event data) names the frame's first
    // write: the top quadword of a frame at (RSP - red zone) & ~63.
    let (rsp, cr2, lo) = (hex(a, "rsp"), hex(a, "cr2"), hex(a, "stack_lo"));
    assert_eq!(cr2, ((rsp - 64) & !63) - 8, "{}", a.to_json_line());
    assert_eq!(hex(a, "guard_addr"), cr2);
    assert!(rsp <= lo && lo - rsp < 512, "{}", a.to_json_line());
    assert_eq!(hex(a, "stack_hi") - lo, 4096, "nothing grew");
    // The overflowing code is the recursion, or an interrupt taken on its stack: a timer tick
    // whose entry pushed its frame and registers there and whose handler's frames crossed the
    // edge (what an overflow at level 0 looks like under FRED, where every event taken at
    // level 0 stays on the stack it interrupted). Either way the recursion is on the stack.
    let bt: Vec<String> = a
        .hex_list("backtrace")
        .iter()
        .map(|&r| function_at(out, r - 1))
        .collect();
    assert!(
        bt.iter()
            .any(|f| f.starts_with("stacklab_kernel::scenarios::recursion::rec")),
        "{bt:?}"
    );
    assert_exit(out, ExitCode::Abort);
}

/// A list of `"0x…"` strings as numbers.
fn words(r: &Record, key: &str) -> Vec<u64> {
    r.hex_list(key)
}

#[test]
fn fred_compare_finds_real_fred_simulated_fred_and_the_model_in_agreement() {
    let Some(out) = COMPARE.get() else { return };
    let c = out.result_for("fred-compare").unwrap();
    assert_eq!(c.bool("ok"), Some(true), "{out:?}");
    assert_eq!(num(c, "cases"), 7);
    assert_eq!(
        c.get("mismatches").and_then(|m| m.as_array()).map(Vec::len),
        Some(0)
    );
    let cases = out.find_all("fred-case");
    let names: Vec<&str> = cases.iter().map(|r| text(r, "case")).collect();
    assert_eq!(
        names,
        [
            "int3",
            "demand-pf",
            "growth-pf-level1",
            "overflow-pf-level0-df",
            "timer",
            "timer-at-edge",
            "nested-pf-same-level"
        ]
    );
    // What each delivery is (SS word: vector 39:32, type 51:48) and where it went.
    // Per case, per delivery: vector, event type, CSL after delivery.
    type Delivery = (u64, u64, u64);
    let expect: [(&str, &[Delivery]); 7] = [
        ("int3", &[(3, 6, 0)]),
        ("demand-pf", &[(14, 3, 1)]),
        ("growth-pf-level1", &[(14, 3, 1)]),
        ("overflow-pf-level0-df", &[(8, 3, 3)]),
        ("timer", &[(32, 0, 0)]),
        // The interrupt's own frame did not fit: the #PF is what arrived, on level 1.
        ("timer-at-edge", &[(14, 3, 1)]),
        ("nested-pf-same-level", &[(14, 3, 1), (14, 3, 1)]),
    ];
    for (r, (name, deliveries)) in cases.iter().zip(expect) {
        let (real, sim) = (words(r, "real"), words(r, "sim"));
        assert_eq!(real.len(), 8 * deliveries.len(), "{name}");
        for (i, &(vector, kind, csl)) in deliveries.iter().enumerate() {
            let f = &real[8 * i..8 * i + 8];
            assert_eq!(
                ((f[5] >> 32) & 0xff, (f[5] >> 48) & 0xf),
                (vector, kind),
                "{name}"
            );
            assert_eq!(num_list(r, "real_csl")[i], csl, "{name}");
            // Word by word, the nested frame's interrupted RSP aside (the outer handler's), and
            // the nested bit of a #PF raised while delivering an interrupt: fred-sim's model
            // sets it (Linux's wording), Bochs does not (nor does the model asked for Bochs's
            // behaviour).
            let nested = 1 << 58;
            for w in 0..8 {
                let (a, b) = (f[w], sim[8 * i + w]);
                match (name, i, w) {
                    ("nested-pf-same-level", 1, 4) => {}
                    ("timer-at-edge", 0, 5) => {
                        assert_eq!((a & nested, b & nested), (0, nested), "{name}");
                        assert_eq!(a, b & !nested, "{name}");
                    }
                    _ => assert_eq!(a, b, "{name}/{i} word {w}"),
                }
            }
        }
        assert_eq!(words(r, "real"), words(r, "model"), "{name}");
        assert_eq!(hex(r, "real_rsp_after"), hex(r, "sim_rsp_after"), "{name}");
        assert_eq!(
            (num(r, "real_csl_after"), num(r, "sim_csl_after")),
            (0, 0),
            "{name}"
        );
    }
    // The model inputs the kernel printed, run through the host's JSON driver (`cargo lab
    // fred`), give the real frames again.
    let lines: Vec<String> = out
        .find_all("fred-model-input")
        .into_iter()
        .map(|r| text(r, "line").to_string())
        .collect();
    assert_eq!(lines.len(), 8);
    let mut results = Vec::new();
    let sum =
        stacklab_fred::json::run_lines(lines.join("\n").as_bytes(), &mut results, false).unwrap();
    assert_eq!((sum.ok, sum.errors), (8, 0));
    let host: Vec<u64> = String::from_utf8(results)
        .unwrap()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["frame"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    u64::from_str_radix(w.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let real: Vec<u64> = cases.iter().flat_map(|r| words(r, "real")).collect();
    assert_eq!(host, real);
}

#[test]
fn real_fred_is_exact_at_the_stacks_edge_and_switches_with_the_other_paths() {
    let Some(out) = COMPARE.get() else { return };
    let g = results_for(out, "growth");
    let modes: Vec<&str> = g.iter().map(|r| text(r, "growth")).collect();
    assert_eq!(modes, ["fred", "pf-ist", "fred"]);
    let fred: Vec<&str> = g.iter().map(|r| text(r, "fred")).collect();
    assert_eq!(
        fred,
        ["enabled", "available", "enabled"],
        "pf-ist clears CR4.FRED"
    );
    let e = out.result_for("edge-sweep").unwrap();
    assert_eq!(
        (e.bool("ok"), num(e, "cases")),
        (Some(true), 325),
        "{out:?}"
    );
    // bench fred has a real FRED column next to the IDT and fred-sim.
    let growth = out
        .find_all("bench")
        .into_iter()
        .find(|b| b.str("event") == Some("growth-pf"))
        .unwrap();
    assert!(
        num(growth, "real_samples") >= 24,
        "{}",
        growth.to_json_line()
    );
    assert!(num(growth, "real_median_cycles") > 0);
    let s = out.result_for("fred-state").unwrap();
    assert_eq!(
        (s.str("growth"), s.str("fred")),
        (Some("fred"), Some("enabled"))
    );
    assert_exit(out, ExitCode::Success);
}
