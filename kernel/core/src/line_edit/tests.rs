use super::*;
use std::format;
use std::string::String;
use std::vec::Vec;

const NAMES: &[&str] = &["help", "halt", "stacks", "stats", "threads", "recurse"];
const P: &str = "stacklab> ";

/// A tiny terminal: the rows written so far and the cursor column on the last one. It
/// understands what the editor writes: printable text, CR, LF, BEL, `ESC [ K` and `ESC [ n D`.
#[derive(Default)]
struct Term {
    rows: Vec<Vec<u8>>,
    col: usize,
}

impl Term {
    fn apply(&mut self, s: &str) {
        if self.rows.is_empty() {
            self.rows.push(Vec::new());
        }
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let row = self.rows.last_mut().unwrap();
            match b[i] {
                b'\r' => self.col = 0,
                b'\n' => {
                    self.rows.push(Vec::new());
                }
                0x07 => {}
                0x1b => {
                    assert_eq!(b[i + 1], b'[', "only CSI sequences are written: {s:?}");
                    let mut j = i + 2;
                    let mut n = 0usize;
                    while b[j].is_ascii_digit() {
                        n = n * 10 + (b[j] - b'0') as usize;
                        j += 1;
                    }
                    match b[j] {
                        b'K' => row.truncate(self.col),
                        b'D' => self.col -= n.max(1),
                        other => panic!("unexpected CSI final {}", other as char),
                    }
                    i = j;
                }
                c => {
                    assert!((0x20..0x7f).contains(&c), "unprintable {c:#x} written");
                    if self.col < row.len() {
                        row[self.col] = c;
                    } else {
                        row.push(c);
                    }
                    self.col += 1;
                }
            }
            i += 1;
        }
    }

    fn last(&self) -> String {
        String::from_utf8(self.rows.last().cloned().unwrap_or_default()).unwrap()
    }
}

struct Rig {
    ed: Editor,
    term: Term,
    keys: Vec<Key>,
}

impl Rig {
    fn new() -> Rig {
        let mut ed = Editor::new(P, NAMES);
        let mut out = String::new();
        ed.start(&mut out);
        let mut term = Term::default();
        term.apply(&out);
        Rig {
            ed,
            term,
            keys: Vec::new(),
        }
    }

    /// Feeds `bytes` one at a time; returns the non-`None` keys they produced.
    fn type_bytes(&mut self, bytes: &[u8]) -> Vec<Key> {
        let mut got = Vec::new();
        for &b in bytes {
            let mut out = String::new();
            let k = self.ed.feed(b, &mut out);
            self.term.apply(&out);
            if k != Key::None {
                got.push(k);
                self.keys.push(k);
                if k == Key::Submit || k == Key::Cancel {
                    let mut o = String::new();
                    self.ed.start(&mut o);
                    self.term.apply(&o);
                }
            }
        }
        got
    }

    fn typed(&mut self, s: &str) -> &mut Rig {
        self.type_bytes(s.as_bytes());
        self
    }

    /// The line, the cursor, and that the screen shows exactly the prompt and the line with
    /// the terminal's cursor at the editor's.
    fn check(&self, line: &str, cursor: usize) {
        assert_eq!(self.ed.current(), line);
        assert_eq!(self.ed.cursor(), cursor, "cursor in {line:?}");
        assert_eq!(self.term.last(), format!("{P}{line}"), "screen");
        assert_eq!(self.term.col, P.len() + cursor, "screen cursor in {line:?}");
    }
}

const LEFT: &str = "\x1b[D";
const RIGHT: &str = "\x1b[C";
const UP: &str = "\x1b[A";
const DOWN: &str = "\x1b[B";

#[test]
fn printable_insert_at_end_and_in_the_middle() {
    let mut r = Rig::new();
    r.typed("recurse 40");
    r.check("recurse 40", 10);
    r.typed(LEFT).typed(LEFT).typed("1");
    r.check("recurse 140", 9);
    // Non-printable bytes other than the editing keys are ignored.
    r.typed("\x00\x1f");
    r.check("recurse 140", 9);
}

#[test]
fn backspace_both_codes_and_at_the_start() {
    let mut r = Rig::new();
    r.typed("helpp\x7f");
    r.check("help", 4);
    r.typed("\x08");
    r.check("hel", 3);
    r.typed("\x01\x7f");
    r.check("hel", 0);
    r.typed(RIGHT).typed("\x7f");
    r.check("el", 0);
}

#[test]
fn delete_key_removes_under_the_cursor() {
    let mut r = Rig::new();
    r.typed("abc\x01\x1b[3~");
    r.check("bc", 0);
    r.typed("\x05\x1b[3~");
    r.check("bc", 2);
}

#[test]
fn arrows_stop_at_the_ends() {
    let mut r = Rig::new();
    r.typed("ab").typed(RIGHT);
    r.check("ab", 2);
    r.typed(LEFT).typed(LEFT).typed(LEFT);
    r.check("ab", 0);
    // Ctrl-F / Ctrl-B are the same moves.
    r.typed("\x06");
    r.check("ab", 1);
    r.typed("\x02");
    r.check("ab", 0);
}

#[test]
fn home_and_end_in_every_encoding() {
    for (home, end) in [
        ("\x01", "\x05"),
        ("\x1b[H", "\x1b[F"),
        ("\x1bOH", "\x1bOF"),
        ("\x1b[1~", "\x1b[4~"),
        ("\x1b[7~", "\x1b[8~"),
    ] {
        let mut r = Rig::new();
        r.typed("stats").typed(home);
        r.check("stats", 0);
        r.typed(end);
        r.check("stats", 5);
    }
}

#[test]
fn kill_keys() {
    let mut r = Rig::new();
    // Ctrl-U: everything before the cursor.
    r.typed("recurse 40 256")
        .typed(LEFT)
        .typed(LEFT)
        .typed(LEFT)
        .typed("\x15");
    r.check("256", 0);
    // Ctrl-K: everything from the cursor.
    r.typed(RIGHT).typed("\x0b");
    r.check("2", 1);
    // Ctrl-W: the word before the cursor and the spaces after it.
    let mut r = Rig::new();
    r.typed("policy grow  4K\x17");
    r.check("policy grow  ", 13);
    r.typed("\x17");
    r.check("policy ", 7);
    r.typed("\x17\x17");
    r.check("", 0);
}

#[test]
fn enter_submits_cr_lf_and_crlf_once() {
    let mut r = Rig::new();
    assert_eq!(r.type_bytes(b"help\r"), [Key::Submit]);
    assert_eq!(r.ed.line(), "help");
    r.check("", 0);
    assert_eq!(r.type_bytes(b"stats\r\n"), [Key::Submit]);
    assert_eq!(r.ed.line(), "stats");
    assert_eq!(r.type_bytes(b"\n"), [Key::Submit]);
    assert_eq!(r.ed.line(), "");
    // The screen: each line stayed on its own row.
    assert_eq!(r.term.rows[0], format!("{P}help").into_bytes());
    assert_eq!(r.term.rows[1], format!("{P}stats").into_bytes());
}

#[test]
fn ctrl_c_drops_the_line() {
    let mut r = Rig::new();
    assert_eq!(r.type_bytes(b"recurse 4\x03"), [Key::Cancel]);
    assert_eq!(r.term.rows[0], format!("{P}recurse 4^C").into_bytes());
    r.check("", 0);
    assert_eq!(r.ed.history().count(), 0);
}

#[test]
fn history_up_down_and_the_draft() {
    let mut r = Rig::new();
    r.typed("help\rstats\r\r  \rstats\r");
    // Blank lines and an immediate repeat are not kept.
    assert_eq!(r.ed.history().collect::<Vec<_>>(), ["help", "stats"]);
    r.typed("dra");
    r.typed(UP);
    r.check("stats", 5);
    r.typed(UP);
    r.check("help", 4);
    r.typed(UP);
    r.check("help", 4);
    r.typed(DOWN);
    r.check("stats", 5);
    r.typed(DOWN);
    r.check("dra", 3);
    r.typed(DOWN);
    r.check("dra", 3);
    // Ctrl-P / Ctrl-N, and an edited entry submits as edited.
    r.typed("\x15\x10\x10\x7f\r");
    assert_eq!(r.ed.line(), "hel");
    assert_eq!(r.ed.history().collect::<Vec<_>>(), ["help", "stats", "hel"]);
}

#[test]
fn history_is_bounded_and_drops_the_oldest() {
    let mut r = Rig::new();
    for i in 0..HISTORY + 3 {
        r.typed(&format!("cmd{i}\r"));
    }
    let h: Vec<_> = r.ed.history().collect();
    assert_eq!(h.len(), HISTORY);
    assert_eq!(h[0], "cmd3");
    assert_eq!(h[HISTORY - 1], format!("cmd{}", HISTORY + 2));
    for _ in 0..HISTORY + 5 {
        r.typed(UP);
    }
    r.check("cmd3", 4);
}

#[test]
fn escape_sequences_split_at_every_byte() {
    // The same keys, fed one byte per "read", in separate calls: the parser keeps its state.
    let mut r = Rig::new();
    r.typed("halt\r");
    for b in "\x1b[A".bytes() {
        r.type_bytes(&[b]);
    }
    r.check("halt", 4);
    for b in "\x1b[1~".bytes() {
        r.type_bytes(&[b]);
        assert_eq!(r.ed.current(), "halt");
    }
    r.check("halt", 0);
    // Parameters with a modifier (Ctrl-Right is ESC [ 1 ; 5 C) still move once.
    r.typed("\x1b[1;5C");
    r.check("halt", 1);
    // An unknown sequence is swallowed whole, printing nothing.
    r.typed("\x1b[200~\x1b[Z\x1bOQ");
    r.check("halt", 1);
    // ESC followed by a plain character ends the sequence; the character is not inserted.
    r.typed("\x1bx");
    r.check("halt", 1);
}

#[test]
fn tab_completes_one_match_with_a_space() {
    let mut r = Rig::new();
    r.typed("thr\t");
    r.check("threads ", 8);
    let mut r = Rig::new();
    r.typed("rec\t40");
    r.check("recurse 40", 10);
}

#[test]
fn tab_extends_to_the_common_prefix_then_lists() {
    let mut r = Rig::new();
    r.typed("st\t");
    r.check("sta", 3);
    r.typed("\t");
    // The candidates on their own row, then the line again.
    let listed = String::from_utf8(r.term.rows[r.term.rows.len() - 2].clone()).unwrap();
    assert_eq!(listed.trim_end(), "stacks  stats");
    r.check("sta", 3);
    r.typed("c\t");
    r.check("stacks ", 7);
}

#[test]
fn tab_does_nothing_outside_the_first_word_or_without_match() {
    let mut r = Rig::new();
    r.typed("recurse 4\t");
    r.check("recurse 4", 9);
    r.typed("\x15zz\t");
    r.check("zz", 2);
    r.typed("\x15he\x01\t");
    r.check("he", 0);
}

#[test]
fn a_full_line_takes_no_more() {
    let mut r = Rig::new();
    let long: String = core::iter::repeat_n('x', MAX_LINE + 5).collect();
    r.typed(&long);
    assert_eq!(r.ed.current().len(), MAX_LINE);
    assert_eq!(r.ed.cursor(), MAX_LINE);
}
