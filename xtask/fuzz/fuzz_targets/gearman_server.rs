//! libFuzzer entry for `fuzzers::gearman_server`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::gearman_server(data));
