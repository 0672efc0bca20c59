//! Driving a `Multi` from a hand-written epoll loop through the socket and timer callbacks:
//! the loop a libcurl user writes around `curl_multi_socket_action`, in Rust.
//!
//! The socket callback changes the epoll set at once, as libcurl's `ephiperfifo.c` does: the
//! engine closes a socket right after its Remove returns, so acting later would be too late.
//! The timer callback only records the deadline. Neither calls back into the engine. A small
//! server thread stands in for a real one, so the example runs anywhere
//! (`cargo run --example epoll_driver`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multixfer::{Easy, Multi, Ready, SocketPoll};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;

/// Applies one socket change to the epoll set.
fn apply(ep: &OwnedFd, fd: RawFd, poll: SocketPoll) -> std::io::Result<()> {
    // SAFETY: the engine calls back with a socket it owns and keeps open until this callback
    // returns, Remove included.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = match poll {
        SocketPoll::In => EventFlags::IN,
        SocketPoll::Out => EventFlags::OUT,
        SocketPoll::InOut => EventFlags::IN | EventFlags::OUT,
        _ => return Ok(epoll::delete(ep, bfd)?),
    };
    let data = EventData::new_u64(fd as u64);
    if epoll::modify(ep, bfd, data, flags).is_err() {
        epoll::add(ep, bfd, data, flags)?;
    }
    Ok(())
}

fn serve(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { return };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            }
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || serve(listener));

    let ep = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC)?);
    let mut multi: Multi<usize> = Multi::with_options(Default::default())?;
    let e = ep.clone();
    multi.set_socket_callback(move |fd, poll, _| {
        apply(&e, fd, poll).expect("epoll accepts a change the engine announced")
    });
    // The callbacks are `Send` (the engine may move between threads), hence `Arc` and `Mutex`.
    let timer: Arc<Mutex<Option<Option<Duration>>>> = Arc::new(Mutex::new(None));
    let t = timer.clone();
    multi.set_timer_callback(move |d| *t.lock().unwrap() = Some(d));
    for i in 0..200 {
        multi.add(Easy::get(format!("http://127.0.0.1:{port}/{i}")).private(i));
    }

    let mut deadline: Option<Instant> = None;
    let mut events = Vec::with_capacity(64);
    let mut ok = 0;
    while multi.running() > 0 {
        let told = timer.lock().unwrap().take();
        if let Some(t) = told {
            deadline = t.map(|d| Instant::now() + d);
        }
        // Wait for a socket or the timer.
        let wait = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 }
        });
        events.clear();
        epoll::wait(&*ep, rustix::buffer::spare_capacity(&mut events), wait.as_ref())?;
        if events.is_empty() {
            // The timer fired: it is consumed until the engine sets it again.
            deadline = None;
            multi.socket_action_timeout()?;
        }
        for ev in &events {
            let f = ev.flags;
            let ready = Ready::new(
                f.contains(EventFlags::IN),
                f.contains(EventFlags::OUT),
                f.contains(EventFlags::ERR),
                f.contains(EventFlags::HUP),
            );
            multi.socket_action(ev.data.u64() as RawFd, ready)?;
        }
        while let Some((done, _)) = multi.info_read() {
            if done.result?.body == b"ok" {
                ok += 1;
            }
        }
    }
    assert_eq!(ok, 200);
    println!("200 transfers over {} connections", multi.connects());
    Ok(())
}
