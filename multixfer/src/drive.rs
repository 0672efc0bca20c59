//! The default driver: a [`Multi`] in socket-interface mode on any evcore [`Reactor`]
//! ([`evcore::Loop`], or tokio through `evcore::TokioReactor`).
//!
//! It pulls the engine's changes with [`Multi::drain_updates`] and applies them to the
//! reactor (a socket's descriptor is its token), then turns the reactor and hands each event
//! back with [`Multi::socket_action`] or [`Multi::socket_action_timeout`]. This is the loop a
//! libcurl user writes around `curl_multi_socket_action`, written once.

use std::time::Duration;

use evcore::{Event, Reactor, TimerId, Token};

use crate::{Done, Multi, MultiError, Update};

/// The timer's token; socket tokens are descriptor numbers, which are never this large.
const TIMER: Token = Token(usize::MAX);

/// Connects one [`Multi`] to one [`Reactor`].
///
/// The engine tells changes only, so pair one engine with one reactor and one driver for
/// its life: a new reactor would never hear of the sockets announced to the old one.
///
/// ```
/// use evcore::Loop;
/// use multixfer::{drive::Driver, Easy, Multi};
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
/// let mut lp = Loop::new()?;
/// let mut multi = Multi::new()?;
/// for i in 0..100 {
///     multi.add(Easy::get(format!("{base}/f{i}")).discard_body());
/// }
/// let mut ok = 0;
/// Driver::new().run(&mut multi, &mut lp, |done| ok += usize::from(done.result.is_ok()))?;
/// assert_eq!(ok, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Driver {
    timer: Option<TimerId>,
    events: Vec<Event>,
}

impl Driver {
    /// A driver with no timer set.
    pub fn new() -> Driver {
        Driver::default()
    }

    /// Applies the engine's pending changes to the reactor.
    pub fn apply<T, S, R: Reactor>(
        &mut self,
        multi: &mut Multi<T, S>,
        reactor: &mut R,
    ) -> Result<(), MultiError> {
        for update in multi.drain_updates() {
            match update {
                Update::Socket { fd, poll } => {
                    let token = Token(fd as usize);
                    match poll.interest() {
                        Some(interest) => {
                            if reactor.reregister(fd, token, interest).is_err() {
                                reactor.register(fd, token, interest)?;
                            }
                        }
                        None => reactor.deregister(fd)?,
                    }
                }
                Update::Timer(timeout) => {
                    if let Some(id) = self.timer.take() {
                        reactor.cancel_timer(id);
                    }
                    if let Some(t) = timeout {
                        let deadline = reactor.now() + t;
                        self.timer = Some(reactor.add_timer(deadline, TIMER));
                    }
                }
            }
        }
        Ok(())
    }

    /// One turn: applies changes, waits up to `timeout` for the reactor, acts on what it
    /// reported, and passes finished transfers to `on_done`. Returns the transfers running.
    pub fn step<T, S, R: Reactor>(
        &mut self,
        multi: &mut Multi<T, S>,
        reactor: &mut R,
        timeout: Option<Duration>,
        on_done: &mut impl FnMut(Done<T>),
    ) -> Result<usize, MultiError> {
        // "Act at once" is done here and now, rather than through a zero timer and another
        // turn of the reactor: one wait fewer each time transfers are added.
        while multi.timeout() == Some(Duration::ZERO) {
            multi.socket_action_timeout()?;
        }
        self.apply(multi, reactor)?;
        self.events.clear();
        reactor.turn(timeout, &mut self.events)?;
        for ev in self.events.drain(..) {
            match ev {
                Event::Io(Token(fd), ready) => {
                    multi.socket_action(fd as i32, ready)?;
                }
                Event::Timer(TIMER) => {
                    self.timer = None;
                    multi.socket_action_timeout()?;
                }
                _ => {}
            }
        }
        while let Some((done, _)) = multi.info_read() {
            on_done(done);
        }
        Ok(multi.running())
    }

    /// Turns until no transfer is running.
    pub fn run<T, S, R: Reactor>(
        &mut self,
        multi: &mut Multi<T, S>,
        reactor: &mut R,
        mut on_done: impl FnMut(Done<T>),
    ) -> Result<(), MultiError> {
        // Transfers added before the first turn are started by the timer the engine set.
        while multi.running() > 0 || multi.info_read_pending() {
            self.step(multi, reactor, None, &mut on_done)?;
        }
        self.apply(multi, reactor)?;
        Ok(())
    }
}
