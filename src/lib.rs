//! destein: DeStein detoxification (arXiv 2404.10464) on a quantized Llama-family model, natively and in
//! the browser. Modules in layers, each using only the layers below it: the engine (kernels, model, tokenizer,
//! profile, pool), the steering math, the detox vectors, generation (which applies the steering), evaluation,
//! and the front ends: (wasm only) the browser bindings here, the `destein` CLI in src/bin/destein/.

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
///
/// The temporary file is `.NAME.partial` beside `path`: in the same directory, so the rename is atomic (a kill at
/// any moment leaves either the previous file or the new one under `path`, never a truncated one); hidden and
/// named as unfinished, so it cannot be mistaken for output; and the same name every time, so the next write of
/// `path` overwrites whatever a killed one left.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let Some(name) = path.file_name() else {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot write {}: the path names no file", path.display()),
        )));
    };
    let tmp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced; where a directory cannot be opened for
        // that (not on Unix), the rename still happened.
        if let Ok(d) = std::fs::File::open(dir.unwrap_or(std::path::Path::new("."))) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io(std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
    })
}
