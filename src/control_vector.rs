//! llama.cpp control vectors: export our `attn_out` detox vectors as a control-vector GGUF, and import one
//! (written by repeng or llama.cpp's cvector-generator) as our vector file.
//!
//! The format, as llama.cpp reads it (`common_control_vector_load_one`, `llama_adapter_cvec`): a GGUF whose
//! tensors are all `direction.N`, f32, one-dimensional, n_embd values each. At inference llama.cpp adds
//! scale · `direction.N` to the output of block N (0-based), after the FFN's residual add (the `l_out`
//! tensor), at every position. N = 0 is refused (block 0 is never steered); tensors naming the same N add up.
//! The writers also set `general.architecture = "controlvector"`, `controlvector.model_hint` and
//! `controlvector.layer_count` (the number of tensors), which llama.cpp's loader does not read.
//!
//! Our `attn_out` site sits earlier in the block: what attention adds to the residual stream, before the FFN.
//! Export maps our layer l to `direction.l`, so the pushed vector reaches the stream after block l's FFN
//! instead of before it, and our layer 0 cannot be expressed and is dropped.

use std::collections::BTreeMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::bail;
use crate::error::{Error, Result};
use crate::model::{ActivationHook, Model, Site};
use crate::steering::{validate_alpha, FusionMode, MAX_ALPHA};
use crate::vectors::{
    self, DetoxVectors, SteeringPair, VectorMeta, FORMAT_VERSION, LAST_TOKENS, NONTOXIC_PREFIX, TOXIC_PREFIX,
};

pub const ARCHITECTURE: &str = "controlvector";
/// The `--format` name of this export.
pub const FORMAT_NAME: &str = "llama-cpp-control-vector";
/// The typical activation norm is measured on both sides of this many steering pairs (the file's first ones).
pub const NORM_PAIRS: usize = 32;

/// A control vector: llama.cpp block index → direction of `n_embd` values.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlVector {
    pub n_embd: usize,
    pub model_hint: Option<String>,
    pub directions: BTreeMap<usize, Vec<f32>>,
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Averages, per layer, the per-position ‖attn_out‖ over each text's last `LAST_TOKENS` positions.
struct NormCapture {
    sums: Vec<f64>,
}

impl ActivationHook for NormCapture {
    fn site(&self) -> Site {
        Site::AttnOut
    }
    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor> {
        let (_, seq, _) = act.dims3()?;
        let take = LAST_TOKENS.min(seq);
        let rows = act.narrow(1, seq - take, take)?.squeeze(0)?.to_vec2::<f32>()?;
        self.sums[layer] += rows.iter().map(|r| norm(r)).sum::<f64>() / take as f64;
        Ok(act)
    }
}

/// Both sides of the first `count` pairs, with the derivation's prefixes.
pub fn norm_texts(pairs: &[SteeringPair], count: usize) -> Result<Vec<String>> {
    if count == 0 || pairs.len() < count {
        bail!(Pairs, "the norms need {count} pairs (at least 1) but the file has {}", pairs.len());
    }
    Ok(pairs[..count]
        .iter()
        .flat_map(|p| {
            [
                format!("{TOXIC_PREFIX}{}", vectors::strip_final_period(&p.toxic)),
                format!("{NONTOXIC_PREFIX}{}", vectors::strip_final_period(&p.nontoxic)),
            ]
        })
        .collect())
}

/// m_l: the mean per-position ‖attn_out_l‖ over `texts` — the ‖a‖ our `add` mode scales its step by, typically.
pub fn attn_out_norms(model: &Model, texts: &[String]) -> Result<Vec<f32>> {
    if texts.is_empty() {
        bail!(Input, "no texts to measure activation norms on");
    }
    let mut capture = NormCapture { sums: vec![0.0; model.config.n_layers] };
    for text in texts {
        vectors::run_hooked(model, text, &mut capture)?;
    }
    Ok(capture.sums.iter().map(|s| (s / texts.len() as f64) as f32).collect())
}

/// The export: for every layer l ≥ 1, `direction.l` = −n(z_l) · m_l, so llama.cpp's scale α adds
/// α·m_l along −z, as our `add` at α does for an activation of the typical norm m_l.
pub fn from_detox_vectors(v: &DetoxVectors, norms: &[f32]) -> Result<ControlVector> {
    check_exportable(v)?;
    let m = &v.meta;
    if norms.len() != m.layers || norms.iter().any(|n| !n.is_finite() || *n <= 0.0) {
        bail!(Input, "need one positive, finite activation norm per layer ({}), got {:?}", m.layers, norms);
    }
    let directions = (1..m.layers)
        .map(|l| {
            let z = v.layer(l);
            let step = norms[l] as f64 / norm(z).max(1e-12);
            (l, z.iter().map(|&x| (-(x as f64) * step) as f32).collect())
        })
        .collect();
    Ok(ControlVector { n_embd: m.hidden, model_hint: Some("llama".into()), directions })
}

/// Only `attn_out` files live in the residual stream, where llama.cpp adds its vectors.
pub fn check_exportable(v: &DetoxVectors) -> Result<()> {
    let m = &v.meta;
    if m.site != Site::AttnOut {
        bail!(
            Vectors,
            "only `attn_out` vector files can be exported as llama.cpp control vectors: this one is at site `{}` \
             (each head's output before o_proj), which is not in the residual stream llama.cpp steers; derive one \
             with `destein derive --site attn_out`",
            m.site.name()
        );
    }
    Ok(())
}

/// The exported GGUF: the control vector, plus `destein.*` keys (ignored by llama.cpp) that record where it
/// came from and the norms m_l (our layer order, 0..layers) it was scaled by.
pub fn export_bytes(v: &DetoxVectors, norms: &[f32], norm_texts: &str) -> Result<Vec<u8>> {
    let cv = from_detox_vectors(v, norms)?;
    let m = &v.meta;
    cv.to_gguf_bytes(&[
        ("destein.site", Value::String(m.site.name().into())),
        ("destein.model_name", Value::String(m.model_name.clone())),
        ("destein.model_sha256", Value::String(m.model_sha256.clone())),
        ("destein.attn_out_norms", Value::Array(norms.iter().map(|&n| Value::F32(n)).collect())),
        ("destein.norm_texts", Value::String(norm_texts.into())),
    ])
}

impl ControlVector {
    /// The GGUF bytes, with `extra` metadata after the three standard keys.
    pub fn to_gguf_bytes(&self, extra: &[(&str, Value)]) -> Result<Vec<u8>> {
        let mut tensors = Vec::with_capacity(self.directions.len());
        for (layer, d) in &self.directions {
            if d.len() != self.n_embd {
                bail!(Vectors, "direction {layer} has {} values, not n_embd = {}", d.len(), self.n_embd);
            }
            let t = Tensor::from_slice(d, d.len(), &Device::Cpu)?;
            tensors.push((format!("direction.{layer}"), QTensor::quantize(&t, GgmlDType::F32)?));
        }
        let mut metadata = vec![
            ("general.architecture", Value::String(ARCHITECTURE.into())),
            ("controlvector.layer_count", Value::I32(self.directions.len() as i32)),
        ];
        if let Some(hint) = &self.model_hint {
            metadata.insert(1, ("controlvector.model_hint", Value::String(hint.clone())));
        }
        metadata.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &metadata, &tensors)?;
        Ok(out.into_inner())
    }

    /// Read and validate a control-vector GGUF: architecture `controlvector`, only `direction.N` tensors
    /// (N ≥ 1), all f32, 1-D and of one width, all values finite. Same-N tensors add up, as in llama.cpp.
    pub fn from_gguf_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 4 || &bytes[..4] != b"GGUF" {
            bail!(Vectors, "not a GGUF file (it does not start with the bytes `GGUF`)");
        }
        let mut reader = Cursor::new(bytes);
        let ct = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::Vectors(format!("cannot read the GGUF header (truncated or corrupt?): {e}")))?;
        match ct.metadata.get("general.architecture") {
            Some(Value::String(a)) if a == ARCHITECTURE => {}
            Some(Value::String(a)) => bail!(
                Vectors,
                "not a control vector: general.architecture is `{a}`, expected `{ARCHITECTURE}` (a model file?)"
            ),
            _ => bail!(Vectors, "not a control vector: the GGUF has no string `general.architecture`"),
        }
        let model_hint = match ct.metadata.get("controlvector.model_hint") {
            Some(Value::String(h)) => Some(h.clone()),
            None => None,
            Some(other) => bail!(Vectors, "controlvector.model_hint is {other:?}, expected a string"),
        };
        let mut directions: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
        let mut n_embd = None;
        // Sorted, so the first problem reported does not depend on hash order.
        let mut infos: Vec<_> = ct.tensor_infos.iter().collect();
        infos.sort_by(|a, b| a.0.cmp(b.0));
        for (name, info) in infos {
            let layer = parse_direction_name(name)?;
            let dims = info.shape.dims();
            if info.ggml_dtype != GgmlDType::F32 || dims.len() != 1 {
                bail!(
                    Vectors,
                    "tensor `{name}` is {:?} of shape {dims:?}; control vectors hold 1-D F32 tensors",
                    info.ggml_dtype
                );
            }
            if dims[0] == 0 || *n_embd.get_or_insert(dims[0]) != dims[0] {
                bail!(Vectors, "tensor `{name}` has {} values, other directions {}", dims[0], n_embd.unwrap_or(0));
            }
            let values = ct
                .tensor(&mut reader, name, &Device::Cpu)
                .and_then(|t| t.dequantize(&Device::Cpu)?.to_vec1::<f32>())
                .map_err(|e| Error::Vectors(format!("cannot read tensor `{name}` (truncated file?): {e}")))?;
            if values.iter().any(|v| !v.is_finite()) {
                bail!(Vectors, "tensor `{name}` holds NaN or infinite values");
            }
            let sum = directions.entry(layer).or_insert_with(|| vec![0.0; values.len()]);
            sum.iter_mut().zip(&values).for_each(|(s, v)| *s += v);
        }
        let Some(n_embd) = n_embd else { bail!(Vectors, "the control vector holds no `direction.N` tensors") };
        Ok(Self { n_embd, model_hint, directions })
    }

    /// Our α equivalent to llama.cpp's scale 1 (the strength the file's author set), per layer ‖v_l‖ / m_l;
    /// the median over the layers the file steers.
    pub fn scale_one_alpha(&self, norms: &[f32]) -> f32 {
        let mut ratios: Vec<f64> = self
            .directions
            .iter()
            .filter(|(l, d)| norm(d) > 0.0 && norms.get(**l).is_some_and(|m| *m > 0.0))
            .map(|(l, d)| norm(d) / norms[*l] as f64)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0) as f32
    }
}

fn parse_direction_name(name: &str) -> Result<usize> {
    let layer = name.strip_prefix("direction.").and_then(|n| n.parse::<usize>().ok());
    match layer {
        Some(0) => bail!(Vectors, "tensor `direction.0`: llama.cpp never steers block 0 and refuses this file"),
        Some(l) => Ok(l),
        None => bail!(Vectors, "tensor `{name}` is not named `direction.N`: not a control vector"),
    }
}

/// The import: our `attn_out` vector file for `model`, z_l = −v_l (so our α > 0 moves along +v, as a positive
/// llama.cpp scale does); layers the file does not steer get a zero direction, which no mode moves along.
/// Probe accuracies are unknown and stored as 0; the recommendation is `add` at `recommended_alpha`.
pub fn to_detox_vectors(
    cv: &ControlVector,
    model: &Model,
    source: String,
    recommended_alpha: f32,
) -> Result<DetoxVectors> {
    let c = &model.config;
    if cv.n_embd != c.hidden {
        bail!(Vectors, "the control vector is {} wide, but the model `{}` has n_embd {}", cv.n_embd, c.name, c.hidden);
    }
    if let Some((&last, _)) = cv.directions.iter().next_back().filter(|(l, _)| **l >= c.n_layers) {
        bail!(
            Vectors,
            "the control vector steers block {last}, but the model `{}` has blocks 0..{}",
            c.name,
            c.n_layers - 1
        );
    }
    validate_alpha(recommended_alpha).map_err(|e| Error::Vectors(format!("recommended α: {e}")))?;
    let mut direction = vec![0f32; c.n_layers * c.hidden];
    for (l, v) in &cv.directions {
        direction[l * c.hidden..(l + 1) * c.hidden].iter_mut().zip(v).for_each(|(z, x)| *z = -x);
    }
    let meta = VectorMeta {
        format_version: FORMAT_VERSION,
        site: Site::AttnOut,
        model_name: c.name.clone(),
        model_sha256: model.sha256.clone(),
        hidden: c.hidden,
        heads: c.n_heads,
        head_dim: c.head_dim,
        layers: c.n_layers,
        pairs: 0,
        pairs_sha256: String::new(),
        seed: 0,
        toxic_prefix: String::new(),
        nontoxic_prefix: String::new(),
        recommended_mode: FusionMode::Add,
        recommended_generated_only: false,
        recommended_alpha,
        max_alpha: MAX_ALPHA,
        concept: None,
        source: Some(source),
    };
    Ok(DetoxVectors { meta, direction, probe_accuracy: vec![0.0; c.n_layers * c.n_heads] })
}
