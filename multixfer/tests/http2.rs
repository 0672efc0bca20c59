//! HTTP/2 (features `rustls` and `http2`) against the real servers: nginx with `http2` over
//! TLS and on cleartext (prior knowledge), and nghttpd, which speaks nothing else. Bodies are
//! checked byte for byte and the connections counted.
#![cfg(all(feature = "rustls", feature = "http2"))]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::run_all;
use multixfer::{Easy, Flow, HttpVersion, Multi, Options, XferError};

struct H2Nginx {
    server: peers::Nginx,
    tls_port: u16,
    clear_port: u16,
    ca: PathBuf,
}

impl H2Nginx {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}/{path}", self.tls_port)
    }

    fn clear_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.clear_port)
    }

    fn get(&self, path: &str) -> Easy {
        Easy::get(self.url(path)).ca_file(&self.ca)
    }
}

/// nginx with HTTP/2 over TLS (ALPN) and on a cleartext port of its own (prior knowledge),
/// beside its plain HTTP/1.1 port.
fn h2_nginx(keepalive_requests: u64, extra: &str) -> H2Nginx {
    let dir = peers::scratch_dir("h2").unwrap();
    common::test_certificates(&dir);
    let tls_port = peers::free_port().unwrap();
    let clear_port = peers::free_port().unwrap();
    let config = peers::NginxConfig {
        keepalive_requests,
        server_extra: format!(
            "listen 127.0.0.1:{tls_port} ssl http2;\n    listen 127.0.0.1:{clear_port} http2;\n    \
             ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n    \
             client_max_body_size 64m;\n    \
             location = /post {{ return 201 \"created\"; }}\n    \
             location /up/ {{ dav_methods PUT; create_full_put_path on; }}\n    {extra}\n",
            d = dir.display()
        ),
        ..Default::default()
    };
    let server = peers::Nginx::start(&config).expect("nginx starts with HTTP/2");
    H2Nginx { server, tls_port, clear_port, ca: dir.join("ca.pem") }
}

/// The bytes of big file `i` at `offset`: every file differs, and so does every position.
fn big_byte(i: usize, offset: usize) -> u8 {
    ((offset * 7 + i * 13 + offset / 4099) % 251) as u8
}

fn write_big(root: &std::path::Path, i: usize, len: usize) {
    let body: Vec<u8> = (0..len).map(|o| big_byte(i, o)).collect();
    std::fs::write(root.join(format!("big{i}")), body).unwrap();
}

/// Bytes seen so far, and whether every one was right.
type Seen = Arc<Mutex<(usize, bool)>>;

/// A write function that checks each byte against `big_byte(i, ..)` as it comes, and counts.
fn checker(i: usize, seen: Seen) -> impl FnMut(&[u8]) -> Flow + Send {
    move |data| {
        let mut s = seen.lock().unwrap();
        let start = s.0;
        if data.iter().enumerate().any(|(k, &b)| b != big_byte(i, start + k)) {
            s.1 = false;
        }
        s.0 += data.len();
        Flow::Continue
    }
}

#[test]
fn ten_thousand_small_files_multiplex_on_one_connection() {
    let n = h2_nginx(1_000_000, "");
    let root = n.server.root();
    for i in 0..10_000 {
        std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
    }
    let mut multi: Multi<usize> = Multi::with_options(Options::default()).unwrap();
    for i in 0..10_000 {
        multi.add(n.get(&format!("s{i}")).pipewait(true).private(i));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 10_000);
    for d in done {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private));
        assert_eq!(r.head.version, 2);
        assert_eq!(r.body, format!("small {}", d.private).as_bytes());
    }
    // nginx allows 128 streams at a time; ours stops at 100: one connection carries all.
    assert_eq!(multi.connects(), 1);
}

#[test]
fn large_bodies_arrive_whole_past_the_default_window() {
    let n = h2_nginx(1_000_000, "");
    let root = n.server.root();
    const MIB10: usize = 10 << 20;
    for i in 0..10 {
        write_big(&root, i, MIB10);
    }
    // 100 transfers of 10 MiB: the ten files, each fetched ten times, all at once.
    let mut multi: Multi<(usize, Seen)> = Multi::with_options(Options::default()).unwrap();
    for k in 0..100 {
        let i = k % 10;
        let seen = Arc::new(Mutex::new((0, true)));
        let easy =
            n.get(&format!("big{i}")).pipewait(true).write_function(checker(i, seen.clone()));
        multi.add(easy.private((i, seen)));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 100);
    for d in done {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private.0));
        assert_eq!(r.downloaded, MIB10 as u64);
        assert_eq!(*d.private.1.lock().unwrap(), (MIB10, true), "big{}", d.private.0);
    }
    assert_eq!(multi.connects(), 1);
}

#[test]
fn a_server_stream_limit_below_ours_makes_pipewait_wait_and_others_open_connections() {
    let n = h2_nginx(1_000_000, "http2_max_concurrent_streams 8;");
    let root = n.server.root();
    for i in 0..200 {
        std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
    }
    // With pipewait, transfers wait for a stream of the one connection.
    let mut multi: Multi<usize> = Multi::with_options(Options::default()).unwrap();
    for i in 0..200 {
        multi.add(n.get(&format!("s{i}")).pipewait(true).private(i));
    }
    for d in run_all(&mut multi) {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private));
        assert_eq!(r.body, format!("small {}", d.private).as_bytes());
    }
    assert_eq!(multi.connects(), 1);
    // Without it, new connections open, up to the cap, and share out the streams.
    let mut opts = Options::default();
    opts.max_host_connections = 4;
    let mut multi: Multi<usize> = Multi::with_options(opts).unwrap();
    for i in 0..200 {
        multi.add(n.get(&format!("s{i}")).private(i));
    }
    for d in run_all(&mut multi) {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private));
        assert_eq!(r.body, format!("small {}", d.private).as_bytes());
    }
    assert_eq!(multi.connects(), 4);
}

#[test]
fn cleartext_with_prior_knowledge_and_http11_origins_in_one_engine() {
    let n = h2_nginx(1_000_000, "");
    let root = n.server.root();
    for i in 0..300 {
        std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
    }
    let mut multi: Multi<(usize, u8)> = Multi::with_options(Options::default()).unwrap();
    for i in 0..300 {
        let prior = Easy::get(n.clear_url(&format!("s{i}")))
            .http_version(HttpVersion::Http2PriorKnowledge)
            .pipewait(true);
        multi.add(prior.private((i, 2)));
        // The same server's HTTP/1.1 port, and its TLS port asked for HTTP/1.1.
        multi.add(Easy::get(n.server.url(&format!("s{i}"))).private((i, 1)));
        let h1 = n.get(&format!("s{i}")).http_version(HttpVersion::Http11);
        multi.add(h1.private((i, 1)));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 900);
    for d in done {
        let (i, version) = d.private;
        let r = d.result.unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(r.head.version, version);
        assert_eq!(r.body, format!("small {i}").as_bytes());
    }
}

#[test]
fn request_bodies_go_on_streams_past_the_window() {
    // nginx's WebDAV PUT writes each body to a file, so what arrived can be compared.
    let n = h2_nginx(1_000_000, "");
    let root = n.server.root();
    const BIG: usize = 3 << 20;
    let body =
        |seed: usize, len: usize| -> Vec<u8> { (0..len).map(|o| big_byte(seed, o)).collect() };
    let mut multi: Multi<(&str, Vec<u8>)> = Multi::with_options(Options::default()).unwrap();
    let put = |name: &str| n.get(&format!("up/{name}")).method("PUT");
    multi.add(put("bytes").body(body(1, BIG)).private(("bytes", body(1, BIG))));
    let reader = std::io::Cursor::new(body(2, BIG));
    multi.add(put("known").body_reader(reader, Some(BIG as u64)).private(("known", body(2, BIG))));
    let reader = std::io::Cursor::new(body(3, BIG + 5));
    multi.add(put("unknown").body_reader(reader, None).private(("unknown", body(3, BIG + 5))));
    // A response before the body is all sent: the server resets the rest with NO_ERROR,
    // and the transfer has its answer.
    multi.add(Easy::post(n.url("post"), vec![b'p'; BIG]).ca_file(&n.ca).private(("early", vec![])));
    for d in run_all(&mut multi) {
        let (name, sent) = d.private;
        let r = d.result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.head.version, 2);
        if name == "early" {
            assert_eq!((r.status(), &r.body[..]), (201, &b"created"[..]));
            continue;
        }
        assert_eq!(r.status(), 201, "{name}");
        assert_eq!(r.uploaded, sent.len() as u64, "{name}");
        let stored = std::fs::read(root.join("up").join(name)).unwrap();
        assert!(stored == sent, "{name}: {} bytes stored, {} sent", stored.len(), sent.len());
    }
}

#[test]
fn goaway_after_keepalive_requests_loses_nothing() {
    // nginx ends an HTTP/2 connection with GOAWAY after `keepalive_requests` streams.
    let n = h2_nginx(50, "");
    let root = n.server.root();
    for i in 0..1_000 {
        std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
    }
    let mut multi: Multi<usize> = Multi::with_options(Options::default()).unwrap();
    for i in 0..1_000 {
        multi.add(n.get(&format!("s{i}")).pipewait(true).private(i));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 1_000);
    for d in done {
        let r = d.result.unwrap_or_else(|e| panic!("{}: {e}", d.private));
        assert_eq!(r.body, format!("small {}", d.private).as_bytes());
    }
    assert!(multi.connects() >= 20, "{} connections for 1,000 streams", multi.connects());
}

#[test]
fn nghttpd_over_tls_and_on_cleartext() {
    let dir = peers::scratch_dir("nghttpd-certs").unwrap();
    common::test_certificates(&dir);
    let tls = peers::Nghttpd::start_tls(&dir.join("server.pem"), &dir.join("server.key"))
        .expect("nghttpd starts");
    let clear = peers::Nghttpd::start_cleartext().expect("nghttpd starts");
    const MIB10: usize = 10 << 20;
    for server in [&tls, &clear] {
        let root = server.root();
        for i in 0..500 {
            std::fs::write(root.join(format!("s{i}")), format!("small {i}")).unwrap();
        }
        write_big(&root, 3, MIB10);
    }
    let ca = dir.join("ca.pem");
    let mut multi: Multi<(usize, Option<Seen>)> = Multi::with_options(Options::default()).unwrap();
    for server in [&tls, &clear] {
        let easy = |path: &str| {
            Easy::get(server.url(path))
                .ca_file(&ca)
                .http_version(HttpVersion::Http2PriorKnowledge)
                .pipewait(true)
        };
        for i in 0..500 {
            multi.add(easy(&format!("s{i}")).private((i, None)));
        }
        let seen = Arc::new(Mutex::new((0, true)));
        multi.add(easy("big3").write_function(checker(3, seen.clone())).private((3, Some(seen))));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 1002);
    for d in done {
        let (i, seen) = d.private;
        let r = d.result.unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(r.head.version, 2);
        match seen {
            Some(seen) => assert_eq!(*seen.lock().unwrap(), (MIB10, true)),
            None => assert_eq!(r.body, format!("small {i}").as_bytes()),
        }
    }
    // One connection per server.
    assert_eq!(multi.connects(), 2);
    // Over TLS by default (ALPN offers both), and HTTP/1.1 alone is refused by the server
    // (it offers no protocol we asked for) with a typed error.
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    multi.add(Easy::get(tls.url("ping")).ca_file(&ca).private("default"));
    let h1 = Easy::get(tls.url("ping")).ca_file(&ca).http_version(HttpVersion::Http11);
    multi.add(h1.private("http/1.1"));
    for d in run_all(&mut multi) {
        match d.private {
            "default" => assert_eq!(d.result.unwrap().body, b"pong"),
            _ => assert!(
                matches!(
                    d.result,
                    Err(XferError::Tls(_) | XferError::Http(_) | XferError::Recv(_))
                ),
                "{:?}",
                d.result
            ),
        }
    }
}

#[test]
fn mxfer_speaks_http2_to_nginx_and_nghttpd() {
    let n = h2_nginx(1_000_000, "");
    for i in 1..=50 {
        std::fs::write(n.server.root().join(format!("f{i}")), format!("body {i}")).unwrap();
    }
    let clear = peers::Nghttpd::start_cleartext().expect("nghttpd starts");
    for i in 1..=50 {
        std::fs::write(clear.root().join(format!("f{i}")), format!("body {i}")).unwrap();
    }
    let mxfer = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxfer")).args(args).output();
        let out = out.unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let dir = peers::scratch_dir("mxfer-h2").unwrap();
    std::fs::create_dir_all(dir.join("nginx")).unwrap();
    std::fs::create_dir_all(dir.join("nghttpd")).unwrap();
    let ca = n.ca.to_str().unwrap().to_string();
    let glob = n.url("f[1-50]");
    let out_dir = dir.join("nginx");
    let args = ["-v", "--http2", "--cacert", &ca, "--output-dir", out_dir.to_str().unwrap(), &glob];
    let (ok, err) = mxfer(&args);
    assert!(ok, "{err}");
    assert!(err.contains("transfers 50 failures 0"), "{err}");
    // One connection, and it spoke HTTP/2 (the debug log says so).
    assert_eq!(err.matches("speaks HTTP/2").count(), 1, "{err}");
    let glob = clear.url("f[1-50]");
    let out_dir = dir.join("nghttpd");
    let args = ["-v", "--http2-prior-knowledge", "--output-dir", out_dir.to_str().unwrap(), &glob];
    let (ok, err) = mxfer(&args);
    assert!(ok, "{err}");
    assert_eq!(err.matches("speaks HTTP/2").count(), 1, "{err}");
    for (sub, _) in [("nginx", 0), ("nghttpd", 1)] {
        for i in 1..=50 {
            let body = std::fs::read(dir.join(sub).join(format!("f{i}"))).unwrap();
            assert_eq!(body, format!("body {i}").as_bytes(), "{sub} f{i}");
        }
    }
    // --http1.1 over TLS: nginx answers in HTTP/1.1; nghttpd on cleartext cannot.
    let glob = n.url("f[1-5]");
    let (ok, err) = mxfer(&["-v", "--http1.1", "--cacert", &ca, "-o", "/dev/null", &glob]);
    assert!(ok, "{err}");
    assert!(!err.contains("speaks HTTP/2"), "{err}");
    let (ok, err) = mxfer(&["-s", "--http1.1", "-o", "/dev/null", &clear.url("f1")]);
    assert!(!ok, "{err}");
}
