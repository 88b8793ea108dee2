//! Sockets from a chosen source address: all of 127/8 is loopback on Linux, so a test can
//! play a second, innocent client (127.0.0.2) while another one abuses its quota.

use std::net::{IpAddr, SocketAddr};

/// The innocent second client's address.
pub const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A TCP connection to `addr` from `source` (any free port).
pub async fn tcp_from(addr: SocketAddr, source: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// The blocking flavour, for the FTP client (suppaftp is synchronous). Call it from a
/// blocking thread of a tokio runtime (`spawn_blocking`).
pub fn std_tcp_from(addr: SocketAddr, source: IpAddr) -> std::io::Result<std::net::TcpStream> {
    let stream = tokio::runtime::Handle::current().block_on(tcp_from(addr, source))?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}
