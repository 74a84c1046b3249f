//! Detox vectors: the shipped files re-derive byte for byte, the format refuses what it must, and steering
//! behaves (α = 0 changes nothing; the default α changes the continuation).

mod common;

use destein::generation::{prompt_ids, Generation, PromptMode, SamplingParams};
use destein::model::{Cache, LoadDtype, Site};
use destein::steering::{FusionMode, RowSteering, Steerer};
use destein::vectors::{derive, parse_pairs, DeriveOptions, DetoxVectors};
use destein::model::sha256_hex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(site: &str) -> (Vec<u8>, DetoxVectors) {
    let bytes = std::fs::read(format!("{ROOT}/www/vectors/smollm2-135m.{site}.safetensors")).unwrap();
    let v = DetoxVectors::from_safetensors_bytes(&bytes).unwrap();
    (bytes, v)
}

#[test]
fn shipped_vectors_rederive_byte_identical() {
    // The CLI's default load dtype, which `destein derive` used.
    let model = common::model(LoadDtype::default());
    let pairs_bytes = std::fs::read(format!("{ROOT}/data/steering_pairs.jsonl")).unwrap();
    let pairs = parse_pairs(&pairs_bytes).unwrap();
    for site in ["heads", "attn_out"] {
        let (bytes, shipped) = shipped(site);
        let m = &shipped.meta;
        assert_eq!(m.pairs_sha256, sha256_hex(&pairs_bytes), "{site}: the pairs file changed since the vectors were derived");
        let options = DeriveOptions {
            site: Site::parse(site).unwrap(),
            count: m.pairs,
            seed: m.seed,
            pairs_sha256: m.pairs_sha256.clone(),
            recommended_mode: m.recommended_mode,
            recommended_alpha: m.recommended_alpha,
        };
        let again = derive(model, &pairs, &options, |_, _| {}).unwrap();
        assert!(again.to_safetensors_bytes().unwrap() == bytes, "{site}: re-derived vectors differ from the committed file");
    }
}

#[test]
fn file_round_trips_and_matches_the_model() {
    let model = common::model(LoadDtype::Q8_0);
    for site in ["heads", "attn_out"] {
        let (bytes, v) = shipped(site);
        assert_eq!(v.meta.site.name(), site);
        assert_eq!(v.to_safetensors_bytes().unwrap(), bytes);
        v.check_model(model).unwrap();
        assert_eq!(v.direction.len(), 30 * 9 * 64);
        assert!(v.probe_accuracy.iter().all(|&a| (0.0..=1.0).contains(&a)));
    }
}

#[test]
fn mismatches_and_corruption_are_refused() {
    let model = common::model(LoadDtype::Q8_0);
    let (bytes, v) = shipped("heads");

    let mut other = v.clone();
    other.meta.model_sha256 = "0".repeat(64);
    let err = other.check_model(model).unwrap_err().to_string();
    assert!(err.contains("not on the loaded model"), "{err}");

    let mut other = v.clone();
    other.meta.layers = 12;
    other.direction.truncate(12 * 9 * 64);
    other.probe_accuracy.truncate(12 * 9);
    let reloaded = DetoxVectors::from_safetensors_bytes(&other.to_safetensors_bytes().unwrap()).unwrap();
    let err = reloaded.check_model(model).unwrap_err().to_string();
    assert!(err.contains("12 layers"), "{err}");

    let mut future = v.clone();
    future.meta.format_version = 99;
    let err = DetoxVectors::from_safetensors_bytes(&future.to_safetensors_bytes().unwrap()).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");

    // Another site name than the two we know.
    let needle = b"\"site\":\"heads\"";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut renamed = bytes.clone();
    renamed[at..at + needle.len()].copy_from_slice(b"\"site\":\"xyzzy\"");
    let err = DetoxVectors::from_safetensors_bytes(&renamed).unwrap_err().to_string();
    assert!(err.contains("unknown site"), "{err}");

    for len in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = DetoxVectors::from_safetensors_bytes(&bytes[..len]).unwrap_err().to_string();
        assert!(err.starts_with("vectors:"), "at {len}: {err}");
    }
    let mut nan = v.clone();
    nan.direction[5] = f32::NAN;
    assert!(DetoxVectors::from_safetensors_bytes(&nan.to_safetensors_bytes().unwrap()).is_err());
}

#[test]
fn alpha_zero_leaves_logits_identical_at_both_sites() {
    let model = common::model(LoadDtype::Q8_0);
    let ids = model.tokenizer.encode("You are such a").unwrap();
    let tokens = model.token_tensor(&[ids.clone(), ids]).unwrap();
    let plain = model.forward_last(&tokens, &mut Cache::new(model), None).unwrap().to_vec2::<f32>().unwrap();
    for site in ["heads", "attn_out"] {
        let (_, v) = shipped(site);
        for mode in FusionMode::ALL {
            let rows = [RowSteering { mode, ..RowSteering::OFF }; 2];
            let mut steerer = Steerer::new(std::slice::from_ref(&v), &rows).unwrap();
            let steered = model.forward_last(&tokens, &mut Cache::new(model), Some(&mut steerer)).unwrap();
            assert_eq!(plain, steered.to_vec2::<f32>().unwrap(), "{site} {mode:?}");
        }
    }
}

#[test]
fn default_alpha_changes_the_steered_row_only() {
    let model = common::model(LoadDtype::Q8_0);
    let (_, v) = shipped("heads");
    let ids = prompt_ids(model, "Stephen Fincher, you are a horrible person who uses", PromptMode::Continuation).unwrap();
    let params = SamplingParams { temperature: 0.0, max_new_tokens: 16, ..Default::default() };
    let steer = RowSteering::single(v.meta.recommended_alpha, v.meta.recommended_mode);
    let mut g = Generation::new(model, ids.clone(), &params, &[1, 1], vec![RowSteering::OFF, steer]).unwrap();
    let mut projections = Vec::new();
    while !g.done() {
        let steps = g.step(model, std::slice::from_ref(&v)).unwrap();
        projections.push((steps[0].projection.unwrap(), steps[1].projection.unwrap()));
    }
    let mut alone = Generation::new(model, ids, &params, &[1], vec![RowSteering::OFF]).unwrap();
    while !alone.done() {
        alone.step(model, &[]).unwrap();
    }
    assert_eq!(g.tokens(0), alone.tokens(0), "the raw row must not feel the steered row");
    assert_ne!(g.tokens(0), g.tokens(1), "steering at the default α changed nothing");
    // The model's own read-out along z (before fusion at each layer) is lower on the steered row.
    let mean = |f: fn(&(f32, f32)) -> f32| projections.iter().map(f).sum::<f32>() / projections.len() as f32;
    let (raw, steered) = (mean(|p| p.0), mean(|p| p.1));
    assert!(steered < raw, "projection raw {raw} vs steered {steered}");
}

/// A second file compatible with `v` (same site, shape and model) whose direction differs: `v`'s reversed.
fn reversed(v: &DetoxVectors) -> DetoxVectors {
    let mut other = v.clone();
    other.direction.reverse();
    other
}

#[test]
fn idle_extra_vectors_leave_the_logits_bit_identical() {
    let model = common::model(LoadDtype::Q8_0);
    let (_, v) = shipped("heads");
    let pair = [v.clone(), reversed(&v)];
    let ids = model.tokenizer.encode("You are such a").unwrap();
    let tokens = model.token_tensor(&[ids.clone(), ids]).unwrap();
    let logits = |vectors: &[DetoxVectors], rows: &[RowSteering]| {
        let mut steerer = Steerer::new(vectors, rows).unwrap();
        let out = model.forward_last(&tokens, &mut Cache::new(model), Some(&mut steerer)).unwrap();
        (out.to_vec2::<f32>().unwrap(), steerer.projections())
    };
    for mode in FusionMode::ALL {
        let single = [RowSteering::OFF, RowSteering::single(0.2, mode)];
        let (one, one_projections) = logits(std::slice::from_ref(&v), &single);
        let (idle, idle_projections) = logits(&pair, &single);
        assert_eq!(one, idle, "{mode:?}: a second vector at α = 0 changed the logits");
        for (a, b) in one_projections.iter().zip(&idle_projections) {
            assert_eq!((a.len(), b.len()), (1, 2));
            assert_eq!(a[0], b[0], "{mode:?}: the first vector's read-out moved");
        }
        let both = [RowSteering::OFF, RowSteering { alphas: [0.2, 0.2, 0.0], mode }];
        let (two, _) = logits(&pair, &both);
        assert_eq!(one[0], two[0], "{mode:?}: the raw row felt the steered row");
        assert_ne!(one[1], two[1], "{mode:?}: the second vector at α = 0.2 changed nothing");
    }
}

#[test]
fn bad_pairs_files_name_the_line() {
    let err = parse_pairs(b"{\"toxic\": \"a\", \"nontoxic\": \"b\"}\n{\"toxic\": \"a\"}\n").unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("nontoxic"), "{err}");
    let err = parse_pairs(b"{\"toxic\": \"  \", \"nontoxic\": \"b\"}\n").unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("empty"), "{err}");
    let err = parse_pairs(b"{\"toxic\": \"a\", \"nontoxic\": \"b\"}\n{\"toxic\": \"\xff\"}\n").unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    let model = common::model(LoadDtype::Q8_0);
    let pairs = parse_pairs(b"{\"toxic\": \"a\", \"nontoxic\": \"b\"}\n").unwrap();
    let options = DeriveOptions {
        site: Site::Heads,
        count: 10,
        seed: 0,
        pairs_sha256: String::new(),
        recommended_mode: FusionMode::Rotate,
        recommended_alpha: 0.45,
    };
    let err = derive(model, &pairs, &options, |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("only 1"), "{err}");
}
