//! Barriers and blockers: `Enter`, `Guard`, `Blocker`, `Retriggered`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::entry::leave;
use crate::shared::{Local, Sharing};
use crate::state::{Turn, NIL};
use crate::QueueError;

/// The future of [`Queue::enter`](crate::QueueHandle::enter): resolves to a [`Guard`] once every
/// earlier entry has finished.
pub struct Enter<S: Sharing = Local> {
    shared: S,
    key: u32,
    refused: Option<QueueError>,
}

impl<S: Sharing> Enter<S> {
    pub(crate) fn new(shared: S, key: Result<u32, QueueError>) -> Self {
        match key {
            Ok(key) => Enter { shared, key, refused: None },
            Err(e) => Enter { shared, key: NIL, refused: Some(e) },
        }
    }
}

impl<S: Sharing> Future for Enter<S> {
    type Output = Result<Guard<S>, QueueError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(e) = this.refused.take() {
            return Poll::Ready(Err(e));
        }
        if this.key == NIL {
            return Poll::Ready(Err(QueueError::Finished));
        }
        let key = this.key;
        match this.shared.with(|s| s.poll_turn(key, cx.waker())) {
            Turn::Start => {
                this.key = NIL;
                Poll::Ready(Ok(Guard::new(this.shared.clone(), key)))
            }
            Turn::Closed => {
                leave(&this.shared, &mut this.key);
                Poll::Ready(Err(QueueError::Closed))
            }
            Turn::Wait => Poll::Pending,
            Turn::Yield => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<S: Sharing> Drop for Enter<S> {
    fn drop(&mut self) {
        leave(&self.shared, &mut self.key);
    }
}

/// Holds the queue: nothing queued after it starts until it is dropped.
pub struct Guard<S: Sharing = Local> {
    shared: S,
    key: u32,
}

impl<S: Sharing> Guard<S> {
    pub(crate) fn new(shared: S, key: u32) -> Self {
        Guard { shared, key }
    }

    /// `tevent_queue_entry_untrigger`: marks this head as not yet started, so that the next
    /// [`Queue::start`](crate::QueueHandle::start) triggers it again (await
    /// [`retriggered`](Self::retriggered) for that). Allowed only when the queue is stopped and
    /// this is its head; otherwise an error (tevent aborts the process).
    pub fn untrigger(&mut self) -> Result<(), QueueError> {
        let key = self.key;
        self.shared.with(|s| s.untrigger(key))
    }

    /// Resolves when the queue triggers this head again after [`untrigger`](Self::untrigger)
    /// and [`Queue::start`](crate::QueueHandle::start); at once if it is triggered already.
    pub fn retriggered(&mut self) -> Retriggered<'_, S> {
        Retriggered { guard: self }
    }
}

impl<S: Sharing> Drop for Guard<S> {
    fn drop(&mut self) {
        leave(&self.shared, &mut self.key);
    }
}

/// The future of [`Guard::retriggered`].
pub struct Retriggered<'a, S: Sharing = Local> {
    guard: &'a mut Guard<S>,
}

impl<S: Sharing> Future for Retriggered<'_, S> {
    type Output = Result<(), QueueError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let guard = &mut *self.get_mut().guard;
        let key = guard.key;
        let turn = guard.shared.with(|s| {
            if s.is_triggered(key) {
                Turn::Start
            } else {
                s.poll_turn(key, cx.waker())
            }
        });
        match turn {
            Turn::Start => Poll::Ready(Ok(())),
            Turn::Closed => Poll::Ready(Err(QueueError::Closed)),
            Turn::Wait => Poll::Pending,
            Turn::Yield => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// An entry that holds its place, and the queue behind it once it is the head, until dropped.
pub struct Blocker<S: Sharing = Local> {
    shared: S,
    key: u32,
}

impl<S: Sharing> Blocker<S> {
    pub(crate) fn new(shared: S, key: u32) -> Self {
        Blocker { shared, key }
    }
}

impl<S: Sharing> Drop for Blocker<S> {
    fn drop(&mut self) {
        leave(&self.shared, &mut self.key);
    }
}

macro_rules! debug_named {
    ($($t:ident),*) => {$(
        impl<S: Sharing> fmt::Debug for $t<S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("queued", &(self.key != NIL)).finish()
            }
        }
    )*};
}
debug_named!(Enter, Guard, Blocker);

impl<S: Sharing> fmt::Debug for Retriggered<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retriggered").finish_non_exhaustive()
    }
}
