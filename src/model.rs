//! A Llama-family forward pass over a quantized GGUF, with DeStein's two activation sites exposed per layer.
//!
//! Read top to bottom: config from metadata, weights, then `forward`, which is one loop over the blocks.
//! Each block: RmsNorm → q/k/v → interleaved RoPE → causal attention with a KV cache (grouped-query heads)
//! → [site `heads`] → o_proj → [site `attn_out`] → residual add → RmsNorm → SwiGLU MLP → residual add.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use sha2::{Digest, Sha256};

use crate::bail;
use crate::error::{find_named, unknown_name, Error, Result};
use crate::kernels::{QuantizedMatrix, WeightFormat};
use crate::profile::{timed, Phase};
use crate::tokenizer::Tokenizer;

/// Where DeStein reads and writes activations inside each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// Each head's attention output just before `o_proj`: `[batch, seq, n_heads, head_dim]`.
    Heads,
    /// The attention output after `o_proj`, before the residual add: `[batch, seq, hidden]`
    /// (where the paper's released code hooks; its "heads" are then D/H slices).
    AttnOut,
}

impl Site {
    pub const ALL: [Site; 2] = [Site::Heads, Site::AttnOut];

    pub fn name(self) -> &'static str {
        match self {
            Site::Heads => "heads",
            Site::AttnOut => "attn_out",
        }
    }
}

impl FromStr for Site {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        // Command lines spell options with hyphens, so `attn-out` is accepted too.
        let canonical = if s == "attn-out" { "attn_out" } else { s };
        find_named(&Site::ALL, Site::name, canonical).ok_or_else(|| unknown_name("site", s, &Site::ALL.map(Site::name)))
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads (capture) and/or edits (steer) the activation at one site of every layer. The forward pass calls it
/// only when a hook is given, so an unsteered forward costs nothing extra.
pub trait ActivationHook {
    fn site(&self) -> Site;
    /// `act` has the site's documented shape; return it unchanged or edited (same shape).
    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor>;
}

/// How weights are held in memory after loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LoadDtype {
    /// Exactly as stored in the file (Q4_1 for our model). The default: with our kernels it is the fastest
    /// (fewest bytes to stream per token) and about as close to the f32 reference as Q8_0 (tests/model.rs).
    #[default]
    AsIs,
    /// Re-quantized to Q8_0 at load (what candle alone needed: it has no SIMD kernel for Q4_1).
    Q8_0,
    /// Dequantized to f32: the numerical reference, 4–8× the memory.
    F32,
}

impl LoadDtype {
    pub const ALL: [LoadDtype; 3] = [LoadDtype::AsIs, LoadDtype::Q8_0, LoadDtype::F32];

    pub fn name(self) -> &'static str {
        match self {
            LoadDtype::AsIs => "as-is",
            LoadDtype::Q8_0 => "q8_0",
            LoadDtype::F32 => "f32",
        }
    }
}

impl FromStr for LoadDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        // Short spellings people type.
        let canonical = match s {
            "asis" => "as-is",
            "q8" => "q8_0",
            other => other,
        };
        find_named(&LoadDtype::ALL, LoadDtype::name, canonical)
            .ok_or_else(|| unknown_name("load dtype", s, &LoadDtype::ALL.map(LoadDtype::name)))
    }
}

impl fmt::Display for LoadDtype {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Positions we support at most (SmolLM2 declares 8192).
pub const MAX_CONTEXT: usize = 32_768;

#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
}

impl Config {
    fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let arch =
            ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if arch != "llama" {
            bail!(
                Model,
                "architecture `{arch}` is not supported: destein runs Llama-family GGUF models (general.architecture = llama)"
            );
        }
        let get = |key: &str| -> Result<u32> {
            let full = format!("llama.{key}");
            ct.metadata
                .get(&full)
                .and_then(|v| v.to_u32().ok())
                .ok_or_else(|| Error::Model(format!("the GGUF lacks `{full}`")))
        };
        let hidden = get("embedding_length")? as usize;
        let n_heads = get("attention.head_count")? as usize;
        let n_kv_heads = get("attention.head_count_kv").unwrap_or(n_heads as u32) as usize;
        let divisible = hidden.is_multiple_of(n_heads) && n_heads.is_multiple_of(n_kv_heads);
        if hidden == 0 || n_heads == 0 || n_kv_heads == 0 || !divisible {
            bail!(Model, "inconsistent head counts: hidden {hidden}, heads {n_heads}, kv heads {n_kv_heads}");
        }
        let head_dim = hidden / n_heads;
        if let Ok(rope_dim) = get("rope.dimension_count") {
            if rope_dim as usize != head_dim {
                bail!(Model, "partial rotary embeddings (rope dim {rope_dim} ≠ head dim {head_dim}) are not supported");
            }
        }
        let f32_of = |key: &str| ct.metadata.get(key).and_then(|v| v.to_f32().ok());
        let name = ct
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "unnamed".into());
        let vocab = match ct.metadata.get("tokenizer.ggml.tokens").and_then(|v| v.to_vec().ok()) {
            Some(tokens) => tokens.len(),
            None => get("vocab_size")? as usize,
        };
        let n_layers = get("block_count")? as usize;
        let ffn = get("feed_forward_length")? as usize;
        if n_layers == 0 || ffn == 0 || vocab == 0 {
            bail!(Model, "the GGUF declares an empty model ({n_layers} layers, ffn {ffn}, vocabulary {vocab})");
        }
        // The rotary tables are built for every position up front, so a corrupt or huge context length is capped.
        let context_length = (get("context_length").unwrap_or(2048) as usize).min(MAX_CONTEXT);
        Ok(Self {
            name,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            hidden,
            ffn,
            vocab,
            context_length,
            rope_base: f32_of("llama.rope.freq_base").unwrap_or(10_000.0),
            rms_eps: f32_of("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5) as f64,
        })
    }
}

/// Which code multiplies by the quantized weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulBackend {
    /// Our kernels (src/kernels.rs): SIMD for Q4_1 and Q8_0, several rows per weight load.
    #[default]
    Ours,
    /// candle's `QMatMul`, the reference we test against.
    Candle,
}

impl MatmulBackend {
    pub const ALL: [MatmulBackend; 2] = [MatmulBackend::Ours, MatmulBackend::Candle];

    pub fn name(self) -> &'static str {
        match self {
            MatmulBackend::Ours => "ours",
            MatmulBackend::Candle => "candle",
        }
    }
}

impl FromStr for MatmulBackend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        find_named(&MatmulBackend::ALL, MatmulBackend::name, s)
            .ok_or_else(|| unknown_name("matmul backend", s, &MatmulBackend::ALL.map(MatmulBackend::name)))
    }
}

impl fmt::Display for MatmulBackend {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A weight matrix `[out, in]` applied to the last dimension of the input.
enum Linear {
    Ours(Arc<QuantizedMatrix>),
    Candle(QMatMul),
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Candle(m) => Ok(m.forward(x)?),
            Linear::Ours(m) => {
                let mut dims = x.dims().to_vec();
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let rows = input.len() / m.in_features();
                let mut out = vec![0f32; rows * m.out_features()];
                m.matmul_threads(&input, rows, &mut out, matmul_threads());
                *dims.last_mut().expect("rank ≥ 1") = m.out_features();
                Ok(Tensor::from_vec(out, dims, x.device())?)
            }
        }
    }
}

/// Threads for our kernels: the same count candle uses (RAYON_NUM_THREADS, else all cores); in wasm
/// the engine thread plus the helpers started by the page (none in the single-threaded build).
fn matmul_threads() -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    {
        crate::pool::threads()
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    {
        1
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *THREADS.get_or_init(candle_core::utils::get_num_threads)
    }
}

/// The token embedding table, looked up row by row (dequantized on the fly, exactly as stored).
enum Embeddings {
    Ours(Arc<QuantizedMatrix>),
    Candle(QTensor),
}

impl Embeddings {
    fn lookup(&self, tokens: &Tensor, vocab: usize, hidden: usize) -> Result<Tensor> {
        let ids = tokens.flatten_all()?.to_vec1::<u32>()?;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            bail!(Input, "token id {bad} is outside the vocabulary of {vocab}");
        }
        let mut dims = tokens.dims().to_vec();
        dims.push(hidden);
        match self {
            Embeddings::Candle(t) => Ok(t.embedding(tokens)?),
            Embeddings::Ours(m) => {
                let mut out = vec![0f32; ids.len() * hidden];
                for (row, &id) in out.chunks_exact_mut(hidden).zip(&ids) {
                    m.dequantize_row_into(id as usize, row);
                }
                Ok(Tensor::from_vec(out, dims, tokens.device())?)
            }
        }
    }
}

struct Block {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    ffn_norm: Tensor,
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
}

pub struct Model {
    pub config: Config,
    pub tokenizer: Tokenizer,
    /// sha256 of the GGUF bytes, hex: vector files name the exact model they were derived on.
    pub sha256: String,
    pub load_dtype: LoadDtype,
    embeddings: Embeddings,
    blocks: Vec<Block>,
    final_norm: Tensor,
    lm_head: Linear,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// Per-layer keys and values of the tokens seen so far, for every batch row.
#[derive(Clone)]
pub struct Cache {
    kv: Vec<LayerCache>,
    /// Number of positions already in the cache.
    pub len: usize,
    /// Batch rows (fixed by the first forward).
    rows: usize,
}

/// One layer's keys and values, laid out `[position][row][kv head][head dim]`: a step appends at the end, so
/// nothing already cached is copied again.
#[derive(Clone, Default)]
struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Cache {
    pub fn new(model: &Model) -> Self {
        Self { kv: vec![LayerCache::default(); model.config.n_layers], len: 0, rows: 0 }
    }

    /// A cache of `rows` identical rows from this one-row cache: rows that share a prompt (the samples of an
    /// evaluation prompt) run the prompt once and start decoding from copies of its keys and values.
    pub fn repeat_rows(&self, rows: usize) -> Result<Cache> {
        if self.rows > 1 {
            bail!(Input, "only a one-row cache can be repeated");
        }
        let repeat = |values: &[f32]| -> Vec<f32> {
            let per_position = values.len() / self.len.max(1);
            values
                .chunks_exact(per_position.max(1))
                .flat_map(|p| p.iter().copied().cycle().take(p.len() * rows))
                .collect()
        };
        let kv = self.kv.iter().map(|l| LayerCache { k: repeat(&l.k), v: repeat(&l.v) }).collect();
        Ok(Cache { kv, len: self.len, rows: if self.len == 0 { 0 } else { rows } })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every tensor lies inside the file and has a size its type allows, before candle reads it: a
/// truncated or corrupt file must give an error, never an out-of-bounds read or a panic (which in wasm would
/// kill the module).
fn validate_tensor_table(ct: &gguf_file::Content, file_len: usize) -> Result<()> {
    for (name, info) in &ct.tensor_infos {
        let dims = info.shape.dims();
        let elems: usize = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::Model(format!("tensor `{name}` has an impossible shape {dims:?}")))?;
        let block = info.ggml_dtype.block_size();
        let inner = dims.last().copied().unwrap_or(1);
        if inner % block != 0 {
            bail!(
                Model,
                "tensor `{name}` has rows of {inner} values, not a multiple of its {:?} block size {block}",
                info.ggml_dtype
            );
        }
        let bytes = elems / block * info.ggml_dtype.type_size();
        let start = (ct.tensor_data_offset as usize).checked_add(info.offset as usize);
        let end = start.and_then(|s| s.checked_add(bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => bail!(
                Model,
                "the file is truncated or corrupt: tensor `{name}` ends past the end of the file ({file_len} bytes)"
            ),
        }
    }
    Ok(())
}

/// RoPE's cos and sin tables, `[context, head_dim / 2]`, with libm (identical bits natively and in wasm).
fn rope_tables(config: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let inv_freq: Vec<f32> = (0..config.head_dim)
        .step_by(2)
        .map(|i| 1f32 / libm::powf(config.rope_base, i as f32 / config.head_dim as f32))
        .collect();
    let angles: Vec<f32> =
        (0..config.context_length).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f)).collect();
    let table = |f: fn(f32) -> f32| {
        Tensor::from_vec(angles.iter().map(|&a| f(a)).collect::<Vec<_>>(), (config.context_length, half), device)
    };
    Ok((table(libm::cosf)?, table(libm::sinf)?))
}

/// silu(gate) · up, elementwise (the SwiGLU of the feed-forward block), with libm's exp.
fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let (g, u) = (gate.flatten_all()?.to_vec1::<f32>()?, up.flatten_all()?.to_vec1::<f32>()?);
    let out: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + libm::expf(-g)) * u).collect();
    Ok(Tensor::from_vec(out, gate.dims(), gate.device())?)
}

/// Reads a GGUF file's weights, checks their shapes, and holds each as the model runs it: one loader per kind of
/// weight (matrix, norm, block, the embedding table and output projection).
struct WeightLoader<'a, R> {
    ct: &'a gguf_file::Content,
    reader: R,
    load_dtype: LoadDtype,
    backend: MatmulBackend,
    device: &'a Device,
}

impl<R: std::io::Read + std::io::Seek> WeightLoader<'_, R> {
    /// The tensor `name`, which must have shape `dims`.
    fn tensor(&mut self, name: &str, dims: &[usize]) -> Result<QTensor> {
        let t = self.read(name)?;
        expect_shape(&t, name, dims)?;
        Ok(t)
    }

    fn read(&mut self, name: &str) -> Result<QTensor> {
        self.ct
            .tensor(&mut self.reader, name, self.device)
            .map_err(|e| Error::Model(format!("cannot read tensor `{name}`: {e}")))
    }

    /// A weight matrix: our kernels' layout where they handle the format, else candle's, in the load dtype.
    fn linear(&self, t: QTensor) -> Result<Linear> {
        if self.backend == MatmulBackend::Ours {
            if let Some(matrix) = self.ours(&t)? {
                return Ok(Linear::Ours(Arc::new(matrix)));
            }
        }
        let t = match (self.load_dtype, t.dtype()) {
            (_, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) | (LoadDtype::AsIs, _) => t,
            (LoadDtype::Q8_0, GgmlDType::Q8_0) => t,
            (LoadDtype::Q8_0, _) => QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?,
            (LoadDtype::F32, _) => QTensor::quantize(&t.dequantize(&Device::Cpu)?, GgmlDType::F32)?,
        };
        Ok(Linear::Candle(QMatMul::from_qtensor(t)?))
    }

    /// `t` for our kernels, or None for the formats (and f32) that go through candle.
    fn ours(&self, t: &QTensor) -> Result<Option<QuantizedMatrix>> {
        let (out_features, in_features) = t.shape().dims2()?;
        let kernel_error =
            |e: crate::kernels::KernelError| Error::Model(format!("weights [{out_features}, {in_features}]: {e}"));
        let matrix = match (self.load_dtype, t.dtype()) {
            (LoadDtype::AsIs, GgmlDType::Q4_1) => {
                QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &t.data()?, out_features, in_features)
            }
            (LoadDtype::AsIs | LoadDtype::Q8_0, GgmlDType::Q8_0) => {
                QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &t.data()?, out_features, in_features)
            }
            (LoadDtype::Q8_0, GgmlDType::Q4_1) => {
                let values = t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                QuantizedMatrix::quantize_q8_0(&values, out_features, in_features)
            }
            _ => return Ok(None),
        };
        Ok(Some(matrix.map_err(kernel_error)?))
    }

    fn norm(&mut self, name: &str, dims: &[usize]) -> Result<Tensor> {
        Ok(self.tensor(name, dims)?.dequantize(&Device::Cpu)?)
    }

    /// The token embedding table and the output projection (the same matrix when the file ties them).
    fn embeddings_and_lm_head(&mut self, c: &Config) -> Result<(Embeddings, Linear)> {
        let dims = [c.vocab, c.hidden];
        let tied = !self.ct.tensor_infos.contains_key("output.weight");
        // Tied embeddings: the output projection is the embedding matrix.
        let lm_head = self.matrix(if tied { "token_embd.weight" } else { "output.weight" }, &dims)?;
        let table_dtype = self.ct.tensor_infos.get("token_embd.weight").map(|t| t.ggml_dtype);
        if let Linear::Ours(m) = &lm_head {
            // A tied lm-head kept as stored is the same table, already in our layout: share it (one read of it).
            if tied && m.format() == WeightFormat::Q8_0 && table_dtype == Some(GgmlDType::Q8_0) {
                return Ok((Embeddings::Ours(m.clone()), lm_head));
            }
        }
        let table = self.tensor("token_embd.weight", &dims)?;
        let format = match table.dtype() {
            GgmlDType::Q8_0 => Some(WeightFormat::Q8_0),
            GgmlDType::Q4_1 => Some(WeightFormat::Q4_1),
            _ => None,
        };
        let embeddings = match (self.backend, format) {
            (MatmulBackend::Ours, Some(format)) => Embeddings::Ours(Arc::new(
                QuantizedMatrix::from_ggml(format, &table.data()?, c.vocab, c.hidden)
                    .map_err(|e| Error::Model(format!("token_embd.weight: {e}")))?,
            )),
            _ => Embeddings::Candle(table),
        };
        Ok((embeddings, lm_head))
    }

    /// Transformer block `i`.
    fn block(&mut self, i: usize, c: &Config) -> Result<Block> {
        let kv_dim = c.n_kv_heads * c.head_dim;
        let name = |suffix: &str| format!("blk.{i}.{suffix}.weight");
        Ok(Block {
            attn_norm: self.norm(&name("attn_norm"), &[c.hidden])?,
            wq: self.matrix(&name("attn_q"), &[c.hidden, c.hidden])?,
            wk: self.matrix(&name("attn_k"), &[kv_dim, c.hidden])?,
            wv: self.matrix(&name("attn_v"), &[kv_dim, c.hidden])?,
            wo: self.matrix(&name("attn_output"), &[c.hidden, c.hidden])?,
            ffn_norm: self.norm(&name("ffn_norm"), &[c.hidden])?,
            w_gate: self.matrix(&name("ffn_gate"), &[c.ffn, c.hidden])?,
            w_up: self.matrix(&name("ffn_up"), &[c.ffn, c.hidden])?,
            w_down: self.matrix(&name("ffn_down"), &[c.hidden, c.ffn])?,
        })
    }

    fn matrix(&mut self, name: &str, dims: &[usize]) -> Result<Linear> {
        if let Some(matrix) = self.ours_direct(name, dims)? {
            return Ok(Linear::Ours(Arc::new(matrix)));
        }
        let t = self.tensor(name, dims)?;
        self.linear(t)
    }

    /// A Q4_1 or Q8_0 matrix kept as stored, read from the file straight into our kernels' layout: the same result
    /// as `linear(tensor(..))` without candle's copy of the blocks (a wasm engine load went from 131 to 115 ms with
    /// this and the single read of a tied table, under Node). None for the other formats and load dtypes.
    fn ours_direct(&mut self, name: &str, dims: &[usize]) -> Result<Option<QuantizedMatrix>> {
        let Some(info) = self.ct.tensor_infos.get(name) else { return Ok(None) };
        let format = match info.ggml_dtype {
            GgmlDType::Q4_1 if self.load_dtype == LoadDtype::AsIs => WeightFormat::Q4_1,
            GgmlDType::Q8_0 if matches!(self.load_dtype, LoadDtype::AsIs | LoadDtype::Q8_0) => WeightFormat::Q8_0,
            _ => return Ok(None),
        };
        if self.backend != MatmulBackend::Ours || dims.len() != 2 {
            return Ok(None);
        }
        // (candle's tensor table lists dimensions outermost first, as `dims` does.)
        let shape: Vec<usize> = info.shape.dims().to_vec();
        if shape != dims {
            bail!(Model, "tensor `{name}` has shape {shape:?}, expected {dims:?}");
        }
        // In bounds: validate_tensor_table checked every tensor against the file's length.
        let mut data = vec![0u8; format.ggml_bytes(dims[0], dims[1])];
        self.reader.seek(std::io::SeekFrom::Start(self.ct.tensor_data_offset + info.offset))?;
        self.reader.read_exact(&mut data).map_err(|e| Error::Model(format!("cannot read tensor `{name}`: {e}")))?;
        let matrix = QuantizedMatrix::from_ggml(format, &data, dims[0], dims[1])
            .map_err(|e| Error::Model(format!("weights [{}, {}]: {e}", dims[0], dims[1])))?;
        Ok(Some(matrix))
    }
}

fn expect_shape(t: &QTensor, name: &str, dims: &[usize]) -> Result<()> {
    if t.shape().dims() != dims {
        bail!(Model, "tensor `{name}` has shape {:?}, expected {:?}", t.shape().dims(), dims);
    }
    Ok(())
}

impl Model {
    /// Load from the GGUF's bytes (the browser hands us bytes; natively we read the file first).
    pub fn from_gguf_bytes(bytes: &[u8], load_dtype: LoadDtype, sha256: Option<String>) -> Result<Self> {
        Self::from_gguf_bytes_with(bytes, load_dtype, MatmulBackend::default(), sha256)
    }

    /// As `from_gguf_bytes`, choosing the matmul code (tests compare ours with candle's).
    pub fn from_gguf_bytes_with(
        bytes: &[u8],
        load_dtype: LoadDtype,
        backend: MatmulBackend,
        sha256: Option<String>,
    ) -> Result<Self> {
        let sha256 = sha256.unwrap_or_else(|| sha256_hex(bytes));
        Self::from_gguf_reader(Cursor::new(bytes), bytes.len(), load_dtype, backend, sha256)
    }

    /// Load from any seekable reader of `len` bytes (the browser reads tensor by tensor from a JS buffer, so the
    /// whole file never has to be copied into wasm memory).
    pub fn from_gguf_reader<R: std::io::Read + std::io::Seek>(
        mut reader: R,
        len: usize,
        load_dtype: LoadDtype,
        backend: MatmulBackend,
        sha256: String,
    ) -> Result<Self> {
        let mut magic = [0u8; 4];
        if len < 4 || reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            bail!(Model, "not a GGUF file (it does not start with the bytes `GGUF`)");
        }
        reader.seek(std::io::SeekFrom::Start(0))?;
        let ct = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::Model(format!("cannot read the GGUF header (truncated or corrupt?): {e}")))?;
        validate_tensor_table(&ct, len)?;
        let config = Config::from_gguf(&ct)?;
        let tokenizer = Tokenizer::from_gguf(&ct)?;
        let device = Device::Cpu;
        let c = &config;
        let mut weights = WeightLoader { ct: &ct, reader, load_dtype, backend, device: &device };
        let (embeddings, lm_head) = weights.embeddings_and_lm_head(c)?;
        let final_norm = weights.tensor("output_norm.weight", &[c.hidden])?;
        // No capacity reserved from the header's layer count: a corrupt count must fail at the first missing
        // tensor, not in an allocation.
        let mut blocks = Vec::new();
        for i in 0..c.n_layers {
            blocks.push(weights.block(i, c)?);
        }
        let (cos, sin) = rope_tables(&config, &device)?;
        Ok(Self {
            config,
            tokenizer,
            sha256,
            load_dtype,
            embeddings,
            blocks,
            final_norm: final_norm.dequantize(&Device::Cpu)?,
            lm_head,
            cos,
            sin,
            device,
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path, load_dtype: LoadDtype) -> Result<Self> {
        Self::load_with(path, load_dtype, MatmulBackend::default())
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_with(path: &std::path::Path, load_dtype: LoadDtype, backend: MatmulBackend) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Model(format!(
                "cannot read model file {}: {e}{}",
                path.display(),
                if e.kind() == std::io::ErrorKind::NotFound {
                    " (run scripts/fetch-model.sh, or pass --model PATH)"
                } else {
                    ""
                }
            ))
        })?;
        Self::from_gguf_bytes_with(&bytes, load_dtype, backend, None)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run `tokens` (`[batch, seq]`, u32) through the model after what `cache` holds, and return the final
    /// normed hidden states `[batch, seq, hidden]`. `hook`, when given, sees (and may edit) one site per layer.
    pub fn forward_hidden(
        &self,
        tokens: &Tensor,
        cache: &mut Cache,
        mut hook: Option<&mut dyn ActivationHook>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (batch, seq) = tokens.dims2()?;
        let start = cache.len;
        if start + seq > c.context_length {
            bail!(
                Input,
                "the sequence would have {} tokens, more than the model's context of {}",
                start + seq,
                c.context_length
            );
        }
        if start > 0 && cache.rows != batch {
            bail!(Input, "the cache holds a batch of {}, not {batch}", cache.rows);
        }
        cache.rows = batch;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;

        let eps = c.rms_eps as f32;
        let mut x = timed(Phase::Embed, || self.embeddings.lookup(tokens, c.vocab, c.hidden))?;
        for (layer, block) in self.blocks.iter().enumerate() {
            let residual = x.clone();
            let h = timed(Phase::Norm, || candle_nn::ops::rms_norm(&x, &block.attn_norm, eps))?;

            let (q, k, v) = timed(Phase::Matmul, || -> Result<_> {
                Ok((block.wq.forward(&h)?, block.wk.forward(&h)?, block.wv.forward(&h)?))
            })?;
            let q = q.reshape((batch, seq, c.n_heads, c.head_dim))?.transpose(1, 2)?;
            let k = k.reshape((batch, seq, c.n_kv_heads, c.head_dim))?.transpose(1, 2)?;
            let v = v.reshape((batch, seq, c.n_kv_heads, c.head_dim))?.transpose(1, 2)?;
            let (q, k) = timed(Phase::Rope, || -> Result<_> {
                Ok((
                    candle_nn::rotary_emb::rope_i(&q.contiguous()?, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k.contiguous()?, &cos, &sin)?,
                ))
            })?;

            let heads = timed(Phase::Attention, || attention(c, &q, &k, &v, &mut cache.kv[layer], start))?;

            let heads = match hook.as_deref_mut() {
                Some(hook) if hook.site() == Site::Heads => {
                    timed(Phase::Hook, || hook.on_activation(layer, heads.contiguous()?))?
                }
                _ => heads,
            };
            let attn_out = timed(Phase::Matmul, || block.wo.forward(&heads.reshape((batch, seq, c.hidden))?))?;
            let attn_out = match hook.as_deref_mut() {
                Some(hook) if hook.site() == Site::AttnOut => {
                    timed(Phase::Hook, || hook.on_activation(layer, attn_out))?
                }
                _ => attn_out,
            };
            x = timed(Phase::Elementwise, || attn_out + residual)?;

            let residual = x.clone();
            let h = timed(Phase::Norm, || candle_nn::ops::rms_norm(&x, &block.ffn_norm, eps))?;
            let (gate, up) =
                timed(Phase::Matmul, || -> Result<_> { Ok((block.w_gate.forward(&h)?, block.w_up.forward(&h)?)) })?;
            let product = timed(Phase::Elementwise, || swiglu(&gate, &up))?;
            let mlp = timed(Phase::Matmul, || block.w_down.forward(&product))?;
            x = timed(Phase::Elementwise, || mlp + residual)?;
        }
        cache.len += seq;
        Ok(timed(Phase::Norm, || candle_nn::ops::rms_norm(&x, &self.final_norm, eps))?)
    }

    /// Logits at the last position of every row: `[batch, vocab]`.
    pub fn forward_last(
        &self,
        tokens: &Tensor,
        cache: &mut Cache,
        hook: Option<&mut dyn ActivationHook>,
    ) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens, cache, hook)?;
        let seq = hidden.dim(1)?;
        // The slice must be made contiguous before the quantized matmul (batch > 1 would otherwise fail).
        let last = hidden.narrow(1, seq - 1, 1)?.squeeze(1)?.contiguous()?;
        timed(Phase::LmHead, || self.lm_head.forward(&last))
    }

    /// Logits at every position: `[batch, seq, vocab]` (for perplexity).
    pub fn forward_all(
        &self,
        tokens: &Tensor,
        cache: &mut Cache,
        hook: Option<&mut dyn ActivationHook>,
    ) -> Result<Tensor> {
        let hidden = self.forward_hidden(tokens, cache, hook)?;
        timed(Phase::LmHead, || self.lm_head.forward(&hidden))
    }

    /// A `[batch, seq]` token tensor from rows of equal length.
    pub fn token_tensor(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let seq = rows.first().map(|r| r.len()).unwrap_or(0);
        if seq == 0 || rows.iter().any(|r| r.len() != seq) {
            bail!(Input, "token rows must be non-empty and of equal length");
        }
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (rows.len(), seq), &self.device)?)
    }
}

/// Causal self-attention of `seq` new positions after `start` cached ones, with grouped-query heads (each kv head
/// serves n_heads / n_kv_heads adjacent query heads, as llama.cpp orders them). `q` is `[batch, n_heads, seq, d]`,
/// `k` and `v` `[batch, n_kv_heads, seq, d]`; k and v are appended to the layer's cache. Returns the heads before
/// the output projection, `[batch, seq, n_heads, d]` (the `heads` site). Plain loops: at these sizes (9 heads of
/// 64, a few hundred positions) they beat tensor ops, which copy the cache and spawn work for tiny matmuls.
fn attention(c: &Config, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut LayerCache, start: usize) -> Result<Tensor> {
    let (batch, n_heads, seq, d) = q.dims4()?;
    let device = q.device().clone();
    let n_kv = c.n_kv_heads;
    let group = n_heads / n_kv;
    let values = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.contiguous()?.flatten_all()?.to_vec1::<f32>()?) };
    let (q, k, v) = (values(q)?, values(k)?, values(v)?);
    // Append position by position: [b][h][t][d] → [t][b][h][d].
    for t in 0..seq {
        for b in 0..batch {
            for h in 0..n_kv {
                let at = ((b * n_kv + h) * seq + t) * d;
                cache.k.extend_from_slice(&k[at..at + d]);
                cache.v.extend_from_slice(&v[at..at + d]);
            }
        }
    }
    let per_position = batch * n_kv * d;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; batch * seq * n_heads * d];
    let mut weights = vec![0f32; start + seq];
    for b in 0..batch {
        for h in 0..n_heads {
            let kv_offset = (b * n_kv + h / group) * d;
            for t in 0..seq {
                let query = &q[((b * n_heads + h) * seq + t) * d..][..d];
                // Position start + t sees positions 0 ..= start + t.
                let visible = &mut weights[..start + t + 1];
                for (j, w) in visible.iter_mut().enumerate() {
                    *w = dot(query, &cache.k[j * per_position + kv_offset..][..d]) * scale;
                }
                let max = visible.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for w in visible.iter_mut() {
                    *w = libm::expf(*w - max);
                    sum += *w;
                }
                let head_out = &mut out[((b * seq + t) * n_heads + h) * d..][..d];
                for (j, &w) in visible.iter().enumerate() {
                    let p = w / sum;
                    for (o, &x) in head_out.iter_mut().zip(&cache.v[j * per_position + kv_offset..][..d]) {
                        *o += p * x;
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (batch, seq, n_heads, d), &device)?)
}

/// Dot product with eight independent partial sums, a shape the compiler vectorizes (AVX2 natively, simd128 in
/// wasm) without reassociating a single running sum.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook formula with tensor ops: softmax(q·kᵀ/√d + causal mask)·v over the whole sequence.
    fn reference_attention(q: &Tensor, k: &Tensor, v: &Tensor, group: usize, start: usize) -> Tensor {
        let (b, n_kv, total, d) = k.dims4().unwrap();
        let seq = q.dim(2).unwrap();
        let expand = |x: &Tensor| {
            x.unsqueeze(2)
                .unwrap()
                .expand((b, n_kv, group, total, d))
                .unwrap()
                .reshape((b, n_kv * group, total, d))
                .unwrap()
        };
        let (k, v) = (expand(k), expand(v));
        let mask: Vec<f32> = (0..seq)
            .flat_map(|i| (0..total).map(move |j| if j > start + i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (seq, total), &Device::Cpu).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap().broadcast_add(&mask).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        probs.matmul(&v).unwrap().transpose(1, 2).unwrap().contiguous().unwrap()
    }

    #[test]
    fn attention_matches_the_textbook_formula() {
        let c = Config {
            name: String::new(),
            n_layers: 1,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            hidden: 576,
            ffn: 1,
            vocab: 1,
            context_length: 64,
            rope_base: 1e4,
            rms_eps: 1e-5,
        };
        let (b, d) = (2, c.head_dim);
        let random = |shape: (usize, usize, usize, usize)| Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap();
        let mut cache = LayerCache::default();
        let (mut all_k, mut all_v) = (Vec::new(), Vec::new());
        // A prompt of 40 positions, then three single steps, then a chunk of 3.
        let mut start = 0;
        for seq in [40, 1, 1, 1, 3] {
            let q = random((b, c.n_heads, seq, d));
            let (k, v) = (random((b, c.n_kv_heads, seq, d)), random((b, c.n_kv_heads, seq, d)));
            all_k.push(k.clone());
            all_v.push(v.clone());
            let ours = attention(&c, &q, &k, &v, &mut cache, start).unwrap();
            let (k_all, v_all) = (Tensor::cat(&all_k, 2).unwrap(), Tensor::cat(&all_v, 2).unwrap());
            let expected = reference_attention(&q, &k_all, &v_all, c.n_heads / c.n_kv_heads, start);
            let diff = (ours - expected).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "start {start}, seq {seq}: {diff}");
            start += seq;
        }
    }
}
