//! A GGUF model file: loaded and, if it loads, run for one step. See `destein::fuzz_entry::gguf`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| destein::fuzz_entry::gguf(data));
