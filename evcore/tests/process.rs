//! Child exits through pidfds, Unix-domain sockets and `SO_REUSEPORT` listeners, on both
//! reactors.

mod support;

use std::net::TcpListener;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use evcore::{Async, Child, Clock, Executor, Reactor};
use futures_util::{AsyncReadExt, AsyncWriteExt};

/// A directory of its own: tests of both backends run at once in one process.
fn tmpdir(name: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("evcore-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit codes and deaths by signal arrive as std reports them, with no SIGCHLD handler; two
/// children awaited at once on one loop, the second to start ending first.
fn child_exit_without_sigchld<R: Reactor + 'static>(make: impl Fn(Clock) -> R) {
    let ex = Executor::with_reactor(make(Clock::system()));
    let h = ex.handle();
    // The slow one reads its stdin until end: it ends when the test closes the pipe, after the
    // fast one has been seen to end.
    let mut slow = Child::new(
        Command::new("sh")
            .args(["-c", "cat >/dev/null; exit 7"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
        &h,
    )
    .unwrap();
    let mut fast =
        Child::new(Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap(), &h).unwrap();
    let (a, b) = ex.block_on(async {
        let b = fast.wait().await.unwrap();
        drop(slow.get_mut().stdin.take());
        let a = slow.wait().await.unwrap();
        (a, b)
    });
    assert_eq!((a.code(), b.code()), (Some(7), Some(3)));
    // Asked again: the same status at once.
    assert_eq!(ex.block_on(fast.wait()).unwrap().code(), Some(3));

    let mut killed = Child::new(Command::new("sleep").arg("600").spawn().unwrap(), &h).unwrap();
    killed.get_mut().kill().unwrap();
    assert_eq!(ex.block_on(killed.wait()).unwrap().signal(), Some(9));
}

/// A Unix listener, a client connecting to it without blocking, bytes both ways; a path with
/// no listener is an error, not a hang.
fn unix_sockets<R: Reactor + 'static>(make: impl Fn(Clock) -> R) {
    let dir = tmpdir("unix");
    let path = dir.join("sock");
    let ex = Executor::with_reactor(make(Clock::system()));
    let h = ex.handle();
    ex.block_on(async {
        let listener = Async::<UnixListener, R>::bind(&path, &h).unwrap();
        let server = h.spawn_local(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(&buf).await.unwrap();
        });
        let mut client = Async::<UnixStream, R>::connect(&path, &h).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello");
        server.await;

        let missing = Async::<UnixStream, R>::connect(dir.join("nobody"), &h).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);

        let (mut x, mut y) = Async::<UnixStream, R>::pair(&h).unwrap();
        x.write_all(b"p").await.unwrap();
        let mut one = [0u8; 1];
        y.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"p");
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two `SO_REUSEPORT` listeners on one address, each on a loop of its own thread, share 64
/// connections between them: all are accepted, by both. A plain listener cannot share it.
fn reuseport_listeners_share_an_address<R: Reactor + 'static>(
    make: impl Fn(Clock) -> R + Copy + Send + 'static,
) {
    let first_ex = Executor::with_reactor(make(Clock::system()));
    let first =
        Async::<TcpListener, R>::bind_reuseport("127.0.0.1:0".parse().unwrap(), &first_ex.handle())
            .unwrap();
    let addr = first.get_ref().local_addr().unwrap();
    assert!(TcpListener::bind(addr).is_err(), "a listener without the option took the address");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let second = std::thread::spawn(move || {
        let ex = Executor::with_reactor(make(Clock::system()));
        let l = Async::<TcpListener, R>::bind_reuseport(addr, &ex.handle()).unwrap();
        ready_tx.send(()).unwrap();
        // Counts what reaches it until told to stop: then takes what is queued, and reports.
        stop_rx.recv().unwrap();
        let mut n = 0;
        while l.get_ref().accept().is_ok() {
            n += 1;
        }
        n
    });
    ready_rx.recv().unwrap();
    let clients: Vec<_> = (0..64).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let mut here = 0;
    while first.get_ref().accept().is_ok() {
        here += 1;
    }
    stop_tx.send(()).unwrap();
    let there = second.join().unwrap();
    assert_eq!(here + there, 64, "here {here}, there {there}");
    assert!(here > 0 && there > 0, "one listener took them all: here {here}, there {there}");
    drop(clients);
}

each_reactor!(child_exit_without_sigchld, unix_sockets, reuseport_listeners_share_an_address);
