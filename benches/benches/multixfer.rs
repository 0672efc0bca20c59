//! multixfer against libcurl's socket interface (a C harness of ours over Debian's libcurl,
//! `benches/c/curl_bench.c`) and the `curl -Z` tool, on the same nginx, in one run.
//!
//! Workloads, as the issue sets them: 10,000 GETs of a 1 KiB file with 50 in flight, and 100
//! GETs of a 10 MiB file (also 50 in flight; 100 KiB receive buffers, as the curl tool uses).
//! Ours is `Multi` on `evcore::Loop` through `drive::Driver`, the same socket-interface shape
//! as the harness. Three alternating rounds, medians; CPU time per transfer from
//! `getrusage` (the harness) and the thread's schedstat (ours). The table goes to stdout and to
//! `target/peer-results/multixfer.md`. Needs root (nginx runs as root).

use std::process::Command;
use std::time::Instant;

use evcore::Loop;
use multixfer::drive::Driver;
use multixfer::{Easy, HttpVersion, Multi, Options};

const ROUNDS: usize = 3;
const PARALLEL: usize = 50;

/// One run's figures.
#[derive(Clone, Copy)]
struct Run {
    secs: f64,
    bytes: f64,
    cpu: f64,
}

fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

/// How a row's transfers go: cleartext HTTP/1.1, or HTTPS with the CA file and a version.
#[derive(Clone, Copy)]
enum Proto<'a> {
    Clear,
    Https { ca: &'a std::path::Path, h2: bool },
}

fn ours(url: &str, count: usize, buffer: usize, proto: Proto<'_>) -> Run {
    let mut opts = Options::default();
    opts.max_connects = Some(PARALLEL);
    let mut multi: Multi = Multi::with_options(opts).unwrap();
    let mut lp = Loop::new().unwrap();
    let mut driver = Driver::new();
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let (mut started, mut finished, mut bytes) = (0, 0, 0u64);
    let easy = || {
        let e = Easy::get(url).discard_body().buffer_size(buffer);
        match proto {
            Proto::Clear => e,
            Proto::Https { ca, h2 } => {
                let version = if h2 { HttpVersion::Http2Tls } else { HttpVersion::Http11 };
                e.ca_file(ca).http_version(version).pipewait(true)
            }
        }
    };
    while started < count.min(PARALLEL) {
        multi.add(easy());
        started += 1;
    }
    let mut done = Vec::new();
    while finished < count {
        driver.step(&mut multi, &mut lp, None, &mut |d| done.push(d)).unwrap();
        for d in done.drain(..) {
            bytes += d.result.expect("a transfer failed").downloaded;
            finished += 1;
            if started < count {
                multi.add(easy());
                started += 1;
            }
        }
    }
    Run { secs: t0.elapsed().as_secs_f64(), bytes: bytes as f64, cpu: thread_cpu() - cpu0 }
}

fn harness(bin: &std::path::Path, url: &str, count: usize, buffer: usize, proto: Proto<'_>) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args([url, &count.to_string(), &PARALLEL.to_string(), &buffer.to_string()]);
    if let Proto::Https { ca, h2 } = proto {
        cmd.arg(ca).arg(if h2 { "2" } else { "1.1" });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert!(
        v.len() == 4 && v[3] == 0.0,
        "curl_bench: {text:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run { secs: v[0], bytes: v[1], cpu: v[2] }
}

fn curl_tool(list: &std::path::Path, count: usize, size: f64, proto: Proto<'_>) -> Run {
    let t0 = Instant::now();
    let mut cmd = Command::new("curl");
    if let Proto::Https { ca, h2 } = proto {
        cmd.arg("--cacert").arg(ca).arg(if h2 { "--http2" } else { "--http1.1" });
    }
    let status = cmd
        .args(["-s", "-Z", "--parallel-max", &PARALLEL.to_string(), "-K"])
        .arg(list)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "curl -Z failed");
    Run { secs: t0.elapsed().as_secs_f64(), bytes: size * count as f64, cpu: f64::NAN }
}

/// The async client on evcore's executor on this thread (the local path): `PARALLEL` futures,
/// each fetching its share in turn; seconds.
fn client_local(url: &str, count: usize, spin: std::time::Duration) -> f64 {
    let ex = evcore::Executor::new().unwrap();
    ex.handle().set_spin(spin);
    let client: multixfer::client::Client =
        multixfer::client::Client::new(&ex.handle(), Options::default()).unwrap();
    let t0 = Instant::now();
    ex.block_on(futures_util::future::join_all((0..PARALLEL).map(|t| {
        let client = client.clone();
        async move {
            for _ in (t..count).step_by(PARALLEL) {
                let r = client.fetch(Easy::get(url).discard_body()).await.expect("a fetch failed");
                assert_eq!(r.status(), 200);
            }
        }
    })));
    t0.elapsed().as_secs_f64()
}

/// The same client through the shared path: an `Engine` thread, `PARALLEL` tokio tasks on a
/// runtime of `threads` workers sharing one handle; seconds.
fn client_shared(url: &str, count: usize, threads: usize, spin: std::time::Duration) -> f64 {
    let engine = evcore::Engine::start_with(move || {
        let mut lp = evcore::Loop::new()?;
        lp.set_spin(spin);
        Ok(lp)
    })
    .unwrap();
    let client = multixfer::client::Client::new(&engine, Options::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).build().unwrap();
    fetch_from_tokio_tasks(&rt, client, url, count)
}

/// The client driven by a tokio task (`Client::on_tokio`): no engine thread; `PARALLEL` tokio
/// tasks on a runtime of `threads` workers; seconds.
fn client_on_tokio(url: &str, count: usize, threads: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let client = multixfer::client::Client::on_tokio(rt.handle(), Options::default()).unwrap();
    fetch_from_tokio_tasks(&rt, client, url, count)
}

/// `PARALLEL` tokio tasks on `rt` share `client` and fetch `count` times `url`; seconds.
fn fetch_from_tokio_tasks(
    rt: &tokio::runtime::Runtime,
    client: multixfer::client::Client,
    url: &str,
    count: usize,
) -> f64 {
    let t0 = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..PARALLEL)
            .map(|t| {
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    for _ in (t..count).step_by(PARALLEL) {
                        let r = client.fetch(Easy::get(url.as_str()).discard_body()).await;
                        assert_eq!(r.expect("a fetch failed").status(), 200);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "multixfer".contains(f.as_str())) {
        return;
    }
    peers::ensure_packages(&["nginx", "curl", "libcurl4-openssl-dev", "pkg-config"]).unwrap();
    let root = peers::workspace_root();
    let bin =
        peers::build_c(&root.join("benches/c/curl_bench.c"), "curl_bench", &["libcurl"]).unwrap();
    let dir = peers::scratch_dir("multixfer-bench").unwrap();
    // HTTPS (feature `tls`): the same nginx on a TLS port with HTTP/2, certificates from a
    // test CA.
    let tls_port = peers::free_port().unwrap();
    let ca = dir.join("ca.pem");
    let https = cfg!(feature = "tls");
    let mut config = peers::NginxConfig::default();
    if https {
        certificates(&dir);
        config.server_extra = format!(
            "listen 127.0.0.1:{tls_port} ssl http2;\n    ssl_certificate {d}/server.pem;\n    \
             ssl_certificate_key {d}/server.key;\n",
            d = dir.display()
        );
    }
    let server = peers::Nginx::start(&config).unwrap();
    std::fs::write(server.root().join("1k"), vec![b'k'; 1024]).unwrap();
    std::fs::write(server.root().join("10m"), vec![b'm'; 10 << 20]).unwrap();
    let mut rows = Vec::new();
    // `MULTIXFER_BENCH=client` runs the async client's rows alone, `=https` the HTTPS rows.
    let only = std::env::var("MULTIXFER_BENCH").unwrap_or_default();
    let h2 = Proto::Https { ca: &ca, h2: true };
    let h1 = Proto::Https { ca: &ca, h2: false };
    let mut workloads = Vec::new();
    for (label, proto) in [("", Proto::Clear), ("HTTPS, HTTP/2, ", h2), ("HTTPS, HTTP/1.1, ", h1)] {
        let is_https = matches!(proto, Proto::Https { .. });
        if (is_https && !https) || only == "client" || (only == "https" && !is_https) {
            continue;
        }
        workloads.push((
            format!("{label}10,000 GETs of 1 KiB"),
            "1k",
            10_000usize,
            1024.0,
            16 * 1024,
            proto,
        ));
        workloads.push((
            format!("{label}100 GETs of 10 MiB"),
            "10m",
            100,
            (10 << 20) as f64,
            100 * 1024,
            proto,
        ));
    }
    // `MULTIXFER_ROWS=TEXT` keeps the rows whose name holds TEXT (`10 MiB`, `HTTP/2`).
    if let Ok(keep) = std::env::var("MULTIXFER_ROWS") {
        workloads.retain(|w| w.0.contains(keep.as_str()));
    }
    let mut rates = std::collections::HashMap::new();
    for (name, path, count, size, buffer, proto) in workloads {
        let url = match proto {
            Proto::Clear => server.url(path),
            Proto::Https { .. } => format!("https://localhost:{tls_port}/{path}"),
        };
        let list = dir.join(format!("{path}.list"));
        let lines: String =
            (0..count).map(|_| format!("url = \"{url}\"\noutput = \"/dev/null\"\n")).collect();
        std::fs::write(&list, lines).unwrap();
        let (mut o, mut c, mut t) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            eprintln!("multixfer bench: {name}, round {round}: ours, libcurl, curl -Z");
            o.push(ours(&url, count, buffer, proto));
            c.push(harness(&bin, &url, count, buffer, proto));
            t.push(curl_tool(&list, count, size, proto));
        }
        let rate = |v: &[Run]| median(v.iter().map(|r| count as f64 / r.secs).collect());
        let mbs = |v: &[Run]| median(v.iter().map(|r| r.bytes / r.secs / 1e6).collect());
        let cpu = |v: &[Run]| median(v.iter().map(|r| r.cpu / count as f64 * 1e6).collect());
        let (ro, rc, rt) = (rate(&o), rate(&c), rate(&t));
        let (mo, mc, mt) = (mbs(&o), mbs(&c), mbs(&t));
        let (co, cc) = (cpu(&o), cpu(&c));
        let small = size < 1e6;
        rates.insert(name.clone(), (ro, mo));
        let (target, met) = match (proto, small) {
            (Proto::Clear, true) => ("≥ 1.2x req/s, less CPU", ro / rc >= 1.2 && co < cc),
            (Proto::Clear, false) => ("≥ 1.0x MB/s, less CPU", mo / mc >= 1.0 && co < cc),
            (Proto::Https { h2: true, .. }, true) => (
                "≥ 1.3x harness, ≥ 1.5x curl -Z, less CPU",
                ro / rc >= 1.3 && ro / rt >= 1.5 && co < cc,
            ),
            (Proto::Https { h2: true, .. }, false) => ("≥ 1.0x MB/s", mo / mc >= 1.0),
            (Proto::Https { h2: false, .. }, _) => ("(for HTTP/2 against HTTP/1.1)", true),
        };
        rows.push(format!(
            "| {name} | {ro:.0} req/s, {mo:.0} MB/s, {co:.1} µs CPU | {rc:.0} req/s, {mc:.0} MB/s, {cc:.1} µs CPU | {rt:.0} req/s, {mt:.0} MB/s | {:.2}x / {:.2}x | {:.2}x | {target} | {} |",
            ro / rc,
            ro / rt,
            co / cc,
            if met { "yes" } else { "no" }
        ));
    }
    // The Send client: shared (Engine + tokio) against local (evcore on this thread).
    let url = server.url("1k");
    let (mut local, mut shared, mut shared4, mut native) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Both evcore paths on the same loop setting; `MULTIXFER_SPIN_US` sets it (default 0).
    let spin = std::time::Duration::from_micros(
        std::env::var("MULTIXFER_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
    );
    // Not with `MULTIXFER_BENCH=https`: those rows are cleartext.
    let client_rounds = if only == "https" { 0 } else { ROUNDS };
    for round in 0..client_rounds {
        eprintln!("multixfer bench: async client, round {round}: local, shared");
        local.push(client_local(&url, 10_000, spin));
        shared.push(client_shared(&url, 10_000, cores, spin));
        shared4.push(client_shared(&url, 10_000, 4, spin));
        native.push(client_on_tokio(&url, 10_000, cores));
    }
    let (local, shared, shared4, native) =
        (median(local), median(shared), median(shared4), median(native));
    let shared_row = format!(
        "\n| async client, 10,000 GETs of 1 KiB, 50 in flight | shared (Engine, 50 tokio tasks) | local (evcore, one thread) | ratio | target | met |\n|---|---|---|---|---|---|\n| shared, tokio on {cores} threads (the cores) vs local | {:.0} req/s | {:.0} req/s | {:.2}x | ≥ 0.90x | {} |\n| shared, tokio on 4 threads vs local | {:.0} req/s | {:.0} req/s | {:.2}x | ≥ 0.90x | {} |\n| driven by a tokio task (`Client::on_tokio`, {cores} threads, no engine thread) vs local | {:.0} req/s | {:.0} req/s | {:.2}x | ≥ 0.90x | {} |\n",
        10_000.0 / shared,
        10_000.0 / local,
        local / shared,
        if local / shared >= 0.9 { "yes" } else { "no" },
        10_000.0 / shared4,
        10_000.0 / local,
        local / shared4,
        if local / shared4 >= 0.9 { "yes" } else { "no" },
        10_000.0 / native,
        10_000.0 / local,
        local / native,
        if local / native >= 0.9 { "yes" } else { "no" }
    );
    let mut versus = String::new();
    for (small, what) in [(true, "10,000 GETs of 1 KiB"), (false, "100 GETs of 10 MiB")] {
        let two = rates.get(&format!("HTTPS, HTTP/2, {what}"));
        let one = rates.get(&format!("HTTPS, HTTP/1.1, {what}"));
        if let (Some(&(r2, m2)), Some(&(r1, m1))) = (two, one) {
            let ratio = if small { r2 / r1 } else { m2 / m1 };
            versus += &format!("\nOurs over HTTPS, HTTP/2 against HTTP/1.1, {what}: {ratio:.2}x\n");
        }
    }
    let table = format!(
        "### multixfer vs libcurl 7.88 (socket interface + epoll) and curl -Z, same nginx, {ROUNDS} rounds, medians\n\n\
         | workload | ours | libcurl harness | curl -Z | speed vs harness / vs curl -Z | CPU per transfer vs harness | target | met |\n\
         |---|---|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    ) + &versus
        + &shared_row;
    print!("{table}");
    let out = root.join("target/peer-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("multixfer.md"), table).unwrap();
}

/// A test CA and a certificate for `localhost` signed by it, in `dir` (`ca.pem`,
/// `server.pem`, `server.key`).
#[cfg(feature = "tls")]
fn certificates(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (libcurl, curl) takes a leaf named as its issuer for
    // self-signed.
    ca_params.distinguished_name.push(DnType::CommonName, "evstack bench CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

#[cfg(not(feature = "tls"))]
fn certificates(_: &std::path::Path) {}
