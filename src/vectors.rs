//! Detox vectors: their safetensors file format, and their derivation from steering pairs.
//!
//! A file holds `direction` `[layers, heads, head_dim]` (f32) — per layer z_l = Σ_pairs (toxic − non-toxic),
//! each head's slice multiplied by (1 + probe accuracy) — and `probe_accuracy` `[layers, heads]`, plus
//! metadata that ties it to one model (name and GGUF sha256), one site, and the pairs it came from.
//! We write the file ourselves (header keys sorted) so the same inputs always give the same bytes, and read it
//! with the `safetensors` crate, which validates it.

use std::collections::BTreeMap;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::bail;
use crate::error::{Error, Result};
use crate::model::{ActivationHook, Cache, Model, Site};
use crate::steering::{validate_alpha, FusionMode, Scope, MAX_ALPHA, MAX_VECTORS};

pub const FORMAT_VERSION: u32 = 1;
pub const TOXIC_PREFIX: &str = "The following text is abusive, harmful, negative, obscene, racist, rude and toxic: ";
pub const NONTOXIC_PREFIX: &str = "The following text is kind, polite, positive, respectful and supportive: ";
/// Activations are averaged over the last this-many tokens of each text.
pub const LAST_TOKENS: usize = 8;
/// Share of the sampled pairs that trains the probes; the rest measures their accuracy.
pub const TRAIN_FRACTION: f64 = 0.8;

#[derive(Clone, Debug, PartialEq)]
pub struct VectorMeta {
    pub format_version: u32,
    pub site: Site,
    pub model_name: String,
    pub model_sha256: String,
    pub hidden: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub pairs: usize,
    pub pairs_sha256: String,
    pub seed: u64,
    pub toxic_prefix: String,
    pub nontoxic_prefix: String,
    pub recommended_mode: FusionMode,
    pub recommended_alpha: f32,
    /// Whether the recommendation steers only the positions that produce new tokens (our `generated-only`
    /// variant: the prompt's own positions stay raw). Stored as `recommended_scope = generated` only when true, so
    /// files without the key read as before (the whole text steered).
    pub recommended_generated_only: bool,
    pub max_alpha: f32,
    /// The concept steered away from → toward (e.g. `sentiment`), for vectors made in the vector lab or with
    /// `derive --concept`. None for the detox files, which predate the key (their bytes stay unchanged).
    pub concept: Option<String>,
    /// Where the file came from when it was not derived here (e.g. an imported llama.cpp control vector);
    /// optional, and written only when set, so derived files stay byte-identical.
    pub source: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DetoxVectors {
    pub meta: VectorMeta,
    /// `[layers, heads, head_dim]`, row-major.
    pub direction: Vec<f32>,
    /// `[layers, heads]`, row-major.
    pub probe_accuracy: Vec<f32>,
}

impl VectorMeta {
    fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("format", "destein-vectors".into());
        put("format_version", self.format_version.to_string());
        put("site", self.site.name().into());
        put("model_name", self.model_name.clone());
        put("model_sha256", self.model_sha256.clone());
        put("hidden", self.hidden.to_string());
        put("heads", self.heads.to_string());
        put("head_dim", self.head_dim.to_string());
        put("layers", self.layers.to_string());
        put("pairs", self.pairs.to_string());
        put("pairs_sha256", self.pairs_sha256.clone());
        put("seed", self.seed.to_string());
        put("toxic_prefix", self.toxic_prefix.clone());
        put("nontoxic_prefix", self.nontoxic_prefix.clone());
        put("recommended_mode", self.recommended_mode.name().into());
        put("recommended_alpha", self.recommended_alpha.to_string());
        put("max_alpha", self.max_alpha.to_string());
        if self.recommended_generated_only {
            put("recommended_scope", Scope::Generated.name().into());
        }
        if let Some(concept) = &self.concept {
            put("concept", concept.clone());
        }
        if let Some(source) = &self.source {
            put("source", source.clone());
        }
        m
    }

    fn from_map(m: &std::collections::HashMap<String, String>) -> Result<Self> {
        let get =
            |k: &str| -> Result<&String> { m.get(k).ok_or_else(|| Error::Vectors(format!("metadata lacks `{k}`"))) };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.parse().map_err(|_| Error::Vectors(format!("metadata `{k}` = `{v}` is not a number")))
        }
        if get("format")? != "destein-vectors" {
            bail!(Vectors, "not a destein vector file (metadata `format` is `{}`)", get("format")?);
        }
        let format_version: u32 = num("format_version", get("format_version")?)?;
        if format_version > FORMAT_VERSION {
            bail!(
                Vectors,
                "format version {format_version} is newer than this program understands ({FORMAT_VERSION}); update destein"
            );
        }
        let recommended_alpha: f32 = num("recommended_alpha", get("recommended_alpha")?)?;
        let max_alpha: f32 = num("max_alpha", get("max_alpha")?)?;
        validate_alpha(recommended_alpha).map_err(|e| Error::Vectors(format!("recommended α: {e}")))?;
        if !(max_alpha > 0.0 && max_alpha <= MAX_ALPHA) {
            bail!(Vectors, "max α {max_alpha} is outside (0, {MAX_ALPHA}]");
        }
        Ok(Self {
            format_version,
            site: get("site")?.parse::<Site>().map_err(|e| Error::Vectors(e.to_string()))?,
            model_name: get("model_name")?.clone(),
            model_sha256: get("model_sha256")?.clone(),
            hidden: num("hidden", get("hidden")?)?,
            heads: num("heads", get("heads")?)?,
            head_dim: num("head_dim", get("head_dim")?)?,
            layers: num("layers", get("layers")?)?,
            pairs: num("pairs", get("pairs")?)?,
            pairs_sha256: get("pairs_sha256")?.clone(),
            seed: num("seed", get("seed")?)?,
            toxic_prefix: get("toxic_prefix")?.clone(),
            nontoxic_prefix: get("nontoxic_prefix")?.clone(),
            recommended_mode: get("recommended_mode")?
                .parse::<FusionMode>()
                .map_err(|e| Error::Vectors(e.to_string()))?,
            recommended_alpha,
            recommended_generated_only: match m.get("recommended_scope") {
                None => false,
                Some(scope) => scope
                    .parse::<Scope>()
                    .map_err(|e| Error::Vectors(format!("recommended_scope: {e}")))?
                    .generated_only(),
            },
            max_alpha,
            concept: m.get("concept").cloned(),
            source: m.get("source").cloned(),
        })
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl DetoxVectors {
    /// The direction of one layer, `heads · head_dim` values.
    /// A copy that steers only the `share` (0 < share ≤ 1) of all (layer, head) slices whose probes are the
    /// most accurate: every other head's direction is set to zero, which every fusion mode reads as "leave
    /// this head's direction out". Heads tied with the last one kept are kept too.
    pub fn top_heads(&self, share: f32) -> Result<DetoxVectors> {
        if !(share > 0.0 && share <= 1.0) {
            bail!(Input, "the share of heads to steer must be in (0, 1], got {share}");
        }
        let mut sorted = self.probe_accuracy.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let keep = ((share as f64 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        let threshold = sorted[keep - 1];
        let mut out = self.clone();
        let head_dim = self.meta.head_dim;
        for (slice, &accuracy) in out.direction.chunks_exact_mut(head_dim).zip(&self.probe_accuracy) {
            if accuracy < threshold {
                slice.fill(0.0);
            }
        }
        Ok(out)
    }

    pub fn layer(&self, layer: usize) -> &[f32] {
        let width = self.meta.heads * self.meta.head_dim;
        &self.direction[layer * width..(layer + 1) * width]
    }

    pub fn layer_norms(&self) -> Vec<f32> {
        (0..self.meta.layers)
            .map(|l| self.layer(l).iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32)
            .collect()
    }

    /// Serialize as safetensors with a deterministic header (sorted keys, fixed tensor order).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let m = &self.meta;
        let direction = f32_bytes(&self.direction);
        let accuracy = f32_bytes(&self.probe_accuracy);
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::to_value(m.to_map()).expect("string map"));
        header.insert(
            "direction".into(),
            serde_json::json!({"dtype": "F32", "shape": [m.layers, m.heads, m.head_dim],
                               "data_offsets": [0, direction.len()]}),
        );
        header.insert(
            "probe_accuracy".into(),
            serde_json::json!({"dtype": "F32", "shape": [m.layers, m.heads],
                               "data_offsets": [direction.len(), direction.len() + accuracy.len()]}),
        );
        let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
        // Pad the header with spaces so the data starts 8-byte aligned, as the format recommends.
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + direction.len() + accuracy.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&direction);
        out.extend_from_slice(&accuracy);
        Ok(out)
    }

    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Vectors(format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Vectors(format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
        let meta_map = header
            .metadata()
            .as_ref()
            .ok_or_else(|| Error::Vectors("the file has no metadata: not a destein vector file".into()))?;
        let meta = VectorMeta::from_map(meta_map)?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = file.tensor(name).map_err(|_| Error::Vectors(format!("the file has no tensor `{name}`")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                bail!(Vectors, "tensor `{name}` is {:?}, expected F32", t.dtype());
            }
            if t.shape() != shape {
                bail!(Vectors, "tensor `{name}` has shape {:?}, metadata says {:?}", t.shape(), shape);
            }
            let values: Vec<f32> =
                t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            if values.iter().any(|v| !v.is_finite()) {
                bail!(Vectors, "tensor `{name}` holds NaN or infinite values");
            }
            Ok(values)
        };
        let direction = read("direction", &[meta.layers, meta.heads, meta.head_dim])?;
        let probe_accuracy = read("probe_accuracy", &[meta.layers, meta.heads])?;
        if meta.heads == 0 || meta.head_dim == 0 || meta.layers == 0 || meta.heads * meta.head_dim != meta.hidden {
            bail!(Vectors, "metadata: {} heads × {} ≠ hidden {}", meta.heads, meta.head_dim, meta.hidden);
        }
        Ok(Self { meta, direction, probe_accuracy })
    }

    /// Refuse vectors derived on another model: shapes must match, and so must the GGUF's sha256.
    pub fn check_model(&self, model: &Model) -> Result<()> {
        let (m, c) = (&self.meta, &model.config);
        if m.layers != c.n_layers || m.heads != c.n_heads || m.head_dim != c.head_dim || m.hidden != c.hidden {
            bail!(
                Vectors,
                "this vector file is for a model with {} layers × {} heads × {} (`{}`), but the loaded model has {} layers × {} heads × {} (`{}`)",
                m.layers, m.heads, m.head_dim, m.model_name, c.n_layers, c.n_heads, c.head_dim, c.name
            );
        }
        if m.model_sha256 != model.sha256 {
            bail!(
                Vectors,
                "this vector file was derived on `{}` (GGUF sha256 {}…), not on the loaded model `{}` (sha256 {}…)",
                m.model_name,
                &m.model_sha256.get(..12).unwrap_or(&m.model_sha256),
                c.name,
                &model.sha256[..12.min(model.sha256.len())]
            );
        }
        Ok(())
    }

    /// Write atomically: a temp file beside the target, then rename, so a failure never leaves half a file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        crate::write_atomically(path, &self.to_safetensors_bytes()?)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Vectors(format!("cannot read vector file {}: {e}", path.display())))?;
        Self::from_safetensors_bytes(&bytes)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Steering pairs

#[derive(Clone, Debug, Deserialize)]
pub struct SteeringPair {
    pub toxic: String,
    pub nontoxic: String,
    #[serde(default)]
    pub category: String,
}

/// Parse a JSONL pairs file; every problem names its line.
pub fn parse_pairs(bytes: &[u8]) -> Result<Vec<SteeringPair>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::Pairs(format!("line {line}: not valid UTF-8"))
    })?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair: SteeringPair =
            serde_json::from_str(line).map_err(|e| Error::Pairs(format!("line {}: {e}", i + 1)))?;
        if pair.toxic.trim().is_empty() || pair.nontoxic.trim().is_empty() {
            bail!(Pairs, "line {}: empty text", i + 1);
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Sums cos(a_l, z_l) over every layer and position it sees (the read-out the page colours tokens by, at
/// every position rather than only the last).
struct ReadoutCapture<'a> {
    vectors: &'a DetoxVectors,
    sum: f64,
    count: usize,
}

impl ActivationHook for ReadoutCapture<'_> {
    fn site(&self) -> Site {
        self.vectors.meta.site
    }
    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor> {
        let z = self.vectors.layer(layer);
        let values = act.flatten_all()?.to_vec1::<f32>()?;
        for position in values.chunks_exact(z.len()) {
            self.sum += crate::steering::cosine(position, z);
            self.count += 1;
        }
        Ok(act)
    }
}

/// The neutral baseline of the read-out: the mean over layers, positions and `texts` of cos(a_l, z_l) on the
/// raw model. The page centres its token colours on it (measured on the non-toxic sides of the steering pairs,
/// without their prefix), so that ordinary text is not coloured as leaning one way.
pub fn neutral_readout(model: &Model, vectors: &DetoxVectors, texts: &[&str]) -> Result<f64> {
    vectors.check_model(model)?;
    let mut capture = ReadoutCapture { vectors, sum: 0.0, count: 0 };
    for text in texts {
        let ids = model.tokenizer.encode(text)?;
        if ids.is_empty() || ids.len() >= model.config.context_length {
            bail!(Input, "a baseline text has {} tokens: empty or too long", ids.len());
        }
        model.forward_last(&model.token_tensor(&[ids])?, &mut Cache::new(model), Some(&mut capture))?;
    }
    if capture.count == 0 {
        bail!(Input, "no text to measure the read-out baseline on");
    }
    Ok(capture.sum / capture.count as f64)
}

/// The paper's preprocessing: strip a trailing " ." or "." before adding the prefix.
pub fn strip_final_period(text: &str) -> &str {
    let t = text.trim_end();
    t.strip_suffix(" .").or_else(|| t.strip_suffix('.')).unwrap_or(t)
}

/// Keeps, per layer, the site's activation at the last (up to) `LAST_TOKENS` positions of a batch-1 forward pass,
/// as `[1, positions, width]`.
struct TailCapture {
    site: Site,
    tails: Vec<Tensor>,
}

impl ActivationHook for TailCapture {
    fn site(&self) -> Site {
        self.site
    }
    fn on_activation(&mut self, _layer: usize, act: Tensor) -> Result<Tensor> {
        let dims = act.dims().to_vec();
        let seq = dims[1];
        let width: usize = dims[2..].iter().product();
        let take = LAST_TOKENS.min(seq);
        self.tails.push(act.reshape((dims[0], seq, width))?.narrow(1, seq - take, take)?);
        Ok(act)
    }
}

/// The tokens that every text of one side starts with (its prefix, as the tokenizer splits it in context), run
/// once: each text then only runs its own tokens after a copy of this cache. The activations of a position do not
/// depend on how the tokens before it were batched, so the result is the same, bit for bit, as running each text
/// whole (tested: `shared_prefix_changes_no_bit` in tests/vectors.rs), at about half the cost.
struct SharedPrefix {
    len: usize,
    cache: Cache,
    /// Per layer, the prefix's last positions: they count in the mean of a text shorter than `LAST_TOKENS`.
    tails: Vec<Tensor>,
}

impl SharedPrefix {
    /// The longest run of tokens all `texts` start with, leaving each at least one token of its own; None when
    /// there is nothing worth sharing.
    fn new(model: &Model, texts: &[&[u32]], site: Site) -> Result<Option<Self>> {
        let Some(first) = texts.first() else { return Ok(None) };
        let len = texts.iter().fold(first.len(), |n, t| {
            let common = t.iter().zip(first.iter()).take_while(|(a, b)| a == b).count();
            n.min(common).min(t.len().saturating_sub(1))
        });
        if len < 2 {
            return Ok(None);
        }
        let mut cache = Cache::new(model);
        let mut capture = TailCapture { site, tails: Vec::new() };
        model.forward_hidden(&model.token_tensor(&[first[..len].to_vec()])?, &mut cache, Some(&mut capture))?;
        Ok(Some(Self { len, cache, tails: capture.tails }))
    }
}

/// `[layers][hidden]` mean activation at `site` over the last `LAST_TOKENS` positions of a text already tokenized,
/// after the shared prefix when given (which the text must start with).
fn mean_activations_of(model: &Model, ids: &[u32], site: Site, prefix: Option<&SharedPrefix>) -> Result<Vec<Vec<f32>>> {
    if ids.is_empty() {
        bail!(Input, "empty text");
    }
    let (mut cache, start) = match prefix {
        Some(p) => (p.cache.clone(), p.len),
        None => (Cache::new(model), 0),
    };
    let mut capture = TailCapture { site, tails: Vec::new() };
    model.forward_hidden(&model.token_tensor(&[ids[start..].to_vec()])?, &mut cache, Some(&mut capture))?;
    let own = ids.len() - start;
    capture
        .tails
        .into_iter()
        .enumerate()
        .map(|(layer, tail)| {
            let tail = match prefix {
                Some(p) if own < LAST_TOKENS => {
                    let joined = Tensor::cat(&[&p.tails[layer], &tail], 1)?;
                    let take = LAST_TOKENS.min(joined.dim(1)?);
                    joined.narrow(1, joined.dim(1)? - take, take)?
                }
                _ => tail,
            };
            Ok(tail.mean(1)?.squeeze(0)?.to_vec1::<f32>()?)
        })
        .collect()
}

/// `[layers][hidden]` mean activation of `text` at `site`.
pub fn mean_activations(model: &Model, text: &str, site: Site) -> Result<Vec<Vec<f32>>> {
    mean_activations_of(model, &model.tokenizer.encode(text)?, site, None)
}

/// Run `text` alone (batch 1, fresh cache) through the model with `hook` at its site.
pub fn run_hooked(model: &Model, text: &str, hook: &mut dyn ActivationHook) -> Result<()> {
    let ids = model.tokenizer.encode(text)?;
    if ids.is_empty() {
        bail!(Input, "empty text");
    }
    let tokens = model.token_tensor(&[ids])?;
    let mut cache = Cache::new(model);
    model.forward_hidden(&tokens, &mut cache, Some(hook))?;
    Ok(())
}

/// The recommended setting per site: what `destein derive` stores unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recommendation {
    pub mode: FusionMode,
    pub alpha: f32,
    pub generated_only: bool,
}

/// Heads: rotate α 0.25 on the generated positions only, chosen on the dev split by scripts/choose-defaults.py
/// (reports/rtp-dev200) and reported on the test split (reports/rtp-test400, README "Detoxification").
/// attn_out: chosen earlier on reports/rtp400-s25 (not re-run in v2).
pub fn measured_recommendation(site: Site) -> Recommendation {
    match site {
        Site::Heads => Recommendation { mode: FusionMode::Rotate, alpha: 0.25, generated_only: true },
        Site::AttnOut => Recommendation { mode: FusionMode::Headwise, alpha: 0.1, generated_only: false },
    }
}

/// Fewer pairs than this cannot train and test a probe per head (80% train, 20% test: at least 2 test pairs).
pub const MIN_PAIRS: usize = 8;

pub struct DeriveOptions {
    pub site: Site,
    pub count: usize,
    pub seed: u64,
    pub pairs_sha256: String,
    pub recommended_mode: FusionMode,
    pub recommended_alpha: f32,
    pub recommended_generated_only: bool,
    /// Put before the side steered away from (`toxic` in the pairs file) and the side steered toward.
    pub away_prefix: String,
    pub toward_prefix: String,
    /// Stored in the file's metadata when given (see [`VectorMeta::concept`]).
    pub concept: Option<String>,
}

impl DeriveOptions {
    /// DeStein's detox setting: its two prefixes, and the measured recommendation for the site.
    pub fn detox(site: Site, count: usize, seed: u64, pairs_sha256: String) -> Self {
        let r = measured_recommendation(site);
        Self {
            site,
            count,
            seed,
            pairs_sha256,
            recommended_mode: r.mode,
            recommended_alpha: r.alpha,
            recommended_generated_only: r.generated_only,
            away_prefix: TOXIC_PREFIX.into(),
            toward_prefix: NONTOXIC_PREFIX.into(),
            concept: None,
        }
    }
}

impl DeriveOptions {
    /// Name the concept (stored in the file). A concept file recommends steering the whole text: the
    /// generated-only recommendation was measured for detox, the concepts' with every position steered.
    pub fn set_concept(&mut self, concept: Option<String>) {
        if concept.is_some() {
            self.recommended_generated_only = false;
        }
        self.concept = concept;
    }
}

/// Refuse pair sets no probe can be fitted on, naming the pair: too few, an empty side, a pair twice.
pub fn check_pairs(pairs: &[SteeringPair]) -> Result<()> {
    if pairs.len() < MIN_PAIRS {
        bail!(Pairs, "at least {MIN_PAIRS} pairs are needed to train and test the probes (there are {})", pairs.len());
    }
    let mut seen = std::collections::HashMap::new();
    for (i, pair) in pairs.iter().enumerate() {
        if pair.toxic.trim().is_empty() || pair.nontoxic.trim().is_empty() {
            let side = if pair.toxic.trim().is_empty() { "first (away)" } else { "second (toward)" };
            bail!(Pairs, "pair {}: its {side} side is empty", i + 1);
        }
        // Compared as derivation reads them (a final period is dropped).
        if let Some(first) = seen.insert((strip_final_period(&pair.toxic), strip_final_period(&pair.nontoxic)), i) {
            bail!(Pairs, "pairs {} and {} are the same pair", first + 1, i + 1);
        }
    }
    Ok(())
}

/// A derivation in progress, one pair at a time, so that a caller can show progress and cancel between pairs
/// (the page's worker does; `derive` runs it to the end). Owns its inputs: nothing borrows the model between steps.
/// One pair's (away, toward) token ids.
type PairTokens = (Vec<u32>, Vec<u32>);

/// One pair's (away, toward) activations, `[layers][hidden]` each.
pub type PairActivations = (Vec<Vec<f32>>, Vec<Vec<f32>>);

pub struct Derivation {
    options: DeriveOptions,
    model_sha256: String,
    /// Token ids of each sampled pair's (away, toward) side, prefixes included, in sampling order.
    texts: Vec<PairTokens>,
    /// Σ (away − toward) per layer, `[layers · hidden]`.
    sum: Vec<f64>,
    /// Per pair read so far: (away, toward) activations, each `[layers][hidden]`.
    samples: Vec<PairActivations>,
    /// The (away, toward) sides' shared prefixes, run on the first step.
    prefixes: Option<(Option<SharedPrefix>, Option<SharedPrefix>)>,
    /// Whether to run the shared prefixes once (the default; `without_shared_prefix` turns it off, for the test
    /// that it changes nothing).
    share_prefix: bool,
    /// Probe accuracy per (layer, head), `[layers · heads]`, filled one layer per step once every pair is read
    /// (f64: the weights (1 + accuracy) are applied before rounding to f32).
    accuracy: Vec<f64>,
    /// Layers whose probes are fitted.
    fitted: usize,
    layers: usize,
}

impl Derivation {
    /// Check the pairs and options, sample `count` pairs with `seed`, and tokenize them (refusing any that does
    /// not fit the model's context).
    pub fn new(model: &Model, pairs: &[SteeringPair], options: DeriveOptions) -> Result<Self> {
        check_pairs(pairs)?;
        if options.count < MIN_PAIRS {
            bail!(
                Pairs,
                "at least {MIN_PAIRS} pairs are needed to train and test the probes (asked for {})",
                options.count
            );
        }
        if pairs.len() < options.count {
            bail!(Pairs, "asked for {} pairs but the file has only {}", options.count, pairs.len());
        }
        validate_alpha(options.recommended_alpha)?;
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
        order.truncate(options.count);
        let context = model.config.context_length;
        let tokenize = |i: usize, prefix: &str, text: &str, side: &str| -> Result<Vec<u32>> {
            let ids = model.tokenizer.encode(&format!("{prefix}{}", strip_final_period(text)))?;
            if ids.is_empty() {
                bail!(
                    Pairs,
                    "pair {}: its {side} side is empty once its final period is removed (and there is no prefix)",
                    i + 1
                );
            }
            if ids.len() > context {
                bail!(
                    Pairs,
                    "pair {}: its {side} side is {} tokens long with its prefix; the model's context holds {context}",
                    i + 1,
                    ids.len()
                );
            }
            Ok(ids)
        };
        let texts = order
            .iter()
            .map(|&i| {
                let pair = &pairs[i];
                Ok((
                    tokenize(i, &options.away_prefix, &pair.toxic, "away")?,
                    tokenize(i, &options.toward_prefix, &pair.nontoxic, "toward")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let c = &model.config;
        Ok(Self {
            sum: vec![0f64; c.n_layers * c.hidden],
            samples: Vec::with_capacity(texts.len()),
            prefixes: None,
            share_prefix: true,
            accuracy: vec![0f64; c.n_layers * c.n_heads],
            fitted: 0,
            layers: c.n_layers,
            texts,
            model_sha256: model.sha256.clone(),
            options,
        })
    }

    /// Run every text whole instead of sharing its side's prefix: the same bits, twice the work. For the test of
    /// that claim.
    pub fn without_shared_prefix(mut self) -> Self {
        self.share_prefix = false;
        self
    }

    /// Steps in all: one per pair read, then one per layer whose probes are fitted.
    pub fn total(&self) -> usize {
        self.texts.len() + self.layers
    }

    /// Steps done so far.
    pub fn done(&self) -> usize {
        self.samples.len() + self.fitted
    }

    /// Each pair read so far: its (away, toward) activations, `[layers][hidden]` each.
    pub fn pair_activations(&self) -> &[PairActivations] {
        &self.samples
    }

    /// Pairs read so far, of `pairs_total()`.
    pub fn pairs_read(&self) -> usize {
        self.samples.len()
    }

    pub fn pairs_total(&self) -> usize {
        self.texts.len()
    }

    /// One step: read the next pair's two sides, or, once every pair is read, fit the next layer's probes (so a
    /// caller can show progress all the way). Returns whether the derivation is complete.
    pub fn step(&mut self, model: &Model) -> Result<bool> {
        if model.sha256 != self.model_sha256 {
            bail!(Input, "the model changed during the derivation; start it again");
        }
        let Some((away, toward)) = self.texts.get(self.samples.len()) else {
            if self.fitted < self.layers {
                self.fit_layer(model, self.fitted);
                self.fitted += 1;
            }
            return Ok(self.fitted == self.layers);
        };
        let site = self.options.site;
        if self.prefixes.is_none() && !self.share_prefix {
            self.prefixes = Some((None, None));
        }
        if self.prefixes.is_none() {
            let side = |pick: fn(&PairTokens) -> &[u32]| self.texts.iter().map(pick).collect::<Vec<_>>();
            let away_prefix = SharedPrefix::new(model, &side(|t| &t.0), site)?;
            let toward_prefix = SharedPrefix::new(model, &side(|t| &t.1), site)?;
            self.prefixes = Some((away_prefix, toward_prefix));
        }
        let (away_prefix, toward_prefix) = self.prefixes.as_ref().expect("set above");
        let away = mean_activations_of(model, away, site, away_prefix.as_ref())?;
        let toward = mean_activations_of(model, toward, site, toward_prefix.as_ref())?;
        let hidden = model.config.hidden;
        for (l, (a, t)) in away.iter().zip(&toward).enumerate() {
            for d in 0..hidden {
                self.sum[l * hidden + d] += a[d] as f64 - t[d] as f64;
            }
        }
        self.samples.push((away, toward));
        Ok(false)
    }

    /// Fit a probe per head of `layer` on the first 80% of the pairs and test it on the rest.
    fn fit_layer(&mut self, model: &Model, layer: usize) {
        let c = &model.config;
        let n_train = ((self.samples.len() as f64) * TRAIN_FRACTION).round() as usize;
        for h in 0..c.n_heads {
            let slice = |v: &Vec<Vec<f32>>| v[layer][h * c.head_dim..(h + 1) * c.head_dim].to_vec();
            let mut train = Vec::new();
            let mut test = Vec::new();
            for (k, (away, toward)) in self.samples.iter().enumerate() {
                let set = if k < n_train { &mut train } else { &mut test };
                set.push((slice(away), 1.0));
                set.push((slice(toward), 0.0));
            }
            self.accuracy[layer * c.n_heads + h] = LogisticProbe::fit(&train).accuracy(&test);
        }
    }

    /// Weight each head's slice of Σ(away − toward) by (1 + its probe's accuracy): the vector file.
    pub fn finish(self, model: &Model) -> Result<DetoxVectors> {
        if self.done() < self.total() {
            bail!(
                Input,
                "the derivation is not finished: {} of {} pairs read, {} of {} layers' probes fitted",
                self.samples.len(),
                self.texts.len(),
                self.fitted,
                self.layers
            );
        }
        let c = &model.config;
        let (layers, heads, head_dim, hidden) = (c.n_layers, c.n_heads, c.head_dim, c.hidden);
        let accuracy = self.accuracy;
        let direction: Vec<f32> = (0..layers * hidden)
            .map(|idx| (self.sum[idx] * (1.0 + accuracy[(idx / hidden) * heads + (idx % hidden) / head_dim])) as f32)
            .collect();
        let accuracy: Vec<f32> = accuracy.iter().map(|&a| a as f32).collect();
        let o = self.options;
        let meta = VectorMeta {
            format_version: FORMAT_VERSION,
            site: o.site,
            model_name: c.name.clone(),
            model_sha256: model.sha256.clone(),
            hidden,
            heads,
            head_dim,
            layers,
            pairs: self.samples.len(),
            pairs_sha256: o.pairs_sha256,
            seed: o.seed,
            toxic_prefix: o.away_prefix,
            nontoxic_prefix: o.toward_prefix,
            recommended_mode: o.recommended_mode,
            recommended_alpha: o.recommended_alpha,
            recommended_generated_only: o.recommended_generated_only,
            max_alpha: MAX_ALPHA,
            concept: o.concept,
            source: None,
        };
        Ok(DetoxVectors { meta, direction, probe_accuracy: accuracy })
    }
}

/// Derive DeStein vectors: sample `count` pairs with `seed`, read both sides' activations, sum the differences
/// per layer, fit a probe per (layer, head), and weight each head's slice by (1 + probe accuracy).
/// `progress` is called after each step (a pair read, then a layer's probes fitted) with (done, total).
pub fn derive(
    model: &Model,
    pairs: &[SteeringPair],
    options: DeriveOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<DetoxVectors> {
    let mut derivation = Derivation::new(model, pairs, options)?;
    while !derivation.step(model)? {
        progress(derivation.done(), derivation.total());
    }
    progress(derivation.done(), derivation.total());
    derivation.finish(model)
}

/// L2-regularised logistic regression (λ = 1, as scikit-learn's default C = 1) on standardised features,
/// fitted by Newton's method: deterministic, and exact enough in a few iterations for 64 features.
pub struct LogisticProbe {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

impl LogisticProbe {
    pub fn fit(samples: &[(Vec<f32>, f64)]) -> Self {
        let n = samples.len();
        let dim = samples.first().map(|s| s.0.len()).unwrap_or(0);
        let mut mean = vec![0f64; dim];
        for (x, _) in samples {
            for (m, &v) in mean.iter_mut().zip(x) {
                *m += v as f64 / n as f64;
            }
        }
        let mut scale = vec![0f64; dim];
        for (x, _) in samples {
            for ((s, &v), m) in scale.iter_mut().zip(x).zip(&mean) {
                *s += (v as f64 - m).powi(2) / n as f64;
            }
        }
        scale.iter_mut().for_each(|s| *s = s.sqrt().max(1e-12));
        let features: Vec<Vec<f64>> = samples
            .iter()
            .map(|(x, _)| {
                let mut f: Vec<f64> = x.iter().zip(&mean).zip(&scale).map(|((&v, m), s)| (v as f64 - m) / s).collect();
                f.push(1.0); // bias
                f
            })
            .collect();
        let p = dim + 1;
        let mut w = vec![0f64; p];
        for _ in 0..50 {
            let mut grad = vec![0f64; p];
            let mut hess = vec![0f64; p * p];
            for (f, (_, y)) in features.iter().zip(samples) {
                let z: f64 = f.iter().zip(&w).map(|(a, b)| a * b).sum();
                let prob = 1.0 / (1.0 + (-z).exp());
                let r = prob * (1.0 - prob);
                for i in 0..p {
                    grad[i] += (prob - y) * f[i];
                    for j in 0..p {
                        hess[i * p + j] += r * f[i] * f[j];
                    }
                }
            }
            // The penalty ½‖w‖² (not on the bias).
            for i in 0..dim {
                grad[i] += w[i];
                hess[i * p + i] += 1.0;
            }
            hess[dim * p + dim] += 1e-9;
            let step = solve(&mut hess, &grad, p);
            let change: f64 = step.iter().map(|s| s.abs()).fold(0.0, f64::max);
            w.iter_mut().zip(&step).for_each(|(wi, si)| *wi -= si);
            if change < 1e-10 {
                break;
            }
        }
        let bias = w[dim];
        w.truncate(dim);
        Self { mean, scale, weights: w, bias }
    }

    pub fn predict(&self, x: &[f32]) -> f64 {
        let z: f64 = x
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((&v, m), s), w)| (v as f64 - m) / s * w)
            .sum::<f64>()
            + self.bias;
        1.0 / (1.0 + (-z).exp())
    }

    pub fn accuracy(&self, samples: &[(Vec<f32>, f64)]) -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let right = samples.iter().filter(|(x, y)| (self.predict(x) > 0.5) == (*y > 0.5)).count();
        right as f64 / samples.len() as f64
    }
}

/// Solve A·x = b (A is p×p, symmetric positive definite here) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &[f64], p: usize) -> Vec<f64> {
    let mut b = b.to_vec();
    for col in 0..p {
        let pivot = (col..p).max_by(|&i, &j| a[i * p + col].abs().total_cmp(&a[j * p + col].abs())).unwrap();
        if pivot != col {
            for k in 0..p {
                a.swap(col * p + k, pivot * p + k);
            }
            b.swap(col, pivot);
        }
        let d = a[col * p + col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..p {
            let f = a[row * p + col] / d;
            if f == 0.0 {
                continue;
            }
            for k in col..p {
                a[row * p + k] -= f * a[col * p + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0f64; p];
    for row in (0..p).rev() {
        let s: f64 = (row + 1..p).map(|k| a[row * p + k] * x[k]).sum();
        let d = a[row * p + row];
        x[row] = if d.abs() < 1e-300 { 0.0 } else { (b[row] - s) / d };
    }
    x
}

/// Refuse vector files that cannot steer one row together: more than `MAX_VECTORS`, different sites,
/// different shapes, or derived on different models (by GGUF sha256). Files are named by position (1-based).
pub fn check_compatible(vectors: &[DetoxVectors]) -> Result<()> {
    if vectors.len() > MAX_VECTORS {
        bail!(Vectors, "{} vector files given; at most {MAX_VECTORS} can steer together", vectors.len());
    }
    let Some(first) = vectors.first() else { return Ok(()) };
    let a = &first.meta;
    for (i, v) in vectors.iter().enumerate() {
        let (b, n) = (&v.meta, i + 1);
        if b.site != a.site {
            bail!(
                Vectors,
                "vector file {n} steers site `{}` but file 1 steers `{}`; all must steer the same site",
                b.site.name(),
                a.site.name()
            );
        }
        if (b.layers, b.heads, b.head_dim) != (a.layers, a.heads, a.head_dim) {
            bail!(
                Vectors,
                "vector file {n} has {} layers × {} heads × {}, file 1 has {} × {} × {}; all must have the same shape",
                b.layers,
                b.heads,
                b.head_dim,
                a.layers,
                a.heads,
                a.head_dim
            );
        }
        if v.direction.len() != b.layers * b.heads * b.head_dim {
            bail!(
                Vectors,
                "vector file {n} holds {} direction values, its metadata says {} × {} × {}",
                v.direction.len(),
                b.layers,
                b.heads,
                b.head_dim
            );
        }
        if b.model_sha256 != a.model_sha256 {
            bail!(
                Vectors,
                "vector file {n} was derived on `{}` (GGUF sha256 {}…), file 1 on `{}` (sha256 {}…); all must come from the same model",
                b.model_name, short(&b.model_sha256), a.model_name, short(&a.model_sha256)
            );
        }
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
