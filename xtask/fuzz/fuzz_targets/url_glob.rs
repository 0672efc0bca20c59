//! libFuzzer entry for `fuzzers::url_glob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::url_glob(data));
