//! The status page in a real browser: Debian's Chromium, headless, through chromedriver, loads
//! `/` while jobs run. What it shows matches `/status.json` and the real `gearadmin --status`,
//! and it changes while the page stays loaded (no reload). A screenshot is kept in
//! `target/peer-results/status-page.png`.
#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Raw;
use jobclient::proto::PacketType;
use jobclient::{blocking, Stopper, Worker};
use serde_json::Value;

fn status_json(http: SocketAddr) -> Value {
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /status.json HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    serde_json::from_slice(&out[at + 4..]).unwrap()
}

/// What the page shows now: its load id, update count, completed count, and the `parked`
/// row's cells (high, normal, low, running, workers).
const READ_PAGE: &str = r##"
    const row = document.querySelector('tr[data-function="parked"]');
    return {
        page: window.__pageId,
        updates: Number(document.getElementById("updates").textContent),
        completed: Number(document.getElementById("completed").textContent),
        parked: row ? Array.from(row.cells).slice(1).map((c) => Number(c.textContent)) : null,
        workers: document.querySelectorAll("#workers tr").length,
    };
"##;

/// Polls the page until `ready` holds of what it shows (bounded).
fn until(page: &peers::Session, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let shown = page.script(READ_PAGE).unwrap();
        if ready(&shown) {
            return shown;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the page never showed {what}: {shown}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_status_page_shows_the_servers_numbers_and_updates_itself() {
    let (server, http) = common::with_http();
    let addr = server.addr;
    // Four jobs nobody can do: numbers that hold still while the others move.
    let mut c = Raw::connect(addr);
    for kind in [
        PacketType::SubmitJobBg,
        PacketType::SubmitJobBg,
        PacketType::SubmitJobLowBg,
        PacketType::SubmitJobHighBg,
    ] {
        c.send(kind, &[b"parked", b"", b"x"]);
        assert_eq!(c.recv().kind(), PacketType::JobCreated);
    }
    // The load: a worker with a client id, and a client submitting until told to stop.
    let stop = Stopper::new();
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            blocking::work(&[addr], None, stop, |_| {
                let mut w = Worker::new();
                w.client_id("page-test-worker");
                w.register("work", |job| Ok(job.workload().clone()));
                w
            })
        })
    };
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let running = running.clone();
        std::thread::spawn(move || {
            let client = blocking::Client::connect(addr).unwrap();
            let mut done = 0u64;
            while running.load(Ordering::Relaxed) {
                client.do_job("work", "", "payload").unwrap();
                done += 1;
            }
            done
        })
    };

    let driver = peers::Chromedriver::start().expect("chromedriver runs");
    let page = driver.session().expect("a headless Chromium window");
    page.goto(&format!("http://{http}/")).unwrap();
    let first = until(&page, "its first update with the worker", |v| {
        v["updates"].as_u64() >= Some(1)
            && v["workers"].as_u64() >= Some(1)
            && v["completed"].as_u64() > Some(0)
    });
    // The parked row as shown, as /status.json has it, and as gearadmin reads the job port.
    assert_eq!(first["parked"], serde_json::json!([1, 2, 1, 0, 0]), "{first}");
    let json = status_json(http);
    let parked =
        json["functions"].as_array().unwrap().iter().find(|f| f["name"] == "parked").unwrap();
    assert_eq!(parked["queued"], serde_json::json!({"high": 1, "normal": 2, "low": 1}));
    let out = Command::new("gearadmin")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "--status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.lines().any(|l| l == "parked\t4\t0\t0"), "{status}");
    // What the page showed was true when it showed it: no more than the server counts now.
    assert!(first["completed"].as_u64() <= json["jobs"]["completed"].as_u64(), "{first} {json}");
    let worker_ids: Vec<&str> = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["client_id"].as_str())
        .collect();
    assert!(worker_ids.contains(&"page-test-worker"), "{json}");

    // Without a reload (the same page id), the numbers move with the load.
    let later = until(&page, "more completed jobs", |v| {
        v["completed"].as_u64() > first["completed"].as_u64().map(|c| c + 100)
    });
    assert_eq!(later["page"], first["page"], "the page reloaded");
    assert!(later["updates"].as_u64() > first["updates"].as_u64());
    assert_eq!(later["parked"], first["parked"]);

    let png = page.screenshot().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dir = peers::workspace_root().join("target/peer-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status-page.png"), &png).unwrap();

    running.store(false, Ordering::Relaxed);
    let done = load.join().unwrap();
    assert!(done > 100);
    stop.stop();
    worker.join().unwrap().unwrap();
    drop(page);
    drop(driver);
    drop(server);
}
