//! HTTPS (feature `rustls`) against nginx with a certificate from a test CA: reuse, exact
//! bytes, a body larger than what TLS buffers before its handshake ends, and certificate
//! checking (refused without the CA, accepted with `verify_peer(false)`).
#![cfg(feature = "rustls")]

mod common;

use common::run_all;
use multixfer::{Easy, Multi, Options, XferError};

struct TlsNginx {
    server: peers::Nginx,
    port: u16,
    ca: std::path::PathBuf,
}

impl TlsNginx {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}/{path}", self.port)
    }
}

fn tls_nginx() -> TlsNginx {
    let dir = peers::scratch_dir("tls").unwrap();
    common::test_certificates(&dir);
    let port = peers::free_port().unwrap();
    let config = peers::NginxConfig {
        server_extra: format!(
            "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/server.pem;\n    \
             ssl_certificate_key {d}/server.key;\n    location = /post {{ return 201 \"created\"; }}\n",
            d = dir.display()
        ),
        ..Default::default()
    };
    let server = peers::Nginx::start(&config).expect("nginx starts with TLS");
    TlsNginx { server, port, ca: dir.join("ca.pem") }
}

#[test]
fn https_transfers_reuse_connections_and_arrive_whole() {
    let n = tls_nginx();
    let root = n.server.root();
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big"), &big).unwrap();
    for i in 0..200 {
        std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
    }
    let mut opts = Options::default();
    opts.max_host_connections = 4;
    let mut multi: Multi<usize> = Multi::with_options(opts).unwrap();
    for i in 0..200 {
        multi.add(Easy::get(n.url(&format!("s{i}"))).ca_file(&n.ca).private(i));
    }
    multi.add(Easy::get(n.url("big")).ca_file(&n.ca).private(1000));
    // More than TLS buffers before the handshake completes, so sending waits on reading.
    multi.add(Easy::post(n.url("post"), vec![b'p'; 1 << 20]).ca_file(&n.ca).private(1001));
    // The same server over plain HTTP: a different pool key.
    multi.add(Easy::get(n.server.url("ping")).private(1002));
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 203);
    for d in done {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private));
        match d.private {
            1000 => assert!(r.body == big, "the large body differs"),
            1001 => assert_eq!((r.status(), r.uploaded), (201, 1 << 20)),
            1002 => assert_eq!(r.body, b"pong"),
            i => assert_eq!(r.body, format!("small {i}").as_bytes()),
        }
    }
    assert!(multi.connects() <= 5, "{} connections", multi.connects());
}

#[test]
fn certificates_are_checked_unless_told_otherwise() {
    let n = tls_nginx();
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    // The test CA is not in the system's bundle.
    multi.add(Easy::get(n.url("ping")).private("system roots"));
    multi.add(Easy::get(n.url("ping")).verify_peer(false).private("insecure"));
    multi.add(Easy::get(n.url("ping")).ca_file("/nonexistent/ca.pem").private("no CA file"));
    multi.add(Easy::get(n.url("ping")).ca_file(&n.ca).private("test CA"));
    for d in run_all(&mut multi) {
        match d.private {
            "system roots" | "no CA file" => {
                assert!(matches!(d.result, Err(XferError::Tls(_))), "{}: {:?}", d.private, d.result)
            }
            _ => assert_eq!(d.result.unwrap().body, b"pong", "{}", d.private),
        }
    }
}

#[test]
fn the_connect_timeout_covers_the_tls_handshake() {
    // Accepts TCP, then never says a word of TLS.
    let silent = common::Server::start(|mut c| {
        let mut b = [0u8; 1024];
        while std::io::Read::read(&mut c, &mut b).is_ok_and(|n| n > 0) {}
    });
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(format!("https://127.0.0.1:{}/", silent.port))
            .connect_timeout(std::time::Duration::from_millis(200))
            .timeout(std::time::Duration::from_secs(30)),
    );
    let done = run_all(&mut multi);
    assert!(matches!(done[0].result, Err(XferError::ConnectTimeout(_))), "{:?}", done[0].result);
}
