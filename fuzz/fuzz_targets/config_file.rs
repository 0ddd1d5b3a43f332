//! The `config_file` fuzz target: libFuzzer around
//! [`warmgate_fuzz_targets::config_file::fuzz`], which says what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warmgate_fuzz_targets::config_file::fuzz(data));
