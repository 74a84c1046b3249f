//! The Rust judges against scores computed by the original PyPI packages
//! (`tests/fixtures/judge_reference.json`, written by `scripts/export_judges.py`).

use std::path::PathBuf;

use destein::judge::{JudgeError, ProfanityCheck, ToxBlock, TOX_BLOCK_LABELS};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    category: String,
    text: String,
    tox_block: Vec<f64>,
    tox_block_rescaled: Option<Vec<f64>>,
    tox_block_words: Vec<String>,
    tox_block_tokens: Vec<u32>,
    profanity_check: f64,
    profanity_words: Vec<String>,
}

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn reference() -> Reference {
    serde_json::from_slice(&read("tests/fixtures/judge_reference.json")).expect("reference json")
}

fn tox_block() -> ToxBlock {
    ToxBlock::from_bytes(&read("data/judges/tox_block.safetensors"), &read("data/judges/tox_block_vocab.json"))
        .expect("tox-block loads")
}

fn profanity() -> ProfanityCheck {
    ProfanityCheck::from_json(&read("data/judges/profanity_check.json")).expect("profanity-check loads")
}

fn short(t: &str) -> String {
    let s: String = t.chars().take(60).collect();
    format!("{s:?}")
}

#[test]
fn reference_covers_the_edge_cases() {
    let r = reference();
    assert!(r.cases.len() >= 300, "{} cases", r.cases.len());
    let has = |f: &dyn Fn(&str) -> bool| r.cases.iter().any(|c| f(&c.text));
    assert!(has(&|t| t.is_empty()));
    assert!(has(&|t| !t.is_empty() && t.trim().is_empty()));
    assert!(has(&|t| t.split_whitespace().count() > 500));
    assert!(has(&|t| t.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))));
    assert!(has(&|t| t.chars().any(|c| c as u32 >= 0x1f300)));
}

#[test]
fn tox_block_tokenisation_matches_keras() {
    let tb = tox_block();
    for c in reference().cases {
        let lowered = c.text.to_lowercase();
        let words: Vec<&str> = tb.words(&lowered).collect();
        assert_eq!(words, c.tox_block_words, "words of {}", short(&c.text));
        assert_eq!(tb.token_ids(&c.text), c.tox_block_tokens, "ids of {}", short(&c.text));
    }
}

#[test]
fn tox_block_matches_the_package() {
    let tb = tox_block();
    let (mut max_raw, mut max_toxic, mut max_rescaled) = (0f64, 0f64, 0f64);
    let mut worst = String::new();
    for c in reference().cases {
        let got = tb.score_all(&c.text);
        for (l, (&g, &want)) in got.iter().zip(&c.tox_block).enumerate() {
            let d = (g as f64 - want).abs();
            assert!(d <= 1e-5, "{} of {}: rust {g} vs package {want}", TOX_BLOCK_LABELS[l], short(&c.text));
            if d > max_raw {
                max_raw = d;
                worst = short(&c.text);
            }
            if l == 0 {
                max_toxic = max_toxic.max(d);
                assert_eq!(tb.score(&c.text), g);
            }
        }
        if let Some(want) = &c.tox_block_rescaled {
            for (&g, &w) in tb.score_all_rescaled(&c.text).iter().zip(want) {
                let d = (g as f64 - w).abs();
                assert!(d <= 1e-5, "rescaled of {}: rust {g} vs package {w}", short(&c.text));
                max_rescaled = max_rescaled.max(d);
            }
        }
    }
    eprintln!(
        "tox-block max |rust - package|: all labels {max_raw:.3e} (worst {worst}), toxic {max_toxic:.3e}, \
         rescaled {max_rescaled:.3e}"
    );
}

#[test]
fn profanity_tokenisation_matches_sklearn() {
    let pc = profanity();
    for c in reference().cases {
        let lowered = c.text.to_lowercase();
        let words: Vec<&str> = pc.words(&lowered).collect();
        assert_eq!(words, c.profanity_words, "tokens of {}", short(&c.text));
    }
}

#[test]
fn profanity_matches_the_package() {
    let pc = profanity();
    let mut max = 0f64;
    for c in reference().cases {
        let got = pc.score(&c.text);
        let d = (got - c.profanity_check).abs();
        assert!(d <= 1e-9, "{}: rust {got} vs package {}", short(&c.text), c.profanity_check);
        max = max.max(d);
    }
    eprintln!("profanity-check max |rust - package|: {max:.3e}");
}

#[test]
fn sanity_insult_vs_neutral() {
    let tb = tox_block();
    let pc = profanity();
    for t in ["You are a fucking idiot.", "Shut up, you moron!"] {
        assert!(tb.score(t) > 0.5, "{t}: {}", tb.score(t));
        assert!(pc.score(t) > 0.5, "{t}: {}", pc.score(t));
    }
    for t in ["The weather today is sunny with a light breeze.", "Thank you for your help with the project."] {
        assert!(tb.score(t) < 0.1, "{t}: {}", tb.score(t));
        assert!(pc.score(t) < 0.1, "{t}: {}", pc.score(t));
    }
    // the categories agree with the reference on average too
    let r = reference();
    let mean = |cat: &str| {
        let v: Vec<f32> = r.cases.iter().filter(|c| c.category == cat).map(|c| tb.score(&c.text)).collect();
        v.iter().sum::<f32>() / v.len() as f32
    };
    assert!(mean("insult") > 0.8 && mean("neutral") < 0.15, "{} {}", mean("insult"), mean("neutral"));
}

#[test]
fn corrupt_weights_are_errors_not_panics() {
    let weights = read("data/judges/tox_block.safetensors");
    let vocab = read("data/judges/tox_block_vocab.json");
    for cut in [0, 7, 8, 100, weights.len() / 2, weights.len() - 1] {
        let r = ToxBlock::from_bytes(&weights[..cut], &vocab);
        assert!(matches!(r, Err(JudgeError::Safetensors(_))), "truncated at {cut}: {:?}", r.err());
    }
    let mut garbled = weights.clone();
    garbled[8..16].copy_from_slice(b"garbage!");
    assert!(matches!(ToxBlock::from_bytes(&garbled, &vocab), Err(JudgeError::Safetensors(_))));
    let e = ToxBlock::from_bytes(&weights, b"[1, 2").err().expect("bad vocab json");
    assert!(matches!(e, JudgeError::Json { .. }), "{e}");
    let e = ToxBlock::from_bytes(&weights, br#"{"x": 20000}"#).err().expect("index out of range");
    assert!(e.to_string().contains("outside"), "{e}");
}

/// A hand-made safetensors file: 8-byte LE header length, JSON header, data.
fn safetensors_bytes(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in tensors {
        let len = shape.iter().product::<usize>() * 4;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.resize(out.len() + offset, 0);
    out
}

#[test]
fn missing_tensor_and_wrong_shape_are_named() {
    let full: Vec<(&str, Vec<usize>)> = vec![
        ("embedding", vec![10, 50]),
        ("forward.kernel", vec![50, 200]),
        ("forward.recurrent_kernel", vec![50, 200]),
        ("forward.bias", vec![200]),
        ("backward.kernel", vec![50, 200]),
        ("backward.recurrent_kernel", vec![50, 200]),
        ("backward.bias", vec![200]),
        ("dense.kernel", vec![100, 50]),
        ("dense.bias", vec![50]),
        ("out.kernel", vec![50, 6]),
        ("out.bias", vec![6]),
    ];
    // all zeros is a valid (if useless) model: every text scores sigmoid(0) = 0.5
    let tb = ToxBlock::from_bytes(&safetensors_bytes(&full), br#"{"hello": 3}"#).expect("zero model");
    assert_eq!(tb.score("hello world"), 0.5);

    let without: Vec<_> = full.iter().filter(|(n, _)| *n != "backward.bias").cloned().collect();
    match ToxBlock::from_bytes(&safetensors_bytes(&without), b"{}") {
        Err(e @ JudgeError::MissingTensor(_)) => assert!(e.to_string().contains("backward.bias"), "{e}"),
        other => panic!("expected MissingTensor, got {:?}", other.err()),
    }
    let mut wrong = full.clone();
    wrong[7].1 = vec![50, 100];
    match ToxBlock::from_bytes(&safetensors_bytes(&wrong), b"{}") {
        Err(e @ JudgeError::WrongShape { .. }) => assert!(e.to_string().contains("dense.kernel"), "{e}"),
        other => panic!("expected WrongShape, got {:?}", other.err()),
    }
}

#[test]
fn corrupt_profanity_json_is_an_error() {
    let json = read("data/judges/profanity_check.json");
    for cut in [0, 1, json.len() / 3, json.len() - 2] {
        assert!(matches!(ProfanityCheck::from_json(&json[..cut]), Err(JudgeError::Json { .. })), "cut {cut}");
    }
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["idf"].as_array_mut().unwrap().pop();
    let e = ProfanityCheck::from_json(&serde_json::to_vec(&v).unwrap()).err().expect("short idf");
    assert!(e.to_string().contains("idf"), "{e}");
}
