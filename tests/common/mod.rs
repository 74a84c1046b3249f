//! Shared helpers for tests that need the real model (fetched by scripts/fetch-model.sh).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use destein::model::{LoadDtype, Model};

pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

pub fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "the real model is missing at {}: run scripts/fetch-model.sh (the test command does)",
        path.display()
    );
    path
}

pub fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(model_path()).expect("read model"))
}

/// The real model, loaded once per test binary per dtype.
pub fn model(dtype: LoadDtype) -> &'static Model {
    static AS_IS: OnceLock<Model> = OnceLock::new();
    static Q8: OnceLock<Model> = OnceLock::new();
    static F32: OnceLock<Model> = OnceLock::new();
    let cell = match dtype {
        LoadDtype::AsIs => &AS_IS,
        LoadDtype::Q8_0 => &Q8,
        LoadDtype::F32 => &F32,
    };
    cell.get_or_init(|| {
        Model::from_gguf_bytes(model_bytes(), dtype, Some(MODEL_SHA256.to_string())).expect("load model")
    })
}
