//! `secretcache ping`: a container health check that needs no shell and no curl (distroless images have neither),
//! and that runs inside the container, where the loopback-only port is reachable.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long the health check waits for each step.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Asks `GET /ping` on 127.0.0.1:`port`; success when it answers 200.
pub fn ping(port: u16) -> ExitCode {
    match ask(port) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("secretcache ping: 127.0.0.1:{port}/ping did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("secretcache ping: 127.0.0.1:{port}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ask(port: u16) -> std::io::Result<bool> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200"))
}
