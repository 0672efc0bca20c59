//! libFuzzer entry for `fuzzers::groupd_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::groupd_frames(data));
