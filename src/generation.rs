//! Sampling and step-by-step generation of several rows that share one prompt.
//!
//! Row 0 is usually raw and row 1 steered; each row has its own RNG seeded with the same seed, so with α = 0
//! the rows produce the same text, and any difference is the steering's doing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bail;
use crate::error::Result;
use crate::model::{Cache, Model};
use crate::steering::{validate_alpha, RowSteering, Steerer};
use crate::tokenizer::StreamDecoder;
use crate::vectors::DetoxVectors;

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
        let argmax = || {
            logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap_or(0)
        };
        if self.temperature <= 0.0 {
            return argmax();
        }
        // Candidates sorted by logit, descending (ties by id, so the order is deterministic). Only tokens within
        // 30·T of the best logit are sorted: the rest weigh < vocab·e⁻³⁰ ≈ 5e-9 together, and follow in id order.
        let max = logits.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return argmax();
        }
        let cutoff = max as f64 - 30.0 * self.temperature;
        let (mut order, tail): (Vec<u32>, Vec<u32>) = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize].is_finite())
            .partition(|&i| logits[i as usize] as f64 >= cutoff);
        order.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        order.extend(tail);
        if self.top_k > 0 {
            order.truncate(self.top_k);
        }
        let max = max as f64;
        let mut probs: Vec<f64> =
            order.iter().map(|&i| ((logits[i as usize] as f64 - max) / self.temperature).exp()).collect();
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
            let kept: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= kept);
        }
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
    let text = match mode {
        PromptMode::Continuation => prompt.to_string(),
        PromptMode::Chat => model.tokenizer.chat_prompt(prompt)?,
    };
    let ids = model.tokenizer.encode(&text)?;
    let context = model.config.context_length;
    if ids.len() >= context {
        bail!(Input, "the prompt is {} tokens long; the model's context holds {context} (leave room to generate)", ids.len());
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
    /// Mean over layers of cos(activation, z) at this step, before fusion (None without vectors).
    pub projection: Option<f32>,
    pub alpha: f32,
}

struct RowState {
    sampler: Sampler,
    decoder: StreamDecoder,
    tokens: Vec<u32>,
    stop: Option<StopReason>,
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
            validate_alpha(s.alpha)?;
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
        })
    }

    pub fn done(&self) -> bool {
        self.rows.iter().all(|r| r.stop.is_some())
    }

    pub fn tokens(&self, row: usize) -> &[u32] {
        &self.rows[row].tokens
    }

    /// Change α of a row from the next step on.
    pub fn set_steering(&mut self, row: usize, steering: RowSteering) -> Result<()> {
        validate_alpha(steering.alpha)?;
        self.steering[row] = steering;
        Ok(())
    }

    /// Run one forward step for all rows and sample each row's next token.
    pub fn step(&mut self, model: &Model, vectors: Option<&DetoxVectors>) -> Result<Vec<RowStep>> {
        if self.done() {
            bail!(Input, "the generation has finished");
        }
        if vectors.is_none() && self.steering.iter().any(|s| s.alpha > 0.0) {
            bail!(Input, "α > 0 needs a detox vector file");
        }
        let tokens = model.token_tensor(&self.next_input)?;
        let steering = self.steering.clone();
        let (logits, projections) = match vectors {
            Some(v) => {
                let mut steerer = Steerer::new(v, &steering);
                let logits = model.forward_last(&tokens, &mut self.cache, Some(&mut steerer))?;
                (logits, Some(steerer.projections()))
            }
            None => (model.forward_last(&tokens, &mut self.cache, None)?, None),
        };
        let logits: Vec<Vec<f32>> = logits.to_vec2::<f32>()?;
        let context_full = self.cache.len + 1 > model.config.context_length;
        let mut out = Vec::with_capacity(self.rows.len());
        for (r, row) in self.rows.iter_mut().enumerate() {
            let projection = projections.as_ref().map(|p| p[r]);
            let alpha = steering[r].alpha;
            if row.stop.is_some() {
                out.push(RowStep { text: String::new(), token_id: None, finished: true, stop_reason: row.stop, projection, alpha });
                continue;
            }
            let id = row.sampler.sample(&logits[r]);
            let mut text = String::new();
            if model.tokenizer.stop_ids.contains(&id) {
                row.stop = Some(StopReason::Eos);
                text.push_str(&row.decoder.finish());
            } else {
                row.tokens.push(id);
                text.push_str(&row.decoder.push(&model.tokenizer, id));
                if row.tokens.len() >= self.max_new_tokens {
                    row.stop = Some(StopReason::MaxTokens);
                } else if context_full {
                    row.stop = Some(StopReason::Context);
                }
                if row.stop.is_some() {
                    text.push_str(&row.decoder.finish());
                }
            }
            out.push(RowStep { text, token_id: Some(id), finished: row.stop.is_some(), stop_reason: row.stop, projection, alpha });
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
}
