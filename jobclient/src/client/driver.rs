//! The task that owns a client's connection: writes what the handles queued, reads and routes
//! what the server sends.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::state::State;
use crate::conn::Conn;

pub(crate) async fn drive(mut conn: Conn, state: Rc<RefCell<State>>) {
    poll_fn(|cx| {
        {
            let mut st = state.borrow_mut();
            if st.handles == 0 {
                return Poll::Ready(());
            }
            let out = st.out.split();
            conn.wbuf.unsplit(out);
            st.driver = Some(cx.waker().clone());
        }
        if let Poll::Ready(Err(_)) = conn.poll_flush(cx) {
            return fail(&state);
        }
        loop {
            match conn.poll_packet(cx) {
                Poll::Ready(Ok(packet)) => {
                    let wake = state.borrow_mut().dispatch(packet);
                    for w in wake {
                        w.wake();
                    }
                }
                Poll::Ready(Err(_)) => return fail(&state),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

fn fail(state: &Rc<RefCell<State>>) -> Poll<()> {
    let wake = state.borrow_mut().fail_all();
    for w in wake {
        w.wake();
    }
    Poll::Ready(())
}
