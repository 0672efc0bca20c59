//! libFuzzer entry for `fuzzers::journal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::journal(data));
