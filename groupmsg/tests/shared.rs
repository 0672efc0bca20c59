//! One CPG handle on groupd shared by 100 tokio tasks on a 4-thread runtime: every message
//! arrives, each task's in the order it sent them.

#[path = "../examples/tokio_group.rs"]
mod example;

#[test]
fn one_handle_shared_by_100_tokio_tasks_through_groupd() {
    let path = std::env::temp_dir().join(format!("tokio-group-{}.sock", std::process::id()));
    let daemon = groupmsg::Groupd::bind(&path).unwrap();
    std::thread::spawn(move || daemon.run());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let (total, out_of_order) = rt.block_on(example::run(&path, 100, 100)).unwrap();
    assert_eq!(total, 10_000);
    assert_eq!(out_of_order, 0);
}
