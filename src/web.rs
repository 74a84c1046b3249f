//! Browser bindings (wasm32 only): the `Engine` class that the page's worker drives. See docs/wasm-api.md.
//!
//! Every method returns a `Result`, so a problem reaches JavaScript as an `Error` with a message. Inputs are
//! validated before they reach candle, because a panic in wasm cannot be caught: it would kill the module.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::generation::{prompt_ids, Generation, PromptMode, SamplingParams, MAX_NEW_TOKENS, MAX_PROMPT_CHARS};
use crate::model::{sha256_hex, LoadDtype, MatmulBackend, Model, Site};
use crate::steering::{validate_alpha, FusionMode, RowSteering, Scope, MAX_ALPHA, MAX_VECTORS};
use crate::vectors::{self, check_compatible, Derivation, DeriveOptions, DetoxVectors};

#[wasm_bindgen(start)]
pub fn start() {
    // A panic is a bug; this at least logs its message to the console before the module stops.
    console_error_panic_hook::set_once();
}

/// Whether this is the threaded build (shared memory; the page starts helper threads for it).
#[wasm_bindgen(js_name = threadedBuild)]
pub fn threaded_build() -> bool {
    cfg!(target_feature = "atomics")
}

/// The SIMD instructions this build's kernels use: "relaxed-simd" (the faster Q4_1 kernel, same results) or
/// "simd128".
#[wasm_bindgen(js_name = simdBuild)]
pub fn simd_build() -> String {
    if cfg!(target_feature = "relaxed-simd") { "relaxed-simd" } else { "simd128" }.to_string()
}

/// Threads a matrix product is split over: 1 + the helpers that have started (1 in the
/// single-threaded build).
#[wasm_bindgen(js_name = engineThreads)]
pub fn engine_threads() -> usize {
    #[cfg(target_feature = "atomics")]
    return crate::pool::threads();
    #[cfg(not(target_feature = "atomics"))]
    1
}

/// The body of a helper thread (threaded build only): called by `www/thread.js` in its own worker
/// on the engine's module and memory; it never returns. In the single-threaded build, an error.
#[wasm_bindgen(js_name = runHelperThread)]
pub fn run_helper_thread() -> Result<(), JsError> {
    #[cfg(target_feature = "atomics")]
    crate::pool::helper_loop();
    #[cfg(not(target_feature = "atomics"))]
    Err(JsError::new("this engine build is single-threaded: it has no helper threads"))
}

/// The request limits `start` enforces, for the page to show and check before it asks:
/// `{maxPromptChars, maxNewTokens, maxAlpha}` (prompt characters, new tokens per run, α of any vector file; a
/// file's own `maxAlpha` may be lower). The same constants bound the CLI.
#[wasm_bindgen]
pub fn limits() -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Limits {
        max_prompt_chars: usize,
        max_new_tokens: usize,
        max_alpha: f32,
    }
    to_js(&Limits { max_prompt_chars: MAX_PROMPT_CHARS, max_new_tokens: MAX_NEW_TOKENS, max_alpha: MAX_ALPHA })
}

/// Kernel exactness in this browser: random `Q4_1` and `Q8_0` matrices of the model's shapes
/// multiplied on the scalar path, on `simd128`, and on `simd128` split over the engine's threads;
/// returns `{cases, mismatches, threads, isas}` (outputs compared bit for bit, NaN = NaN).
#[wasm_bindgen(js_name = kernelCheck)]
pub fn kernel_check(seed: u32) -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct Report {
        cases: usize,
        mismatches: usize,
        threads: usize,
        isas: Vec<String>,
    }
    let r = crate::kernels::exactness_check(u64::from(seed), engine_threads());
    let isas = r.isas.iter().map(|i| format!("{i:?}").to_lowercase()).collect();
    to_js(&Report { cases: r.cases, mismatches: r.mismatches, threads: r.threads, isas })
}

/// `performance.now()`: microsecond resolution (`Date.now()` counts whole milliseconds, too coarse for a step).
fn now_ms() -> f64 {
    crate::profile::now_ms()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("cannot pass a result to JavaScript: {e}")))
}

/// Reads a JavaScript `Uint8Array` on demand, so that only what is being parsed is copied into wasm memory.
struct JsBytesReader {
    bytes: js_sys::Uint8Array,
    pos: u64,
}

impl std::io::Read for JsBytesReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = self.bytes.length() as u64;
        let start = self.pos.min(len);
        let end = (start + buf.len() as u64).min(len);
        let n = (end - start) as usize;
        self.bytes.subarray(start as u32, end as u32).copy_to(&mut buf[..n]);
        self.pos = end;
        Ok(n)
    }
}

impl std::io::Seek for JsBytesReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let len = self.bytes.length() as i64;
        let pos = match to {
            std::io::SeekFrom::Start(p) => p as i64,
            std::io::SeekFrom::End(d) => len + d,
            std::io::SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if pos < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

/// sha256 of a JS buffer, in 4 MiB chunks.
fn sha256_of(bytes: &js_sys::Uint8Array) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let len = bytes.length();
    let mut chunk = vec![0u8; 4 << 20];
    let mut start = 0;
    while start < len {
        let end = (start + chunk.len() as u32).min(len);
        let n = (end - start) as usize;
        bytes.subarray(start, end).copy_to(&mut chunk[..n]);
        hasher.update(&chunk[..n]);
        start = end;
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LoadOptions {
    load_dtype: Option<String>,
    sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct StartOptions {
    prompt: String,
    chat: bool,
    max_new_tokens: usize,
    temperature: f64,
    top_p: f64,
    top_k: usize,
    seed: u64,
    alpha: f32,
    /// α of each added vector file (slots 1, 2), after `alpha` for the main one.
    alphas: Vec<f32>,
    mode: Option<String>,
    /// "both" (default: row 0 raw, row 1 steered), or one row alone: "raw" or "steered" (for running the two
    /// panes in two workers).
    rows: String,
    /// Steer the prompt's positions too (true), or only those producing new tokens (false). Default: the main
    /// vector file's recommendation.
    steer_prompt: Option<bool>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            chat: false,
            max_new_tokens: 48,
            temperature: 0.8,
            top_p: 0.9,
            top_k: 0,
            seed: 42,
            alpha: 0.0,
            alphas: Vec::new(),
            mode: None,
            rows: "both".into(),
            steer_prompt: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    name: String,
    architecture: &'static str,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    hidden: usize,
    vocab: usize,
    context_length: usize,
    load_dtype: &'static str,
    sha256: String,
    load_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VectorsInfo {
    /// 0: the main file; 1, 2: files added to steer together with it.
    slot: usize,
    concept: Option<String>,
    site: &'static str,
    layers: usize,
    heads: usize,
    head_dim: usize,
    pairs: usize,
    model_name: String,
    model_sha256: String,
    recommended_mode: &'static str,
    recommended_alpha: f32,
    /// "all" or "generated" (`VectorMeta::recommended_generated_only`).
    recommended_scope: &'static str,
    max_alpha: f32,
    probe_accuracy: Vec<Vec<f32>>,
    layer_norms: Vec<f32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowOut {
    text: String,
    token_id: Option<u32>,
    finished: bool,
    stop_reason: Option<&'static str>,
    projection: Option<f32>,
    alpha: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepOut {
    done: bool,
    rows: Vec<RowOut>,
    step_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartOut {
    prompt_tokens: usize,
}

fn vectors_info(v: &DetoxVectors, slot: usize) -> VectorsInfo {
    let m = &v.meta;
    VectorsInfo {
        slot,
        concept: m.concept.clone(),
        site: m.site.name(),
        layers: m.layers,
        heads: m.heads,
        head_dim: m.head_dim,
        pairs: m.pairs,
        model_name: m.model_name.clone(),
        model_sha256: m.model_sha256.clone(),
        recommended_mode: m.recommended_mode.name(),
        recommended_alpha: m.recommended_alpha,
        recommended_scope: Scope::from_generated_only(m.recommended_generated_only).name(),
        max_alpha: m.max_alpha,
        probe_accuracy: v.probe_accuracy.chunks(m.heads).map(|c| c.to_vec()).collect(),
        layer_norms: v.layer_norms(),
    }
}

/// What the vector lab asks `deriveStart` for: the same inputs as `destein derive` (the pairs as the text of a
/// JSONL file, so its sha256 is the one the CLI records for the same file).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeriveRequest {
    pairs_jsonl: String,
    site: String,
    /// How many pairs to sample (default: all of them).
    count: Option<usize>,
    #[serde(default)]
    seed: u64,
    away_prefix: Option<String>,
    toward_prefix: Option<String>,
    concept: Option<String>,
    recommended_mode: Option<String>,
    recommended_alpha: Option<f32>,
    /// "all" or "generated" (default: whole-text steering for a named concept, the detox measurement otherwise).
    recommended_scope: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeriveProgress {
    /// Steps: one per pair read, then one per layer whose probes are fitted.
    done: usize,
    total: usize,
    pairs_read: usize,
    pairs_total: usize,
    finished: bool,
}

impl DeriveProgress {
    fn of(d: &Derivation, finished: bool) -> Self {
        Self { done: d.done(), total: d.total(), pairs_read: d.pairs_read(), pairs_total: d.pairs_total(), finished }
    }
}

#[wasm_bindgen]
pub struct Engine {
    model: Model,
    /// A vector-lab derivation in progress (`deriveStart` … `deriveFinish`).
    derivation: Option<Derivation>,
    /// Vector files steering together: slot 0 the main one (`loadVectors`), then those added (`addVectors`).
    vectors: Vec<DetoxVectors>,
    generation: Option<Generation>,
    /// Which row of the running generation is the steered one (None when only the raw row runs).
    steered_row: Option<usize>,
    load_ms: f64,
}

#[wasm_bindgen]
impl Engine {
    /// Load a GGUF from its bytes. `options`: `{ loadDtype?: "as-is"|"q8_0"|"f32", sha256?: string }`.
    /// The bytes stay in JavaScript: tensors are copied into wasm memory one at a time.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: js_sys::Uint8Array, options: JsValue) -> Result<Engine, JsError> {
        let options: LoadOptions = if options.is_undefined() || options.is_null() {
            LoadOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(|e| JsError::new(&format!("bad load options: {e}")))?
        };
        let dtype = match options.load_dtype.as_deref() {
            Some(s) => s.parse::<LoadDtype>()?,
            None => LoadDtype::default(),
        };
        let start = now_ms();
        let len = bytes.length() as usize;
        let sha256 = match options.sha256 {
            Some(s) => s,
            None => sha256_of(&bytes),
        };
        // Buffered: the header is parsed in many small reads, each of which would otherwise cross into JS.
        let reader = std::io::BufReader::with_capacity(1 << 16, JsBytesReader { bytes, pos: 0 });
        let model = Model::from_gguf_reader(reader, len, dtype, MatmulBackend::default(), sha256)?;
        Ok(Engine {
            model,
            derivation: None,
            vectors: Vec::new(),
            generation: None,
            steered_row: None,
            load_ms: now_ms() - start,
        })
    }

    pub fn info(&self) -> Result<JsValue, JsError> {
        let c = &self.model.config;
        to_js(&Info {
            name: c.name.clone(),
            architecture: "llama",
            layers: c.n_layers,
            heads: c.n_heads,
            kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            hidden: c.hidden,
            vocab: c.vocab,
            context_length: c.context_length,
            load_dtype: self.model.load_dtype.name(),
            sha256: self.model.sha256.clone(),
            load_ms: self.load_ms,
        })
    }

    /// Load the main vector file (slot 0; safetensors) and check it was made for this model and fits the files added
    /// to it. A generation in flight keeps running with the new file from its next step on.
    #[wasm_bindgen(js_name = loadVectors)]
    pub fn load_vectors(&mut self, bytes: &[u8]) -> Result<JsValue, JsError> {
        let vectors = self.read_vectors(bytes)?;
        let mut next = vec![vectors];
        next.extend(self.vectors.iter().skip(1).cloned());
        check_compatible(&next)?;
        self.vectors = next;
        to_js(&vectors_info(&self.vectors[0], 0))
    }

    /// Add a vector file to steer together with the main one (up to `MAX_VECTORS` in all, same site and model).
    /// Stops a running generation. Returns its info, with its slot.
    #[wasm_bindgen(js_name = addVectors)]
    pub fn add_vectors(&mut self, bytes: &[u8]) -> Result<JsValue, JsError> {
        if self.vectors.is_empty() {
            return Err(JsError::new("load the main vector file before adding another"));
        }
        if self.vectors.len() >= MAX_VECTORS {
            return Err(JsError::new(&format!("{MAX_VECTORS} vector files already steer together; remove one first")));
        }
        let vectors = self.read_vectors(bytes)?;
        let mut next = self.vectors.clone();
        next.push(vectors);
        check_compatible(&next)?;
        self.generation = None;
        self.vectors = next;
        let slot = self.vectors.len() - 1;
        to_js(&vectors_info(&self.vectors[slot], slot))
    }

    /// Remove an added vector file (slot 1 or 2); the others move up. Stops a running generation.
    #[wasm_bindgen(js_name = removeVectors)]
    pub fn remove_vectors(&mut self, slot: usize) -> Result<(), JsError> {
        if slot == 0 || slot >= self.vectors.len() {
            return Err(JsError::new(&format!("there is no added vector file in slot {slot}")));
        }
        self.generation = None;
        self.vectors.remove(slot);
        Ok(())
    }

    #[wasm_bindgen(js_name = clearVectors)]
    pub fn clear_vectors(&mut self) {
        self.vectors.clear();
        self.generation = None;
    }

    fn read_vectors(&self, bytes: &[u8]) -> Result<DetoxVectors, JsError> {
        let vectors = DetoxVectors::from_safetensors_bytes(bytes)?;
        vectors.check_model(&self.model)?;
        Ok(vectors)
    }

    /// The steered row's α per slot: the main α, then the added files' (missing ones 0), each checked against its
    /// file's maximum.
    fn steered_alphas(&self, alpha: f32, added: &[f32]) -> Result<[f32; MAX_VECTORS], JsError> {
        if added.len() > MAX_VECTORS - 1 {
            return Err(JsError::new(&format!(
                "{} α values for added files; at most {}",
                added.len(),
                MAX_VECTORS - 1
            )));
        }
        let mut alphas = [0.0; MAX_VECTORS];
        alphas[0] = alpha;
        alphas[1..=added.len()].copy_from_slice(added);
        for (slot, &a) in alphas.iter().enumerate() {
            validate_alpha(a)?;
            match self.vectors.get(slot) {
                Some(v) if a > v.meta.max_alpha => {
                    return Err(JsError::new(&format!(
                        "α = {a} is above the maximum {} of vector file {}",
                        v.meta.max_alpha,
                        slot + 1
                    )))
                }
                None if a > 0.0 => {
                    return Err(JsError::new(&format!(
                        "α = {a} for vector file {} needs that file; load it first",
                        slot + 1
                    )))
                }
                _ => {}
            }
        }
        Ok(alphas)
    }

    /// Start generating from one prompt: `rows` "both" (row 0 raw, row 1 steered), "raw" or "steered" (one row).
    pub fn start(&mut self, options: JsValue) -> Result<JsValue, JsError> {
        let o: StartOptions =
            serde_wasm_bindgen::from_value(options).map_err(|e| JsError::new(&format!("bad start options: {e}")))?;
        let alphas = self.steered_alphas(o.alpha, &o.alphas)?;
        let mode = match (&o.mode, self.vectors.first()) {
            (Some(m), _) => m.parse::<FusionMode>()?,
            (None, Some(v)) => v.meta.recommended_mode,
            (None, None) => FusionMode::Rotate,
        };
        let params = SamplingParams {
            temperature: o.temperature,
            top_p: o.top_p,
            top_k: o.top_k,
            seed: o.seed,
            max_new_tokens: o.max_new_tokens,
        };
        // The cheap checks first: a bad request is refused before its prompt is tokenized.
        params.validate()?;
        let prompt_mode = if o.chat { PromptMode::Chat } else { PromptMode::Continuation };
        let ids = prompt_ids(&self.model, &o.prompt, prompt_mode)?;
        let prompt_tokens = ids.len();
        let steered = RowSteering { alphas, mode };
        let (steering, steered_row) = match o.rows.as_str() {
            "both" => (vec![RowSteering::OFF, steered], Some(1)),
            "raw" => (vec![RowSteering::OFF], None),
            "steered" => (vec![steered], Some(0)),
            other => {
                return Err(JsError::new(&format!("rows must be \"both\", \"raw\" or \"steered\", not {other:?}")))
            }
        };
        let seeds = vec![o.seed; steering.len()];
        let mut generation = Generation::new(&self.model, ids, &params, &seeds, steering)?;
        let recommended_generated_only = self.vectors.first().is_some_and(|v| v.meta.recommended_generated_only);
        generation.steer_prompt = o.steer_prompt.unwrap_or(!recommended_generated_only);
        self.generation = Some(generation);
        self.steered_row = steered_row;
        to_js(&StartOut { prompt_tokens })
    }

    /// One step for every row the generation has (the first step also runs the prompt).
    pub fn step(&mut self) -> Result<JsValue, JsError> {
        let generation =
            self.generation.as_mut().ok_or_else(|| JsError::new("no generation is running; call start() first"))?;
        let start = now_ms();
        let rows = generation.step(&self.model, &self.vectors)?;
        let out = StepOut {
            done: generation.done(),
            rows: rows
                .into_iter()
                .map(|r| RowOut {
                    text: r.text,
                    token_id: r.token_id,
                    finished: r.finished,
                    stop_reason: r.stop_reason.map(|s| s.name()),
                    projection: r.projection,
                    alpha: r.alpha,
                })
                .collect(),
            step_ms: now_ms() - start,
        };
        if out.done {
            self.generation = None;
        }
        to_js(&out)
    }

    /// Set the steered row's α for the vector file in `slot` (default 0, the main one) from the next step on.
    #[wasm_bindgen(js_name = setAlpha)]
    pub fn set_alpha(&mut self, alpha: f32, slot: Option<usize>) -> Result<(), JsError> {
        let slot = slot.unwrap_or(0);
        validate_alpha(alpha)?;
        let Some(v) = self.vectors.get(slot) else {
            return Err(JsError::new(&format!("no vector file is loaded in slot {slot}")));
        };
        if alpha > v.meta.max_alpha {
            return Err(JsError::new(&format!(
                "α = {alpha} is above the maximum {} of vector file {}",
                v.meta.max_alpha,
                slot + 1
            )));
        }
        if let (Some(g), Some(row)) = (self.generation.as_mut(), self.steered_row) {
            let mut steering = g.steering[row];
            steering.alphas[slot] = alpha;
            g.set_steering(row, steering)?;
        }
        Ok(())
    }

    /// Set the steered row's fusion mode from the next step on.
    #[wasm_bindgen(js_name = setMode)]
    pub fn set_mode(&mut self, mode: &str) -> Result<(), JsError> {
        let mode = mode.parse::<FusionMode>()?;
        if let (Some(g), Some(row)) = (self.generation.as_mut(), self.steered_row) {
            let steering = RowSteering { mode, ..g.steering[row] };
            g.set_steering(row, steering)?;
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        self.generation = None;
    }

    /// Start deriving a vector from steering pairs, as `destein derive` does (same code, same bytes). Checks the
    /// pairs and options and tokenizes every sampled pair; then call `deriveStep` until it reports `finished`.
    #[wasm_bindgen(js_name = deriveStart)]
    pub fn derive_start(&mut self, request: JsValue) -> Result<JsValue, JsError> {
        let r: DeriveRequest =
            serde_wasm_bindgen::from_value(request).map_err(|e| JsError::new(&format!("bad derive request: {e}")))?;
        self.derivation = None;
        let pairs = vectors::parse_pairs(r.pairs_jsonl.as_bytes())?;
        let site = r.site.parse::<Site>()?;
        let count = r.count.unwrap_or(pairs.len());
        let mut options = DeriveOptions::detox(site, count, r.seed, sha256_hex(r.pairs_jsonl.as_bytes()));
        if let Some(mode) = &r.recommended_mode {
            options.recommended_mode = mode.parse::<FusionMode>()?;
        }
        options.recommended_alpha = r.recommended_alpha.unwrap_or(options.recommended_alpha);
        options.away_prefix = r.away_prefix.unwrap_or(options.away_prefix);
        options.toward_prefix = r.toward_prefix.unwrap_or(options.toward_prefix);
        options.set_concept(r.concept.filter(|c| !c.trim().is_empty()));
        if let Some(scope) = r.recommended_scope.as_deref() {
            let scope: Scope = scope.parse().map_err(|e| JsError::new(&format!("recommendedScope: {e}")))?;
            options.recommended_generated_only = scope.generated_only();
        }
        let derivation = Derivation::new(&self.model, &pairs, options)?;
        let progress = DeriveProgress::of(&derivation, false);
        self.derivation = Some(derivation);
        to_js(&progress)
    }

    /// One step: read the next pair (two short forward passes), then fit one layer's probes per call;
    /// `finished` once the file can be made.
    #[wasm_bindgen(js_name = deriveStep)]
    pub fn derive_step(&mut self) -> Result<JsValue, JsError> {
        let d = self
            .derivation
            .as_mut()
            .ok_or_else(|| JsError::new("no derivation is running; call deriveStart() first"))?;
        let finished = d.step(&self.model)?;
        to_js(&DeriveProgress::of(d, finished))
    }

    /// Fit the probes and return the vector file's bytes (safetensors), which `loadVectors` takes.
    #[wasm_bindgen(js_name = deriveFinish)]
    pub fn derive_finish(&mut self) -> Result<Vec<u8>, JsError> {
        match &self.derivation {
            None => return Err(JsError::new("no derivation is running; call deriveStart() first")),
            Some(d) if d.done() < d.total() => {
                return Err(JsError::new(&format!(
                    "the derivation is not finished ({} of {} steps); call deriveStep() until it is",
                    d.done(),
                    d.total()
                )))
            }
            Some(_) => {}
        }
        let d = self.derivation.take().expect("checked above");
        Ok(d.finish(&self.model)?.to_safetensors_bytes()?)
    }

    #[wasm_bindgen(js_name = deriveCancel)]
    pub fn derive_cancel(&mut self) {
        self.derivation = None;
    }

    /// Turn the per-phase profile of the forward pass on (clearing it) or off. Returns what it held before the
    /// call: `[[phase, milliseconds], …]` since it was last turned on.
    pub fn profile(&self, on: bool) -> Result<JsValue, JsError> {
        let totals = crate::profile::totals_ms();
        crate::profile::enable(on);
        to_js(&totals)
    }
}

/// The primary toxicity judge (tox-block), scoring text in the page as the CLI does.
#[wasm_bindgen]
pub struct Judge {
    tox_block: crate::judge::ToxBlock,
}

#[wasm_bindgen]
impl Judge {
    /// From the bytes of `tox_block.safetensors` and `tox_block_vocab.json`.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: &[u8], vocab_json: &[u8]) -> Result<Judge, JsError> {
        let tox_block = crate::judge::ToxBlock::from_bytes(weights, vocab_json)
            .map_err(|e| JsError::new(&format!("judge: {e}")))?;
        Ok(Judge { tox_block })
    }

    /// Probability that `text` is toxic (tox-block's `toxic` label).
    pub fn score(&self, text: &str) -> f32 {
        self.tox_block.score(text)
    }
}
