//! Where a job server is: an address, or a host name resolved at each connect (libgearman's
//! `gearman_client_add_server(host, port)` and the `GEARMAN_SERVERS` variable).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;

use crate::Error;

/// The port a server listens on when none is given (gearmand's, IANA's `gearman`).
pub const DEFAULT_PORT: u16 = 4730;

/// How long a connect may take, the name's lookup and the TLS handshake included, before it
/// fails with a timeout ([`ClientOptions::connect_timeout`](crate::ClientOptions); workers
/// and `Admin` use this).
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A job server: an address, or a host name that is looked up again at every connect, so a
/// server that moves (a DNS change, a failover address) is found on the next reconnect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerAddr {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A host name and port, resolved when a connection is made.
    Name {
        /// The host name (not an IP address: those parse as [`ServerAddr::Ip`]).
        host: String,
        /// The port.
        port: u16,
    },
}

impl ServerAddr {
    /// A host (name or address) and port.
    pub fn new(host: &str, port: u16) -> Result<ServerAddr, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument("a server's port: 1 to 65535"));
        }
        let host = host.trim();
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(ServerAddr::Ip(SocketAddr::new(ip, port)));
        }
        // Letters, digits, `-`, `.` and `_` (seen in service names): anything else (a space,
        // a `:` of an address gone wrong, a NUL) is no host name.
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            return Err(Error::InvalidArgument("a server's host: a name or an IP address"));
        }
        Ok(ServerAddr::Name { host: host.to_string(), port })
    }

    /// Parses `host[:port]`, as `GEARMAN_SERVERS` and `gearman -h` take it; the port defaults
    /// to 4730. An IPv6 address takes brackets when a port follows (`[::1]:4730`): without
    /// them, `::1:4731` is the address `::1:4731` on port 4730.
    pub fn parse(s: &str) -> Result<ServerAddr, Error> {
        let s = s.trim();
        let bad_port = Error::InvalidArgument("a server's port: 1 to 65535");
        // `[v6]:port`, `[v6]`, a bare IPv6 address (two colons or more), `host:port`, `host`.
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or(Error::InvalidArgument("a server's address: `[` without `]`"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(Error::InvalidArgument("a server's address: text after `]`")),
            }
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or(bad_port)?,
        };
        ServerAddr::new(host, port)
    }

    /// Parses a comma-separated list (`GEARMAN_SERVERS`: `host[:port],host[:port]`).
    pub fn parse_list(s: &str) -> Result<Vec<ServerAddr>, Error> {
        let list: Vec<ServerAddr> = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(ServerAddr::parse)
            .collect::<Result<_, _>>()?;
        if list.is_empty() {
            return Err(Error::InvalidArgument("no servers in the list"));
        }
        Ok(list)
    }

    /// The servers `GEARMAN_SERVERS` names, as libgearman reads it; `None` when it is not set.
    pub fn from_env() -> Option<Result<Vec<ServerAddr>, Error>> {
        let value = std::env::var("GEARMAN_SERVERS").ok()?;
        Some(ServerAddr::parse_list(&value))
    }

    /// The host name, for a server named by one (what a TLS certificate must carry).
    pub(crate) fn host_name(&self) -> Option<&str> {
        match self {
            ServerAddr::Ip(_) => None,
            ServerAddr::Name { host, .. } => Some(host),
        }
    }
}

impl From<SocketAddr> for ServerAddr {
    fn from(addr: SocketAddr) -> ServerAddr {
        ServerAddr::Ip(addr)
    }
}

impl From<&SocketAddr> for ServerAddr {
    fn from(addr: &SocketAddr) -> ServerAddr {
        ServerAddr::Ip(*addr)
    }
}

impl From<&ServerAddr> for ServerAddr {
    fn from(addr: &ServerAddr) -> ServerAddr {
        addr.clone()
    }
}

impl FromStr for ServerAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<ServerAddr, Error> {
        ServerAddr::parse(s)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Ip(a) => write!(f, "{a}"),
            ServerAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// How host names become addresses: the system's resolver (`getaddrinfo`) unless replaced
/// ([`ClientOptions::resolver`](crate::ClientOptions::resolver)): service discovery, a
/// cache, or a test's own names. Called on a thread of its own, never the event loop's, so it
/// may block.
#[derive(Clone)]
pub struct Resolver(Arc<ResolveFn>);

/// A lookup: host and port to addresses.
type ResolveFn = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

impl Resolver {
    /// A resolver of one's own.
    pub fn new(
        f: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> Resolver {
        Resolver(Arc::new(f))
    }

    /// The system's resolver.
    pub fn system() -> Resolver {
        Resolver::new(|host, port| Ok((host, port).to_socket_addrs()?.collect()))
    }

    /// Every address of `target`, in the resolver's order: at once for an address, from a
    /// thread of its own for a name (the lookup may block for seconds).
    pub(crate) async fn resolve(&self, target: &ServerAddr) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = match target {
            ServerAddr::Ip(a) => return Ok(vec![*a]),
            ServerAddr::Name { host, port } => (host.clone(), *port),
        };
        let (tx, rx) = futures_channel::oneshot::channel();
        let f = self.0.clone();
        std::thread::Builder::new().name("jobclient-resolve".into()).spawn(move || {
            let _ = tx.send(f(&host, port));
        })?;
        let found = rx.await.map_err(|_| io::Error::other("the resolver thread panicked"))??;
        if found.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{target}: the name has no address"),
            ));
        }
        Ok(found)
    }
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::system()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_gearman_servers_holds() {
        let list =
            ServerAddr::parse_list("gm1:4731, 10.0.0.2,[::1]:4733,::1 ,gm-2.example").unwrap();
        assert_eq!(
            list,
            [
                ServerAddr::Name { host: "gm1".into(), port: 4731 },
                ServerAddr::Ip("10.0.0.2:4730".parse().unwrap()),
                ServerAddr::Ip("[::1]:4733".parse().unwrap()),
                ServerAddr::Ip("[::1]:4730".parse().unwrap()),
                ServerAddr::Name { host: "gm-2.example".into(), port: 4730 },
            ]
        );
        assert_eq!(list[0].to_string(), "gm1:4731");
        // libgearman takes a bad port for 0 and connects to 4730; we say it is wrong.
        for bad in ["gm1:x", "gm1:0", "gm1:70000", "gm 1", "[::1", "[::1]x", "", " , ", "a:b:c"] {
            assert!(ServerAddr::parse_list(bad).is_err(), "{bad:?} parsed");
        }
    }
}
