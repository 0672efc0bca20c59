//! The durable queue under crashes and bad disks: `jobd` killed with SIGKILL at random points of
//! a stream of background submissions, a record damaged in the middle of the file, and a disk
//! that fills up. Every acknowledged job is there after a restart, none twice, and nothing is
//! acknowledged that is not on disk.

#![cfg(feature = "server")]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use common::{Jobd, Raw, Running};
use jobclient::proto::{encode, Decoder, Frame, Magic, PacketType as T};

/// Every background job a server holds for function `f`, by data.
fn drain(port: u16) -> Vec<Vec<u8>> {
    common::queued_data(format!("127.0.0.1:{port}").parse().unwrap(), b"f")
}

/// Submits background jobs as fast as the server acknowledges them (64 in flight), until the
/// connection breaks; returns the data of every job acknowledged with JOB_CREATED.
fn submit_until_killed(port: u16, first: u64) -> Vec<Vec<u8>> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return Vec::new() };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sent: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut acked = Vec::new();
    let mut buf = BytesMut::new();
    let mut next = first;
    loop {
        while sent.len() < 64 {
            let data = format!("job-{next}").into_bytes();
            next += 1;
            let mut out = BytesMut::new();
            encode(&mut out, Magic::Req, T::SubmitJobBg, &[b"f", b"", &data]).unwrap();
            if s.write_all(&out).is_err() {
                return acked;
            }
            sent.push_back(data);
        }
        loop {
            match Decoder::client().decode(&mut buf) {
                Ok(Some(Frame::Packet(p))) if p.kind() == T::JobCreated => {
                    acked.push(sent.pop_front().expect("one answer per submission"));
                }
                Ok(Some(other)) => panic!("{other:?}"),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return acked,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_job_and_doubles_none() {
    let dir = peers::scratch_dir("durable-kill").unwrap();
    let queue = dir.join("queue.log");
    let mut acked: HashSet<Vec<u8>> = HashSet::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..6u64 {
        let jobd = Jobd::start(&["-q", queue.to_str().unwrap()], None);
        let port = jobd.1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = Duration::from_millis(20 + seed % 200);
        let submitter = std::thread::spawn(move || submit_until_killed(port, round * 1_000_000));
        std::thread::sleep(after);
        drop(jobd); // SIGKILL, mid-stream
        let got = submitter.join().unwrap();
        assert!(!got.is_empty() || round > 0, "round {round}: nothing acknowledged in {after:?}");
        acked.extend(got);
    }
    // A last start: every acknowledged job is there, once. (Jobs written but not yet
    // acknowledged when the kill came may be there too: they were never promised.)
    let jobd = Jobd::start(&["-q", queue.to_str().unwrap()], None);
    let all = drain(jobd.1);
    let unique: HashSet<Vec<u8>> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a job came back twice");
    let missing: Vec<_> = acked.difference(&unique).map(|d| String::from_utf8_lossy(d)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged jobs lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(acked.len() > 100, "the test submitted too little to mean anything: {}", acked.len());
}

#[test]
fn a_record_damaged_in_the_middle_costs_that_record_only_and_the_file_is_kept() {
    let dir = peers::scratch_dir("durable-damage").unwrap();
    let queue = dir.join("queue.log");
    {
        let first = Running::start_with(Some(queue.clone()));
        let mut c = Raw::connect(first.addr);
        for data in ["one", "two", "three"] {
            c.send(T::SubmitJobBg, &[b"f", b"", data.as_bytes()]);
            assert_eq!(c.recv().kind(), T::JobCreated);
        }
    }
    // Damage the second record's data: the byte just before the third record's frame.
    let mut bytes = std::fs::read(&queue).unwrap();
    let at = bytes.windows(3).position(|w| w == b"two").unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&queue, &bytes).unwrap();
    let second = Running::start_with(Some(queue.clone()));
    let mut w = Raw::connect(second.addr);
    w.send(T::CanDo, &[b"f"]);
    let mut got = Vec::new();
    loop {
        w.send(T::GrabJobAll, &[]);
        let p = w.recv();
        if p.kind() == T::NoJob {
            break;
        }
        got.push(String::from_utf8_lossy(p.arg_ref(4)).into_owned());
        w.send(T::WorkComplete, &[p.arg_ref(0), b""]);
    }
    assert_eq!(got, ["one", "three"], "the records after the damage are kept");
    let log = second.log().join("\n");
    assert!(log.contains("failed their checksum"), "{log}");
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("corrupt"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(dir.join(&kept[0])).unwrap(), bytes, "the damaged file as it was");
}

/// A tmpfs of a given size, unmounted when dropped (root only, as CI runs).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(bytes: usize) -> SmallDisk {
        let dir = peers::scratch_dir("small-disk").unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_the_jobs_it_cannot_keep_and_keeps_the_rest() {
    let disk = SmallDisk::mount(256 * 1024);
    let queue = disk.0.join("queue.log");
    let data = vec![b'x'; 40 * 1024];
    let (mut created, mut refused) = (0, 0);
    {
        let server = Running::start_with(Some(queue.clone()));
        let mut c = Raw::connect(server.addr);
        for i in 0..12u32 {
            let mut d = data.clone();
            d.extend_from_slice(&i.to_be_bytes());
            c.send(T::SubmitJobBg, &[b"f", b"", &d]);
            let p = c.recv();
            match p.kind() {
                T::JobCreated => created += 1,
                T::Error => {
                    assert_eq!(p.arg_ref(0), b"QUEUE_ERROR");
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(created >= 3 && refused >= 3, "{created} created, {refused} refused");
        assert!(server.log().iter().any(|l| l.contains("write failed")));
        // The server goes on serving.
        c.send(T::EchoReq, &[b"alive"]);
        assert_eq!(c.recv().arg_ref(0), b"alive");
        // A refused job is not queued either.
        let mut w = Raw::connect(server.addr);
        w.send(T::CanDo, &[b"f"]);
        let mut queued = 0;
        loop {
            w.send(T::GrabJob, &[]);
            if w.recv().kind() == T::NoJob {
                break;
            }
            queued += 1;
        }
        assert_eq!(queued, created, "exactly the acknowledged jobs run");
    }
    // After a restart the file holds exactly the acknowledged jobs, whole: no torn record.
    let again = Running::start_with(Some(queue));
    let mut w = Raw::connect(again.addr);
    w.send(T::CanDo, &[b"f"]);
    let mut restored = 0;
    loop {
        w.send(T::GrabJob, &[]);
        if w.recv().kind() == T::NoJob {
            break;
        }
        restored += 1;
    }
    assert_eq!(restored, created);
    let log = again.log().join("\n");
    assert!(!log.contains("checksum") && !log.contains("cut short"), "{log}");
}

/// The file was compacted only at start, so a long-running server's queue grew without
/// bound even with few live jobs. Now it is compacted online once it is mostly dead records.
#[test]
fn the_queue_file_stays_near_the_size_of_its_live_jobs() {
    let dir = peers::scratch_dir("durable-online").unwrap();
    let queue = dir.join("queue.log");
    let data = vec![b'd'; 1024];
    {
        // Syncing is beside the point here (and 8,000 fdatasyncs are slow on some disks).
        let server = Running::start_durable(queue.clone(), jobclient::QueueSync::Never);
        let mut c = Raw::connect(server.addr);
        let mut w = Raw::connect(server.addr);
        w.send(T::CanDo, &[b"f"]);
        // 4,000 jobs of 1 KiB run and finish, 100 at a time; ten more are left queued.
        for batch in 0..40u32 {
            for i in batch * 100..batch * 100 + 100 {
                let mut d = data.clone();
                d.extend_from_slice(&i.to_be_bytes());
                c.send(T::SubmitJobBg, &[b"f", b"", &d]);
            }
            for _ in 0..100 {
                assert_eq!(c.recv().kind(), T::JobCreated);
                w.send(T::GrabJob, &[]);
            }
            for _ in 0..100 {
                let p = w.recv();
                assert_eq!(p.kind(), T::JobAssign);
                w.send(T::WorkComplete, &[p.arg_ref(0), b""]);
            }
        }
        for i in 4_000..4_010u32 {
            let mut d = data.clone();
            d.extend_from_slice(&i.to_be_bytes());
            c.send(T::SubmitJobBg, &[b"f", b"", &d]);
            assert_eq!(c.recv().kind(), T::JobCreated);
        }
        w.send(T::EchoReq, &[b"sync"]);
        assert_eq!(w.recv().kind(), T::EchoRes);
        let size = std::fs::metadata(&queue).unwrap().len();
        assert!(size < 3 << 20, "{size} bytes for ten live jobs after 4,000 finished");
    }
    let again = Running::start_with(Some(queue));
    let mut w = Raw::connect(again.addr);
    w.send(T::CanDo, &[b"f"]);
    let mut left = Vec::new();
    loop {
        w.send(T::GrabJob, &[]);
        let p = w.recv();
        if p.kind() == T::NoJob {
            break;
        }
        left.push(u32::from_be_bytes(p.arg_ref(2)[1024..].try_into().unwrap()));
    }
    assert_eq!(left, (4_000..4_010).collect::<Vec<_>>());
}

/// A background submission and a malformed packet in one read: the job is on disk, so its
/// JOB_CREATED must reach the client before the connection closes (it was dropped, and a
/// client that resubmitted would have run the job twice).
#[test]
fn a_protocol_error_after_a_durable_submission_still_acknowledges_it() {
    let dir = peers::scratch_dir("durable-ack").unwrap();
    let server = Running::start_with(Some(dir.join("queue.log")));
    let mut s = TcpStream::connect(server.addr).unwrap();
    let mut out = BytesMut::new();
    encode(&mut out, Magic::Req, T::SubmitJobBg, &[b"f", b"", b"kept"]).unwrap();
    out.extend_from_slice(b"\0REQ\0\0\0\x63\0\0\0\0");
    s.write_all(&out).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let mut buf = BytesMut::from(&got[..]);
    match Decoder::client().decode(&mut buf) {
        Ok(Some(Frame::Packet(p))) => assert_eq!(p.kind(), T::JobCreated),
        other => panic!("no JOB_CREATED before the close: {other:?}"),
    }
    assert!(server.log().iter().any(|l| l.contains("unknown packet type 99")));
}
