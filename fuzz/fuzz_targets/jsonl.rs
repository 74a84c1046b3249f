//! Steering-pair and prompt JSONL. See `destein::fuzz_entry::jsonl`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| destein::fuzz_entry::jsonl(data));
