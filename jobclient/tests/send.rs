//! The handles are `Send` (and `Sync` where shared), and so are their futures: checked at
//! compile time, so this file fails to build if any of them stops being so.

use std::future::Future;

use jobclient::{Admin, Client, Job, JobHandle, JobRef, Stopper, Worker};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}
fn send_future<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn handles_are_send_and_sync() {
    send_sync::<Client>();
    send_sync::<JobHandle>();
    send_sync::<Admin>();
    send_sync::<Stopper>();
    send_sync::<JobRef>();
}

#[allow(dead_code, clippy::manual_async_fn)]
async fn every_future(client: Client, admin: Admin, r: JobRef, mut jh: JobHandle) {
    let addr = "127.0.0.1:1".parse().unwrap();
    let engine = evcore::Engine::start().unwrap();
    let _ = send_future(Client::connect(addr, &engine)).await;
    let _ = send_future(client.do_job("f", "", "x")).await;
    let _ = send_future(client.submit(Job::new("f", "x"))).await;
    let _ = send_future(client.submit_background(Job::new("f", "x"))).await;
    let _ = send_future(client.status(&r)).await;
    let _ = send_future(client.status_handle(b"H:x:1")).await;
    let _ = send_future(client.status_unique(b"u")).await;
    let _ = send_future(client.echo(b"x")).await;
    let _ = send_future(client.enable_exceptions()).await;
    let _ = send_future(jh.next_event()).await;
    let _ = send_future(jh.result()).await;
    let _ = send_future(Admin::connect(addr, &engine)).await;
    let _ = send_future(admin.status()).await;
    let _ = send_future(admin.workers()).await;
    let _ = send_future(admin.shutdown()).await;
    let w = Worker::spawn(&engine, &[addr], None, Stopper::new(), |_| Worker::new());
    send(&w);
    let _ = send_future(w).await;
}

#[test]
fn futures_are_send() {
    // The checks are in the signature of `every_future`, made by the compiler: building this
    // file is the test. Calling it here makes sure it is not dead code the compiler skips.
    let f = every_future;
    let _ = &f;
}
