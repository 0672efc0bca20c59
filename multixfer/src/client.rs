//! The async API: a future per transfer and a stream of completions, on evcore's executor
//! (and so on tokio through `evcore::TokioReactor`).
//!
//! A [`Client`] owns a [`Multi`] in perform mode and one driver task. The engine's epoll
//! descriptor is registered with the executor's reactor, so the whole engine costs the host
//! loop one registration and one timer, however many sockets it has.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use evcore::{Async, Handle, Loop, Reactor, Sleep};
use futures_core::Stream;

use crate::{Done, Easy, Multi, Options, Response, XferError, XferId};

/// Where a fetch's result lands.
#[derive(Default)]
struct Slot {
    result: RefCell<Option<Result<Response, XferError>>>,
    waker: Cell<Option<Waker>>,
    id: Cell<Option<XferId>>,
}

enum Private<T> {
    Fetch(Rc<Slot>),
    Submit(T),
}

struct Inner<T> {
    multi: RefCell<Multi<Private<T>>>,
    incoming: RefCell<Vec<Easy<Private<T>>>>,
    cancels: RefCell<Vec<Rc<Slot>>>,
    done: RefCell<VecDeque<Done<T>>>,
    done_waker: Cell<Option<Waker>>,
    driver: Cell<Option<Waker>>,
}

impl<T> Inner<T> {
    fn kick(&self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

/// Transfers as futures. `T` is the private value of transfers [`submit`](Client::submit)ted
/// for the [`completions`](Client::completions) stream.
///
/// ```
/// use evcore::Executor;
/// use multixfer::{client::Client, Easy, Options};
/// # use std::io::{Read, Write};
/// # // A server that answers every request on every connection with "hi".
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let base = format!("http://{}", listener.local_addr()?);
/// # std::thread::spawn(move || {
/// #     for conn in listener.incoming() {
/// #         let mut conn = conn.unwrap();
/// #         std::thread::spawn(move || {
/// #             let mut buf = [0u8; 4096];
/// #             while conn.read(&mut buf).is_ok_and(|n| n > 0) {
/// #                 let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
/// #             }
/// #         });
/// #     }
/// # });
///
/// let ex = Executor::new()?;
/// let client: Client = Client::new(&ex.handle(), Options::default())?;
/// let response = ex.block_on(client.fetch(Easy::get(format!("{base}/ping"))))?;
/// assert_eq!((response.status(), &response.body[..]), (200, &b"hi"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client<T: 'static = (), R: Reactor + 'static = Loop> {
    inner: Rc<Inner<T>>,
    _reactor: std::marker::PhantomData<R>,
}

impl<T: 'static, R: Reactor + 'static> fmt::Debug for Client<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("multi", &self.inner.multi).finish()
    }
}

impl<T: 'static, R: Reactor + 'static> Client<T, R> {
    /// A client whose engine has `opts`, driven by a task on `handle`'s executor.
    pub fn new(handle: &Handle<R>, opts: Options) -> io::Result<Client<T, R>> {
        let mut multi = Multi::with_options(opts)?;
        let fd: OwnedFd =
            multi.poll_fd().map_err(|e| io::Error::other(e.to_string()))?.try_clone_to_owned()?;
        let inner = Rc::new(Inner {
            multi: RefCell::new(multi),
            incoming: RefCell::new(Vec::new()),
            cancels: RefCell::new(Vec::new()),
            done: RefCell::new(VecDeque::new()),
            done_waker: Cell::new(None),
            driver: Cell::new(None),
        });
        let task = DriverTask {
            inner: Rc::downgrade(&inner),
            io: Async::new(fd, handle)?,
            sleep: handle.sleep(std::time::Duration::ZERO),
            handle: handle.clone(),
        };
        handle.spawn_local(task).detach();
        Ok(Client { inner, _reactor: std::marker::PhantomData })
    }

    /// Runs one transfer; the future resolves to its response. Dropping the future cancels
    /// the transfer.
    pub fn fetch<U>(&self, easy: Easy<U>) -> Fetch<T> {
        let slot = Rc::new(Slot::default());
        let easy = easy.private(Private::Fetch(slot.clone()));
        self.inner.incoming.borrow_mut().push(easy);
        self.inner.kick();
        Fetch { slot, inner: Rc::downgrade(&self.inner) }
    }

    /// Starts a transfer whose outcome comes through [`completions`](Client::completions),
    /// with its private value.
    pub fn submit(&self, easy: Easy<T>) {
        self.inner.incoming.borrow_mut().push(easy.map_private(Private::Submit));
        self.inner.kick();
    }

    /// Finished submitted transfers, in the order they finished. The stream ends when nothing
    /// submitted is left to finish.
    pub fn completions(&self) -> Completions<'_, T> {
        Completions { inner: &self.inner }
    }

    /// Transfers running in the engine.
    pub fn running(&self) -> usize {
        self.inner.multi.borrow().running() + self.inner.incoming.borrow().len()
    }
}

impl<T, R: Reactor> Drop for Client<T, R> {
    fn drop(&mut self) {
        // The driver holds only a weak reference: woken, it finds the client gone and ends,
        // which gives its registration back to the reactor.
        self.inner.kick();
    }
}

/// One transfer's outcome, from [`Client::fetch`].
#[must_use = "a fetch does nothing unless awaited, and is cancelled when dropped"]
pub struct Fetch<T: 'static> {
    slot: Rc<Slot>,
    inner: Weak<Inner<T>>,
}

impl<T> fmt::Debug for Fetch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetch").field("id", &self.slot.id.get()).finish_non_exhaustive()
    }
}

impl<T> Future for Fetch<T> {
    type Output = Result<Response, XferError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.slot.result.borrow_mut().take() {
            return Poll::Ready(result);
        }
        if self.inner.strong_count() == 0 {
            return Poll::Ready(Err(XferError::Cancelled));
        }
        self.slot.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl<T> Drop for Fetch<T> {
    fn drop(&mut self) {
        if self.slot.result.borrow().is_none() {
            if let Some(inner) = self.inner.upgrade() {
                // Cancel at once when the engine is free; from inside one of its callbacks,
                // leave it to the driver's next turn.
                let id = self.slot.id.get();
                match (id, inner.multi.try_borrow_mut()) {
                    (Some(id), Ok(mut multi)) => {
                        let _ = multi.remove(id);
                    }
                    (None, Ok(_)) => {
                        let slot = &self.slot;
                        inner.incoming.borrow_mut().retain(|e| match &e.private {
                            Private::Fetch(s) => !Rc::ptr_eq(s, slot),
                            Private::Submit(_) => true,
                        });
                    }
                    (_, Err(_)) => {
                        inner.cancels.borrow_mut().push(self.slot.clone());
                        inner.kick();
                    }
                }
            }
        }
    }
}

/// The stream of [`Client::completions`].
pub struct Completions<'a, T: 'static> {
    inner: &'a Rc<Inner<T>>,
}

impl<T> fmt::Debug for Completions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions").finish_non_exhaustive()
    }
}

impl<T> Stream for Completions<'_, T> {
    type Item = Done<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Done<T>>> {
        if let Some(done) = self.inner.done.borrow_mut().pop_front() {
            return Poll::Ready(Some(done));
        }
        let submitted_left =
            self.inner.multi.borrow().running() > 0 || !self.inner.incoming.borrow().is_empty();
        if !submitted_left {
            return Poll::Ready(None);
        }
        self.inner.done_waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// Runs the engine: adds what was submitted, performs, routes completions, and sleeps on the
/// engine's epoll descriptor and its next timeout.
struct DriverTask<T, R: Reactor + 'static> {
    inner: Weak<Inner<T>>,
    io: Async<OwnedFd, R>,
    sleep: Sleep<R>,
    handle: Handle<R>,
}

impl<T, R: Reactor + 'static> Future for DriverTask<T, R> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.inner.upgrade() else { return Poll::Ready(()) };
        inner.driver.set(Some(cx.waker().clone()));
        loop {
            let timeout = {
                let mut multi = inner.multi.borrow_mut();
                for easy in inner.incoming.borrow_mut().drain(..) {
                    let slot = match &easy.private {
                        Private::Fetch(slot) => Some(slot.clone()),
                        Private::Submit(_) => None,
                    };
                    let id = multi.add(easy);
                    if let Some(slot) = slot {
                        slot.id.set(Some(id));
                    }
                }
                for slot in inner.cancels.borrow_mut().drain(..) {
                    if let Some(id) = slot.id.get() {
                        let _ = multi.remove(id);
                    }
                }
                // Only epoll itself failing can make perform fail; the transfers then end by
                // their own timeouts, so the driver keeps going rather than stranding them.
                let _ = multi.perform();
                let mut finished = false;
                while let Some((done, _)) = multi.info_read() {
                    match done.private {
                        Private::Fetch(slot) => {
                            *slot.result.borrow_mut() = Some(done.result);
                            if let Some(w) = slot.waker.take() {
                                w.wake();
                            }
                        }
                        Private::Submit(private) => {
                            inner.done.borrow_mut().push_back(Done {
                                id: done.id,
                                result: done.result,
                                private,
                            });
                            finished = true;
                        }
                    }
                }
                if finished || multi.running() == 0 {
                    if let Some(w) = inner.done_waker.take() {
                        w.wake();
                    }
                }
                multi.timeout()
            };
            if !inner.incoming.borrow().is_empty() || !inner.cancels.borrow().is_empty() {
                continue;
            }
            if self.io.poll_readable(cx).is_ready() {
                continue;
            }
            match timeout {
                Some(t) if t.is_zero() => continue,
                Some(t) => {
                    let deadline = self.handle.now() + t;
                    let this = &mut *self;
                    this.sleep.reset(deadline);
                    if Pin::new(&mut this.sleep).poll(cx).is_ready() {
                        continue;
                    }
                }
                None => {}
            }
            return Poll::Pending;
        }
    }
}
