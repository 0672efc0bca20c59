//! The client's bookkeeping, with no I/O: which requests await a direct reply (in order), which
//! job handles belong to which submissions, and the events each submission has received.

use std::collections::{HashMap, VecDeque};
use std::task::Waker;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::JobEvent;
use crate::proto::{encode, Magic, Packet, PacketType};
use crate::Error;

/// What a slot receives.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// JOB_CREATED for a submission.
    Created(Bytes),
    /// A WORK_* event for a foreground job.
    Event(JobEvent),
    /// A direct reply (ECHO_RES, STATUS_RES, STATUS_RES_UNIQUE, OPTION_RES).
    Reply(Packet),
    /// The request or job failed.
    Failed(Error),
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) inbox: VecDeque<Delivery>,
    waker: Option<Waker>,
    /// The job handle, once created (foreground jobs only are routed by it).
    handle: Option<Bytes>,
    /// Whether this submission is a foreground job whose WORK_* events are wanted.
    foreground: bool,
    /// Never reused: a deadline names its slot by key and serial, so a deadline left over
    /// from a freed slot cannot fire on the next request given the same key.
    serial: u64,
}

/// Submissions sharing one handle (the same unique submitted twice on this connection): each
/// packet is sent once per submission, back to back, so copies are dealt out in turn.
#[derive(Debug, Default)]
struct Route {
    slots: Vec<usize>,
    next: usize,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) out: BytesMut,
    pub(crate) driver: Option<Waker>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Slots awaiting a direct reply, oldest first: gearmand answers in order, and its ERROR
    /// packet names no handle, so order is the only way to match it.
    /// Each by key and serial: a key freed before its reply came may be given to a later
    /// request, and that late reply must not be taken for the later request's.
    replies: VecDeque<(usize, u64)>,
    routes: HashMap<Bytes, Route>,
    pub(crate) dead: bool,
    /// Why the connection died, when TLS failed (an alert from the server refusing our
    /// certificate, say): the waiters hear [`Error::Tls`] rather than `Disconnected`.
    tls_failure: Option<String>,
    pub(crate) handles: usize,
    /// Options set on this connection (OPTION_REQ), re-sent on a reconnect.
    pub(crate) options: Vec<Bytes>,
    next_serial: u64,
    /// Client-side deadlines asked for since the driver last looked: (key, serial, after).
    /// The driver arms them on its reactor's clock.
    pub(crate) new_deadlines: Vec<(usize, u64, Duration)>,
}

impl State {
    pub(crate) fn new() -> State {
        State { handles: 1, ..State::default() }
    }

    /// Queues a request whose answer goes to a new slot; returns the slot.
    pub(crate) fn request(
        &mut self,
        kind: PacketType,
        args: &[&[u8]],
        foreground: bool,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        if self.dead {
            return Err(self.death());
        }
        encode(&mut self.out, Magic::Req, kind, args)?;
        self.next_serial += 1;
        let serial = self.next_serial;
        let slot = Slot { foreground, serial, ..Slot::default() };
        let key = match self.free.pop() {
            Some(k) => {
                self.slots[k] = Some(slot);
                k
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        self.replies.push_back((key, serial));
        if let Some(after) = timeout {
            self.new_deadlines.push((key, serial, after));
        }
        Ok(key)
    }

    /// A deadline passed: the slot it was armed for, if still the same request, fails with
    /// [`Error::TimedOut`] after whatever it has already received.
    pub(crate) fn time_out(&mut self, key: usize, serial: u64, wake: &mut Vec<Waker>) {
        if let Some(Some(slot)) = self.slots.get(key) {
            if slot.serial == serial {
                self.deliver(key, Delivery::Failed(Error::TimedOut), wake);
            }
        }
    }

    /// Takes the next delivery for a slot, or stores the waker.
    pub(crate) fn poll_slot(&mut self, key: usize, waker: &Waker) -> Option<Delivery> {
        let slot = self.slots.get_mut(key)?.as_mut()?;
        match slot.inbox.pop_front() {
            Some(d) => Some(d),
            None if self.dead => Some(Delivery::Failed(self.death())),
            None => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                None
            }
        }
    }

    /// Frees a slot; later packets for its handle are dropped.
    pub(crate) fn release(&mut self, key: usize) {
        let Some(Some(slot)) = self.slots.get_mut(key).map(Option::take) else { return };
        if let Some(h) = slot.handle {
            self.unroute(&h, key);
        }
        self.free.push(key);
        // A slot still awaiting its reply stays in `replies` (by key and serial): its reply,
        // when it comes, is dropped, and the replies after it keep their places.
    }

    fn unroute(&mut self, handle: &Bytes, key: usize) {
        if let Some(route) = self.routes.get_mut(handle) {
            route.slots.retain(|&k| k != key);
            if route.slots.is_empty() {
                self.routes.remove(handle);
            } else {
                route.next %= route.slots.len();
            }
        }
    }

    fn deliver(&mut self, key: usize, d: Delivery, wake: &mut Vec<Waker>) {
        if let Some(Some(slot)) = self.slots.get_mut(key) {
            slot.inbox.push_back(d);
            wake.extend(slot.waker.take());
        }
    }

    /// Routes one response packet; returns the wakers to call.
    pub(crate) fn dispatch(&mut self, p: Packet) -> Vec<Waker> {
        let mut wake = Vec::new();
        use PacketType as T;
        match p.kind() {
            T::JobCreated => {
                let Some(key) = self.next_reply() else { return wake };
                let handle = p.arg(0);
                if let Some(Some(slot)) = self.slots.get_mut(key) {
                    slot.handle = Some(handle.clone());
                    if slot.foreground {
                        self.routes.entry(handle.clone()).or_default().slots.push(key);
                    }
                }
                self.deliver(key, Delivery::Created(handle), &mut wake);
            }
            T::EchoRes | T::StatusRes | T::StatusResUnique | T::OptionRes => {
                if let Some(key) = self.next_reply() {
                    self.deliver(key, Delivery::Reply(p), &mut wake);
                }
            }
            T::Error => {
                if let Some(key) = self.next_reply() {
                    let code = String::from_utf8_lossy(p.arg_ref(0)).into_owned();
                    let text = String::from_utf8_lossy(p.arg_ref(1)).into_owned();
                    self.deliver(key, Delivery::Failed(Error::Server { code, text }), &mut wake);
                }
            }
            T::WorkData
            | T::WorkWarning
            | T::WorkStatus
            | T::WorkComplete
            | T::WorkFail
            | T::WorkException => {
                let handle = p.arg(0);
                let Some(route) = self.routes.get_mut(&handle) else { return wake };
                let key = route.slots[route.next % route.slots.len()];
                route.next = (route.next + 1) % route.slots.len();
                let event = match p.kind() {
                    T::WorkData => JobEvent::Data(p.arg(1)),
                    T::WorkWarning => JobEvent::Warning(p.arg(1)),
                    T::WorkStatus => JobEvent::Status {
                        numerator: p.number(1, "status numerator").unwrap_or(0),
                        denominator: p.number(2, "status denominator").unwrap_or(0),
                    },
                    T::WorkComplete => JobEvent::Complete(p.arg(1)),
                    T::WorkFail => JobEvent::Fail,
                    _ => JobEvent::Exception(p.arg(1)),
                };
                if event.is_terminal() {
                    self.unroute(&handle, key);
                }
                self.deliver(key, Delivery::Event(event), &mut wake);
            }
            // Worker-side packets are not for a client; gearmand sends none of them here.
            _ => {}
        }
        wake
    }

    /// The slot the reply that just came answers: the oldest request still awaiting one.
    /// `None` when that request was given up (its slot freed, perhaps given to a later
    /// request): the reply is its, and is dropped, not handed to the next in line.
    fn next_reply(&mut self) -> Option<usize> {
        let (key, serial) = self.replies.pop_front()?;
        match self.slots.get(key) {
            Some(Some(slot)) if slot.serial == serial => Some(key),
            _ => None,
        }
    }

    /// What a request on a dead connection gets.
    fn death(&self) -> Error {
        match &self.tls_failure {
            Some(text) => Error::Tls(text.clone()),
            None => Error::Disconnected,
        }
    }

    /// The connection is gone (TLS failed, with its text): every waiter learns it.
    pub(crate) fn fail_all(&mut self, tls_failure: Option<String>) -> Vec<Waker> {
        self.dead = true;
        if self.tls_failure.is_none() {
            self.tls_failure = tls_failure;
        }
        self.slots.iter_mut().flatten().filter_map(|s| s.waker.take()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request given up before its reply came (its key freed, then reused by the next
    /// request) must not receive that late reply: it goes nowhere, and the next request
    /// gets its own.
    #[test]
    fn a_late_reply_to_a_freed_slot_is_not_given_to_the_slots_next_request() {
        use crate::proto::{encode, Decoder, Frame, Magic};
        let reply = |data: &[u8]| {
            let mut buf = BytesMut::new();
            encode(&mut buf, Magic::Res, PacketType::EchoRes, &[data]).unwrap();
            match Decoder::client().decode(&mut buf).unwrap() {
                Some(Frame::Packet(p)) => p,
                _ => unreachable!("one whole packet"),
            }
        };
        let mut st = State::new();
        let a = st.request(PacketType::EchoReq, &[b"a"], false, None).unwrap();
        st.release(a);
        let b = st.request(PacketType::EchoReq, &[b"b"], false, None).unwrap();
        assert_eq!(a, b, "the key is reused");
        let waker = std::task::Waker::noop();
        st.dispatch(reply(b"a"));
        assert!(st.poll_slot(b, waker).is_none(), "a's late reply is not b's");
        st.dispatch(reply(b"b"));
        match st.poll_slot(b, waker) {
            Some(Delivery::Reply(p)) => assert_eq!(p.arg_ref(0), b"b"),
            other => panic!("b's own reply: {other:?}"),
        }
    }

    /// A deadline armed for a request whose slot was freed and given to the next request
    /// must not fail that next request (the slot key is reused; the serial is not).
    #[test]
    fn a_stale_deadline_does_not_fire_on_a_reused_slot() {
        let mut st = State::new();
        let first = st.request(PacketType::EchoReq, &[b"a"], false, Some(Duration::from_millis(5)));
        let first = first.unwrap();
        let (key, serial, _) = st.new_deadlines.pop().unwrap();
        assert_eq!(key, first);
        st.release(first);
        let second = st.request(PacketType::EchoReq, &[b"b"], false, None).unwrap();
        assert_eq!(second, first, "the freed key is reused");
        let mut wake = Vec::new();
        st.time_out(key, serial, &mut wake);
        let waker = std::task::Waker::noop();
        assert!(st.poll_slot(second, waker).is_none(), "the new request was not timed out");
        // The live request's own deadline does fire.
        let third = st.request(PacketType::EchoReq, &[b"c"], false, Some(Duration::ZERO));
        let (key, serial, _) = st.new_deadlines.pop().unwrap();
        assert_eq!(Some(key), third.ok());
        st.time_out(key, serial, &mut wake);
        assert!(matches!(st.poll_slot(key, waker), Some(Delivery::Failed(Error::TimedOut))));
    }
}
