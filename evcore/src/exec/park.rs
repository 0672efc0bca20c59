//! `block_on` for threads with no executor: the calling thread parks until the future's waker
//! unparks it (what `pollster` and `futures::executor::block_on` do, in a dozen lines, for
//! the blocking facades of the protocol crates).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct Unpark {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Runs `future` to completion on this thread, parking it between polls. The future must be
/// driven by something else (an [`Engine`](crate::Engine) thread, say): nothing here polls
/// sockets or timers. Do not call it from inside an async task, which it would block.
///
/// ```
/// let engine = evcore::Engine::start()?;
/// let answer = evcore::block_on(engine.spawner().spawn(|_| async { 6 * 7 }));
/// assert_eq!(answer, Ok(42));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let unpark = Arc::new(Unpark { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        // A wake between the poll and here leaves `woken` set: no park, poll again. A
        // spurious unpark finds it clear and parks again.
        while !unpark.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
