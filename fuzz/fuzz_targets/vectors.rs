//! A vector file (safetensors header, tensors, metadata). See `destein::fuzz_entry::vectors`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| destein::fuzz_entry::vectors(data));
