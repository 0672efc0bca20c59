//! The canonical tevent_queue job: many concurrent requests write large buffers into one real
//! socket, and the queue makes each write finish before the next begins.
//!
//! Eight writers each send 1 MiB of their own byte over one TCP connection; without the queue
//! their partial writes would interleave on the wire. The reader checks that the 8 MiB arrive
//! as eight unmixed blocks. Run it with `cargo run -p reqqueue --example socket_writer`; `cargo
//! test` runs it too.

use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use evcore::{Async, Executor};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use reqqueue::Queue;

const WRITERS: usize = 8;
const BLOCK: usize = 1 << 20;

/// Runs the example; returns the order in which the writers' blocks arrived.
fn run() -> std::io::Result<Vec<u8>> {
    let ex = Executor::new()?;
    let h = ex.handle();
    ex.block_on(async {
        let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap(), &h)?;
        let addr = listener.get_ref().local_addr()?;
        let reader = h.spawn_local(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut all = Vec::with_capacity(WRITERS * BLOCK);
            conn.read_to_end(&mut all).await?;
            Ok::<_, std::io::Error>(all)
        });
        let socket = Rc::new(Async::<TcpStream>::connect(addr, &h).await?);
        let queue = Queue::new("socket writer");
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let socket = socket.clone();
                // Each request takes the socket only when it reaches the head of the queue.
                h.spawn_local(queue.add(move || async move {
                    let block = vec![b'A' + w as u8; BLOCK];
                    (&*socket).write_all(&block).await
                }))
            })
            .collect();
        for w in writers {
            w.await.map_err(std::io::Error::other)??;
        }
        drop(Rc::try_unwrap(socket).map_err(|_| std::io::Error::other("socket still shared"))?);
        let all = reader.await?;
        if all.len() != WRITERS * BLOCK {
            return Err(std::io::Error::other(format!("got {} bytes", all.len())));
        }
        let mut order = Vec::new();
        for block in all.chunks(BLOCK) {
            if block.iter().any(|b| *b != block[0]) {
                return Err(std::io::Error::other("writes interleaved on the wire"));
            }
            order.push(block[0]);
        }
        Ok(order)
    })
}

fn main() -> std::io::Result<()> {
    let order = run()?;
    println!(
        "{} writers x {} KiB arrived unmixed, in order {}",
        WRITERS,
        BLOCK / 1024,
        String::from_utf8_lossy(&order)
    );
    Ok(())
}

#[test]
fn blocks_arrive_unmixed_in_fifo_order() {
    let order = run().unwrap();
    assert_eq!(order, b"ABCDEFGH");
}
