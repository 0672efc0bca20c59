//! libFuzzer entry for `fuzzers::gearman_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::gearman_packets(data));
