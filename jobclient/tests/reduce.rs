//! `SUBMIT_REDUCE_JOB` and `_BACKGROUND` as gearmand 1.1.20 takes them (measured): queued
//! as normal jobs that carry their reducer to a worker asking with `GRAB_JOB_ALL`; the
//! connection stays open; a background one keeps its reducer across a restart.

#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;

use common::{Jobd, Raw};
use jobclient::proto::PacketType as T;
use peers::Gearmand;

fn reduce_jobs_on(name: &str, addr: SocketAddr) {
    let mut client = Raw::connect(addr);
    client.send(T::SubmitReduceJob, &[b"rf", b"ru", b"sum", b"agg", b"payload"]);
    let p = client.recv();
    assert_eq!(p.kind(), T::JobCreated, "{name}");
    let fg = p.arg(0);
    client.send(T::SubmitReduceJobBackground, &[b"rf", b"", b"max", b"agg", b"payload2"]);
    assert_eq!(client.recv().kind(), T::JobCreated, "{name}");
    let mut w = Raw::connect(addr);
    w.send(T::CanDo, &[b"rf"]);
    w.send(T::GrabJobAll, &[]);
    let p = w.recv();
    assert_eq!(p.kind(), T::JobAssignAll, "{name}");
    let args: Vec<&[u8]> = (0..5).map(|i| p.arg_ref(i)).collect();
    assert_eq!(args, [&fg[..], b"rf", b"ru", b"sum", b"payload"], "{name}");
    w.send(T::GrabJob, &[]);
    let p = w.recv();
    assert_eq!(
        (p.kind(), p.arg_ref(1), p.arg_ref(2)),
        (T::JobAssign, &b"rf"[..], &b"payload2"[..])
    );
    w.send(T::WorkComplete, &[&fg, b"42"]);
    let p = client.recv();
    assert_eq!((p.kind(), p.arg_ref(1)), (T::WorkComplete, &b"42"[..]), "{name}");
    client.send(T::EchoReq, &[b"still here"]);
    assert_eq!(client.recv().arg_ref(0), b"still here", "{name}");
}

#[test]
fn reduce_jobs_as_gearmand_takes_them() {
    let gearmand = Gearmand::start(&[]).unwrap();
    reduce_jobs_on("gearmand", gearmand.addr());
    let jobd = Jobd::start(&[], None);
    reduce_jobs_on("jobd", jobd.addr());
}

#[test]
fn a_background_reduce_job_keeps_its_reducer_across_a_restart() {
    let dir = peers::scratch_dir("reduce-durable").unwrap();
    let queue = dir.join("queue.log");
    {
        let jobd = Jobd::start(&["-q", queue.to_str().unwrap()], None);
        let mut client = Raw::connect(jobd.addr());
        client.send(T::SubmitReduceJobBackground, &[b"rf", b"u", b"sum", b"agg", b"data"]);
        assert_eq!(client.recv().kind(), T::JobCreated);
    }
    let jobd = Jobd::start(&["-q", queue.to_str().unwrap()], None);
    let mut w = Raw::connect(jobd.addr());
    w.send(T::CanDo, &[b"rf"]);
    w.send(T::GrabJobAll, &[]);
    let p = w.recv();
    assert_eq!(p.kind(), T::JobAssignAll);
    assert_eq!((p.arg_ref(2), p.arg_ref(3), p.arg_ref(4)), (&b"u"[..], &b"sum"[..], &b"data"[..]));
}
