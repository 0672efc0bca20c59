//! The connection cache: its size limit (`CURLMOPT_MAXCONNECTS`) and idle age
//! (`CURLOPT_MAXAGE_CONN`), on a mock clock.

mod common;

use std::time::Duration;

use common::{answer_all, run_on, Server};
use evcore::{Clock, Loop};
use multixfer::drive::Driver;
use multixfer::{Easy, Multi, Options};

#[test]
fn idle_connections_are_capped_and_expire() {
    let server =
        Server::start(|c| answer_all(c, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let (clock, mock) = Clock::mock();
    let mut opts = Options::default();
    opts.max_connects = Some(2);
    let mut multi: Multi = Multi::with_clock(opts, clock).unwrap();
    for _ in 0..5 {
        multi.add(Easy::get(server.url("/")));
    }
    let (mut lp, mut driver) = (Loop::new().unwrap(), Driver::new());
    assert_eq!(run_on(&mut multi, &mut lp, &mut driver).len(), 5);
    assert_eq!(multi.connects(), 5, "five at once need five connections");
    assert_eq!(multi.connections(), 2, "only two are kept for reuse");
    // Reused while young.
    multi.add(Easy::get(server.url("/")));
    assert!(run_on(&mut multi, &mut lp, &mut driver)[0].result.as_ref().unwrap().reused);
    assert_eq!(multi.connects(), 5);
    // Closed once older than the idle age (118 s by default).
    mock.advance(Duration::from_secs(117));
    multi.socket_action_timeout().unwrap();
    assert_eq!(multi.connections(), 2);
    mock.advance(Duration::from_secs(2));
    multi.socket_action_timeout().unwrap();
    assert_eq!(multi.connections(), 0);
    // The Removes reach the loop before the next transfer.
    driver.apply(&mut multi, &mut lp).unwrap();
    multi.add(Easy::get(server.url("/")));
    assert!(!run_on(&mut multi, &mut lp, &mut driver)[0].result.as_ref().unwrap().reused);
    assert_eq!(multi.connects(), 6);
}
