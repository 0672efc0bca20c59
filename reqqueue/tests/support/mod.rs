//! Manual polling with a waker that records whether it was woken.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Counts wake-ups.
#[derive(Default)]
pub struct Flag(AtomicUsize);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future under test, polled by hand, remembering how often it was woken.
pub struct Probe<F: Future> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
    pub out: Option<F::Output>,
}

impl<F: Future> Probe<F> {
    pub fn new(fut: F) -> Self {
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(flag.clone());
        Probe { fut: Box::pin(fut), flag, waker, out: None }
    }

    /// Polls once (unless already complete); returns whether it is complete now.
    pub fn poll(&mut self) -> bool {
        if self.out.is_none() {
            if let Poll::Ready(v) = self.fut.as_mut().poll(&mut Context::from_waker(&self.waker)) {
                self.out = Some(v);
            }
        }
        self.out.is_some()
    }

    /// Polls an entry whose turn came before it was ever polled: the first poll yields (it
    /// wakes itself and stays pending, as tevent starts a head from an immediate event); the
    /// second runs it. Returns whether it is complete after the second.
    pub fn poll_after_yield(&mut self) -> bool {
        let woken = self.wakes();
        assert!(!self.poll(), "an entry never polled before its turn yields once");
        assert_eq!(self.wakes(), woken + 1, "and wakes itself to be polled again");
        self.poll()
    }

    /// How many times the future's waker was woken so far.
    pub fn wakes(&self) -> usize {
        self.flag.0.load(Ordering::SeqCst)
    }

    pub fn done(&self) -> bool {
        self.out.is_some()
    }
}

/// A future that stays pending until its gate is opened.
#[derive(Clone, Default)]
pub struct Gate(Arc<std::sync::Mutex<GateState>>);

/// Whether the gate is open, and who waits on it.
type GateState = (bool, Option<Waker>);

impl Gate {
    pub fn open(&self) {
        let mut g = self.0.lock().unwrap();
        g.0 = true;
        if let Some(w) = g.1.take() {
            w.wake();
        }
    }

    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            if g.0 {
                Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
