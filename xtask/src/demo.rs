//! `cargo xtask demo`: the fetch farm (the `farm` crate), on embedded defaults with no external
//! server. Its worker processes are this same program, run as `xtask demo-worker`.

use crate::util::Result;

pub(crate) fn run(args: &[String]) -> Result {
    farm::run(args)
}

pub(crate) fn worker(args: &[String]) -> Result {
    farm::worker_main(args)
}
