//! A line editor for the kernel's serial shell, as pure logic: bytes from the terminal go in
//! one at a time ([`Editor::feed`]), the screen updates to write back come out through a
//! `core::fmt::Write` sink, and a finished line is reported as [`Key::Submit`].
//!
//! It understands printable ASCII, Backspace (DEL or BS), Delete, the arrows, Home/End, the
//! Emacs keys Ctrl-A/E/B/F/U/W/K/P/N, Up/Down through a bounded history, Tab completion of
//! the first word against a list of names, Ctrl-C (the line is dropped, [`Key::Cancel`]) and
//! Enter (CR, LF or CR LF). Escape sequences (ECMA-48 CSI `ESC [ params final`, and SS3
//! `ESC O final` as terminals send in application-cursor mode) are parsed byte by byte, so a
//! sequence split across reads works. The screen is updated by redrawing the line from its
//! start (`CR`, prompt, text, erase to end of line, cursor back), which is correct on any
//! VT100-compatible terminal as long as the line fits on one row ([`MAX_LINE`]).

use core::fmt::Write;

/// Longest line kept, in bytes (more input is ignored, with a bell). With the prompt it fits
/// a terminal row of 112 columns; the redraw starts with CR, so a line that wrapped onto a
/// second row would be redrawn wrongly.
pub const MAX_LINE: usize = 100;
/// Lines kept in the history (the oldest is dropped).
pub const HISTORY: usize = 16;

/// What a byte did, beyond the screen updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Nothing to act on (the line may have changed).
    None,
    /// Enter: the line is finished; read it with [`Editor::line`].
    Submit,
    /// Ctrl-C: the line was dropped; the caller shows a fresh prompt.
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    /// Not in an escape sequence.
    Ground,
    /// After ESC.
    Start,
    /// After `ESC [`, with the first numeric parameter so far.
    Csi(u16),
    /// After `ESC O`.
    Ss3,
}

/// A fixed-size line.
#[derive(Clone, Copy)]
struct Line {
    bytes: [u8; MAX_LINE],
    len: usize,
}

impl Line {
    const EMPTY: Line = Line {
        bytes: [0; MAX_LINE],
        len: 0,
    };

    fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    fn set(&mut self, s: &str) {
        let n = s.len().min(MAX_LINE);
        self.bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        self.len = n;
    }
}

/// The editor: the line being typed, its cursor, the history and the escape parser's state.
pub struct Editor {
    prompt: &'static str,
    names: &'static [&'static str],
    line: Line,
    cursor: usize,
    history: [Line; HISTORY],
    /// Lines in `history`, oldest first.
    kept: usize,
    /// While browsing the history: the entry shown.
    browsing: Option<usize>,
    /// The line being typed when browsing started.
    draft: Line,
    esc: Esc,
    /// The last byte was CR (so an LF right after it is the same Enter).
    after_cr: bool,
    /// The last line submitted (what [`Editor::line`] returns after [`Key::Submit`]).
    done: Line,
}

impl Editor {
    /// An editor that shows `prompt` and completes the first word from `names`.
    pub const fn new(prompt: &'static str, names: &'static [&'static str]) -> Editor {
        Editor {
            prompt,
            names,
            line: Line::EMPTY,
            cursor: 0,
            history: [Line::EMPTY; HISTORY],
            kept: 0,
            browsing: None,
            draft: Line::EMPTY,
            esc: Esc::Ground,
            after_cr: false,
            done: Line::EMPTY,
        }
    }

    /// Writes the prompt (for a new line).
    pub fn start(&mut self, out: &mut impl Write) {
        let _ = out.write_str(self.prompt);
    }

    /// The line after [`Key::Submit`].
    pub fn line(&self) -> &str {
        self.done.as_str()
    }

    /// The text being typed (before Enter).
    pub fn current(&self) -> &str {
        self.line.as_str()
    }

    /// The cursor's position in [`Editor::current`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history[..self.kept].iter().map(Line::as_str)
    }

    /// Takes one byte from the terminal; writes what the screen needs to `out`.
    pub fn feed(&mut self, b: u8, out: &mut impl Write) -> Key {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.esc {
            Esc::Ground => {}
            Esc::Start => {
                self.esc = match b {
                    b'[' => Esc::Csi(0),
                    b'O' => Esc::Ss3,
                    _ => Esc::Ground,
                };
                return Key::None;
            }
            Esc::Csi(n) => {
                match b {
                    b'0'..=b'9' => {
                        let d = (b - b'0') as u16;
                        self.esc = Esc::Csi(n.saturating_mul(10).saturating_add(d));
                    }
                    // Further parameters and intermediates: keep going, keep the first one.
                    b';' | 0x20..=0x2f => {}
                    0x40..=0x7e => {
                        self.esc = Esc::Ground;
                        self.csi(n, b, out);
                    }
                    // Anything else aborts the sequence.
                    _ => self.esc = Esc::Ground,
                }
                return Key::None;
            }
            Esc::Ss3 => {
                self.esc = Esc::Ground;
                self.csi(0, b, out);
                return Key::None;
            }
        }
        match b {
            0x1b => self.esc = Esc::Start,
            b'\r' => {
                self.after_cr = true;
                return self.submit(out);
            }
            b'\n' if after_cr => {}
            b'\n' => return self.submit(out),
            0x03 => {
                let _ = out.write_str("^C\r\n");
                self.line.len = 0;
                self.cursor = 0;
                self.browsing = None;
                return Key::Cancel;
            }
            0x7f | 0x08 if self.cursor > 0 => {
                self.cursor -= 1;
                self.remove(self.cursor, 1, out);
            }
            0x01 => self.move_to(0, out),
            0x05 => self.move_to(self.line.len, out),
            0x02 => self.move_to(self.cursor.saturating_sub(1), out),
            0x06 => self.move_to((self.cursor + 1).min(self.line.len), out),
            0x15 => {
                let n = self.cursor;
                self.cursor = 0;
                self.remove(0, n, out);
            }
            0x0b => {
                let n = self.line.len - self.cursor;
                self.remove(self.cursor, n, out);
            }
            0x17 => {
                let b = &self.line.bytes[..self.cursor];
                let mut start = self.cursor;
                while start > 0 && b[start - 1] == b' ' {
                    start -= 1;
                }
                while start > 0 && b[start - 1] != b' ' {
                    start -= 1;
                }
                let n = self.cursor - start;
                self.cursor = start;
                self.remove(start, n, out);
            }
            0x10 => self.older(out),
            0x0e => self.newer(out),
            b'\t' => self.complete(out),
            0x20..=0x7e => self.insert(b, out),
            _ => {}
        }
        Key::None
    }

    /// The final byte of a CSI or SS3 sequence whose first parameter is `n`.
    fn csi(&mut self, n: u16, fin: u8, out: &mut impl Write) {
        match (fin, n) {
            (b'A', _) => self.older(out),
            (b'B', _) => self.newer(out),
            (b'C', _) => self.move_to((self.cursor + 1).min(self.line.len), out),
            (b'D', _) => self.move_to(self.cursor.saturating_sub(1), out),
            (b'H', _) | (b'~', 1 | 7) => self.move_to(0, out),
            (b'F', _) | (b'~', 4 | 8) => self.move_to(self.line.len, out),
            (b'~', 3) if self.cursor < self.line.len => self.remove(self.cursor, 1, out),
            _ => {}
        }
    }

    fn submit(&mut self, out: &mut impl Write) -> Key {
        let _ = out.write_str("\r\n");
        self.done = self.line;
        let text = self.done.as_str().trim();
        let last = self.kept.checked_sub(1).map(|i| self.history[i].as_str());
        if !text.is_empty() && last != Some(text) {
            if self.kept == HISTORY {
                self.history.copy_within(1.., 0);
                self.kept -= 1;
            }
            self.history[self.kept].set(text);
            self.kept += 1;
        }
        self.line.len = 0;
        self.cursor = 0;
        self.browsing = None;
        Key::Submit
    }

    fn insert(&mut self, b: u8, out: &mut impl Write) {
        if self.line.len == MAX_LINE {
            let _ = out.write_char('\x07');
            return;
        }
        let (len, at) = (self.line.len, self.cursor);
        self.line.bytes.copy_within(at..len, at + 1);
        self.line.bytes[at] = b;
        self.line.len += 1;
        self.cursor += 1;
        if at == len {
            // Typing at the end: the character itself is the whole update.
            let _ = out.write_char(b as char);
        } else {
            self.redraw(out);
        }
    }

    fn remove(&mut self, at: usize, n: usize, out: &mut impl Write) {
        if n == 0 {
            return;
        }
        self.line.bytes.copy_within(at + n..self.line.len, at);
        self.line.len -= n;
        self.redraw(out);
    }

    fn move_to(&mut self, to: usize, out: &mut impl Write) {
        if to != self.cursor {
            self.cursor = to;
            self.redraw(out);
        }
    }

    /// Up: the previous history entry (the line being typed is kept as a draft).
    fn older(&mut self, out: &mut impl Write) {
        let i = match self.browsing {
            None if self.kept == 0 => return,
            None => {
                self.draft = self.line;
                self.kept - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(i);
        self.show(self.history[i], out);
    }

    /// Down: the next history entry, or back to the draft after the newest.
    fn newer(&mut self, out: &mut impl Write) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.kept {
            self.browsing = Some(i + 1);
            self.show(self.history[i + 1], out);
        } else {
            self.browsing = None;
            self.show(self.draft, out);
        }
    }

    fn show(&mut self, l: Line, out: &mut impl Write) {
        self.line = l;
        self.cursor = l.len;
        self.redraw(out);
    }

    /// Tab: completes the first word (the cursor at its end) from the names: one match is
    /// completed with a space after it; several are extended to their common prefix, or
    /// listed under the line when that adds nothing.
    fn complete(&mut self, out: &mut impl Write) {
        let text = &self.line.bytes[..self.line.len];
        if text[..self.cursor].contains(&b' ') || self.cursor != self.word_end() {
            return;
        }
        let word = &text[..self.cursor];
        let mut matches = self.names.iter().filter(|n| n.as_bytes().starts_with(word));
        let Some(first) = matches.next() else {
            let _ = out.write_char('\x07');
            return;
        };
        let mut common = first.len();
        let mut count = 1;
        for m in matches.clone() {
            count += 1;
            common = common.min(
                first
                    .bytes()
                    .zip(m.bytes())
                    .take_while(|(a, b)| a == b)
                    .count(),
            );
        }
        let mut add = [0u8; MAX_LINE];
        let mut n = 0;
        for &b in &first.as_bytes()[word.len()..common] {
            add[n] = b;
            n += 1;
        }
        if count == 1 && (self.cursor == self.line.len) {
            add[n] = b' ';
            n += 1;
        }
        if n == 0 && count > 1 {
            let _ = out.write_str("\r\n");
            for m in core::iter::once(first).chain(matches) {
                let _ = write!(out, "{m}  ");
            }
            let _ = out.write_str("\r\n");
            self.redraw(out);
            return;
        }
        for &b in &add[..n] {
            self.insert(b, out);
        }
    }

    /// End of the word the cursor is in.
    fn word_end(&self) -> usize {
        let b = &self.line.bytes[..self.line.len];
        let mut e = self.cursor;
        while e < b.len() && b[e] != b' ' {
            e += 1;
        }
        e
    }

    /// Redraws the whole line: CR, prompt, text, erase the rest of the row, cursor back.
    fn redraw(&self, out: &mut impl Write) {
        let _ = write!(out, "\r{}{}\x1b[K", self.prompt, self.line.as_str());
        let back = self.line.len - self.cursor;
        if back > 0 {
            let _ = write!(out, "\x1b[{back}D");
        }
    }
}

#[cfg(test)]
mod tests;
