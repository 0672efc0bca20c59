//! The server's limits: what one connection, one job and the whole server may hold.

use std::net::IpAddr;
use std::time::Duration;

/// Limits the server enforces, with defaults meant for production. Each is documented with
/// what happens past it in the server's "Limits and defaults" table.
///
/// ```
/// let mut limits = jobclient::Limits::default();
/// limits.max_connections = 50_000;
/// limits.admin_from.push(jobclient::Limits::parse_prefix("10.0.0.0/8").unwrap());
/// assert!(limits.admin_allowed("10.1.2.3".parse().unwrap()));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Connections served at once; past it, a new connection is accepted and closed at once
    /// (and logged), so the backlog drains and the others go on. Default 65,536.
    pub max_connections: usize,
    /// Bytes of output queued for one connection that does not read them; past it, the
    /// connection is closed as if it had died (its running jobs are requeued, its foreground
    /// jobs lose that waiter). Default 129 MiB: two of the largest packets and room, so that
    /// a client that reads gets even the largest results.
    pub max_output: usize,
    /// Output queued for one connection at which the server stops decoding more of that
    /// connection's input until the output is written (so a read full of admin `workers`
    /// lines cannot queue a listing for each). Default 256 KiB.
    pub pause_output: usize,
    /// Foreground submissions coalesced onto one job (same function and unique ID); the next
    /// is answered `ERROR QUEUE_ERROR`. Default 1,024.
    pub max_submissions_per_job: usize,
    /// Foreground submissions one connection may wait on at once; the next is answered
    /// `ERROR QUEUE_ERROR`. Default 100,000.
    pub max_submissions_per_connection: usize,
    /// How long a connection may sit on a partial packet or line without sending another
    /// byte of it; then it is closed. An idle connection with nothing partial (a sleeping
    /// worker) has no deadline. Default 30 s.
    pub read_deadline: Duration,
    /// How long output may wait for a connection that takes none of it; then it is closed.
    /// A slow reader that makes progress is never closed. Default 60 s.
    pub write_deadline: Duration,
    /// Functions one connection may register (`CAN_DO`); one more is a protocol error that
    /// closes it. Default 4,096.
    pub max_abilities: usize,
    /// Peers that may use the admin commands that change state (`shutdown`, `cancel job`,
    /// `maxqueue`, `create function`, `drop function`), as address prefixes; the others get
    /// `ERR PERMISSION_DENIED`. Default: loopback only (`127.0.0.0/8`, `::1/128`).
    pub admin_from: Vec<(IpAddr, u8)>,
    /// When not empty, the state-changing admin commands need, besides an
    /// [`admin_from`](Limits::admin_from) address, a TLS connection whose client presented
    /// one of these certificates (DER; `jobd --admin-cert FILE`, read with
    /// [`read_certificate`](Limits::read_certificate)). The certificate is checked against
    /// the server's client CA in the handshake; this list says which of those may change
    /// the server. Default empty.
    pub admin_certs: Vec<Vec<u8>>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 65_536,
            max_output: 129 << 20,
            pause_output: 256 << 10,
            max_submissions_per_job: 1_024,
            max_submissions_per_connection: 100_000,
            read_deadline: Duration::from_secs(30),
            write_deadline: Duration::from_secs(60),
            max_abilities: 4_096,
            admin_from: vec![
                ([127, 0, 0, 0].into(), 8),
                (std::net::Ipv6Addr::LOCALHOST.into(), 128),
            ],
            admin_certs: Vec::new(),
        }
    }
}

impl Limits {
    /// Parses `ADDRESS[/BITS]` (an address alone is the one host), as `jobd --admin-from`
    /// takes it, for [`admin_from`](Limits::admin_from).
    pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
        parse_prefix(s)
    }

    /// The first certificate of a PEM file, as [`admin_certs`](Limits::admin_certs) holds it.
    #[cfg(feature = "rustls")]
    pub fn read_certificate(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        CertificateDer::from_pem_file(path)
            .map(|c| c.to_vec())
            .map_err(|e| std::io::Error::other(format!("certificate {}: {e}", path.display())))
    }

    /// Whether `peer` may use the state-changing admin commands.
    pub fn admin_allowed(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.admin_from.iter().any(|&(net, bits)| prefix_matches(net, bits, peer))
    }
}

fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|e| format!("{s}: {e}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.parse::<u8>().ok().filter(|&b| b <= max).ok_or(format!("{s}: bad prefix"))?,
        None => max,
    };
    Ok((addr, bits))
}

fn prefix_matches(net: IpAddr, bits: u8, peer: IpAddr) -> bool {
    let (net, peer, width): (u128, u128, u32) = match (net, peer) {
        (IpAddr::V4(n), IpAddr::V4(p)) => (u32::from(n).into(), u32::from(p).into(), 32),
        (IpAddr::V6(n), IpAddr::V6(p)) => (u128::from(n), u128::from(p), 128),
        _ => return false,
    };
    let bits = u32::from(bits).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (net >> shift) == (peer >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_prefixes() {
        let l = Limits::default();
        for (peer, ok) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
            ("128.0.0.1", false),
            ("::2", false),
        ] {
            assert_eq!(l.admin_allowed(peer.parse().unwrap()), ok, "{peer}");
        }
        let mut l = l;
        l.admin_from = vec![parse_prefix("10.1.0.0/16").unwrap()];
        assert!(l.admin_allowed("10.1.200.3".parse().unwrap()));
        assert!(!l.admin_allowed("10.2.0.1".parse().unwrap()));
        assert!(!l.admin_allowed("127.0.0.1".parse().unwrap()), "the list replaces the default");
        assert_eq!(parse_prefix("0.0.0.0/0").unwrap().1, 0);
        assert!(parse_prefix("1.2.3.4/33").is_err());
        assert!(parse_prefix("nonsense").is_err());
        let any = Limits { admin_from: vec![parse_prefix("::/0").unwrap()], ..Limits::default() };
        assert!(any.admin_allowed("2001:db8::1".parse().unwrap()));
    }
}
