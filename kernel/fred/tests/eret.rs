//! One row per ERETS/ERETU check, each naming its source (Bochs cpu/fred.cc ERETS, ERETU
//! unless said otherwise).

mod common;
use common::*;

use stacklab_fred::deliver::{Frame, SS_NMI, SS_SOFTWARE_EVENT, SS_STI_BLOCKING};
use stacklab_fred::{CpuState, EretError, Rule, erets, eretu};

const RF: u64 = 1 << 16;
const TF: u64 = 1 << 8;

/// A valid ERETS frame for a #UD taken at CSL 1: back to KRIP/KRSP at CSL 1.
fn kframe() -> Frame {
    Frame {
        words: [
            0,
            KRIP,
            0x10 | 1 << 16,
            0x202 | RF,
            KRSP,
            0x18 | 6 << 32 | 3 << 48 | 1 << 57,
            0,
            0,
        ],
    }
}

/// A valid ERETU frame back to 64-bit user mode.
fn uframe() -> Frame {
    Frame {
        words: [0, URIP, 0x33, 0x202, URSP, 0x2B | 0x30 << 32, 0, 0],
    }
}

/// The handler's state: ring 0 at CSL 2 (the ERETS row) or 0 (ERETU), NMIs blocked.
fn handler(csl: u8) -> CpuState {
    let mut s = kernel(csl);
    s.rsp = RSP2 - 64;
    s.nmi_blocked = true;
    s
}

fn set(mut f: Frame, i: usize, v: u64) -> Frame {
    f.words[i] = v;
    f
}

enum Want {
    Fault(EretError),
    Ok(fn(&stacklab_fred::Returned) -> bool),
}

struct Row {
    what: &'static str,
    eretu: bool,
    state: CpuState,
    frame: Frame,
    fred: bool,
    want: Want,
}

fn rows() -> Vec<Row> {
    use EretError::{GeneralProtection as Gp, InvalidOpcode as Ud, NotModelled};
    let k = kframe();
    let u = uframe();
    let mut ring3 = handler(0);
    ring3.cpl = 3;
    let mut csl1 = handler(0);
    csl1.set_csl(1);
    let r = |what, eretu, state, frame, want| Row {
        what,
        eretu,
        state,
        frame,
        fred: true,
        want,
    };
    vec![
        Row {
            fred: false,
            ..r(
                "ERETS with CR4.FRED clear",
                false,
                handler(2),
                k,
                Want::Fault(Ud(Rule::EretFredDisabled)),
            )
        },
        Row {
            fred: false,
            ..r(
                "ERETU with CR4.FRED clear",
                true,
                handler(0),
                u,
                Want::Fault(Ud(Rule::EretFredDisabled)),
            )
        },
        r(
            "ERETS at CPL 3",
            false,
            ring3,
            k,
            Want::Fault(Ud(Rule::EretCpl)),
        ),
        r(
            "ERETU at CPL 3",
            true,
            ring3,
            u,
            Want::Fault(Ud(Rule::EretCpl)),
        ),
        r(
            "ERETS non-canonical RIP",
            false,
            handler(2),
            set(k, 1, 0x0000_8000_0000_0000),
            Want::Fault(Gp(Rule::EretRipCanonical)),
        ),
        r(
            "ERETS CS selector differs",
            false,
            handler(2),
            set(k, 2, 0x08),
            Want::Fault(Gp(Rule::EretsCs)),
        ),
        r(
            "ERETS CS word bit 19 set",
            false,
            handler(2),
            set(k, 2, 0x10 | 1 << 19),
            Want::Fault(Gp(Rule::EretsCs)),
        ),
        r(
            "ERETS CS bits 18:16 ignored: CSL 3 + WFE, CSL stays min(2, 3) = 2",
            false,
            handler(2),
            set(k, 2, 0x10 | 7 << 16),
            Want::Ok(|r| r.state.csl() == 2),
        ),
        r(
            "ERETS RFLAGS bit 1 clear",
            false,
            handler(2),
            set(k, 3, 0x200),
            Want::Fault(Gp(Rule::EretsRflags)),
        ),
        r(
            "ERETS RFLAGS.VM set",
            false,
            handler(2),
            set(k, 3, 0x2 | 1 << 17),
            Want::Fault(Gp(Rule::EretsRflags)),
        ),
        r(
            "ERETS RFLAGS reserved bit 3",
            false,
            handler(2),
            set(k, 3, 0x2 | 1 << 3),
            Want::Fault(Gp(Rule::EretsRflags)),
        ),
        r(
            "ERETS RFLAGS reserved bit 15",
            false,
            handler(2),
            set(k, 3, 0x2 | 1 << 15),
            Want::Fault(Gp(Rule::EretsRflags)),
        ),
        r(
            "ERETS RFLAGS bit 22 set",
            false,
            handler(2),
            set(k, 3, 0x2 | 1 << 22),
            Want::Fault(Gp(Rule::EretsRflags)),
        ),
        r(
            "ERETS IOPL 3 is allowed",
            false,
            handler(2),
            set(k, 3, 0x3202),
            Want::Ok(|r| r.state.rflags == 0x3202),
        ),
        r(
            "ERETS SS selector differs",
            false,
            handler(2),
            set(k, 5, 0x20),
            Want::Fault(Gp(Rule::EretsSs)),
        ),
        r(
            "ERETS SS word bit 19 set",
            false,
            handler(2),
            set(k, 5, 0x18 | 1 << 19),
            Want::Fault(Gp(Rule::EretsSs)),
        ),
        r(
            "ERETS SS bits 63:32 ignored",
            false,
            handler(2),
            set(k, 5, 0x18 | 0xFFFF_FFFF << 32),
            Want::Ok(|r| r.state.rip == KRIP),
        ),
        r(
            "ERETS restores RIP, RSP, RFLAGS; CSL = min(2, 1)",
            false,
            handler(2),
            k,
            Want::Ok(|r| {
                r.state.rip == KRIP
                    && r.state.rsp == KRSP
                    && r.state.rflags == 0x202 | RF
                    && r.state.csl() == 1
                    && r.state.cpl == 0
            }),
        ),
        r(
            "ERETS never raises CSL: frame CSL 3 at CSL 1 stays 1",
            false,
            csl1,
            set(k, 2, 0x10 | 3 << 16),
            Want::Ok(|r| r.state.csl() == 1),
        ),
        r(
            "ERETS without the NMI bit leaves NMIs blocked",
            false,
            handler(2),
            k,
            Want::Ok(|r| !r.nmi_unblocked && r.state.nmi_blocked),
        ),
        r(
            "ERETS with the NMI bit unblocks NMIs",
            false,
            handler(2),
            set(k, 5, 0x18 | SS_NMI),
            Want::Ok(|r| r.nmi_unblocked && !r.state.nmi_blocked),
        ),
        r(
            "ERETS STI blocking with IF set",
            false,
            handler(2),
            set(k, 5, 0x18 | SS_STI_BLOCKING),
            Want::Ok(|r| r.state.sti_blocking),
        ),
        r(
            "ERETS STI blocking without IF",
            false,
            handler(2),
            set(set(k, 5, 0x18 | SS_STI_BLOCKING), 3, 0x2),
            Want::Ok(|r| !r.state.sti_blocking),
        ),
        r(
            "ERETS bit 17 with TF: pending #DB",
            false,
            handler(2),
            set(set(k, 5, 0x18 | SS_SOFTWARE_EVENT), 3, 0x2 | TF),
            Want::Ok(|r| r.pending_debug),
        ),
        r(
            "ERETS bit 17 without TF: none",
            false,
            handler(2),
            set(k, 5, 0x18 | SS_SOFTWARE_EVENT),
            Want::Ok(|r| !r.pending_debug),
        ),
        r(
            "ERETU at CSL 1",
            true,
            csl1,
            u,
            Want::Fault(Gp(Rule::EretuCsl)),
        ),
        r(
            "ERETU non-canonical RIP",
            true,
            handler(0),
            set(u, 1, 0x0000_8000_0000_0000),
            Want::Fault(Gp(Rule::EretRipCanonical)),
        ),
        r(
            "ERETU CS word with a CSL",
            true,
            handler(0),
            set(u, 2, 0x33 | 1 << 16),
            Want::Fault(Gp(Rule::EretuCs)),
        ),
        r(
            "ERETU CS word with WFE",
            true,
            handler(0),
            set(u, 2, 0x33 | 1 << 18),
            Want::Fault(Gp(Rule::EretuCs)),
        ),
        r(
            "ERETU CS RPL 0",
            true,
            handler(0),
            set(u, 2, 0x30),
            Want::Fault(Gp(Rule::EretuCs)),
        ),
        r(
            "ERETU IOPL 3 (Bochs)",
            true,
            handler(0),
            set(u, 3, 0x3202),
            Want::Fault(Gp(Rule::EretuRflags)),
        ),
        r(
            "ERETU RFLAGS.VM",
            true,
            handler(0),
            set(u, 3, 0x2 | 1 << 17),
            Want::Fault(Gp(Rule::EretuRflags)),
        ),
        r(
            "ERETU SS RPL 0",
            true,
            handler(0),
            set(u, 5, 0x28),
            Want::Fault(Gp(Rule::EretuSs)),
        ),
        r(
            "ERETU SS word bit 20",
            true,
            handler(0),
            set(u, 5, 0x2B | 1 << 20),
            Want::Fault(Gp(Rule::EretuSs)),
        ),
        r(
            "ERETU to 64-bit user mode",
            true,
            handler(0),
            u,
            Want::Ok(|r| {
                r.state.cpl == 3
                    && r.state.cs == 0x33
                    && r.state.ss == 0x2B
                    && r.state.rip == URIP
                    && r.state.rsp == URSP
                    && r.state.rflags == 0x202
                    && r.state.long64
                    && r.state.nmi_blocked
            }),
        ),
        r(
            "ERETU to compatibility mode truncates RIP and RSP",
            true,
            handler(0),
            set(set(u, 2, 0x23), 1, 0x1_0000_1234),
            Want::Ok(|r| {
                r.state.cs == 0x23
                    && r.state.rip == 0x1234
                    && r.state.rsp == URSP & 0xFFFF_FFFF
                    && !r.state.long64
            }),
        ),
        r(
            "ERETU with the NMI bit unblocks NMIs",
            true,
            handler(0),
            set(u, 5, 0x2B | SS_NMI),
            Want::Ok(|r| r.nmi_unblocked && !r.state.nmi_blocked),
        ),
        r(
            "ERETU to non-STAR selectors is not modelled",
            true,
            handler(0),
            set(u, 2, 0x4B),
            Want::Fault(NotModelled(Rule::EretuStar)),
        ),
    ]
}

#[test]
fn every_row() {
    let rows = rows();
    assert_eq!(rows.len(), 38);
    for row in &rows {
        let got = if row.eretu {
            eretu(&row.state, &row.frame, row.fred)
        } else {
            erets(&row.state, &row.frame, row.fred)
        };
        match (&row.want, got) {
            (Want::Fault(e), Err(g)) => assert_eq!(*e, g, "{}", row.what),
            (Want::Ok(f), Ok(r)) => assert!(f(&r), "{}: {r:x?}", row.what),
            (Want::Fault(e), Ok(r)) => panic!("{}: expected {e:?}, returned {r:x?}", row.what),
            (Want::Ok(_), Err(g)) => panic!("{}: expected a return, got {g:?}", row.what),
        }
    }
}
