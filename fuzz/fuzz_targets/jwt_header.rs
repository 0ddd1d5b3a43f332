//! The `jwt_header` fuzz target: libFuzzer around
//! [`warmgate_fuzz_targets::jwt_header::fuzz`], which says what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warmgate_fuzz_targets::jwt_header::fuzz(data));
