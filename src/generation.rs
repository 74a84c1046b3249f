//! Sampling, the forward-pass hook that applies the steering (`Steerer`), and step-by-step generation of several
//! rows that share one prompt.
//!
//! Row 0 is usually raw and row 1 steered; each row has its own RNG seeded with the same seed, so with α = 0
//! the rows produce the same text, and any difference is the steering's doing.

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bail;
use crate::error::Result;
use crate::model::{ActivationHook, Cache, Model, Site};
use crate::profile::{timed, Phase};
use crate::steering::{cosine, fuse_many, RowSteering, MAX_VECTORS};
use crate::subspace::{Projecting, Subspace};
use crate::tokenizer::StreamDecoder;
use crate::vectors::{check_compatible, DetoxVectors};

/// Longest prompt any entry point accepts, in characters (Unicode scalar values), checked before tokenizing so that
/// a huge input is refused at once instead of being tokenized only to exceed the context. 4000 is the page's limit
/// (its prompt box); at a few characters per token it leaves most of the 8192-token context for generation.
/// The page counts UTF-16 units, never fewer than characters, so whatever it accepts passes here too.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// Most new tokens one generation may ask for: the page's limit. With a prompt of at most `MAX_PROMPT_CHARS` it
/// fits the 8192-token context, and it bounds the time and KV-cache memory a single request can take.
pub const MAX_NEW_TOKENS: usize = 512;

/// Refuse a prompt longer than `MAX_PROMPT_CHARS` characters; `what` names it in the message ("the prompt",
/// "prompt data/x.jsonl:7").
pub fn check_prompt_chars(prompt: &str, what: &str) -> Result<()> {
    // A string never holds more characters than bytes, so short ones need no count.
    if prompt.len() > MAX_PROMPT_CHARS {
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            bail!(Input, "{what} is {chars} characters long; at most {MAX_PROMPT_CHARS} are allowed");
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus: keep the smallest set of tokens whose probability reaches top_p (1 = off).
    pub top_p: f64,
    /// Keep the k most probable tokens (0 = off).
    pub top_k: usize,
    pub seed: u64,
    pub max_new_tokens: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 1.0, top_p: 0.9, top_k: 0, seed: 42, max_new_tokens: 20 }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            bail!(Input, "temperature must be a finite number ≥ 0, got {}", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!(Input, "top-p must be in (0, 1], got {}", self.top_p);
        }
        if self.max_new_tokens == 0 {
            bail!(Input, "max new tokens must be at least 1");
        }
        if self.max_new_tokens > MAX_NEW_TOKENS {
            bail!(Input, "max new tokens is {}; at most {MAX_NEW_TOKENS} are allowed", self.max_new_tokens);
        }
        Ok(())
    }
}

pub struct Sampler {
    rng: ChaCha8Rng,
    temperature: f64,
    top_p: f64,
    top_k: usize,
}

impl Sampler {
    pub fn new(params: &SamplingParams, seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let argmax = || logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0);
        if self.temperature <= 0.0 {
            return argmax();
        }
        let max = logits.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return argmax();
        }
        let (order, probs) = match self.top_k == 0 && self.top_p < 1.0 {
            true => self.nucleus(logits, max as f64),
            false => self.sorted_candidates(logits, max as f64),
        };
        self.draw(&order, &probs)
    }

    /// Weight of a logit relative to the best one, at this temperature.
    fn weight(&self, logit: f32, max: f64) -> f64 {
        ((logit as f64 - max) / self.temperature).exp()
    }

    /// Top-p alone: the nucleus is a prefix of the candidates sorted by logit, so only the tokens within a
    /// growing distance of the best logit are sorted, until their prefix reaches top_p. Same tokens and
    /// probabilities as sorting the whole vocabulary (the run-time cost of which was a fifth of an evaluation).
    fn nucleus(&self, logits: &[f32], max: f64) -> (Vec<u32>, Vec<f64>) {
        let total: f64 = logits.iter().filter(|l| l.is_finite()).map(|&l| self.weight(l, max)).sum();
        let mut distance = 2.0 * self.temperature;
        while distance < 30.0 * self.temperature {
            let cutoff = max - distance;
            let mut order: Vec<u32> = (0..logits.len() as u32)
                .filter(|&i| logits[i as usize].is_finite() && logits[i as usize] as f64 >= cutoff)
                .collect();
            order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
            let mut cumulative = 0.0;
            for (i, &id) in order.iter().enumerate() {
                cumulative += self.weight(logits[id as usize], max) / total;
                if cumulative >= self.top_p {
                    order.truncate(i + 1);
                    let kept: Vec<f64> =
                        order.iter().map(|&id| self.weight(logits[id as usize], max) / total).collect();
                    let sum: f64 = kept.iter().sum();
                    return (order, kept.iter().map(|p| p / sum).collect());
                }
            }
            distance *= 2.0;
        }
        self.sorted_candidates(logits, max)
    }

    /// Candidates sorted by logit, descending (ties by id, so the order is deterministic), cut by top-k and
    /// top-p, with their renormalised probabilities. Only tokens within 30·T of the best logit are sorted: the
    /// rest weigh < vocab·e⁻³⁰ ≈ 5e-9 together, and follow in id order.
    fn sorted_candidates(&self, logits: &[f32], max: f64) -> (Vec<u32>, Vec<f64>) {
        let cutoff = max - 30.0 * self.temperature;
        let (mut order, tail): (Vec<u32>, Vec<u32>) = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize].is_finite())
            .partition(|&i| logits[i as usize] as f64 >= cutoff);
        order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        order.extend(tail);
        if self.top_k > 0 {
            order.truncate(self.top_k);
        }
        let mut probs: Vec<f64> = order.iter().map(|&i| self.weight(logits[i as usize], max)).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                cumulative += p;
                if cumulative >= self.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            order.truncate(keep);
            let kept: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= kept);
        }
        (order, probs)
    }

    /// One token from `order`, drawn with `probs` (which sum to 1) by this row's generator.
    fn draw(&mut self, order: &[u32], probs: &[f64]) -> u32 {
        let mut r: f64 = self.rng.random::<f64>();
        for (i, p) in probs.iter().enumerate() {
            if r < *p {
                return order[i];
            }
            r -= p;
        }
        order[probs.len() - 1]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptMode {
    /// The prompt text is continued as is (RealToxicityPrompts style).
    Continuation,
    /// The prompt is a user message in the model's ChatML template.
    Chat,
}

/// Token ids for a prompt, with the checks every entry point needs.
pub fn prompt_ids(model: &Model, prompt: &str, mode: PromptMode) -> Result<Vec<u32>> {
    if prompt.trim().is_empty() {
        bail!(Input, "the prompt is empty");
    }
    check_prompt_chars(prompt, "the prompt")?;
    let text = match mode {
        PromptMode::Continuation => prompt.to_string(),
        PromptMode::Chat => model.tokenizer.chat_prompt(prompt)?,
    };
    let ids = model.tokenizer.encode(&text)?;
    let context = model.config.context_length;
    if ids.len() >= context {
        bail!(
            Input,
            "the prompt is {} tokens long; the model's context holds {context} (leave room to generate)",
            ids.len()
        );
    }
    Ok(ids)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    MaxTokens,
    Context,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Context => "context",
        }
    }
}

/// What one step produced for one row.
#[derive(Clone, Debug)]
pub struct RowStep {
    /// New text; empty while a character spans tokens, or once the row has finished.
    pub text: String,
    pub token_id: Option<u32>,
    pub finished: bool,
    pub stop_reason: Option<StopReason>,
    /// Mean over layers of cos(activation, z) of the first vector file at this step, before fusion (None
    /// without vectors).
    pub projection: Option<f32>,
    /// The same read-out for each vector file, in order (empty without vectors).
    pub projections: Vec<f32>,
    /// α of the first vector file at this step.
    pub alpha: f32,
    /// α of each vector file position at this step.
    pub alphas: [f32; MAX_VECTORS],
}

struct RowState {
    sampler: Sampler,
    decoder: StreamDecoder,
    tokens: Vec<u32>,
    stop: Option<StopReason>,
}

impl RowState {
    /// Sample the row's next token from its `logits` and decode it; returns the id and the new text. Sets `stop`
    /// on EOS, at `max_new_tokens`, or when the context is full (the row's decoder then flushes what it holds).
    fn advance(&mut self, model: &Model, logits: &[f32], max_new_tokens: usize, context_full: bool) -> (u32, String) {
        let id = timed(Phase::Sampling, || self.sampler.sample(logits));
        let mut text = String::new();
        if model.tokenizer.stop_ids.contains(&id) {
            self.stop = Some(StopReason::Eos);
            text.push_str(&self.decoder.finish());
        } else {
            self.tokens.push(id);
            text.push_str(&self.decoder.push(&model.tokenizer, id));
            if self.tokens.len() >= max_new_tokens {
                self.stop = Some(StopReason::MaxTokens);
            } else if context_full {
                self.stop = Some(StopReason::Context);
            }
            if self.stop.is_some() {
                text.push_str(&self.decoder.finish());
            }
        }
        (id, text)
    }
}

/// A generation in progress: rows sharing a prompt, stepped one token at a time.
pub struct Generation {
    cache: Cache,
    rows: Vec<RowState>,
    /// Input to feed at the next step (the prompt first, then each row's last token).
    next_input: Vec<Vec<u32>>,
    pub steering: Vec<RowSteering>,
    pub prompt_len: usize,
    max_new_tokens: usize,
    /// Steer the prompt's positions too (the default, as DeStein does). When false, the prompt's positions
    /// except its last (which produces the first new token) run unsteered, so its KV cache stays raw.
    pub steer_prompt: bool,
    /// A toxic subspace removed from the steered rows' activations before the fusion (our stacked variant).
    pub subspace: Option<std::sync::Arc<Subspace>>,
}

impl Generation {
    /// `seeds[r]` seeds row r's sampler; `steering[r]` says how row r is steered.
    pub fn new(
        model: &Model,
        prompt: Vec<u32>,
        params: &SamplingParams,
        seeds: &[u64],
        steering: Vec<RowSteering>,
    ) -> Result<Self> {
        params.validate()?;
        if seeds.len() != steering.len() || seeds.is_empty() {
            bail!(Input, "one seed and one steering setting per row");
        }
        for s in &steering {
            s.validate()?;
        }
        let rows = seeds
            .iter()
            .map(|&seed| RowState {
                sampler: Sampler::new(params, seed),
                decoder: StreamDecoder::default(),
                tokens: Vec::new(),
                stop: None,
            })
            .collect();
        Ok(Self {
            cache: Cache::new(model),
            rows,
            next_input: vec![prompt.clone(); seeds.len()],
            steering,
            prompt_len: prompt.len(),
            max_new_tokens: params.max_new_tokens,
            steer_prompt: true,
            subspace: None,
        })
    }

    pub fn done(&self) -> bool {
        self.rows.iter().all(|r| r.stop.is_some())
    }

    pub fn tokens(&self, row: usize) -> &[u32] {
        &self.rows[row].tokens
    }

    /// Change a row's α values and mode from the next step on.
    pub fn set_steering(&mut self, row: usize, steering: RowSteering) -> Result<()> {
        steering.validate()?;
        self.steering[row] = steering;
        Ok(())
    }

    /// Run one forward step for all rows and sample each row's next token. `vectors[i]` is the file that
    /// α_i of every row refers to (an empty slice: no steering, no read-out).
    pub fn step(&mut self, model: &Model, vectors: &[DetoxVectors]) -> Result<Vec<RowStep>> {
        if self.done() {
            bail!(Input, "the generation has finished");
        }
        for s in &self.steering {
            s.check_vectors(vectors.len())?;
        }
        let steering = self.steering.clone();
        let n_rows = self.rows.len();
        // Rows that start from the same prompt with the same steering (the samples of an evaluation prompt)
        // run the prompt once; the cache, logits and read-outs are then copied to every row.
        let shared_prefill = self.cache.len == 0
            && n_rows > 1
            && self.next_input.iter().all(|r| *r == self.next_input[0])
            && steering.iter().all(|s| *s == steering[0]);
        let (inputs, run_steering) = match shared_prefill {
            true => (&self.next_input[..1], &steering[..1]),
            false => (&self.next_input[..], &steering[..]),
        };
        let tokens = model.token_tensor(inputs)?;
        let (logits, mut projections) = self.forward(model, vectors, &tokens, run_steering)?;
        let mut logits: Vec<Vec<f32>> = timed(Phase::Sampling, || logits.to_vec2::<f32>())?;
        if shared_prefill {
            self.cache = self.cache.repeat_rows(n_rows)?;
            logits = vec![logits.swap_remove(0); n_rows];
            projections = vec![projections.swap_remove(0); n_rows];
        }
        let context_full = self.cache.len + 1 > model.config.context_length;
        let mut out = Vec::with_capacity(self.rows.len());
        for (r, row) in self.rows.iter_mut().enumerate() {
            let projections = std::mem::take(&mut projections[r]);
            let projection = projections.first().copied();
            let alphas = steering[r].alphas;
            let alpha = alphas[0];
            if row.stop.is_some() {
                let stop_reason = row.stop;
                out.push(RowStep {
                    text: String::new(),
                    token_id: None,
                    finished: true,
                    stop_reason,
                    projection,
                    projections,
                    alpha,
                    alphas,
                });
                continue;
            }
            let (id, text) = row.advance(model, &logits[r], self.max_new_tokens, context_full);
            let (finished, stop_reason) = (row.stop.is_some(), row.stop);
            out.push(RowStep {
                text,
                token_id: Some(id),
                finished,
                stop_reason,
                projection,
                projections,
                alpha,
                alphas,
            });
        }
        // A finished row keeps the batch shape by repeating its last input token; its output is ignored.
        self.next_input = self
            .rows
            .iter()
            .zip(&self.next_input)
            .map(|(row, prev)| vec![row.tokens.last().copied().unwrap_or(*prev.last().unwrap())])
            .collect();
        Ok(out)
    }

    /// One forward pass of `tokens` (one row per `run_steering` entry), steered by `vectors` (none: unsteered,
    /// without read-outs); returns the last position's logits and, per row, each vector file's read-out.
    fn forward(
        &mut self,
        model: &Model,
        vectors: &[DetoxVectors],
        tokens: &Tensor,
        run_steering: &[RowSteering],
    ) -> Result<(Tensor, Vec<Vec<f32>>)> {
        if vectors.is_empty() {
            return Ok((model.forward_last(tokens, &mut self.cache, None)?, vec![Vec::new(); run_steering.len()]));
        }
        let mut steerer = Steerer::new(vectors, run_steering)?;
        let skip = if self.cache.len == 0 && !self.steer_prompt { self.prompt_len - 1 } else { 0 };
        steerer.skip_positions(skip);
        match &self.subspace {
            None => {
                let logits = model.forward_last(tokens, &mut self.cache, Some(&mut steerer))?;
                Ok((logits, steerer.projections()))
            }
            Some(subspace) => {
                let mut hook = Projecting { subspace, rows: run_steering, skip, inner: steerer };
                let logits = model.forward_last(tokens, &mut self.cache, Some(&mut hook))?;
                Ok((logits, hook.inner.projections()))
            }
        }
    }
}

/// The forward-pass hook that applies DeStein: every layer, every position of the step (prompt and generated
/// tokens alike, so the KV cache holds steered values), each row with its own α per vector file and its own
/// mode. It also records, for the last position of each row and each vector file, the mean over layers of
/// cos(activation, z) before fusion: the model's own read-out of how toxic the current step is.
pub struct Steerer<'a> {
    vectors: &'a [DetoxVectors],
    rows: &'a [RowSteering],
    /// Per row, per vector file: Σ over layers of cos(a_l, z_{i,l}) at the row's last position.
    projection_sums: Vec<[f64; MAX_VECTORS]>,
    layers_seen: usize,
    /// Leading positions of each row left unsteered in this forward pass.
    skip: usize,
}

impl<'a> Steerer<'a> {
    /// Needs 1 to `MAX_VECTORS` compatible vector files (`check_compatible`), and valid rows that set α > 0
    /// only for files that are there.
    pub fn new(vectors: &'a [DetoxVectors], rows: &'a [RowSteering]) -> Result<Self> {
        if vectors.is_empty() {
            bail!(Input, "steering needs at least one detox vector file");
        }
        check_compatible(vectors)?;
        for row in rows {
            row.validate()?;
            row.check_vectors(vectors.len())?;
        }
        Ok(Self { vectors, rows, projection_sums: vec![[0.0; MAX_VECTORS]; rows.len()], layers_seen: 0, skip: 0 })
    }

    /// Leave the first `n` positions of every row unsteered (read-outs are unchanged).
    pub fn skip_positions(&mut self, n: usize) {
        self.skip = n;
    }

    /// Per row, one value per vector file: the mean over layers of cos(a_l, z_l) at the row's last position,
    /// before fusion.
    pub fn projections(&self) -> Vec<Vec<f32>> {
        let layers = self.layers_seen.max(1) as f64;
        let per_row =
            |sums: &[f64; MAX_VECTORS]| sums[..self.vectors.len()].iter().map(|s| (s / layers) as f32).collect();
        self.projection_sums.iter().map(per_row).collect()
    }

    /// Each vector file's direction at `layer`, checked against the activation width.
    fn directions(&self, layer: usize, width: usize) -> Result<[&'a [f32]; MAX_VECTORS]> {
        let mut zs: [&[f32]; MAX_VECTORS] = [&[]; MAX_VECTORS];
        for (i, (slot, v)) in zs.iter_mut().zip(self.vectors).enumerate() {
            if layer >= v.meta.layers {
                bail!(Vectors, "layer {layer}: vector file {} has only {} layers", i + 1, v.meta.layers);
            }
            *slot = v.layer(layer);
            if slot.len() != width {
                bail!(Vectors, "layer {layer}: direction has {} values, activation {width}", slot.len());
            }
        }
        Ok(zs)
    }
}

impl ActivationHook for Steerer<'_> {
    fn site(&self) -> Site {
        self.vectors[0].meta.site
    }

    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor> {
        let dims = act.dims().to_vec();
        let (batch, seq) = (dims[0], dims[1]);
        let width = dims[2..].iter().product::<usize>();
        if batch != self.rows.len() {
            bail!(Input, "the steering plan has {} rows but the batch has {batch}", self.rows.len());
        }
        let n = self.vectors.len();
        let all = self.directions(layer, width)?;
        let zs = &all[..n];
        let mut values = act.flatten_all()?.to_vec1::<f32>()?;
        let heads = self.vectors[0].meta.heads;
        for (row, steer) in self.rows.iter().enumerate() {
            let row_values = &mut values[row * seq * width..(row + 1) * seq * width];
            let last = &row_values[(seq - 1) * width..];
            for (sum, z) in self.projection_sums[row].iter_mut().zip(zs) {
                *sum += cosine(last, z);
            }
            if !steer.is_off() {
                for position in row_values.chunks_exact_mut(width).skip(self.skip) {
                    fuse_many(position, zs, &steer.alphas[..n], heads, steer.mode);
                }
            }
        }
        self.layers_seen += 1;
        if self.rows.iter().all(RowSteering::is_off) {
            return Ok(act);
        }
        Ok(Tensor::from_vec(values, dims, act.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nucleus found by sorting only the best tokens equals the nucleus of the fully sorted vocabulary.
    #[test]
    fn partial_nucleus_equals_full_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..300 {
            let vocab = [1usize, 5, 50, 2000, 49152][case % 5];
            let spread = [0.5f32, 3.0, 8.0, 25.0][case % 4];
            let mut logits: Vec<f32> = (0..vocab).map(|_| rng.random::<f32>() * spread).collect();
            if case % 7 == 0 {
                // Ties and masked tokens.
                logits.iter_mut().step_by(3).for_each(|l| *l = (*l * 2.0).round() / 2.0);
                logits[0] = f32::NEG_INFINITY;
            }
            let params = SamplingParams {
                temperature: [0.3, 0.7, 1.0, 1.5][case % 4],
                top_p: [0.5, 0.9, 0.95, 0.999][(case / 4) % 4],
                top_k: 0,
                seed: 0,
                max_new_tokens: 1,
            };
            let sampler = Sampler::new(&params, 0);
            let max = logits.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max) as f64;
            let (fast_order, fast_probs) = sampler.nucleus(&logits, max);
            let (full_order, full_probs) = sampler.sorted_candidates(&logits, max);
            assert_eq!(fast_order, full_order, "case {case}");
            for (a, b) in fast_probs.iter().zip(&full_probs) {
                assert!((a - b).abs() <= 1e-12, "case {case}: {a} vs {b}");
            }
        }
    }
}
