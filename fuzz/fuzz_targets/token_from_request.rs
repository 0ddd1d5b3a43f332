//! The `token_from_request` fuzz target: libFuzzer around
//! [`warmgate_fuzz_targets::token_from_request::fuzz`], which says what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warmgate_fuzz_targets::token_from_request::fuzz(data));
