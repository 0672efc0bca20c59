//! The blocking facade, with no runtime at all: `do_job`, submit and events, background and
//! status, and a blocking worker loop, against our server.
#![cfg(feature = "server")]

mod common;

use jobclient::{blocking, Job, JobEvent, Stopper, Worker};

#[test]
fn blocking_client_and_worker() {
    let server = common::Running::start();
    let addr = server.addr;
    let stop = Stopper::new();
    let worker_stop = stop.clone();
    let worker = std::thread::spawn(move || {
        blocking::work(&[addr], None, worker_stop, |_| {
            let mut w = Worker::new();
            w.register("upper", |job| {
                job.send_data(b"[")?;
                Ok(job.workload().to_ascii_uppercase().into())
            });
            w
        })
    });
    let client = blocking::Client::connect(addr).unwrap();
    assert_eq!(&client.do_job("upper", "", "abc").unwrap()[..], b"[ABC");
    let mut job = client.submit(Job::new("upper", "x")).unwrap();
    assert_eq!(job.next_event().unwrap(), JobEvent::Data(b"[".to_vec().into()));
    assert_eq!(job.next_event().unwrap(), JobEvent::Complete(b"X".to_vec().into()));
    let bg = client.submit_background(Job::new("nobody-does-this", "y")).unwrap();
    let status = client.status(&bg).unwrap();
    assert!(status.known && !status.running);
    assert_eq!(&client.echo(b"ping").unwrap()[..], b"ping");
    // Shared between threads as it is.
    let c2 = client.clone();
    let other = std::thread::spawn(move || c2.do_job("upper", "", "from another thread"));
    assert_eq!(&other.join().unwrap().unwrap()[..], b"[FROM ANOTHER THREAD");
    stop.stop();
    assert!(worker.join().unwrap().unwrap() >= 3);
}
