//! The listening socket and the options set on every accepted one.

use std::{io, net::SocketAddr, time::Duration};

use tokio::net::{TcpListener, TcpStream};

/// The accept backlog of [`StreamServer::bind`](crate::StreamServer::bind).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` with room for `backlog` connections waiting to be accepted.
pub(crate) fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// The TCP options set on each accepted socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketOptions {
    /// Idle time before the first keepalive probe; `None` sends none.
    pub(crate) keepalive: Option<Duration>,
    pub(crate) nodelay: bool,
    /// `TCP_USER_TIMEOUT` (Linux); `None` leaves the system default.
    pub(crate) user_timeout: Option<Duration>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            keepalive: Some(Duration::from_secs(60)),
            nodelay: true,
            user_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl SocketOptions {
    /// Sets the options on `stream`; a failure is logged at debug level and the socket is served
    /// as it is.
    pub(crate) fn apply(&self, stream: &TcpStream) {
        if let Err(err) = stream.set_nodelay(self.nodelay) {
            tracing::debug!(%err, "setting TCP_NODELAY failed");
        }
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        if let Some(timeout) = self.user_timeout {
            if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
                tracing::debug!(%err, "setting TCP_USER_TIMEOUT failed");
            }
        }
        if let Some(idle) = self.keepalive {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle / 4);
            if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%err, "setting TCP keepalive failed");
            }
        }
    }
}
