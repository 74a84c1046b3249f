//! Bad model files and bad requests give clear errors, never panics.

mod common;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use destein::generation::{
    prompt_ids, Generation, PromptMode, SamplingParams, Steerer, MAX_NEW_TOKENS, MAX_PROMPT_CHARS,
};
use destein::model::{LoadDtype, Model};
use destein::steering::{FusionMode, RowSteering};
use destein::vectors::{check_compatible, DetoxVectors};
use destein::Error;

fn load_err(bytes: &[u8]) -> String {
    match Model::from_gguf_bytes(bytes, LoadDtype::Q8_0, None) {
        Ok(_) => panic!("loading succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_file_names_the_fix() {
    let err =
        Model::load(std::path::Path::new("models/no-such-model.gguf"), LoadDtype::Q8_0).err().unwrap().to_string();
    assert!(err.contains("no-such-model.gguf") && err.contains("fetch-model"), "{err}");
}

#[test]
fn not_a_gguf() {
    assert!(load_err(b"PK\x03\x04 this is a zip").contains("not a GGUF"));
    assert!(load_err(b"").contains("not a GGUF"));
}

#[test]
fn truncated_model_at_many_lengths() {
    let bytes = common::model_bytes();
    for len in [4, 24, 100, 4096, 1 << 20, bytes.len() / 2, bytes.len() - 1] {
        let err = load_err(&bytes[..len]);
        assert!(err.contains("truncated") || err.contains("corrupt"), "at {len}: {err}");
    }
}

#[test]
fn corrupt_header_bytes() {
    let mut bytes = common::model_bytes()[..1 << 20].to_vec();
    // Scramble the metadata region after the magic and version.
    for b in bytes[8..4096].iter_mut() {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let err = load_err(&bytes);
    assert!(err.starts_with("model:"), "{err}");
}

/// Write a tiny GGUF with the given metadata (tensors: one small F32 embedding).
fn tiny_gguf(metadata: &[(&str, gguf_file::Value)]) -> Vec<u8> {
    let t = QTensor::quantize(&Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32)
        .unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    let md: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut out, &md, &[("token_embd.weight", &t)]).unwrap();
    out.into_inner()
}

#[test]
fn other_architecture_is_refused_by_name() {
    let bytes = tiny_gguf(&[("general.architecture", gguf_file::Value::String("gpt2".into()))]);
    let err = load_err(&bytes);
    assert!(err.contains("architecture `gpt2` is not supported"), "{err}");
}

#[test]
fn unknown_tokenizer_pre_type_is_an_error() {
    use gguf_file::Value;
    let tokens = Value::Array(vec![Value::String("a".into()), Value::String("b".into())]);
    let bytes = tiny_gguf(&[
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(32)),
        ("llama.attention.head_count", Value::U32(2)),
        ("llama.block_count", Value::U32(1)),
        ("llama.feed_forward_length", Value::U32(64)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("mystery-pre".into())),
        ("tokenizer.ggml.tokens", tokens),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
    ]);
    let err = load_err(&bytes);
    assert!(err.contains("unknown tokenizer pre-type `mystery-pre`"), "{err}");
}

#[test]
fn empty_and_over_long_prompts() {
    let model = common::model(LoadDtype::Q8_0);
    for empty in ["", "   ", "\n\t"] {
        let err = prompt_ids(model, empty, PromptMode::Continuation).unwrap_err();
        assert!(matches!(err, Error::Input(_)) && err.to_string().contains("empty"), "{err}");
    }
    // Within the character limit but over the context: rare four-byte characters take about four tokens each.
    let long: String =
        (0..MAX_PROMPT_CHARS as u32).map(|i| char::from_u32(0x10000 + i * 7919 % 50000).unwrap()).collect();
    let err = prompt_ids(model, &long, PromptMode::Continuation).unwrap_err().to_string();
    assert!(err.contains("tokens long") && err.contains("context holds"), "{err}");
}

/// The character limit is checked before the tokenizer runs: a 5 MB prompt (which takes about a second to
/// tokenize here) is refused in well under that, naming its length and the limit, in both prompt modes.
#[test]
fn prompt_over_the_character_limit_is_refused_before_tokenizing() {
    let model = common::model(LoadDtype::Q8_0);
    let huge = "word ".repeat(1_000_000);
    for mode in [PromptMode::Continuation, PromptMode::Chat] {
        let start = std::time::Instant::now();
        let err = prompt_ids(model, &huge, mode).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::Input(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("5000000 characters") && msg.contains(&format!("at most {MAX_PROMPT_CHARS}")), "{msg}");
        assert!(
            took < std::time::Duration::from_millis(250),
            "{mode:?}: refusing took {took:?}: was it tokenized first?"
        );
    }
    // One over is refused; at the limit is fine, counted in characters, not bytes (é is two bytes).
    let err = prompt_ids(model, &"a".repeat(MAX_PROMPT_CHARS + 1), PromptMode::Continuation).unwrap_err().to_string();
    assert!(err.contains(&format!("{} characters", MAX_PROMPT_CHARS + 1)), "{err}");
    assert!(prompt_ids(model, &"é".repeat(MAX_PROMPT_CHARS), PromptMode::Continuation).is_ok());
    // The evaluation's prompts too, named by file and line.
    let prompt = destein::evaluation::Prompt { text: huge, toxicity: None, source: "long.jsonl:3".into() };
    let err = destein::evaluation::prompt_tokens(model, &prompt, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("prompt long.jsonl:3 is 5000000 characters long"), "{err}");
}

#[test]
fn over_long_prompt_in_a_prompt_file_is_refused_naming_its_line() {
    use destein::evaluation::parse_prompts;
    let line = |text: &str| serde_json::json!({ "prompt": { "text": text } }).to_string();
    let at_limit = "é".repeat(MAX_PROMPT_CHARS);
    let over = "a".repeat(MAX_PROMPT_CHARS + 1);
    let file = [line("fine"), line(&at_limit), line(&over)].join("\n");
    let err = parse_prompts(file.as_bytes(), "long.jsonl").unwrap_err().to_string();
    assert!(err.contains("long.jsonl:3: the prompt is 4001 characters long; at most 4000"), "{err}");
    let (prompts, skipped) = parse_prompts([line("fine"), line(&at_limit)].join("\n").as_bytes(), "ok.jsonl").unwrap();
    assert_eq!((prompts.len(), skipped.len()), (2, 0));
}

#[test]
fn max_new_tokens_over_the_limit_is_refused() {
    let model = common::model(LoadDtype::Q8_0);
    let ids = prompt_ids(model, "Hello", PromptMode::Continuation).unwrap();
    let at_limit = SamplingParams { max_new_tokens: MAX_NEW_TOKENS, ..Default::default() };
    assert!(at_limit.validate().is_ok());
    for n in [MAX_NEW_TOKENS + 1, usize::MAX] {
        let params = SamplingParams { max_new_tokens: n, ..Default::default() };
        let err = params.validate().unwrap_err().to_string();
        assert!(
            err.contains(&format!("max new tokens is {n}")) && err.contains(&format!("at most {MAX_NEW_TOKENS}")),
            "{err}"
        );
        let err = Generation::new(model, ids.clone(), &params, &[1], vec![RowSteering::OFF]).err().unwrap().to_string();
        assert!(err.contains(&format!("at most {MAX_NEW_TOKENS}")), "{err}");
    }
    // The evaluation's sampling goes through the same check.
    let eval = destein::evaluation::EvalParams { max_new_tokens: MAX_NEW_TOKENS + 1, ..Default::default() };
    assert!(eval.sampling().validate().unwrap_err().to_string().contains("at most"));
}

#[test]
fn bad_sampling_and_alpha_are_refused() {
    let model = common::model(LoadDtype::Q8_0);
    let ids = prompt_ids(model, "Hello", PromptMode::Continuation).unwrap();
    let params = SamplingParams { temperature: f64::NAN, ..Default::default() };
    assert!(Generation::new(model, ids.clone(), &params, &[1], vec![RowSteering::OFF]).is_err());
    let params = SamplingParams { top_p: 0.0, ..Default::default() };
    assert!(Generation::new(model, ids.clone(), &params, &[1], vec![RowSteering::OFF]).is_err());
    for alpha in [f32::NAN, f32::INFINITY, -1.0, 1e9] {
        let steer = RowSteering::single(alpha, FusionMode::Rotate);
        let err = Generation::new(model, ids.clone(), &SamplingParams::default(), &[1], vec![steer]);
        assert!(err.is_err(), "α = {alpha} accepted");
    }
    // α > 0 without vectors is refused at the first step.
    let steer = RowSteering::single(0.5, FusionMode::Rotate);
    let mut g = Generation::new(model, ids, &SamplingParams::default(), &[1], vec![steer]).unwrap();
    assert!(g.step(model, &[]).unwrap_err().to_string().contains("vector"));
}

fn shipped_vectors(site: &str) -> DetoxVectors {
    let path = format!("{}/www/vectors/smollm2-135m.{site}.safetensors", env!("CARGO_MANIFEST_DIR"));
    DetoxVectors::load(std::path::Path::new(&path)).unwrap()
}

#[test]
fn vector_files_that_cannot_steer_together_are_named() {
    let heads = shipped_vectors("heads");
    assert!(check_compatible(&[heads.clone(), heads.clone(), heads.clone()]).is_ok());
    let err = check_compatible(&vec![heads.clone(); 4]).unwrap_err().to_string();
    assert!(err.contains("4 vector files") && err.contains("at most 3"), "{err}");
    let err = check_compatible(&[heads.clone(), shipped_vectors("attn_out")]).unwrap_err().to_string();
    assert!(err.contains("vector file 2 steers site `attn_out`") && err.contains("same site"), "{err}");
    let mut other_model = heads.clone();
    other_model.meta.model_sha256 = "ab".repeat(32);
    let err = check_compatible(&[heads.clone(), heads.clone(), other_model]).unwrap_err().to_string();
    assert!(err.contains("vector file 3 was derived on") && err.contains("abababababab"), "{err}");
    let mut fewer_layers = heads.clone();
    fewer_layers.meta.layers -= 1;
    let err = check_compatible(&[heads.clone(), fewer_layers.clone()]).unwrap_err().to_string();
    assert!(err.contains("vector file 2 has 29 layers") && err.contains("same shape"), "{err}");
    fewer_layers.meta.layers += 1;
    fewer_layers.direction.truncate(100);
    let err = check_compatible(&[heads.clone(), fewer_layers]).unwrap_err().to_string();
    assert!(err.contains("vector file 2 holds 100 direction values"), "{err}");
    // The hook refuses them too, before any forward pass.
    let rows = [RowSteering::single(0.2, FusionMode::Rotate)];
    assert!(Steerer::new(&vec![heads.clone(); 4], &rows).is_err());
    assert!(Steerer::new(&[], &rows).err().unwrap().to_string().contains("at least one"));
}

#[test]
fn bad_alpha_of_any_vector_is_refused() {
    let model = common::model(LoadDtype::Q8_0);
    let heads = shipped_vectors("heads");
    let ids = prompt_ids(model, "Hello", PromptMode::Continuation).unwrap();
    let params = SamplingParams::default();
    for alpha in [f32::NAN, f32::NEG_INFINITY, -0.5, 2.5, 1e30] {
        let steer = RowSteering { alphas: [0.1, 0.0, alpha], mode: FusionMode::Headwise };
        let err = Generation::new(model, ids.clone(), &params, &[1], vec![steer]).err().unwrap().to_string();
        assert!(err.contains("vector file 3") && err.contains("α"), "α = {alpha}: {err}");
    }
    // α > 0 for a position with no vector file: refused at the first step, naming the position.
    let steer = RowSteering { alphas: [0.1, 0.3, 0.0], mode: FusionMode::Rotate };
    let mut g = Generation::new(model, ids, &params, &[1], vec![steer]).unwrap();
    let err = g.step(model, std::slice::from_ref(&heads)).unwrap_err().to_string();
    assert!(err.contains("vector file 2") && err.contains("only 1"), "{err}");
    let err = g.step(model, &[]).unwrap_err().to_string();
    assert!(err.contains("needs a detox vector file"), "{err}");
    assert!(Steerer::new(std::slice::from_ref(&heads), &[steer]).is_err());
}

/// A GGUF header by hand (v3): `entries` are raw metadata bytes after the counts, then the tensor-info bytes.
fn gguf_header(tensors: u64, entries: u64, body: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(tensors.to_le_bytes());
    b.extend(entries.to_le_bytes());
    b.extend(body);
    b.resize(b.len() + 64, 0); // some slack, so that only the declared sizes are wrong
    b
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend(s.as_bytes());
    b
}

/// Headers that declare more than a file can hold are refused by name, without allocating what they declare:
/// candle 0.11's reader caps lengths and counts at 2^30 and at the bytes left, and tensors at four dimensions; our
/// tensor-table check refuses a shape whose element count overflows.
#[test]
fn hostile_gguf_headers_are_refused_by_name() {
    let mut huge_string = gguf_string("general.name");
    huge_string.extend(8u32.to_le_bytes());
    huge_string.extend((1u64 << 60).to_le_bytes());
    let mut huge_array = gguf_string("tokenizer.ggml.tokens");
    huge_array.extend(9u32.to_le_bytes());
    huge_array.extend(8u32.to_le_bytes());
    huge_array.extend((1u64 << 40).to_le_bytes());
    let tensor = |dims: &[u64]| {
        let mut t = gguf_string("token_embd.weight");
        t.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            t.extend(d.to_le_bytes());
        }
        t.extend(0u32.to_le_bytes());
        t.extend(0u64.to_le_bytes());
        t
    };
    let cases: [(Vec<u8>, &str); 6] = [
        (gguf_header(0, 1, &huge_string), "string length 1152921504606846976 exceeds max"),
        (gguf_header(0, 1, &huge_array), "array length 1099511627776 exceeds max"),
        (gguf_header(0, 1u64 << 50, &[]), "metadata_kv_count 1125899906842624 exceeds max"),
        (gguf_header(1u64 << 40, 0, &[]), "tensor_count 1099511627776 exceeds max"),
        (gguf_header(1, 0, &tensor(&[1, 2, 3, 4, 5])), "tensor 'token_embd.weight' has 5 dimensions, max is 4"),
        (gguf_header(1, 0, &tensor(&[1 << 32, 1 << 32])), "tensor `token_embd.weight` has an impossible shape"),
    ];
    for (bytes, want) in cases {
        let err = load_err(&bytes);
        assert!(err.starts_with("model: ") && err.contains(want), "{err}\n  wanted: {want}");
    }
}
