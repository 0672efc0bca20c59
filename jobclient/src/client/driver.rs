//! The task that owns a client's connection: writes what the handles queued, reads and routes
//! what the server sends, and fires the jobs' client-side deadlines.
//!
//! It runs on the executor's thread; the handles, on any thread, share only the [`State`]
//! behind a mutex and wake this task through its waker.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use evcore::{Handle, Sleep};

use super::{lock, Shared};
use crate::conn::Conn;

pub(crate) async fn drive(mut conn: Conn, state: Arc<Shared>, handle: Handle) {
    // However the driver ends (the connection failed, the client is gone, or its executor
    // dropped the task), every job still waiting hears `Disconnected` rather than waiting for
    // ever.
    struct FailOnExit(Arc<Shared>);
    impl Drop for FailOnExit {
        fn drop(&mut self) {
            let _ = fail(&self.0, None);
        }
    }
    let _fail_on_exit = FailOnExit(state.clone());
    let mut deadlines = Deadlines { heap: BinaryHeap::new(), sleep: None, handle };
    poll_fn(|cx| {
        {
            let mut st = lock(&state);
            if st.handles == 0 {
                return Poll::Ready(());
            }
            let out = st.out.split();
            conn.wbuf.unsplit(out);
            st.driver = Some(cx.waker().clone());
            let now = deadlines.handle.now();
            for (key, serial, after) in st.new_deadlines.drain(..) {
                // A deadline too far to represent is no deadline.
                if let Some(at) = now.checked_add(after) {
                    deadlines.heap.push(Reverse((at, serial, key)));
                }
            }
        }
        deadlines.poll(cx, &state);
        if let Poll::Ready(Err(e)) = conn.poll_flush(cx) {
            return fail(&state, crate::tls::tls_failure(&e));
        }
        loop {
            match conn.poll_packet(cx) {
                Poll::Ready(Ok(packet)) => {
                    let wake = lock(&state).dispatch(packet);
                    for w in wake {
                        w.wake();
                    }
                }
                Poll::Ready(Err(crate::Error::Tls(text))) => return fail(&state, Some(text)),
                Poll::Ready(Err(_)) => return fail(&state, None),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// The jobs' deadlines, earliest first, with one reactor timer for the earliest.
struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    sleep: Option<Sleep>,
    handle: Handle,
}

impl Deadlines {
    fn poll(&mut self, cx: &mut Context<'_>, state: &Shared) {
        loop {
            let Some(&Reverse((at, _, _))) = self.heap.peek() else {
                self.sleep = None;
                return;
            };
            let sleep = self.sleep.get_or_insert_with(|| self.handle.sleep_until(at));
            if sleep.deadline() != at {
                sleep.reset(at);
            }
            if Pin::new(sleep).poll(cx).is_pending() {
                return;
            }
            self.sleep = None;
            let now = self.handle.now();
            let mut wake = Vec::new();
            {
                let mut st = lock(state);
                while let Some(&Reverse((at, serial, key))) = self.heap.peek() {
                    if at > now {
                        break;
                    }
                    self.heap.pop();
                    st.time_out(key, serial, &mut wake);
                }
            }
            for w in wake {
                w.wake();
            }
        }
    }
}

fn fail(state: &Shared, tls_failure: Option<String>) -> Poll<()> {
    let wake = lock(state).fail_all(tls_failure);
    for w in wake {
        w.wake();
    }
    Poll::Ready(())
}
