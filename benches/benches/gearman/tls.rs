//! The TLS rows of the gearman bench (feature `tls`): our client over TLS to our server's TLS
//! port against the same to gearmand, and our server with TLS against without, on the
//! foreground workload with 100 jobs in flight.
//!
//! gearmand's TLS: Debian's gearmand 1.1.20 takes `--ssl` but speaks plaintext (its Gear
//! protocol was built without TLS), so "gearmand with TLS" here is gearmand behind OpenSSL
//! (`socat OPENSSL-LISTEN`), the way such a deployment would have to run it; a row against
//! `gearmand --ssl` as it really serves (plaintext) is shown beside it. libgearman's workers
//! cannot speak TLS either (Debian's libgearman has none), so every server here is answered by
//! two of our workers, over TLS where the client is.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use evcore::Executor;
use jobclient::{ClientOptions, ClientTls, Server, ServerTls, Stopper, Worker};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::{met, rate, run_ours_with, Workload, ROUNDS};

/// The rows, each a ratio measured in this run.
pub(super) fn rows(root: &Path) -> Vec<String> {
    let dir = root.join("target/peer-results/tls");
    let (cert, key, ca) = certificates(&dir);
    let server_tls = ServerTls::from_files(&cert, &key, None, false).unwrap();
    let client_tls = ClientTls::from_files(Some(&ca), None).unwrap();
    let tls_options = || {
        let mut o = ClientOptions::default();
        o.tls = Some(client_tls.clone());
        o
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (ours_plain, ours_tls) = start_our_server(cores, server_tls);
    let gearmand = peers::Gearmand::start(&[]).unwrap();
    let front = Front::start(&cert, &key, gearmand.addr());
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let (ca_s, cert_s, key_s) = (path(&ca), path(&cert), path(&key));
    let gearmand_ssl = peers::Gearmand::start(&[
        "--ssl",
        "--ssl-ca-file",
        &ca_s,
        "--ssl-certificate",
        &cert_s,
        "--ssl-key",
        &key_s,
    ])
    .unwrap();
    // Two workers for each server, speaking what its clients speak.
    let stop = Stopper::new();
    let engine = evcore::Engine::start().unwrap();
    let targets = [
        (ours_tls, Some(client_tls.clone())),
        (ours_plain, None),
        (front.addr, Some(client_tls.clone())),
        (gearmand_ssl.addr(), None),
    ];
    let _workers: Vec<_> = targets
        .iter()
        .flat_map(|(addr, tls)| [0, 1].map(|_| echo_worker(&engine, *addr, tls.clone(), &stop)))
        .collect();
    let fg = Workload {
        name: "foreground, 100 in flight",
        kind: "fg",
        jobs: 20_000,
        in_flight: 100,
        payload: 16,
    };
    let mut t: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        t[0].push(run_ours_with(ours_tls, &fg, tls_options()));
        t[1].push(run_ours_with(ours_plain, &fg, ClientOptions::default()));
        t[2].push(run_ours_with(front.addr, &fg, tls_options()));
        t[3].push(run_ours_with(gearmand_ssl.addr(), &fg, ClientOptions::default()));
    }
    let [ours_tls, ours_plain, front_tls, ssl_plain] = t.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    stop.stop();
    vec![
        format!(
            "| {} (our client over TLS), our server's TLS port vs gearmand behind OpenSSL (socat) | {} | {} | {:.2}x | ≥ 1.50x | {} |",
            fg.name,
            rate(ours_tls),
            rate(front_tls),
            front_tls / ours_tls,
            met(front_tls / ours_tls >= 1.5)
        ),
        format!(
            "| {}, our server over TLS vs `gearmand --ssl` as Debian's serves it (plaintext: no TLS in its build) | {} | {} | {:.2}x | - | - |",
            fg.name,
            rate(ours_tls),
            rate(ssl_plain),
            ssl_plain / ours_tls,
        ),
        format!(
            "| {} (our client and workers), our server: TLS vs plaintext | {} | {} | {:.2}x | ≥ 0.70x | {} |",
            fg.name,
            rate(ours_tls),
            rate(ours_plain),
            ours_plain / ours_tls,
            met(ours_plain / ours_tls >= 0.7)
        ),
    ]
}

/// A CA and a server certificate for 127.0.0.1, written under `dir`: (cert, key, ca).
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"));
    std::fs::write(&paths.0, cert.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    std::fs::write(&paths.2, ca.pem()).unwrap();
    paths
}

/// Our server as jobd runs it (a loop per core, polling before they sleep) with a plaintext
/// port and a TLS port: (plain, TLS).
fn start_our_server(loops: usize, tls: ServerTls) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lp = evcore::Loop::new().unwrap();
        lp.set_spin(jobclient::DEFAULT_BUSY_POLL);
        let ex = Executor::with_reactor(lp);
        let h = ex.handle();
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        let tls = server.listen_tls("127.0.0.1:0".parse().unwrap(), tls).unwrap();
        server.busy_poll(jobclient::DEFAULT_BUSY_POLL);
        server.io_threads(loops).unwrap();
        tx.send((server.local_addr().unwrap(), tls)).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    rx.recv().unwrap()
}

/// One of our workers answering `bench_echo` on `addr` until `stop`.
fn echo_worker(
    engine: &evcore::Engine,
    addr: SocketAddr,
    tls: Option<ClientTls>,
    stop: &Stopper,
) -> evcore::Spawned<u64> {
    Worker::spawn(engine, &[addr], None, stop.clone(), move |_| {
        let mut w = Worker::new();
        if let Some(tls) = tls {
            w.tls(tls);
        }
        w.register("bench_echo", |job| Ok(Bytes::copy_from_slice(job.workload())));
        w
    })
}

/// OpenSSL in front of a plaintext server (`socat OPENSSL-LISTEN`), killed when dropped.
struct Front {
    child: Child,
    addr: SocketAddr,
}

impl Front {
    fn start(cert: &Path, key: &Path, backend: SocketAddr) -> Front {
        peers::ensure_packages(&["socat"]).unwrap();
        let port = peers::free_port().unwrap();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            cert.display(),
            key.display()
        );
        let child = Command::new("socat")
            .args([listen, format!("TCP:{backend},nodelay")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "socat did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Front { child, addr }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
