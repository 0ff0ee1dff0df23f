//! The result protocol: how the kernel reports to the host over COM1.
//!
//! Every machine-readable record is one line, `@stacklab {json}`, where the JSON object has a
//! `kind` field. Everything else on the serial line is human log output. Addresses are written
//! as `"0x…"` strings so no consumer loses precision on 64-bit values.
//!
//! The contract is documented for people in `docs/running.md`; this module is its source of
//! truth for the kernel (writer) and the host tool (exit-code mapping).

use core::fmt::{self, Write};

/// Prefix that marks a machine-readable line.
pub const RECORD_PREFIX: &str = "@stacklab ";

/// Name of the fw_cfg file that carries the kernel command line.
pub const FW_CFG_CMDLINE: &str = "opt/stacklab/cmdline";

/// The command line that puts the kernel in wait mode (snapshot starts): after starting up it
/// writes an `awaiting` record and polls fw_cfg for [`FW_CFG_PROGRAM`], which a run resumed
/// from a saved machine state carries, and then runs that as its command line.
pub const AWAIT_CMDLINE: &str = "await";

/// Name of the fw_cfg file that carries the program of a run resumed from a snapshot.
pub const FW_CFG_PROGRAM: &str = "opt/stacklab/program";

/// I/O port of QEMU's `isa-debug-exit` device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// How a run ends. The kernel writes `code()` to the isa-debug-exit port; QEMU then exits with
/// status `(code << 1) | 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Every command ran and every result was `ok`.
    Success,
    /// A command ran and its result was not `ok`.
    Failure,
    /// A command was unknown or malformed (an `error` record was written).
    BadCommand,
    /// The kernel panicked.
    Panic,
    /// A fatal exception or a stack overflow stopped the machine (an `abort` record was written).
    Abort,
}

impl ExitCode {
    /// Every exit code, best first.
    pub const ALL: [ExitCode; 5] = [
        ExitCode::Success,
        ExitCode::Failure,
        ExitCode::BadCommand,
        ExitCode::Panic,
        ExitCode::Abort,
    ];

    /// Value written to the isa-debug-exit port.
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0x10,
            ExitCode::Failure => 0x11,
            ExitCode::BadCommand => 0x12,
            ExitCode::Panic => 0x13,
            ExitCode::Abort => 0x14,
        }
    }

    /// The name used in the `exit` record's `code` field.
    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Failure => "failure",
            ExitCode::BadCommand => "bad-command",
            ExitCode::Panic => "panic",
            ExitCode::Abort => "abort",
        }
    }

    /// QEMU's process exit status after the kernel wrote `code()`.
    pub const fn qemu_status(self) -> i32 {
        ((self.code() as i32) << 1) | 1
    }

    /// Inverse of [`ExitCode::qemu_status`].
    pub fn from_qemu_status(status: i32) -> Option<ExitCode> {
        Self::ALL.into_iter().find(|c| c.qemu_status() == status)
    }

    /// Inverse of [`ExitCode::name`].
    pub fn from_name(name: &str) -> Option<ExitCode> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The worse of two outcomes (abort > panic > failure > bad-command > success).
    pub fn worst(self, other: ExitCode) -> ExitCode {
        fn rank(c: ExitCode) -> u8 {
            match c {
                ExitCode::Success => 0,
                ExitCode::BadCommand => 1,
                ExitCode::Failure => 2,
                ExitCode::Panic => 3,
                ExitCode::Abort => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Writes one record: `@stacklab {"kind":"…",…}` followed by a newline.
///
/// ```
/// # use stacklab_core::proto::Record;
/// let mut s = String::new();
/// Record::begin(&mut s, "result").unwrap().str("cmd", "int3").bool("ok", true).end().unwrap();
/// assert_eq!(s, "@stacklab {\"kind\":\"result\",\"cmd\":\"int3\",\"ok\":true}\n");
/// ```
pub struct Record<'w, W: Write> {
    out: &'w mut W,
    err: fmt::Result,
}

impl<'w, W: Write> Record<'w, W> {
    /// Starts a record of the given kind.
    pub fn begin(out: &'w mut W, kind: &str) -> Result<Self, fmt::Error> {
        out.write_str(RECORD_PREFIX)?;
        out.write_str("{\"kind\":")?;
        write_json_str(out, kind)?;
        Ok(Record { out, err: Ok(()) })
    }

    fn key(&mut self, key: &str) {
        if self.err.is_ok() {
            self.err = self
                .out
                .write_char(',')
                .and_then(|_| write_json_str(self.out, key))
                .and_then(|_| self.out.write_char(':'));
        }
    }

    fn raw(&mut self, args: fmt::Arguments<'_>) {
        if self.err.is_ok() {
            self.err = self.out.write_fmt(args);
        }
    }

    /// A string field (escaped).
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        if self.err.is_ok() {
            self.err = write_json_str(self.out, value);
        }
        self
    }

    /// A string field from format arguments (escaped).
    pub fn fmt(mut self, key: &str, value: fmt::Arguments<'_>) -> Self {
        self.key(key);
        if self.err.is_ok() {
            self.err = self
                .out
                .write_char('"')
                .and_then(|_| JsonEscaper(self.out).write_fmt(value))
                .and_then(|_| self.out.write_char('"'));
        }
        self
    }

    /// An unsigned number field.
    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.raw(format_args!("{value}"));
        self
    }

    /// A signed number field.
    pub fn i64(mut self, key: &str, value: i64) -> Self {
        self.key(key);
        self.raw(format_args!("{value}"));
        self
    }

    /// A boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.raw(format_args!("{value}"));
        self
    }

    /// An address or other 64-bit bit pattern, written as a `"0x…"` string.
    pub fn hex(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.raw(format_args!("\"{value:#x}\""));
        self
    }

    /// An array of addresses, each a `"0x…"` string.
    pub fn hex_list(mut self, key: &str, values: &[u64]) -> Self {
        self.key(key);
        self.raw(format_args!("["));
        for (i, v) in values.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            self.raw(format_args!("{sep}\"{v:#x}\""));
        }
        self.raw(format_args!("]"));
        self
    }

    /// An array of strings (escaped).
    pub fn str_list(mut self, key: &str, values: &[&str]) -> Self {
        self.key(key);
        self.raw(format_args!("["));
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.raw(format_args!(","));
            }
            if self.err.is_ok() {
                self.err = write_json_str(self.out, v);
            }
        }
        self.raw(format_args!("]"));
        self
    }

    /// An array of unsigned numbers.
    pub fn u64_list(mut self, key: &str, values: &[u64]) -> Self {
        self.key(key);
        self.raw(format_args!("["));
        for (i, v) in values.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            self.raw(format_args!("{sep}{v}"));
        }
        self.raw(format_args!("]"));
        self
    }

    /// Closes the record and ends the line.
    pub fn end(self) -> fmt::Result {
        self.err?;
        self.out.write_str("}\n")
    }
}

fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscaper(out).write_str(s)?;
    out.write_char('"')
}

/// Escapes what passes through it as the inside of a JSON string.
struct JsonEscaper<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for JsonEscaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn exit_codes_round_trip_through_qemu_status() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_qemu_status(c.qemu_status()), Some(c));
            assert_eq!(ExitCode::from_name(c.name()), Some(c));
        }
        assert_eq!(ExitCode::Success.qemu_status(), 33);
        assert_eq!(ExitCode::Abort.qemu_status(), 41);
        assert_eq!(ExitCode::from_qemu_status(0), None);
        assert_eq!(ExitCode::from_qemu_status(1), None);
    }

    #[test]
    fn worst_orders_outcomes() {
        use ExitCode::*;
        assert_eq!(Success.worst(BadCommand), BadCommand);
        assert_eq!(Failure.worst(BadCommand), Failure);
        assert_eq!(Abort.worst(Panic), Abort);
        assert_eq!(Success.worst(Success), Success);
    }

    #[test]
    fn record_escapes_and_formats_every_field_type() {
        let mut s = String::new();
        Record::begin(&mut s, "abort")
            .unwrap()
            .str("msg", "a \"b\"\\\n\x01")
            .u64("n", 42)
            .i64("d", -3)
            .bool("ok", false)
            .hex("rip", 0xffff_8000_0000_1234)
            .hex_list("bt", &[1, 0x20])
            .u64_list("h", &[])
            .fmt("f", format_args!("{}-{}", 1, "x\""))
            .end()
            .unwrap();
        assert_eq!(
            s,
            "@stacklab {\"kind\":\"abort\",\"msg\":\"a \\\"b\\\"\\\\\\n\\u0001\",\"n\":42,\"d\":-3,\
             \"ok\":false,\"rip\":\"0xffff800000001234\",\"bt\":[\"0x1\",\"0x20\"],\"h\":[],\
             \"f\":\"1-x\\\"\"}\n"
        );
    }
}
