//! libFuzzer entry for `fuzzers::http_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzers::http_response(data));
