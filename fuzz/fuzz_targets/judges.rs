//! The judges' data files (tox-block, alt-profanity-check, VADER). See `destein::fuzz_entry::judges`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| destein::fuzz_entry::judges(data));
