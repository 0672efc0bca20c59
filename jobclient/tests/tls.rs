//! TLS (feature `rustls`): our client, worker and `Admin` through our server and through the
//! real gearmand 1.1.20 (`--ssl`), `openssl s_client` and our programs against `jobd --ssl`,
//! and each refusal (an unknown CA, an expired certificate, plaintext on a TLS port, TLS on a
//! plaintext port, a missing client certificate) a typed error that leaves the server serving.
#![cfg(all(feature = "server", feature = "rustls"))]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{spawn_worker, Running};
use evcore::Executor;
use jobclient::{Admin, Client, ClientOptions, ClientTls, Error, Job, Limits, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

/// Certificates made for one test: a CA, a server leaf for 127.0.0.1 and localhost, an
/// expired server leaf, two client leaves, and a second CA that signed none of them.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = peers::scratch_dir(name).unwrap();
        let other = ca("another CA").pem();
        let ca = ca("test CA");
        std::fs::write(dir.join("other-ca.pem"), other).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        leaf(&dir, "server", &ca, ExtendedKeyUsagePurpose::ServerAuth, false);
        leaf(&dir, "expired", &ca, ExtendedKeyUsagePurpose::ServerAuth, true);
        leaf(&dir, "client", &ca, ExtendedKeyUsagePurpose::ClientAuth, false);
        leaf(&dir, "admin", &ca, ExtendedKeyUsagePurpose::ClientAuth, false);
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The server's settings with the leaf `name`, asking clients for certificates of the CA.
    fn server(&self, name: &str, client_ca: bool, require: bool) -> ServerTls {
        let ca = self.path("ca.pem");
        ServerTls::from_files(
            &self.path(&format!("{name}.pem")),
            &self.path(&format!("{name}.key")),
            client_ca.then_some(ca.as_path()),
            require,
        )
        .unwrap()
    }

    /// A client trusting `ca` (a file name here), presenting the leaf `identity` if given.
    fn client(&self, ca: &str, identity: Option<&str>) -> ClientTls {
        let cert =
            identity.map(|n| (self.path(&format!("{n}.pem")), self.path(&format!("{n}.key"))));
        let identity = cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        ClientTls::from_files(Some(&self.path(ca)), identity).unwrap()
    }
}

/// A CA named `name` (each its own name: a certificate's issuer is found by name).
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    dir: &Path,
    name: &str,
    ca: &CertifiedIssuer<'static, KeyPair>,
    purpose: ExtendedKeyUsagePurpose,
    expired: bool,
) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, ca).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// Our server with a plaintext port (for the harness's admin and shutdown) and a TLS port;
/// returns the TLS port's address.
fn tls_server(tls: ServerTls, limits: Limits) -> (Running, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    let running = Running::start_setup(move |server| {
        server.limits(limits);
        tx.send(server.listen_tls("127.0.0.1:0".parse().unwrap(), tls)?).unwrap();
        Ok(())
    });
    (running, rx.recv().unwrap())
}

fn options(tls: ClientTls) -> ClientOptions {
    let mut o = ClientOptions::default();
    o.tls = Some(tls);
    // A refused connect is retried at once by the next call, not after a backoff.
    o.backoff_initial = Duration::ZERO;
    o
}

/// `n` foreground jobs of `reverse` through `addr` over TLS; every result checked.
fn reverse_jobs(addr: SocketAddr, tls: ClientTls, n: usize) -> Result<(), Error> {
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect_with(addr, &h, options(tls)).await?;
        let mut jobs = Vec::new();
        for i in 0..n {
            jobs.push(client.submit(Job::new("reverse", format!("job {i}"))).await?);
        }
        for (i, mut job) in jobs.into_iter().enumerate() {
            let want: String = format!("job {i}").chars().rev().collect();
            assert_eq!(job.result().await?, Bytes::from(want));
        }
        Ok(())
    })
}

fn reverse_worker(
    addr: SocketAddr,
    tls: ClientTls,
    jobs: u64,
) -> std::thread::JoinHandle<Result<u64, Error>> {
    spawn_worker(addr, jobs, move |w| {
        w.tls(tls);
        w.register("reverse", |job| {
            let mut v = job.workload().to_vec();
            v.reverse();
            Ok(Bytes::from(v))
        });
    })
}

#[test]
fn client_worker_and_admin_over_tls_to_our_server() {
    let pki = Pki::new("tls-ours");
    let (server, addr) = tls_server(pki.server("server", false, false), Limits::default());
    let worker = reverse_worker(addr, pki.client("ca.pem", None), 300);
    reverse_jobs(addr, pki.client("ca.pem", None), 300).unwrap();
    assert_eq!(worker.join().unwrap().unwrap(), 300);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let admin = Admin::connect_tls(addr, pki.client("ca.pem", None), &h).await.unwrap();
        let version = admin.version().await.unwrap();
        assert_eq!(server.admin("version"), [format!("OK {version}")]);
        // The same listing as over plaintext (the worker has gone: nothing queued, none).
        let status = admin.status().await.unwrap();
        assert_eq!(status.len(), server.admin("status").len());
        assert!(status.iter().all(|s| s.total == 0 && s.running == 0), "{status:?}");
    });
    // The name checked may be given: the certificate holds `localhost`, not `example.org`.
    let named = pki.client("ca.pem", None).server_name("localhost").unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async { Client::connect_with(addr, &h, options(named)).await.unwrap() });
    let wrong = pki.client("ca.pem", None).server_name("example.org").unwrap();
    let got = ex.block_on(async { Client::connect_with(addr, &h, options(wrong)).await });
    assert!(matches!(&got, Err(Error::Tls(e)) if e.contains("not valid for name")), "{got:?}");
    drop(server);
}

/// Each refusal is a typed error, and the server serves the next client as before.
#[test]
fn refusals_are_typed_errors_and_the_server_serves_on() {
    let pki = Pki::new("tls-refusals");
    let mut limits = Limits::default();
    // A TLS client on the plaintext port sends a ClientHello that is no Gearman frame: the
    // server gives up on it after this long.
    limits.read_deadline = Duration::from_millis(300);
    let (server, addr) = tls_server(pki.server("server", false, false), limits);
    let _worker = reverse_worker(addr, pki.client("ca.pem", None), 1);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let connect =
        |addr, tls| ex.block_on(async { Client::connect_with(addr, &h, options(tls)).await });

    // A CA that did not sign the server's certificate.
    let got = connect(addr, pki.client("other-ca.pem", None));
    assert!(matches!(&got, Err(Error::Tls(e)) if e.contains("UnknownIssuer")), "{got:?}");

    // A plaintext client on the TLS port: the server answers with an alert, not Gearman.
    let plain = ex.block_on(async {
        let client = Client::connect(addr, &h).await?;
        client.submit(Job::new("reverse", "x")).await?.result().await
    });
    assert!(
        matches!(plain, Err(Error::Protocol(_) | Error::Disconnected | Error::Io(_))),
        "{plain:?}"
    );

    // A TLS client on the plaintext port: no handshake, an error (never plaintext).
    let got = connect(server.addr, pki.client("ca.pem", None));
    assert!(matches!(got, Err(Error::Tls(_) | Error::Io(_))), "{got:?}");

    // A peer that starts a handshake and stalls is closed after the read deadline, as one
    // stalling in a packet is.
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    let closed = std::io::Read::read(&mut stalled, &mut buf);
    assert!(matches!(closed, Ok(0)), "{closed:?}");

    // The server still serves TLS clients.
    reverse_jobs(addr, pki.client("ca.pem", None), 1).unwrap();
    let log = server.log().join("\n");
    assert!(log.contains("closing connection"), "{log}");
    drop(server);

    // An expired server certificate.
    let (expired, addr) = tls_server(pki.server("expired", false, false), Limits::default());
    let got = connect(addr, pki.client("ca.pem", None));
    assert!(matches!(&got, Err(Error::Tls(e)) if e.contains("expired")), "{got:?}");
    drop(expired);
}

/// `--ssl-verify-client`: a client without a certificate of the CA is refused; with one it is
/// served. With certificates listed for the admin commands, only those may change the server.
#[test]
fn client_certificates_and_admin_identities() {
    let pki = Pki::new("tls-clients");
    let mut limits = Limits::default();
    limits.admin_certs.push(Limits::read_certificate(&pki.path("admin.pem")).unwrap());
    let (server, addr) = tls_server(pki.server("server", true, true), limits);
    let _worker = reverse_worker(addr, pki.client("ca.pem", Some("client")), 1);

    // TLS 1.3 finishes the client's side of the handshake before the server has checked it:
    // the refusal comes with the first answer.
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let refused = ex.block_on(async {
        let client = Client::connect_with(addr, &h, options(pki.client("ca.pem", None))).await?;
        client.echo(b"hello").await
    });
    assert!(
        matches!(&refused, Err(Error::Tls(e)) if e.contains("CertificateRequired")),
        "{refused:?}"
    );
    reverse_jobs(addr, pki.client("ca.pem", Some("client")), 1).unwrap();

    // Admin: the listed certificate may create a function; another good one, and the
    // plaintext port (loopback, allowed by address), may not.
    let create = |identity: &str| {
        ex.block_on(async {
            let admin = Admin::connect_tls(addr, pki.client("ca.pem", Some(identity)), &h).await?;
            admin.create_function(&format!("made-by-{identity}")).await
        })
    };
    create("admin").unwrap();
    let denied = create("client");
    assert!(
        matches!(&denied, Err(Error::Server { code, .. }) if code == "PERMISSION_DENIED"),
        "{denied:?}"
    );
    assert_eq!(server.admin("create function plain")[0], "ERR PERMISSION_DENIED Permission+denied");
    let status = server.admin("status");
    assert!(status.iter().any(|l| l.starts_with("made-by-admin\t")), "{status:?}");
    assert!(!status.iter().any(|l| l.starts_with("made-by-client\t")), "{status:?}");
    // The harness's shutdown comes over the plaintext port: it is refused now, so stop the
    // server through the admin certificate.
    ex.block_on(async {
        let admin =
            Admin::connect_tls(addr, pki.client("ca.pem", Some("admin")), &h).await.unwrap();
        admin.shutdown().await.unwrap();
    });
    let mut server = server;
    server.thread.take().unwrap().join().unwrap().unwrap();
}

/// Debian's gearmand 1.1.20 takes `--ssl` and logs "with SSL: true", but its Gear protocol
/// was built without TLS: it speaks plaintext only (a ClientHello gets "invalid magic value").
/// Our TLS client refuses it, never falling back; the certificates are valid, so nothing else
/// could fail.
#[test]
fn gearmand_ssl_speaks_plaintext_and_our_tls_client_refuses_it() {
    let pki = Pki::new("tls-gearmand");
    let path = |f: &str| pki.path(f).to_string_lossy().into_owned();
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    let gearmand = peers::Gearmand::start(&[
        "--ssl",
        "--ssl-ca-file",
        &ca,
        "--ssl-certificate",
        &cert,
        "--ssl-key",
        &key,
    ])
    .expect("gearmand --ssl starts");
    let got = reverse_jobs(gearmand.addr(), pki.client("ca.pem", None), 1);
    assert!(matches!(got, Err(Error::Io(_) | Error::Tls(_))), "{got:?}");
    // In plaintext it serves (the readiness check above spoke plaintext too).
    let version = gearmand.version().unwrap();
    assert!(version.contains("1.1.20"), "{version}");
}

/// A TLS front we did not write (OpenSSL, through socat) for the real gearmand 1.1.20: our
/// client and our worker over TLS through it, exact results; a CA that did not sign the
/// front's certificate is refused.
#[test]
fn client_and_worker_over_tls_through_openssl_to_gearmand() {
    let pki = Pki::new("tls-front");
    let gearmand = peers::Gearmand::start(&[]).expect("gearmand starts");
    let front = TlsFront::start(&pki, gearmand.addr());
    let worker = reverse_worker(front.addr, pki.client("ca.pem", None), 200);
    reverse_jobs(front.addr, pki.client("ca.pem", None), 200).unwrap();
    assert_eq!(worker.join().unwrap().unwrap(), 200);
    let got = reverse_jobs(front.addr, pki.client("other-ca.pem", None), 1);
    assert!(matches!(&got, Err(Error::Tls(e)) if e.contains("UnknownIssuer")), "{got:?}");
}

/// `socat OPENSSL-LISTEN` in front of a plaintext server: TLS only (a plaintext client fails).
struct TlsFront {
    child: std::process::Child,
    addr: SocketAddr,
}

impl TlsFront {
    fn start(pki: &Pki, backend: SocketAddr) -> TlsFront {
        let port = peers::free_port().unwrap();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            pki.path("server.pem").display(),
            pki.path("server.key").display()
        );
        let child = Command::new("socat")
            .args([listen, format!("TCP:{backend}")])
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "socat did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        TlsFront { child, addr }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `jobd --ssl`: `openssl s_client` (a TLS client we did not write) speaks the admin protocol
/// to it; `jobc -S` submits and works; `jobadmin -S` reads its status and stops it.
#[test]
fn jobd_ssl_with_openssl_s_client_jobc_and_jobadmin() {
    let pki = Pki::new("tls-jobd");
    let path = |f: &str| pki.path(f).to_string_lossy().into_owned();
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    let jobd = common::Jobd::start(
        &["--ssl", "--ssl-certificate", &cert, "--ssl-key", &key, "-t", "1"],
        None,
    );
    let port = jobd.1.to_string();

    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", &ca, "-verify_return_error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl runs");
    s_client.stdin.as_mut().unwrap().write_all(b"version\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s_client.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = s_client.kill();
    let _ = s_client.wait();
    assert_eq!(
        line,
        format!("OK jobd {}\n", env!("CARGO_PKG_VERSION")),
        "openssl s_client read it"
    );

    let tls = ["-S", "--ssl-ca-file", &ca, "-h", "127.0.0.1", "-p", &port];
    let mut worker = Command::new(env!("CARGO_BIN_EXE_jobc"))
        .args(tls)
        .args(["-w", "-f", "upper", "-c", "1", "--", "tr", "a-z", "A-Z"])
        .spawn()
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jobc"))
        .args(tls)
        .args(["-f", "upper", "-s", "hello"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"HELLO");
    assert!(worker.wait().unwrap().success());

    // A plaintext jobc on the TLS port fails, and says so.
    let out = Command::new(env!("CARGO_BIN_EXE_jobc"))
        .args(["-h", "127.0.0.1", "-p", &port, "-f", "upper", "-s", "x", "-t", "5000"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let admin = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jobadmin")).args(tls).args(args).output().unwrap()
    };
    let out = admin(&["--server-version", "--status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with(&format!("jobd {}\n", env!("CARGO_PKG_VERSION"))), "{answer}");
    assert!(answer.ends_with(".\n"), "{answer}");
    let wrong = Command::new(env!("CARGO_BIN_EXE_jobadmin"))
        .args(["-S", "--ssl-ca-file", &path("other-ca.pem"), "-h", "127.0.0.1", "-p", &port])
        .arg("--status")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("UnknownIssuer"));
    let out = admin(&["--shutdown"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut jobd = jobd;
    assert!(jobd.0.wait().unwrap().success());
}

/// Payloads far past what TLS and the sockets buffer, both ways: the writer must go on as the
/// socket drains (a session buffer that was full, then flushed, must take more).
#[test]
fn large_payloads_cross_tls_both_ways() {
    let pki = Pki::new("tls-large");
    let (server, addr) = tls_server(pki.server("server", false, false), Limits::default());
    let worker = reverse_worker(addr, pki.client("ca.pem", None), 3);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client =
            Client::connect_with(addr, &h, options(pki.client("ca.pem", None))).await.unwrap();
        for size in [200_000usize, 3 << 20, 16 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let mut want = data.clone();
            want.reverse();
            let got = client.do_job("reverse", "", data).await.unwrap();
            assert!(got == want, "{size} bytes came back different");
        }
    });
    assert_eq!(worker.join().unwrap().unwrap(), 3);
    drop(server);
}

/// A server that takes the connection and never answers the handshake: the connect fails
/// with a timeout, and the client is not stuck on it.
#[test]
fn a_silent_tls_server_times_the_connect_out() {
    let pki = Pki::new("tls-silent");
    // The kernel completes the TCP handshake from the backlog; nobody ever reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut o = options(pki.client("ca.pem", None));
    o.connect_timeout = Duration::from_millis(300);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let started = std::time::Instant::now();
    let got = ex.block_on(async { Client::connect_with(addr, &h, o).await });
    assert!(
        matches!(&got, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
}
