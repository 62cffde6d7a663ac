//! Whether SSH answers at an address, without logging in: a TCP connection
//! that must start with the SSH banner. Used to wait for a booting VM and
//! to notice when its address went away.

use std::net::IpAddr;
use std::time::Duration;

/// Connects to `ip:port` and reads the first bytes: Ok when they are an
/// SSH banner (`SSH-`), else why not.
pub fn ssh_banner(ip: IpAddr, port: u16, timeout: Duration) -> std::io::Result<()> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect_timeout(&(ip, port).into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf)?;
    if &buf == b"SSH-" {
        Ok(())
    } else {
        Err(std::io::Error::other("the port answers, but not with SSH"))
    }
}
