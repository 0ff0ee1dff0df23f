//! COM1 of a Bochs machine: Bochs connects to a TCP port of the host tool on 127.0.0.1
//! (`com1: mode=socket-client`). A thread accepts that connection, passes every line on (as
//! the QEMU runs get them from QEMU's standard output), and answers the kernel's request for
//! the command line ([`stacklab_core::bochs::CMDLINE_REQUEST`]) with `LEN\n` and the bytes.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stacklab_core::bochs::CMDLINE_REQUEST;

use crate::Error;
use crate::qemu::process::line_reader;
use crate::record::strip_control;

/// The answer to the kernel's request: `LEN\n` and the command line's bytes.
pub fn encode_cmdline(cmdline: &str) -> Vec<u8> {
    let mut v = format!("{}\n", cmdline.len()).into_bytes();
    v.extend_from_slice(cmdline.as_bytes());
    v
}

/// Whether a serial line is the kernel's request for the command line.
pub fn is_request(line: &str) -> bool {
    strip_control(line).trim() == CMDLINE_REQUEST
}

/// A listening COM1 endpoint, before Bochs has connected.
#[derive(Debug)]
pub struct Link {
    listener: TcpListener,
}

impl Link {
    /// Listens on a free port of 127.0.0.1.
    pub fn bind() -> Result<Link, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::env(format!("cannot listen on 127.0.0.1 for Bochs's COM1: {e}")))?;
        Ok(Link { listener })
    }

    /// The port Bochs must connect to.
    pub fn port(&self) -> Result<u16, Error> {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| Error::env(format!("listening socket: {e}")))
    }

    /// Starts the thread: waits until `deadline` for Bochs to connect, then sends every
    /// serial line to the receiver and answers a command line request with `cmdline`. The
    /// receiver is closed when Bochs closes COM1 (it exits) or never connected.
    pub fn start(self, cmdline: String, deadline: Instant) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stream) = accept_until(&self.listener, deadline) else {
                return;
            };
            drop(self.listener);
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            let lines = line_reader(stream);
            for line in lines {
                if is_request(&line) {
                    // A failed answer shows as the kernel's own "no answer" error record.
                    let _ = writer
                        .write_all(&encode_cmdline(&cmdline))
                        .and_then(|()| writer.flush());
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

fn accept_until(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok()?;
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use stacklab_core::bochs::{CmdlineReceiver, Progress};
    use stacklab_core::cmdline::MAX_CMDLINE;
    use std::io::{BufRead, BufReader, Read};

    #[test]
    fn the_kernel_decodes_what_the_host_encodes() {
        for line in ["int3", "", "growth grow 4K 32K; recurse 3000\nx"] {
            let mut buf = [0u8; MAX_CMDLINE];
            let mut rx = CmdlineReceiver::new();
            let mut done = None;
            for b in encode_cmdline(line) {
                if let Progress::Done(n) = rx.feed(b, &mut buf) {
                    done = Some(n);
                }
            }
            assert_eq!(done, Some(line.len()), "{line:?}");
            assert_eq!(&buf[..line.len()], line.as_bytes());
        }
    }

    #[test]
    fn lines_are_relayed_and_the_request_is_answered() {
        let link = Link::bind().unwrap();
        let port = link.port().unwrap();
        let rx = link.start(
            "int3; info".into(),
            Instant::now() + Duration::from_secs(10),
        );
        let mut guest = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        write!(guest, "booting\r\n\x1b[0m{CMDLINE_REQUEST}\r\n").unwrap();
        let mut answer = BufReader::new(guest.try_clone().unwrap());
        let mut len = String::new();
        answer.read_line(&mut len).unwrap();
        assert_eq!(len, "10\n");
        let mut body = [0u8; 10];
        answer.read_exact(&mut body).unwrap();
        assert_eq!(&body, b"int3; info");
        writeln!(guest, "@stacklab {{\"kind\":\"exit\"}}").unwrap();
        drop(guest);
        drop(answer);
        let got: Vec<String> = rx.iter().collect();
        assert_eq!(
            got,
            [
                "booting".to_string(),
                format!("\x1b[0m{CMDLINE_REQUEST}"),
                "@stacklab {\"kind\":\"exit\"}".into()
            ]
        );
    }

    #[test]
    fn no_connection_closes_the_receiver_at_the_deadline() {
        let link = Link::bind().unwrap();
        let t = Instant::now();
        let rx = link.start(String::new(), Instant::now() + Duration::from_millis(300));
        assert!(rx.recv().is_err());
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
