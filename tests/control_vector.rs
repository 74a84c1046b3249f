//! llama.cpp control vectors: export → import keeps every steerable layer's direction, and bad files are
//! refused with an error naming the problem (never a panic).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use destein::control_vector::{self, ControlVector};
use destein::model::{LoadDtype, Site};
use destein::steering::cosine;
use destein::vectors::{mean_activations, parse_pairs, DetoxVectors};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(site: &str) -> DetoxVectors {
    DetoxVectors::load(format!("{ROOT}/www/vectors/smollm2-135m.{site}.safetensors").as_ref()).unwrap()
}

/// Typical ‖attn_out‖ per layer on both sides of the first `n` steering pairs.
fn norms(n: usize) -> Vec<f32> {
    let pairs = parse_pairs(&std::fs::read(format!("{ROOT}/data/steering_pairs.jsonl")).unwrap()).unwrap();
    let texts = control_vector::norm_texts(&pairs, n).unwrap();
    control_vector::attn_out_norms(common::model(LoadDtype::default()), &texts).unwrap()
}

fn import_err(bytes: &[u8]) -> String {
    ControlVector::from_gguf_bytes(bytes).expect_err("accepted a bad control vector").to_string()
}

#[test]
fn export_then_import_round_trips_the_directions() {
    let model = common::model(LoadDtype::default());
    let ours = shipped("attn_out");
    let m = norms(8);
    assert!(m.iter().all(|n| n.is_finite() && *n > 0.0), "{m:?}");
    // m_l averages per-position norms, the ‖a‖ that `add` scales by: never below the norm of the 8-token mean
    // activation that derivation reads (how much below is printed with --nocapture).
    let pairs = parse_pairs(&std::fs::read(format!("{ROOT}/data/steering_pairs.jsonl")).unwrap()).unwrap();
    let texts = control_vector::norm_texts(&pairs, 8).unwrap();
    let mut of_means = vec![0f64; 30];
    for text in &texts {
        let mean = mean_activations(model, text, Site::AttnOut).unwrap();
        for (l, a) in mean.iter().enumerate() {
            of_means[l] += a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() / texts.len() as f64;
        }
    }
    let ratios: Vec<String> = (0..30).map(|l| format!("{:.2}", of_means[l] / m[l] as f64)).collect();
    println!("‖8-token mean attn_out‖ / mean per-position ‖attn_out‖, layers 0..29: {}", ratios.join(" "));
    assert!((0..30).all(|l| of_means[l] <= m[l] as f64 * (1.0 + 1e-5)));
    let bytes = control_vector::export_bytes(&ours, &m, "test").unwrap();

    let cv = ControlVector::from_gguf_bytes(&bytes).unwrap();
    assert_eq!(cv.n_embd, 576);
    assert_eq!(cv.model_hint.as_deref(), Some("llama"));
    assert_eq!(
        cv.directions.keys().copied().collect::<Vec<_>>(),
        (1..30).collect::<Vec<_>>(),
        "llama.cpp numbering: block l ↔ direction.l, no block 0"
    );
    for (&l, v) in &cv.directions {
        let length = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((length / m[l] as f64 - 1.0).abs() < 1e-5, "layer {l}: ‖v‖ {length} ≠ m_l {}", m[l]);
        assert!(cosine(v, ours.layer(l)) < -0.9999, "layer {l}: v must point along −z");
    }
    // Scaled by m_l, llama.cpp's scale 1 is our α 1 on every layer.
    assert!((cv.scale_one_alpha(&m) - 1.0).abs() < 1e-5);

    let back = control_vector::to_detox_vectors(&cv, model, "round trip".into(), 0.1).unwrap();
    back.check_model(model).unwrap();
    assert!(back.layer(0).iter().all(|&x| x == 0.0), "layer 0 has no llama.cpp slot and comes back as zero");
    for l in 1..30 {
        let c = cosine(back.layer(l), ours.layer(l));
        assert!(c > 0.9999, "layer {l}: cos(import(export(z)), z) = {c}");
    }
    // The optional `source` key survives our own file format.
    let again = DetoxVectors::from_safetensors_bytes(&back.to_safetensors_bytes().unwrap()).unwrap();
    assert_eq!(again.meta.source.as_deref(), Some("round trip"));
    assert_eq!(again.meta.recommended_mode.name(), "add");
    assert!(again.probe_accuracy.iter().all(|&a| a == 0.0));
}

#[test]
fn heads_files_are_refused_with_the_reason() {
    let err = control_vector::check_exportable(&shipped("heads")).unwrap_err().to_string();
    assert!(err.contains("only `attn_out`") && err.contains("--site attn_out"), "{err}");
}

/// A GGUF with the given metadata and (name, tensor) pairs, written by candle as any other writer would.
fn gguf(metadata: &[(&str, Value)], tensors: &[(&str, Tensor, GgmlDType)]) -> Vec<u8> {
    let q: Vec<(String, QTensor)> =
        tensors.iter().map(|(n, t, d)| (n.to_string(), QTensor::quantize(t, *d).unwrap())).collect();
    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let q: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &q).unwrap();
    out.into_inner()
}

fn arch() -> (&'static str, Value) {
    ("general.architecture", Value::String("controlvector".into()))
}

fn ones(n: usize) -> Tensor {
    Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn bad_control_vectors_are_refused_by_name() {
    let f32 = GgmlDType::F32;
    assert!(import_err(b"hello").contains("not a GGUF"));
    let good = gguf(&[arch()], &[("direction.1", ones(576), f32)]);
    assert!(import_err(&good[..40]).contains("truncated or corrupt"));
    assert!(import_err(&good[..good.len() - 100]).contains("truncated"));
    assert!(import_err(common::model_bytes()).contains("general.architecture is `llama`"));
    assert!(import_err(&gguf(&[], &[("direction.1", ones(576), f32)])).contains("no string `general.architecture`"));
    assert!(import_err(&gguf(&[arch()], &[])).contains("no `direction.N`"));
    assert!(import_err(&gguf(&[arch()], &[("direction.0", ones(576), f32)])).contains("block 0"));
    assert!(import_err(&gguf(&[arch()], &[("token_embd.weight", ones(576), f32)])).contains("not named `direction.N`"));
    assert!(import_err(&gguf(&[arch()], &[("direction.1", ones(576), GgmlDType::F16)])).contains("1-D F32"));
    let square = Tensor::ones((2, 576), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(import_err(&gguf(&[arch()], &[("direction.1", square, f32)])).contains("1-D F32"));
    let mixed = gguf(&[arch()], &[("direction.1", ones(576), f32), ("direction.2", ones(512), f32)]);
    assert!(import_err(&mixed).contains("has 512 values"));
    let mut nan = vec![0.5f32; 576];
    nan[7] = f32::NAN;
    let nan = Tensor::from_vec(nan, 576, &Device::Cpu).unwrap();
    assert!(import_err(&gguf(&[arch()], &[("direction.3", nan, f32)])).contains("NaN"));

    // Valid files that do not fit the model.
    let model = common::model(LoadDtype::default());
    let to_ours =
        |cv: &ControlVector| control_vector::to_detox_vectors(cv, model, String::new(), 0.1).err().unwrap().to_string();
    let narrow = ControlVector { n_embd: 512, model_hint: None, directions: BTreeMap::from([(1, vec![1.0; 512])]) };
    assert!(to_ours(&narrow).contains("512 wide"));
    let deep = ControlVector { n_embd: 576, model_hint: None, directions: BTreeMap::from([(30, vec![1.0; 576])]) };
    assert!(to_ours(&deep).contains("steers block 30"));
}

#[test]
fn same_layer_tensors_add_up_as_in_llama_cpp() {
    let f32 = GgmlDType::F32;
    let bytes = gguf(
        &[arch(), ("controlvector.layer_count", Value::U32(2))],
        &[("direction.5", ones(576), f32), ("direction.05", ones(576), f32)],
    );
    let cv = ControlVector::from_gguf_bytes(&bytes).unwrap();
    assert_eq!(cv.directions.len(), 1);
    assert!(cv.directions[&5].iter().all(|&x| x == 2.0));
    assert_eq!(cv.model_hint, None);
}

fn destein(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_destein")).args(args).current_dir(ROOT).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cli_exports_imports_and_refuses() {
    let dir = std::env::temp_dir().join(format!("destein-cvec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gguf_out, back) = (dir.join("detox.gguf"), dir.join("back.safetensors"));
    let (g, b) = (gguf_out.to_str().unwrap(), back.to_str().unwrap());
    let format = ["--format", "llama-cpp-control-vector"];

    let (ok, _, err) = destein(
        &[&["vectors", "export"][..], &format, &["--out", g, "www/vectors/smollm2-135m.heads.safetensors"]].concat(),
    );
    assert!(!ok && err.contains("only `attn_out`") && !err.contains("panicked"), "{err}");
    assert!(!gguf_out.exists());
    let (ok, _, err) = destein(&[
        "vectors",
        "export",
        "--format",
        "onnx",
        "--out",
        g,
        "www/vectors/smollm2-135m.attn_out.safetensors",
    ]);
    assert!(!ok && err.contains("unknown --format"), "{err}");

    let (ok, out, err) = destein(
        &[
            &["vectors", "export"][..],
            &format,
            &["--norm-pairs", "4", "--out", g, "www/vectors/smollm2-135m.attn_out.safetensors"],
        ]
        .concat(),
    );
    assert!(ok && out.contains("direction.29"), "{out}{err}");
    let (ok, out, err) = destein(&["vectors", "import", "--norm-pairs", "4", "--out", b, g]);
    assert!(ok && out.contains("α = 1.0000"), "{out}{err}");
    let (ok, out, err) = destein(&["vectors", "inspect", b]);
    assert!(ok && out.contains("source             llama.cpp control vector detox.gguf"), "{out}{err}");

    let (ok, _, err) = destein(&["vectors", "import", "--out", b, "models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    assert!(!ok && err.contains("not a control vector") && !err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
