//! The parsers that take untrusted bytes, each behind one function, for the fuzz targets (fuzz/fuzz_targets/) and
//! the replay of their corpus in the tests (tests/fuzz_regressions.rs): every input must end in a value or an error,
//! never a panic, a hang or a huge allocation.

use crate::evaluation::parse_prompts;
use crate::judge::{ProfanityCheck, ToxBlock};
use crate::model::{Cache, LoadDtype, Model};
use crate::sentiment::Vader;
use crate::vectors::{parse_pairs, DetoxVectors};

/// A GGUF model file (the page loads any the user drops in), loaded and, if it loads, run for one step.
pub fn gguf(data: &[u8]) {
    let Ok(model) = Model::from_gguf_bytes(data, LoadDtype::AsIs, Some(String::new())) else { return };
    let Ok(ids) = model.tokenizer.encode("Hello there") else { return };
    if ids.is_empty() {
        return;
    }
    let mut cache = Cache::new(&model);
    if let Ok(tokens) = model.token_tensor(&[ids]) {
        let _ = model.forward_last(&tokens, &mut cache, None);
    }
}

/// A vector file (safetensors header, tensors and metadata).
pub fn vectors(data: &[u8]) {
    let _ = DetoxVectors::from_safetensors_bytes(data);
}

/// Steering-pair JSONL (the vector lab's import, `destein derive`) and prompt JSONL (`destein eval`).
pub fn jsonl(data: &[u8]) {
    let _ = parse_pairs(data);
    let _ = parse_prompts(data, "fuzz.jsonl");
}

/// The judges' data files: tox-block (safetensors weights + JSON vocabulary; the first four bytes, little-endian,
/// say where the rest splits into the two), alt-profanity-check (JSON) and the VADER lexicon, each used once.
pub fn judges(data: &[u8]) {
    let Some((split, rest)) = data.split_first_chunk::<4>() else { return };
    let (weights, vocab) = rest.split_at((u32::from_le_bytes(*split) as usize).min(rest.len()));
    let text = "you are such a GOOD friend :) but not really!!";
    if let Ok(judge) = ToxBlock::from_bytes(weights, vocab) {
        let _ = judge.score(text);
    }
    if let Ok(judge) = ProfanityCheck::from_json(rest) {
        let _ = judge.score(text);
    }
    if let Ok(vader) = Vader::from_bytes(rest) {
        let _ = vader.polarity(text);
    }
}
