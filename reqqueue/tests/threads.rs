//! `SyncQueue` shared by several threads, each driving its entries on its own executor:
//! nothing lost, nothing run twice, one request at a time, FIFO per thread.

use evcore::Executor;
use reqqueue::SyncQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[test]
fn four_threads_share_one_queue() {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let q = SyncQueue::new("shared");
    let active = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::with_capacity(THREADS * EACH)));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (q, active, overlap, log) =
                (q.clone(), active.clone(), overlap.clone(), log.clone());
            std::thread::spawn(move || {
                let ex = Executor::new().unwrap();
                let h = ex.handle();
                let tasks: Vec<_> = (0..EACH)
                    .map(|i| {
                        let (active, overlap, log, h) =
                            (active.clone(), overlap.clone(), log.clone(), h.clone());
                        ex.spawn_local(q.add(move || async move {
                            if active.fetch_add(1, Ordering::SeqCst) != 0 {
                                overlap.fetch_add(1, Ordering::SeqCst);
                            }
                            log.lock().unwrap().push((t, i));
                            if i % 50 == 0 {
                                // Hold the queue across a real wait so other threads pile up.
                                h.sleep(std::time::Duration::from_micros(200)).await;
                            }
                            active.fetch_sub(1, Ordering::SeqCst);
                        }))
                    })
                    .collect();
                ex.block_on(async {
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlap.load(Ordering::SeqCst), 0, "two requests ran at once");
    let log = log.lock().unwrap();
    assert_eq!(log.len(), THREADS * EACH, "lost or repeated requests");
    for t in 0..THREADS {
        let seq: Vec<usize> = log.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
        assert_eq!(seq, (0..EACH).collect::<Vec<_>>(), "thread {t}: order or count wrong");
    }
    assert!(q.is_empty());
}

#[test]
fn sync_queue_handles_and_entries_are_send() {
    fn is_send<T: Send + Sync>(_: &T) {}
    let q = SyncQueue::new("s");
    is_send(&q);
    let entry = q.add(|| async { 1 });
    fn is_send_only<T: Send>(_: &T) {}
    is_send_only(&entry);
    let guard = std::thread::spawn(move || q.try_enter().is_none()).join().unwrap();
    assert!(guard, "the queue holds an entry, so try_enter must fail");
    drop(entry);
}
