//! Regression tests of the server core, driven with packets and a hand-set clock. Each test
//! here reproduces a finding of the reliability review and failed before its fix.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{ConnId, Core, Now};
use crate::proto::{Decoder, Frame, Magic, Packet, PacketType as T};

/// A core and a clock that only moves when a test moves it.
pub(super) struct Rig {
    pub(super) core: Core,
    pub(super) now: Now,
}

impl Rig {
    pub(super) fn new() -> Rig {
        Rig { core: Core::new("test"), now: Now { mono: Instant::now(), unix: 1_700_000_000 } }
    }

    pub(super) fn connect(&mut self) -> ConnId {
        self.core.connect("127.0.0.1".into())
    }

    pub(super) fn send(&mut self, from: ConnId, kind: T, args: &[&[u8]]) {
        let p = Packet::new(Magic::Req, kind, args).unwrap();
        self.core.packet(from, &p, self.now).unwrap();
    }

    /// Moves the clock on and lets the core act on what is due.
    pub(super) fn advance(&mut self, by: Duration) {
        self.now.mono += by;
        self.now.unix += by.as_secs();
        self.core.expire(self.now.mono);
    }

    /// Every packet queued for `conn` since the last call.
    pub(super) fn take(&mut self, conn: ConnId) -> Vec<Packet> {
        let Some(c) = self.core.conn_mut(conn) else { return Vec::new() };
        let mut buf: BytesMut = c.out.split();
        let mut out = Vec::new();
        while let Some(frame) = Decoder::client().decode(&mut buf).unwrap() {
            match frame {
                Frame::Packet(p) => out.push(p),
                Frame::Admin(line) => panic!("unexpected text {line:?}"),
            }
        }
        out
    }

    pub(super) fn kinds(&mut self, conn: ConnId) -> Vec<T> {
        self.take(conn).iter().map(Packet::kind).collect()
    }

    /// Grabs one job; its handle, or `None` on NO_JOB.
    pub(super) fn grab(&mut self, worker: ConnId) -> Option<Bytes> {
        self.take(worker);
        self.send(worker, T::GrabJob, &[]);
        let got = self.take(worker);
        assert_eq!(got.len(), 1, "one answer to GRAB_JOB: {got:?}");
        match got[0].kind() {
            T::JobAssign => Some(got[0].arg(0)),
            T::NoJob => None,
            other => panic!("GRAB_JOB answered {other:?}"),
        }
    }
}

fn created(rig: &mut Rig, client: ConnId) -> Bytes {
    let got = rig.take(client);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind(), T::JobCreated, "{got:?}");
    got[0].arg(0)
}

#[test]
fn an_epoch_beyond_any_clock_is_refused_and_the_server_goes_on() {
    let mut rig = Rig::new();
    let c = rig.connect();
    // This packet panicked the whole server on `Instant + Duration` overflow.
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", u64::MAX.to_string().as_bytes(), b"x"]);
    let got = rig.take(c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind(), T::Error);
    assert_eq!(got[0].arg_ref(0), b"INVALID_EPOCH");
    // One past the documented bound is refused; the bound itself is accepted.
    let past = rig.now.unix + super::MAX_EPOCH_AHEAD_SECS + 1;
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", past.to_string().as_bytes(), b"x"]);
    assert_eq!(rig.kinds(c), [T::Error]);
    let at = rig.now.unix + super::MAX_EPOCH_AHEAD_SECS;
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", at.to_string().as_bytes(), b"x"]);
    created(&mut rig, c);
    assert!(rig.core.next_deadline().is_some());
    rig.send(c, T::EchoReq, &[b"still here"]);
    assert_eq!(rig.kinds(c), [T::EchoRes]);
}

#[test]
fn absurd_and_zero_can_do_timeouts_are_no_timeout() {
    let mut rig = Rig::new();
    let (c, w) = (rig.connect(), rig.connect());
    for ms in [u64::MAX, 0] {
        rig.send(w, T::CanDoTimeout, &[b"f", ms.to_string().as_bytes()]);
        rig.send(c, T::SubmitJob, &[b"f", b"", b"x"]);
        let handle = created(&mut rig, c);
        // A u64::MAX timeout overflowed `Instant + Duration` here; a zero one took the job
        // back the moment it was assigned, and the next GRAB got it again, for ever.
        assert_eq!(rig.grab(w).as_deref(), Some(&handle[..]));
        rig.advance(Duration::from_secs(3600));
        assert_eq!(rig.grab(w), None, "timeout {ms} took the job back");
        rig.send(w, T::WorkComplete, &[&handle, b"done"]);
        assert_eq!(rig.kinds(c), [T::WorkComplete]);
    }
    assert_eq!(rig.core.timer_count(), 0);
}

#[test]
fn a_stale_can_do_timeout_timer_never_takes_a_later_job() {
    // Timeout 1,000 ms; each job takes 900 ms. Job A's timer outlived A and, keyed by A's slot
    // and the worker's connection, took B (same slot, same worker) back mid-run, for ever.
    let mut rig = Rig::new();
    let (c, w) = (rig.connect(), rig.connect());
    rig.send(w, T::CanDoTimeout, &[b"f", b"1000"]);
    for _ in 0..5 {
        rig.send(c, T::SubmitJob, &[b"f", b"", b"x"]);
        let handle = created(&mut rig, c);
        assert_eq!(rig.grab(w).as_deref(), Some(&handle[..]));
        rig.advance(Duration::from_millis(900));
        rig.send(w, T::WorkComplete, &[&handle, b"done"]);
        assert_eq!(rig.kinds(c), [T::WorkComplete], "the job ran once and completed");
        rig.advance(Duration::from_millis(50));
    }
    assert_eq!(rig.core.job_rows(), []);
}

#[test]
fn the_same_worker_taking_a_requeued_job_again_gets_a_fresh_timeout() {
    let mut rig = Rig::new();
    let (c, w) = (rig.connect(), rig.connect());
    rig.send(w, T::CanDoTimeout, &[b"f", b"1000"]);
    rig.send(c, T::SubmitJob, &[b"f", b"", b"x"]);
    let handle = created(&mut rig, c);
    assert!(rig.grab(w).is_some());
    // CANT_DO then CAN_DO again: the job goes back to the queue and the same worker grabs it.
    rig.advance(Duration::from_millis(600));
    rig.send(w, T::CantDo, &[b"f"]);
    rig.send(w, T::CanDoTimeout, &[b"f", b"1000"]);
    assert_eq!(rig.grab(w).as_deref(), Some(&handle[..]));
    // The first assignment's deadline passes: the second assignment keeps the job.
    rig.advance(Duration::from_millis(600));
    assert!(rig.core.job_rows()[0].2, "still running");
    // Its own deadline passes: now it is taken back, once.
    rig.advance(Duration::from_millis(500));
    assert!(!rig.core.job_rows()[0].2, "requeued at its own timeout");
    assert_eq!(rig.grab(w).as_deref(), Some(&handle[..]));
    assert_eq!(rig.grab(w), None);
}

#[test]
fn a_cancelled_epoch_job_leaves_no_timer_behind() {
    let mut rig = Rig::new();
    let (c, w) = (rig.connect(), rig.connect());
    rig.send(w, T::CanDo, &[b"f"]);
    let at = (rig.now.unix + 100).to_string();
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", at.as_bytes(), b"x"]);
    let epoch_job = created(&mut rig, c);
    assert!(rig.core.cancel(std::str::from_utf8(&epoch_job).unwrap()));
    assert_eq!(rig.core.timer_count(), 0, "cancel removes the epoch timer");
    // A new job takes the freed slot; the old epoch passing must not queue it a second time.
    rig.send(c, T::SubmitJobBg, &[b"f", b"", b"y"]);
    let next = created(&mut rig, c);
    rig.advance(Duration::from_secs(200));
    assert_eq!(rig.grab(w).as_deref(), Some(&next[..]));
    assert_eq!(rig.grab(w), None, "queued twice by a stale epoch timer");
}

#[test]
fn an_epoch_job_runs_at_its_time_and_once() {
    let mut rig = Rig::new();
    let (c, w) = (rig.connect(), rig.connect());
    rig.send(w, T::CanDo, &[b"f"]);
    let at = (rig.now.unix + 10).to_string();
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", at.as_bytes(), b"x"]);
    let handle = created(&mut rig, c);
    rig.advance(Duration::from_secs(9));
    assert_eq!(rig.grab(w), None, "not before its time");
    rig.advance(Duration::from_secs(1));
    assert_eq!(rig.grab(w).as_deref(), Some(&handle[..]));
    assert_eq!(rig.grab(w), None);
    assert_eq!(rig.core.timer_count(), 0);
}

#[test]
fn restoring_an_absurd_journaled_epoch_does_not_overflow() {
    let mut rig = Rig::new();
    let saved = super::super::journal::Saved {
        handle: Bytes::from_static(b"H:test:18446744073709551615"),
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        data: Bytes::from_static(b"x"),
        priority: 1,
        epoch: u64::MAX,
        reducer: Bytes::new(),
    };
    let now = rig.now;
    rig.core.restore(vec![saved], now);
    let at = rig.core.next_deadline().expect("armed at the bound");
    assert!(at > rig.now.mono + Duration::from_secs(super::MAX_EPOCH_AHEAD_SECS - 1));
    // The handle counter is at its end: a new job still gets a handle of its own.
    let c = rig.connect();
    rig.send(c, T::SubmitJobBg, &[b"f", b"", b"y"]);
    let h = created(&mut rig, c);
    assert_ne!(&h[..], b"H:test:18446744073709551615");
}

/// A client ID or function name holding a line feed forged lines in admin listings.
#[test]
fn admin_listings_show_no_control_characters_from_the_network() {
    let mut rig = Rig::new();
    let w = rig.connect();
    rig.send(w, T::SetClientId, &[b"id\n.\nfake 1 2 3"]);
    rig.send(w, T::CanDo, &[b"f\r\nOK"]);
    let rows = rig.core.worker_rows();
    assert_eq!(rows[0].2, "id?.?fake 1 2 3");
    assert_eq!(rows[0].3, ["f??OK"]);
    assert_eq!(rig.core.status_rows()[0].0, "f??OK");
}

/// `maxqueue` counted only jobs in a queue: epoch jobs waiting for their time (and, with a
/// durable queue, jobs waiting for their record) were never refused.
#[test]
fn maxqueue_counts_jobs_waiting_for_their_epoch() {
    let mut rig = Rig::new();
    let c = rig.connect();
    rig.core.set_max_queue("f", [2, 2, 2]);
    let at = (rig.now.unix + 100).to_string();
    for _ in 0..2 {
        rig.send(c, T::SubmitJobEpoch, &[b"f", b"", at.as_bytes(), b"x"]);
        created(&mut rig, c);
    }
    rig.send(c, T::SubmitJobEpoch, &[b"f", b"", at.as_bytes(), b"x"]);
    let got = rig.take(c);
    assert_eq!((got[0].kind(), got[0].arg_ref(0)), (T::Error, &b"QUEUE_ERROR"[..]));
    // Once they run and finish, there is room again.
    let w = rig.connect();
    rig.send(w, T::CanDo, &[b"f"]);
    rig.advance(Duration::from_secs(100));
    for _ in 0..2 {
        let h = rig.grab(w).expect("due");
        rig.send(w, T::WorkComplete, &[&h, b""]);
    }
    rig.send(c, T::SubmitJobBg, &[b"f", b"", b"y"]);
    created(&mut rig, c);
}

/// Every function name ever registered stayed in the table: a client registering random
/// names and reconnecting grew it without bound.
#[test]
fn functions_nobody_uses_are_forgotten() {
    let mut rig = Rig::new();
    for round in 0..50 {
        let w = rig.connect();
        for i in 0..100 {
            rig.send(w, T::CanDo, &[format!("f{round}-{i}").as_bytes()]);
        }
        rig.core.disconnect(w);
    }
    assert_eq!(rig.core.status_rows(), []);
    // A function with work or a setting stays.
    let (c, w) = (rig.connect(), rig.connect());
    rig.core.set_max_queue("kept", [5, 5, 5]);
    rig.send(c, T::SubmitJobBg, &[b"queued", b"", b"x"]);
    created(&mut rig, c);
    rig.send(w, T::CanDo, &[b"queued"]);
    rig.send(w, T::CantDo, &[b"queued"]);
    let names: Vec<String> = rig.core.status_rows().into_iter().map(|r| r.0).collect();
    assert_eq!(names, ["kept", "queued"]);
}
