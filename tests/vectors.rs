//! Detox vectors: the shipped files re-derive byte for byte, the format refuses what it must, and steering
//! behaves (α = 0 changes nothing; the default α changes the continuation).

mod common;

use destein::generation::{prompt_ids, Generation, PromptMode, SamplingParams, Steerer};
use destein::model::sha256_hex;
use destein::model::{Cache, LoadDtype, Site};
use destein::steering::{FusionMode, RowSteering};
use destein::vectors::{derive, parse_pairs, DeriveOptions, DetoxVectors};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(site: &str) -> (Vec<u8>, DetoxVectors) {
    let bytes = std::fs::read(format!("{ROOT}/www/vectors/smollm2-135m.{site}.safetensors")).unwrap();
    let v = DetoxVectors::from_safetensors_bytes(&bytes).unwrap();
    (bytes, v)
}

/// Every vector file shipped in www/vectors/, with the pairs file it names: the detox files (no `concept`) come from
/// data/steering_pairs.jsonl, a concept's from data/concepts/<concept>.jsonl.
fn shipped_files() -> Vec<(String, Vec<u8>, DetoxVectors, std::path::PathBuf)> {
    let mut files: Vec<_> =
        std::fs::read_dir(format!("{ROOT}/www/vectors")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let v = DetoxVectors::from_safetensors_bytes(&bytes).unwrap();
            let pairs = match &v.meta.concept {
                None => format!("{ROOT}/data/steering_pairs.jsonl").into(),
                Some(c) => format!("{ROOT}/data/concepts/{c}.jsonl").into(),
            };
            (p.file_name().unwrap().to_string_lossy().into_owned(), bytes, v, pairs)
        })
        .collect()
}

#[test]
fn shipped_vectors_rederive_byte_identical() {
    // The CLI's default load dtype, which `destein derive` used.
    let model = common::model(LoadDtype::default());
    let files = shipped_files();
    assert!(files.len() >= 2, "no vector files found");
    for (name, bytes, shipped, pairs_path) in files {
        let pairs_bytes = std::fs::read(&pairs_path).unwrap();
        let pairs = parse_pairs(&pairs_bytes).unwrap();
        let m = &shipped.meta;
        assert_eq!(
            m.pairs_sha256,
            sha256_hex(&pairs_bytes),
            "{name}: {} changed since the vectors were derived",
            pairs_path.display()
        );
        let mut options = DeriveOptions::detox(m.site, m.pairs, m.seed, m.pairs_sha256.clone());
        options.recommended_mode = m.recommended_mode;
        options.recommended_alpha = m.recommended_alpha;
        options.recommended_generated_only = m.recommended_generated_only;
        options.away_prefix = m.toxic_prefix.clone();
        options.toward_prefix = m.nontoxic_prefix.clone();
        options.concept = m.concept.clone();
        let again = derive(model, &pairs, options, |_, _| {}).unwrap();
        assert!(
            again.to_safetensors_bytes().unwrap() == bytes,
            "{name}: re-derived vectors differ from the committed file"
        );
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
    let ids =
        prompt_ids(model, "Stephen Fincher, you are a horrible person who uses", PromptMode::Continuation).unwrap();
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
    let options = DeriveOptions::detox(Site::Heads, 10, 0, String::new());
    let err = derive(model, &pairs, options, |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("at least 8 pairs") && err.contains("there are 1"), "{err}");
}

fn pairs_jsonl(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("{{\"toxic\": \"Day {i} was grey and dull.\", \"nontoxic\": \"Day {i} was bright and fun.\"}}\n")
        })
        .collect()
}

#[test]
fn lab_pair_sets_are_checked_by_name() {
    let model = common::model(LoadDtype::default());
    let derive_err = |text: &str, count: usize| {
        let pairs = parse_pairs(text.as_bytes()).unwrap();
        derive(model, &pairs, DeriveOptions::detox(Site::Heads, count, 0, String::new()), |_, _| {})
            .err()
            .unwrap()
            .to_string()
    };
    let err = derive_err(&pairs_jsonl(7), 7);
    assert!(err.contains("at least 8 pairs") && err.contains("there are 7"), "{err}");
    let err = derive_err(&pairs_jsonl(20), 5);
    assert!(err.contains("at least 8 pairs") && err.contains("asked for 5"), "{err}");
    let dup = format!("{}{}", pairs_jsonl(9), pairs_jsonl(1));
    let err = derive_err(&dup, 10);
    assert!(err.contains("pairs 1 and 10 are the same pair"), "{err}");
    let long = "word ".repeat(model.config.context_length + 10);
    let text = format!("{}{{\"toxic\": \"{long}\", \"nontoxic\": \"short\"}}\n", pairs_jsonl(8));
    let err = derive_err(&text, 9);
    assert!(err.contains("pair 9: its away side is") && err.contains("context holds"), "{err}");
}

#[test]
fn step_by_step_derivation_equals_derive_and_records_the_concept() {
    use destein::vectors::Derivation;
    let model = common::model(LoadDtype::default());
    let text = pairs_jsonl(10);
    let pairs = parse_pairs(text.as_bytes()).unwrap();
    let options = || {
        let mut o = DeriveOptions::detox(Site::AttnOut, 9, 4, sha256_hex(text.as_bytes()));
        o.away_prefix = "The following text is gloomy: ".into();
        o.toward_prefix = "The following text is cheerful: ".into();
        o.concept = Some("mood".into());
        o
    };
    let mut seen = Vec::new();
    let whole = derive(model, &pairs, options(), |done, total| seen.push((done, total))).unwrap();
    // One step per pair, then one per layer's probes (30 layers).
    assert_eq!(seen.last(), Some(&(39, 39)));
    assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1), "progress moves by one step at a time");
    let mut d = Derivation::new(model, &pairs, options()).unwrap();
    assert_eq!((d.done(), d.total(), d.pairs_total()), (0, 39, 9));
    let early = Derivation::new(model, &pairs, options()).unwrap().finish(model).err().unwrap().to_string();
    assert!(early.contains("0 of 9 pairs read, 0 of 30 layers"), "{early}");
    while !d.step(model).unwrap() {}
    let stepped = d.finish(model).unwrap();
    assert_eq!(stepped.to_safetensors_bytes().unwrap(), whole.to_safetensors_bytes().unwrap());
    let m = &stepped.meta;
    assert_eq!(
        (m.concept.as_deref(), m.toxic_prefix.as_str(), m.nontoxic_prefix.as_str()),
        (Some("mood"), "The following text is gloomy: ", "The following text is cheerful: ")
    );
    let again = DetoxVectors::from_safetensors_bytes(&stepped.to_safetensors_bytes().unwrap()).unwrap();
    assert_eq!(again.meta, stepped.meta);
}

#[test]
fn shared_prefix_changes_no_bit() {
    use destein::vectors::Derivation;
    let model = common::model(LoadDtype::default());
    let text = std::fs::read_to_string(format!("{ROOT}/data/concepts/sentiment.jsonl")).unwrap();
    let pairs = parse_pairs(text.as_bytes()).unwrap();
    for site in [Site::Heads, Site::AttnOut] {
        let run = |share: bool| {
            let mut d = Derivation::new(model, &pairs, DeriveOptions::detox(site, 12, 5, String::new())).unwrap();
            if !share {
                d = d.without_shared_prefix();
            }
            while !d.step(model).unwrap() {}
            d.finish(model).unwrap().to_safetensors_bytes().unwrap()
        };
        assert!(run(true) == run(false), "{site:?}: sharing the prefix changed the file");
    }
}

#[test]
fn a_side_that_tokenizes_to_nothing_is_named() {
    let model = common::model(LoadDtype::default());
    let mut text = pairs_jsonl(8);
    text.push_str("{\"toxic\": \".\", \"nontoxic\": \"fine\"}\n");
    let pairs = parse_pairs(text.as_bytes()).unwrap();
    let mut options = DeriveOptions::detox(Site::Heads, 9, 0, String::new());
    options.away_prefix = String::new();
    let err = derive(model, &pairs, options, |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("pair 9: its away side is empty"), "{err}");
    let dup = format!(
        "{}{{\"toxic\": \"Day 0 was grey and dull\", \"nontoxic\": \"Day 0 was bright and fun\"}}\n",
        pairs_jsonl(8)
    );
    let err = derive(
        model,
        &parse_pairs(dup.as_bytes()).unwrap(),
        DeriveOptions::detox(Site::Heads, 9, 0, String::new()),
        |_, _| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("pairs 1 and 9 are the same pair"), "{err}");
}

#[test]
fn top_heads_keeps_the_most_accurate_heads_only() {
    let (_, v) = shipped("heads");
    assert_eq!(v.top_heads(1.0).unwrap().direction, v.direction, "share 1 keeps every head");
    let half = v.top_heads(0.5).unwrap();
    let hd = v.meta.head_dim;
    let kept: Vec<bool> = half.direction.chunks_exact(hd).map(|h| h.iter().any(|&x| x != 0.0)).collect();
    let n = kept.len();
    assert!(kept.iter().filter(|&&k| k).count() >= n / 2, "at least half the heads kept");
    let lowest_kept = kept.iter().zip(&v.probe_accuracy).filter(|(k, _)| **k).map(|(_, &a)| a).fold(f32::MAX, f32::min);
    let highest_dropped =
        kept.iter().zip(&v.probe_accuracy).filter(|(k, _)| !**k).map(|(_, &a)| a).fold(f32::MIN, f32::max);
    assert!(lowest_kept > highest_dropped, "kept {lowest_kept} vs dropped {highest_dropped}");
    for (h, (a, b)) in half.direction.chunks_exact(hd).zip(v.direction.chunks_exact(hd)).enumerate() {
        assert!(!kept[h] || a == b, "a kept head is unchanged");
    }
    for bad in [0.0, -0.5, 1.5, f32::NAN] {
        assert!(v.top_heads(bad).is_err(), "share {bad} accepted");
    }
}

/// Steering generated positions only = the prompt run raw, then its last position steered: the logits that
/// choose the first new token match, and differ from both raw and whole-prompt steering.
#[test]
fn generated_only_steering_leaves_the_prompt_raw() {
    let model = common::model(LoadDtype::Q8_0);
    let (_, v) = shipped("heads");
    let ids = model.tokenizer.encode("You are such a stupid piece of").unwrap();
    let (head, last) = ids.split_at(ids.len() - 1);
    let rows = [RowSteering::single(0.3, FusionMode::Rotate)];
    let vs = std::slice::from_ref(&v);
    let logits = |skip: Option<usize>| {
        let mut steerer = Steerer::new(vs, &rows).unwrap();
        if let Some(n) = skip {
            steerer.skip_positions(n);
        }
        let out = model.forward_last(
            &model.token_tensor(std::slice::from_ref(&ids)).unwrap(),
            &mut Cache::new(model),
            Some(&mut steerer),
        );
        out.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let generated_only = logits(Some(ids.len() - 1));
    let mut cache = Cache::new(model);
    model.forward_last(&model.token_tensor(&[head.to_vec()]).unwrap(), &mut cache, None).unwrap();
    let mut steerer = Steerer::new(vs, &rows).unwrap();
    let by_hand =
        model.forward_last(&model.token_tensor(&[last.to_vec()]).unwrap(), &mut cache, Some(&mut steerer)).unwrap();
    let by_hand = by_hand.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let max_diff = generated_only.iter().zip(&by_hand).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "generated-only vs raw prompt + steered last position: {max_diff}");
    let raw = model
        .forward_last(&model.token_tensor(std::slice::from_ref(&ids)).unwrap(), &mut Cache::new(model), None)
        .unwrap();
    let raw = raw.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let whole = logits(None);
    let differs = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) > 0.01;
    assert!(differs(&generated_only, &raw) && differs(&generated_only, &whole));
}

/// The page centres its token colours on www/vectors/readout-baselines.json: the detox heads file's entry is what
/// `destein vectors baseline` measures, for these exact bytes.
#[test]
fn the_shipped_readout_baseline_is_current() {
    let model = common::model(LoadDtype::AsIs);
    let (bytes, v) = shipped("heads");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{ROOT}/www/vectors/readout-baselines.json")).unwrap()).unwrap();
    let entry = &json["smollm2-135m.heads.safetensors"];
    assert_eq!(
        entry["sha256"].as_str().unwrap(),
        destein::model::sha256_hex(&bytes),
        "the file changed: re-run `destein vectors baseline www/vectors/*.safetensors`"
    );
    let pairs = parse_pairs(&std::fs::read(format!("{ROOT}/data/steering_pairs.jsonl")).unwrap()).unwrap();
    let texts: Vec<&str> = pairs.iter().map(|p| p.nontoxic.as_str()).collect();
    let measured = destein::vectors::neutral_readout(model, &v, &texts).unwrap();
    let stored = entry["neutral"].as_f64().unwrap();
    assert!((measured - stored).abs() <= 1e-6, "measured {measured}, stored {stored}");
    assert!(measured < 0.0, "non-toxic text reads below zero along z = toxic − non-toxic: {measured}");
}

/// The stacked subspace variant: orthonormal directions per layer, orthogonal to z (the fusion's), built from the
/// pairs without their prefixes.
#[test]
fn toxic_subspace_is_orthonormal_and_leaves_z_to_the_fusion() {
    let model = common::model(LoadDtype::AsIs);
    let (_, v) = shipped("heads");
    let pairs = parse_pairs(&std::fs::read(format!("{ROOT}/data/steering_pairs.jsonl")).unwrap()).unwrap();
    let s = destein::subspace::Subspace::derive(model, &pairs[..12], &v, 2).unwrap();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>();
    for (l, basis) in s.basis.iter().enumerate() {
        assert_eq!(basis.len(), 2);
        let z = v.layer(l);
        let z_norm = dot(z, z).sqrt();
        for (i, a) in basis.iter().enumerate() {
            assert!((dot(a, a) - 1.0).abs() < 1e-5, "layer {l}: unit");
            assert!(dot(a, z).abs() / z_norm < 1e-5, "layer {l}: orthogonal to z");
            for b in &basis[i + 1..] {
                assert!(dot(a, b).abs() < 1e-5, "layer {l}: orthogonal to each other");
            }
        }
    }
    assert!(destein::subspace::Subspace::derive(model, &pairs[..12], &v, 0).is_err());
}

/// `recommended_scope = generated` round-trips; files without the key read as the whole text; other values are refused.
#[test]
fn recommended_scope_round_trips_and_is_checked() {
    let (bytes, v) = shipped("attn_out");
    assert!(!v.meta.recommended_generated_only && !String::from_utf8_lossy(&bytes).contains("recommended_scope"));
    let mut g = v.clone();
    g.meta.recommended_generated_only = true;
    let g_bytes = g.to_safetensors_bytes().unwrap();
    assert!(DetoxVectors::from_safetensors_bytes(&g_bytes).unwrap().meta.recommended_generated_only);
    // Same length, so the header stays valid: only the value is wrong.
    let (from, to) = (b"\"recommended_scope\":\"generated\"", b"\"recommended_scope\":\"prompt!!!\"");
    let at = g_bytes.windows(from.len()).position(|w| w == from).expect("the key is in the header");
    let mut bad = g_bytes.clone();
    bad[at..at + from.len()].copy_from_slice(to);
    let err = DetoxVectors::from_safetensors_bytes(&bad).unwrap_err().to_string();
    assert!(err.contains("recommended_scope"), "{err}");
}

/// Determinism: the same model, prompt, seeds and α schedule (changed mid-run, mode too) give the same tokens on
/// every run of this build, raw and steered rows alike, sampling at temperature 1.
#[test]
fn same_seed_prompt_and_alpha_schedule_give_the_same_tokens() {
    let model = common::model(LoadDtype::AsIs);
    let vectors = DetoxVectors::load(format!("{ROOT}/www/vectors/smollm2-135m.heads.safetensors").as_ref()).unwrap();
    let ids = prompt_ids(model, "My neighbour knocked on the door this morning and", PromptMode::Continuation).unwrap();
    let params = SamplingParams { temperature: 1.0, top_p: 0.9, top_k: 0, seed: 5, max_new_tokens: 16 };
    let run = || {
        let rows = vec![RowSteering::OFF, RowSteering::single(0.2, FusionMode::Rotate)];
        let mut g = Generation::new(model, ids.clone(), &params, &[5, 5], rows).unwrap();
        let mut step = 0;
        while !g.done() {
            match step {
                4 => g.set_steering(1, RowSteering::single(0.5, FusionMode::Rotate)).unwrap(),
                9 => g.set_steering(1, RowSteering::single(0.3, FusionMode::Headwise)).unwrap(),
                _ => {}
            }
            g.step(model, std::slice::from_ref(&vectors)).unwrap();
            step += 1;
        }
        [g.tokens(0).to_vec(), g.tokens(1).to_vec()]
    };
    let first = run();
    assert_eq!(first[0].len(), 16);
    assert_ne!(first[0], first[1], "the schedule steers the second row");
    for _ in 0..2 {
        assert_eq!(run(), first);
    }
}
