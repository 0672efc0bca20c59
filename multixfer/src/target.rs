//! A URL reduced to what a request needs: where to connect and what to ask for.

use std::sync::Arc;

use crate::easy::HttpVersion;
use crate::tls::{Alpn, TlsKey};
use crate::XferError;

/// Connections are shared by transfers whose keys are equal: scheme, host, port and TLS
/// settings, as libcurl's connection cache matches them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) host: Arc<str>,
    pub(crate) port: u16,
    /// `None` for plain HTTP.
    pub(crate) tls: Option<TlsKey>,
    /// Whether a connection may speak HTTP/2: ALPN offers `h2` over TLS; on cleartext, the
    /// connection starts with HTTP/2's preface (prior knowledge).
    pub(crate) h2: bool,
}

/// A parsed request target.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: url::Url,
    pub(crate) key: PoolKey,
    /// The `Host` header: the host, and the port when it is not the scheme's default.
    pub(crate) authority: String,
    /// Path and query, as sent on the request line.
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(raw: &str) -> Result<Target, XferError> {
        let url = url::Url::parse(raw)
            .map_err(|e| XferError::BadUrl { url: raw.to_string(), reason: e.to_string() })?;
        Target::from_url(url)
    }

    /// With the transfer's TLS settings (an `https` target only) and HTTP version.
    pub(crate) fn with_tls(mut self, key: &TlsKey, version: HttpVersion) -> Target {
        // Without HTTP/2 built in, nothing offers it; prior knowledge is refused when added.
        let h2 = cfg!(feature = "http2");
        let tls = self.key.tls.is_some();
        let (alpn, may_h2) = match version {
            HttpVersion::Http11 => (Alpn::Http11, false),
            HttpVersion::Http2Tls if h2 => (Alpn::Both, tls),
            HttpVersion::Http2Tls => (Alpn::Http11, false),
            HttpVersion::Http2PriorKnowledge => (Alpn::H2, h2),
        };
        if tls {
            self.key.tls = Some(TlsKey { alpn, ..key.clone() });
        }
        self.key.h2 = may_h2;
        self
    }

    /// A redirect's `Location`, relative to this target.
    pub(crate) fn join(&self, location: &str) -> Result<Target, XferError> {
        let url = self
            .url
            .join(location)
            .map_err(|e| XferError::BadUrl { url: location.to_string(), reason: e.to_string() })?;
        Target::from_url(url)
    }

    fn from_url(url: url::Url) -> Result<Target, XferError> {
        let bad = |reason: &str| XferError::BadUrl { url: url.to_string(), reason: reason.into() };
        let tls = match url.scheme() {
            "http" => None,
            "https" if cfg!(feature = "rustls") => Some(TlsKey::default()),
            "https" => return Err(bad("https:// needs multixfer's `rustls` feature")),
            _ => return Err(bad("only http:// and https:// are supported")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            // Without brackets: this is what the resolver and the pool see.
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let host_str = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_string(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Target {
            key: PoolKey { host: host.into(), port, tls, h2: false },
            authority,
            path,
            url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let t = Target::parse("http://Example.COM:8080/a/b?x=1#frag").unwrap();
        assert_eq!(&*t.key.host, "example.com");
        assert_eq!(t.key.port, 8080);
        assert_eq!(t.authority, "example.com:8080");
        assert_eq!(t.path, "/a/b?x=1");
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!(&*t.key.host, "::1");
        assert_eq!(t.authority, "[::1]");
        assert_eq!(t.key.port, 80);
        let r = t.join("/next?y").unwrap();
        assert_eq!(r.path, "/next?y");
        assert!(matches!(Target::parse("ftp://h/"), Err(XferError::BadUrl { .. })));
        assert_eq!(Target::parse("https://h/").is_ok(), cfg!(feature = "rustls"));
        assert!(matches!(Target::parse("not a url"), Err(XferError::BadUrl { .. })));
    }
}
