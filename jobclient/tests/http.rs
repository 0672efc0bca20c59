//! `Server::http` (`jobd --http`): `/metrics` checked by Prometheus's own `promtool` and read
//! back, `/status.json` against what the test did and against the real `gearadmin --status`,
//! and the HTTP side's refusals (a huge head, another method, an unknown path).
#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Raw, Running};
use jobclient::proto::PacketType;
use jobclient::{Policy, WorkError};

/// A GET (or any request line) and its answer: status line, and body.
pub fn get(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, out[split + 4..].to_vec())
}

fn fetch(addr: SocketAddr, path: &str) -> Vec<u8> {
    let (status, body) = get(addr, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
    body
}

/// The value of a sample line `name{labels} value` in Prometheus text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// A server with an HTTP port, a worker policy of two attempts, and a known history: 5 jobs
/// completed, 2 failed and 1 raised an exception, 1 retried and then dropped, 3 parked
/// (1 high, 2 low) with no worker.
fn server_with_history() -> (Running, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Running::start_setup(move |s| {
        let mut policy = Policy::default();
        policy.job_retries = 2;
        s.policy(policy);
        tx.send(s.http("127.0.0.1:0".parse().unwrap())?).unwrap();
        Ok(())
    });
    let http = rx.recv().unwrap();
    let addr = server.addr;
    let worker = common::spawn_worker(addr, 8, |w| {
        w.register("ok", |job| Ok(job.workload().clone()));
        w.register("bad", |_| Err(WorkError::Fail));
        w.register("odd", |_| Err(WorkError::Exception("oops".into())));
    });
    let mut c = Raw::connect(addr);
    c.send(PacketType::OptionReq, &[b"exceptions"]);
    assert_eq!(c.recv().kind(), PacketType::OptionRes);
    for (f, n) in [(&b"ok"[..], 5), (b"bad", 2), (b"odd", 1)] {
        for _ in 0..n {
            c.send(PacketType::SubmitJob, &[f, b"", b"data"]);
            assert_eq!(c.recv().kind(), PacketType::JobCreated);
            loop {
                let p = c.recv();
                if matches!(
                    p.kind(),
                    PacketType::WorkComplete | PacketType::WorkFail | PacketType::WorkException
                ) {
                    break;
                }
            }
        }
    }
    assert_eq!(worker.join().unwrap().unwrap(), 8);
    // Taken and abandoned twice: requeued once, then dropped (`-j 2`).
    c.send(PacketType::SubmitJobBg, &[b"flaky", b"", b"x"]);
    assert_eq!(c.recv().kind(), PacketType::JobCreated);
    for _ in 0..2 {
        let mut w = Raw::connect(addr);
        w.send(PacketType::CanDo, &[b"flaky"]);
        w.send(PacketType::GrabJob, &[]);
        assert_eq!(w.recv().kind(), PacketType::JobAssign);
        drop(w);
        // Until the server has seen the disconnect (on another loop, perhaps): the job shows
        // as running until then.
        let start = std::time::Instant::now();
        while server.admin("status").iter().any(|l| l.starts_with("flaky\t1\t1\t")) {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for (kind, data) in [
        (PacketType::SubmitJobHighBg, &b"h"[..]),
        (PacketType::SubmitJobLowBg, b"l1"),
        (PacketType::SubmitJobLowBg, b"l2"),
    ] {
        c.send(kind, &[b"parked", b"", data]);
        assert_eq!(c.recv().kind(), PacketType::JobCreated);
    }
    (server, http)
}

#[test]
fn metrics_pass_promtool_and_count_what_happened() {
    let (server, http) = server_with_history();
    let text = String::from_utf8(fetch(http, "/metrics")).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sample(&text, "gearman_jobs_submitted_total"), 12.0);
    assert_eq!(sample(&text, "gearman_jobs_completed_total"), 5.0);
    assert_eq!(sample(&text, "gearman_jobs_failed_total"), 3.0);
    assert_eq!(sample(&text, "gearman_jobs_retried_total"), 1.0);
    assert_eq!(sample(&text, "gearman_jobs_dropped_total"), 1.0);
    assert_eq!(sample(&text, r#"gearman_jobs_queued{function="parked",priority="high"}"#), 1.0);
    assert_eq!(sample(&text, r#"gearman_jobs_queued{function="parked",priority="normal"}"#), 0.0);
    assert_eq!(sample(&text, r#"gearman_jobs_queued{function="parked",priority="low"}"#), 2.0);
    assert_eq!(sample(&text, r#"gearman_workers_available{function="parked"}"#), 0.0);
    // Every job a worker ended was timed; every job handed out waited (the flaky one twice).
    assert_eq!(sample(&text, "gearman_job_run_seconds_count"), 8.0);
    assert_eq!(sample(&text, "gearman_job_queue_wait_seconds_count"), 10.0);
    assert_eq!(sample(&text, r#"gearman_job_run_seconds_bucket{le="+Inf"}"#), 8.0);
    assert!(sample(&text, "gearman_bytes_received_total") > 0.0);
    assert!(sample(&text, "gearman_bytes_sent_total") > 0.0);
    assert!(sample(&text, "gearman_connections_total") >= 4.0);
    drop(server);
}

#[test]
fn status_json_matches_what_happened_and_gearadmin() {
    let (server, http) = server_with_history();
    let json: serde_json::Value = serde_json::from_slice(&fetch(http, "/status.json")).unwrap();
    let jobs = &json["jobs"];
    assert_eq!(
        [
            &jobs["submitted"],
            &jobs["completed"],
            &jobs["failed"],
            &jobs["retried"],
            &jobs["dropped"]
        ],
        [12, 5, 3, 1, 1]
    );
    let parked = json["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "parked")
        .expect("parked listed");
    assert_eq!(parked["queued"], serde_json::json!({"high": 1, "normal": 0, "low": 2}));
    // The real gearadmin reads the same from the job port.
    let out = Command::new("gearadmin")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string(), "--status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.lines().any(|l| l == "parked\t3\t0\t0"), "{status}");
    let recent = json["recent"].as_array().unwrap();
    let whats: Vec<&str> = recent.iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["failed", "failed", "exception", "dropped"]);
    let per_second = json["per_second"].as_array().unwrap();
    let completed: u64 = per_second.iter().map(|p| p[2].as_u64().unwrap()).sum();
    assert_eq!(completed, 5);
    drop(server);
}

#[test]
fn the_http_side_refuses_what_it_does_not_serve_and_the_job_port_goes_on() {
    let (server, http) = server_with_history();
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(get(http, &huge).0, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(get(http, "POST /metrics HTTP/1.1\r\n\r\n").0, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(get(http, "GET /nowhere HTTP/1.1\r\n\r\n").0, "HTTP/1.1 404 Not Found");
    assert_eq!(get(http, "\x00\x01 nonsense\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
    // A name that is neither an address nor localhost (DNS rebinding) is refused.
    assert_eq!(
        get(http, "GET /status.json HTTP/1.1\r\nHost: evil.example\r\n\r\n").0,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        get(http, &format!("GET /status.json HTTP/1.1\r\nHost: localhost:{}\r\n\r\n", http.port()))
            .0,
        "HTTP/1.1 200 OK"
    );
    let (status, body) = get(http, "HEAD /status.json HTTP/1.1\r\n\r\n");
    assert_eq!((status.as_str(), body.len()), ("HTTP/1.1 200 OK", 0));
    let page = String::from_utf8(fetch(http, "/")).unwrap();
    assert!(page.contains("<title>jobd status</title>") && page.contains("/status.json"));
    // Nothing outside this server: no script, style or font from elsewhere.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads from elsewhere"
    );
    // One address holds at most 8 connections: the 9th is closed at once, unanswered; once
    // the 8 go, it is served again.
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(http).unwrap()).collect();
    let mut ninth = TcpStream::connect(http).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = ninth.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(matches!(ninth.read(&mut buf), Ok(0) | Err(_)), "a 9th connection was served");
    drop(idle);
    let start = std::time::Instant::now();
    loop {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        if out.starts_with(b"HTTP/1.1 200 OK") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never served again");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The job port serves on.
    assert_eq!(server.admin("version").len(), 1);
    drop(server);
}

/// Function names are any client's choice: names that look alike stay apart, quotes and
/// line breaks cannot break a line of the exposition, and past 1,000 functions the busiest
/// are listed and the rest counted, so a flood of names cannot flood Prometheus.
#[test]
fn hostile_function_names_keep_metrics_valid_and_bounded() {
    let (server, http) = common::with_http();
    let mut c = Raw::connect(server.addr);
    c.send(PacketType::SubmitJobBg, &[b"busy", b"", b"x"]);
    assert_eq!(c.recv().kind(), PacketType::JobCreated);
    let mut w = Raw::connect(server.addr);
    let odd: [&[u8]; 5] = [b"x\x01", b"x\x02", b"x\\x01", b"a\"b\nc", b"\xff\xfe"];
    for name in odd {
        w.send(PacketType::CanDo, &[name]);
    }
    for i in 0..1_000 {
        w.send(PacketType::CanDo, &[format!("f{i:04}").as_bytes()]);
    }
    // Answered after every CAN_DO before it on this connection.
    w.send(PacketType::EchoReq, &[b"sync"]);
    assert_eq!(w.recv().kind(), PacketType::EchoRes);
    let text = String::from_utf8(fetch(http, "/metrics")).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 1,006 functions: the one with a queued job is among the 1,000 listed, 6 are counted.
    assert_eq!(sample(&text, "gearman_functions_omitted"), 6.0);
    assert_eq!(sample(&text, r#"gearman_jobs_queued{function="busy",priority="normal"}"#), 1.0);
    let series = text.lines().filter(|l| l.starts_with("gearman_workers_available{")).count();
    assert_eq!(series, 1_000);
    let json: serde_json::Value = serde_json::from_slice(&fetch(http, "/status.json")).unwrap();
    assert_eq!(json["functions_omitted"], 6);
    let names: std::collections::HashSet<&str> =
        json["functions"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 1_000, "two functions shown under one name");
    drop(w);
    drop(server);
}

/// The same names, few enough to all be listed: each its own series, told apart.
#[test]
fn look_alike_names_are_distinct_series() {
    let (server, http) = common::with_http();
    let mut w = Raw::connect(server.addr);
    for name in [&b"x\x01"[..], b"x\x02", b"x\\x01", b"a\"b\nc"] {
        w.send(PacketType::CanDo, &[name]);
    }
    w.send(PacketType::EchoReq, &[b"sync"]);
    assert_eq!(w.recv().kind(), PacketType::EchoRes);
    let text = String::from_utf8(fetch(http, "/metrics")).unwrap();
    for series in [
        r#"gearman_workers_available{function="x\\x01"}"#,
        r#"gearman_workers_available{function="x\\x02"}"#,
        r#"gearman_workers_available{function="x\\\\x01"}"#,
        r#"gearman_workers_available{function="a\"b\\x0ac"}"#,
    ] {
        assert_eq!(sample(&text, series), 1.0, "{series}");
    }
    drop(w);
    drop(server);
}
