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
