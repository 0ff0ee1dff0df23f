use super::*;

fn screen(raw: bool) -> Screen<'static> {
    Screen::new(Style { color: false }, None, raw)
}

fn feed_all(s: &mut Screen<'_>, chunks: &[&[u8]]) -> String {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.feed(c));
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn the_command_line_ends_with_shell_once() {
    assert_eq!(shell_cmdline(""), "shell");
    assert_eq!(shell_cmdline("  "), "shell");
    assert_eq!(
        shell_cmdline("policy grow 4K 32K"),
        "policy grow 4K 32K; shell"
    );
    assert_eq!(shell_cmdline("int3;"), "int3; shell");
    assert_eq!(shell_cmdline("int3; shell"), "int3; shell");
    assert_eq!(shell_cmdline("shell"), "shell");
}

#[test]
fn ctrl_close_bracket_leaves_and_drops_what_follows() {
    assert_eq!(scan_keys(b"help\r"), (&b"help\r"[..], false));
    assert_eq!(scan_keys(b"ab\x1dcd"), (&b"ab"[..], true));
    assert_eq!(scan_keys(b"\x1d"), (&b""[..], true));
    // Ctrl-C is passed on as a byte for the kernel.
    assert_eq!(scan_keys(b"\x03"), (&b"\x03"[..], false));
}

#[test]
fn prompt_and_echo_pass_through_without_a_line_end() {
    let mut s = screen(false);
    assert_eq!(feed_all(&mut s, &[b"stacklab> "]), "stacklab> ");
    assert_eq!(feed_all(&mut s, &[b"h", b"e"]), "he");
    assert_eq!(feed_all(&mut s, &[b"\r\x1b[K"]), "\r\x1b[K");
}

#[test]
fn a_record_split_across_chunks_is_held_then_rendered() {
    let mut s = screen(false);
    let line = b"@stacklab {\"kind\":\"result\",\"cmd\":\"int3\",\"ok\":true,\"hits\":1}\r\n";
    let (a, b) = line.split_at(5);
    let (b, c) = b.split_at(20);
    assert_eq!(feed_all(&mut s, &[a]), "");
    assert_eq!(feed_all(&mut s, &[b]), "");
    let shown = feed_all(&mut s, &[c]);
    assert_eq!(shown.trim_start(), "✓ int3: hits=1\r\n");
    assert!(shown.ends_with("\r\n"), "{shown:?}");
    assert_eq!(s.records.len(), 1);
    assert_eq!(s.records[0].str("cmd"), Some("int3"));
}

#[test]
fn listing_records_are_collected_but_not_shown() {
    let mut s = screen(false);
    let shown = feed_all(
        &mut s,
        &[b"@stacklab {\"kind\":\"command\",\"name\":\"help\"}\r\n[ 1.0 INFO ]   help\r\n"],
    );
    assert_eq!(shown, "[ 1.0 INFO ]   help\r\n");
    assert_eq!(s.records.len(), 1);
}

#[test]
fn a_line_that_only_starts_like_a_record_is_shown_as_it_came() {
    let mut s = screen(false);
    assert_eq!(feed_all(&mut s, &[b"@sta"]), "");
    assert_eq!(feed_all(&mut s, &[b"ge 2\r\n"]), "@stage 2\r\n");
    // A malformed record is shown raw.
    assert_eq!(
        feed_all(&mut s, &[b"@stacklab {oops\r\n"]),
        "@stacklab {oops\r\n"
    );
}

#[test]
fn records_after_text_on_a_line_are_still_collected() {
    let mut s = screen(false);
    let shown = feed_all(
        &mut s,
        &[b"stacklab> @stacklab {\"kind\":\"exit\",\"code\":\"abort\"}\r\n"],
    );
    assert!(shown.starts_with("stacklab> @stacklab"), "{shown:?}");
    assert_eq!(s.records.last().and_then(|r| r.str("code")), Some("abort"));
}

#[test]
fn raw_shows_records_verbatim() {
    let mut s = screen(true);
    let line = "@stacklab {\"kind\":\"result\",\"cmd\":\"x\",\"ok\":true}\r\n";
    assert_eq!(feed_all(&mut s, &[line.as_bytes()]), line);
    assert_eq!(s.records.len(), 1);
}
