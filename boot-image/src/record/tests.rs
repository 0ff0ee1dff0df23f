//! Unit tests of the record parser and renderer.

use super::*;
use crate::symbols::Sym;

fn rec(line: &str) -> Record {
    match classify(line) {
        Line::Record { record, .. } => record,
        other => panic!("{other:?}"),
    }
}

#[test]
fn classifies_plain_record_and_malformed_lines() {
    assert_eq!(classify("hello world\r"), Line::Plain("hello world".into()));
    let r = rec("@stacklab {\"kind\":\"result\",\"cmd\":\"int3\",\"ok\":true}");
    assert_eq!(r.kind, "result");
    assert_eq!(r.str("cmd"), Some("int3"));
    assert_eq!(r.bool("ok"), Some(true));
    match classify("\x1b[2Jjunk@stacklab {\"kind\":\"exit\",\"code\":\"success\"}") {
        Line::Record { before, record } => {
            assert_eq!(before, "\x1b[2Jjunk");
            assert_eq!(record.str("code"), Some("success"));
        }
        other => panic!("{other:?}"),
    }
    for bad in ["@stacklab {nope", "@stacklab {\"ok\":1}", "@stacklab [1]"] {
        assert!(matches!(classify(bad), Line::Malformed { .. }), "{bad}");
    }
}

#[test]
fn field_helpers_read_numbers_and_hex() {
    let r = rec(
        r#"@stacklab {"kind":"abort","vector":14,"rip":"0xffff800000001234","cr2":"0XFF","bt":["0x1","zz","0x20"],"s":"x"}"#,
    );
    assert_eq!(r.u64("vector"), Some(14));
    assert_eq!(r.hex("rip"), Some(0xffff_8000_0000_1234));
    assert_eq!(r.u64("rip"), Some(0xffff_8000_0000_1234));
    assert_eq!(r.hex("cr2"), Some(0xff));
    assert_eq!(r.hex("s"), None);
    assert_eq!(r.hex("missing"), None);
    assert_eq!(r.bool("vector"), None);
    assert_eq!(r.hex_list("bt"), vec![1, 0x20]);
    assert_eq!(r.to_json_line(), r.json.to_string());
    // The core crate's writer and this reader agree.
    let mut s = String::new();
    stacklab_core::proto::Record::begin(&mut s, "result")
        .unwrap()
        .str("cmd", "x \"y\"")
        .hex("a", 0xabc)
        .end()
        .unwrap();
    let r = rec(&s);
    assert_eq!((r.str("cmd"), r.hex("a")), (Some("x \"y\""), Some(0xabc)));
}

#[test]
fn renders_each_kind_for_people() {
    let mut rd = Renderer::new(Style::default(), None);
    let out = |rd: &mut Renderer, l: &str| rd.render(&rec(l));
    assert_eq!(
        out(
            &mut rd,
            r#"@stacklab {"kind":"result","cmd":"int3","ok":true,"msg":"returned to caller"}"#
        ),
        "  ✓ int3: returned to caller"
    );
    assert_eq!(
        out(
            &mut rd,
            r#"@stacklab {"kind":"result","cmd":"recurse","ok":false,"depth":200,"frame":256}"#
        ),
        "  ✗ recurse: depth=200, frame=256"
    );
    assert_eq!(
        out(
            &mut rd,
            r#"@stacklab {"kind":"result","cmd":"nop","ok":true}"#
        ),
        "  ✓ nop: ok"
    );
    assert_eq!(
        out(
            &mut rd,
            r#"@stacklab {"kind":"error","cmd":"bogus","msg":"unknown command"}"#
        ),
        "  ! bogus: unknown command"
    );
    assert_eq!(
        out(&mut rd, r#"@stacklab {"kind":"exit","code":"success"}"#),
        "  ■ exit: success"
    );
    assert_eq!(
        out(
            &mut rd,
            r#"@stacklab {"kind":"stats","pages":3,"peak":"0x2000","h":[1,2],"o":{"a":true}}"#
        ),
        "  stats: pages=3, peak=0x2000, h=[1, 2], o={a=true}"
    );
    let ready = out(
        &mut rd,
        r#"@stacklab {"kind":"ready","version":"0.1.0","tsc_hz":2995000000,"entry_to_ready_ns":42500,"cmdline":"int3","kernel_offset":"0x8000000000"}"#,
    );
    assert_eq!(
        ready,
        "  ● kernel ready (stacklab 0.1.0), 42.5 µs after entry, TSC 3.00 GHz, cmdline \"int3\""
    );
    assert_eq!(rd.kernel_offset, 0x80_0000_0000);
}

#[test]
fn colors_only_when_asked() {
    let mut rd = Renderer::new(Style { color: true }, None);
    let s = rd.render(&rec(r#"@stacklab {"kind":"result","cmd":"a","ok":true}"#));
    assert!(s.contains("\x1b[32m✓\x1b[0m"), "{s:?}");
}

#[test]
fn abort_is_symbolized_against_the_kernel_offset() {
    let syms = Symbolizer::from_symbols(vec![
        Sym {
            addr: 0x1000,
            size: 0x100,
            name: "_ZN6kernel5stack7recurse17h0123456789abcdefE".into(),
        },
        Sym {
            addr: 0x2000,
            size: 0x80,
            name: "_ZN6kernel4main17h0123456789abcdefE".into(),
        },
    ]);
    let mut rd = Renderer::new(Style::default(), Some(&syms));
    rd.render(&rec(
        r#"@stacklab {"kind":"ready","kernel_offset":"0x10000"}"#,
    ));
    let s = rd.render(&rec(
        r##"@stacklab {"kind":"abort","reason":"stack-overflow","vector":8,"name":"#DF","error_code":"0x0","rip":"0x1101c","rsp":"0x5000","cr2":"0x4ff8","msg":"guard page hit","backtrace":["0x1101c","0x12010","0x12010","0x12010","0x12010","0x99999"],"extra":1}"##,
    ));
    let expected = [
        "  ✗ ABORT (stack-overflow): #DF, vector 8, error code 0x0",
        "    guard page hit",
        "    rsp=0x5000  cr2=0x4ff8",
        "    rip 0x1101c kernel::stack::recurse+0x1c",
        "    backtrace:",
        "  #0 0x1101c kernel::stack::recurse+0x1c",
        "  #1 0x12010 kernel::main+0x10",
        "  #2..#4 same as #1 (3 frames)",
        "  #5 0x99999 ?",
        "    extra=1",
    ];
    assert_eq!(s, expected.join("\n"));
}

#[test]
fn strip_control_removes_escape_sequences() {
    assert_eq!(
        strip_control("\x1b[2J\x1b[01;01HBdsDxe: loading\x07 x\tz"),
        "BdsDxe: loading x\tz"
    );
    assert_eq!(strip_control("a\x1b(Bb"), "ab");
}
