//! destein: DeStein detoxification (arXiv 2404.10464) on a quantized Llama-family model, natively and in
//! the browser. Modules, in the order a reader meets them: the model and its tokenizer, the steering math,
//! the detox vectors, generation, and (wasm only) the browser bindings.

// The threaded wasm build (nightly, see scripts/build-wasm.sh) sleeps on wasm's futex instructions.
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod bootstrap;
pub mod concept_eval;
pub mod control_vector;
pub mod error;
pub mod evaluation;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod generation;
pub mod judge;
pub mod kernels;
pub mod model;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod pool;
pub mod profile;
pub mod sentiment;
pub mod steering;
pub mod subspace;
pub mod tokenizer;
pub mod vectors;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};

/// Write `bytes` to `path` through a temporary file and a rename, so a failure never leaves half a file.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}
