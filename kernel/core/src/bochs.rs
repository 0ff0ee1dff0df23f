//! The two channels a run on Bochs needs besides the `@stacklab` records, both written by the
//! kernel and read by the host tool:
//!
//! * the command line over COM1: Bochs's fw_cfg device carries no user files, so the kernel
//!   writes [`CMDLINE_REQUEST`] as a line and the host answers `LEN\n` followed by exactly LEN
//!   bytes (the host's `boot_image::bochs::serial::encode_cmdline`); [`CmdlineReceiver`]
//!   decodes that byte by byte;
//! * the exit status on the port 0xE9 console: Bochs has no isa-debug-exit device, so before
//!   powering off (the string `Shutdown` to port 0x8900) the kernel writes
//!   `stacklab-exit STATUS` there, STATUS being what QEMU would have exited with
//!   ([`crate::proto::ExitCode::qemu_status`]); [`parse_exit_line`] reads it back.

use crate::cmdline::MAX_CMDLINE;

/// The line the kernel writes on COM1 to ask the host for the command line.
pub const CMDLINE_REQUEST: &str = "@stacklab-cmdline? (send LEN, newline, LEN bytes)";

/// What the kernel writes on port 0xE9 before the exit status.
pub const EXIT_PREFIX: &str = "stacklab-exit ";

/// Port of Bochs's debug console (with `port_e9_hack`): a byte written is printed on Bochs's
/// standard output; a read returns 0xE9, which is how the kernel recognizes Bochs.
pub const E9_PORT: u16 = 0xe9;

/// Bochs's shutdown port: writing the bytes of [`SHUTDOWN`] to it powers the machine off.
pub const SHUTDOWN_PORT: u16 = 0x8900;

/// See [`SHUTDOWN_PORT`].
pub const SHUTDOWN: &[u8] = b"Shutdown";

/// The exit status in a line of Bochs's port 0xE9 output, if it is the kernel's exit line.
pub fn parse_exit_line(line: &str) -> Option<i32> {
    line.trim_end().strip_prefix(EXIT_PREFIX)?.parse().ok()
}

/// Where a [`CmdlineReceiver`] stands after a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    More,
    /// The command line is complete: this many bytes are in the buffer.
    Done(usize),
    /// The length line was not a number up to [`MAX_CMDLINE`]: the answer is unusable.
    BadLength,
}

/// Decodes `LEN\n` and LEN bytes into a buffer of at least [`MAX_CMDLINE`] bytes. Carriage
/// returns and blank lines before the length are skipped.
#[derive(Clone, Debug, Default)]
pub struct CmdlineReceiver {
    len: Option<usize>,
    digits: usize,
    value: usize,
    got: usize,
}

impl CmdlineReceiver {
    /// A receiver waiting for the length line.
    pub const fn new() -> CmdlineReceiver {
        CmdlineReceiver {
            len: None,
            digits: 0,
            value: 0,
            got: 0,
        }
    }

    /// Takes one byte, storing payload bytes in `buf`.
    pub fn feed(&mut self, b: u8, buf: &mut [u8]) -> Progress {
        match self.len {
            None => match b {
                b'0'..=b'9' => {
                    self.digits += 1;
                    self.value = self.value * 10 + usize::from(b - b'0');
                    if self.digits > 5 || self.value > MAX_CMDLINE.min(buf.len()) {
                        return Progress::BadLength;
                    }
                    Progress::More
                }
                b'\r' => Progress::More,
                b'\n' if self.digits == 0 => Progress::More,
                b'\n' => {
                    self.len = Some(self.value);
                    if self.value == 0 {
                        Progress::Done(0)
                    } else {
                        Progress::More
                    }
                }
                _ => Progress::BadLength,
            },
            Some(len) => {
                buf[self.got] = b;
                self.got += 1;
                if self.got == len {
                    Progress::Done(len)
                } else {
                    Progress::More
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ExitCode;
    use std::vec::Vec;

    fn encode_cmdline(line: &str) -> Vec<u8> {
        let mut v = Vec::from(std::format!("{}\n", line.len()).as_bytes());
        v.extend_from_slice(line.as_bytes());
        v
    }

    fn receive(bytes: &[u8]) -> (Progress, Vec<u8>) {
        let mut buf = [0u8; MAX_CMDLINE];
        let mut r = CmdlineReceiver::new();
        let mut last = Progress::More;
        for &b in bytes {
            last = r.feed(b, &mut buf);
            if last != Progress::More {
                break;
            }
        }
        let n = if let Progress::Done(n) = last { n } else { 0 };
        (last, buf[..n].to_vec())
    }

    #[test]
    fn the_encoded_command_line_decodes_to_itself_and_nothing_more() {
        for line in ["int3", "", "a;b,c\nd", "ünïcode; growth grow 4K 32K"] {
            let mut wire = encode_cmdline(line);
            wire.extend_from_slice(b"trailing");
            let (p, got) = receive(&wire);
            assert_eq!(p, Progress::Done(line.len()), "{line:?}");
            assert_eq!(got, line.as_bytes());
        }
        assert_eq!(encode_cmdline("int3"), b"4\nint3");
    }

    #[test]
    fn blank_lines_are_skipped_and_bad_lengths_refused() {
        assert_eq!(
            receive(b"\r\n\n2\r\nab"),
            (Progress::Done(2), b"ab".to_vec())
        );
        assert_eq!(receive(b"x\n").0, Progress::BadLength);
        assert_eq!(receive(b"4097\n").0, Progress::BadLength);
        assert_eq!(receive(b"000001\n").0, Progress::BadLength);
        assert_eq!(receive(b"4096\n").0, Progress::More);
        assert_eq!(receive(b"3\nab").0, Progress::More);
    }

    #[test]
    fn the_exit_line_carries_qemus_status() {
        let line = std::format!("{EXIT_PREFIX}{}\n", ExitCode::Abort.qemu_status());
        assert_eq!(parse_exit_line(&line), Some(41));
        assert_eq!(parse_exit_line("stacklab-exit x"), None);
        assert_eq!(parse_exit_line("other 33"), None);
    }
}
