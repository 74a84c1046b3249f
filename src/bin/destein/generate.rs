//! `generate`: a continuation, raw and (with --vectors) steered in the same batch.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use destein::generation::{check_prompt_chars, prompt_ids, Generation, PromptMode, SamplingParams};
use destein::model::Model;
use destein::steering::{validate_alpha, FusionMode, RowSteering, Scope, MAX_VECTORS};
use destein::vectors::{check_compatible, DetoxVectors};

use crate::common::{load_model, Common};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    sampling: Sampling,
    /// Detox vector files (safetensors) from `destein derive`, comma-separated: up to 3, all for the
    /// same site and model, steering the row together.
    #[arg(long, value_delimiter = ',')]
    vectors: Vec<PathBuf>,
    /// Fusion strength, one per vector file, comma-separated (default: each file's recommendation).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    alpha: Vec<f32>,
    /// rotate, headwise, headwise-reference or add (default: the first vector file's recommendation).
    #[arg(long)]
    mode: Option<FusionMode>,
    /// Show the raw and the steered continuation one after the other, labelled.
    #[arg(long)]
    side_by_side: bool,
    /// Which positions are steered: all (the prompt too) or generated (only those producing new tokens;
    /// the prompt's KV cache stays raw). Default: the first vector file's recommendation.
    #[arg(long)]
    scope: Option<Scope>,
}

#[derive(Args, Clone)]
struct Sampling {
    #[arg(long, default_value = "The weather today is")]
    prompt: String,
    #[arg(long, default_value_t = 40)]
    max_new_tokens: usize,
    /// 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// 0 means no top-k filter.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Treat the prompt as a chat message (ChatML template) instead of text to continue.
    #[arg(long)]
    chat: bool,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let s = &args.sampling;
    let steering_options = !args.alpha.is_empty() || args.mode.is_some() || args.scope.is_some() || args.side_by_side;
    if args.vectors.is_empty() && steering_options {
        anyhow::bail!("--alpha, --mode, --scope and --side-by-side need --vectors FILE");
    }
    let params = SamplingParams {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        seed: s.seed,
        max_new_tokens: s.max_new_tokens,
    };
    // A bad request is refused before the model loads.
    params.validate()?;
    check_prompt_chars(&s.prompt, "--prompt")?;
    let (model, secs) = load_model(&args.common)?;
    eprintln!("loaded {} ({}) in {secs:.2} s", model.config.name, model.load_dtype.name());
    let vectors = load_vector_set(&model, &args.vectors)?;
    let prompt_mode = if s.chat { PromptMode::Chat } else { PromptMode::Continuation };
    let ids = prompt_ids(&model, &s.prompt, prompt_mode)?;
    let steering = match vectors.is_empty() {
        false => vec![RowSteering::OFF, steered_row(&vectors, &args.vectors, &args.alpha, args.mode)?],
        true => vec![RowSteering::OFF],
    };
    let seeds = vec![s.seed; steering.len()];
    let mut generation = Generation::new(&model, ids, &params, &seeds, steering.clone())?;
    let recommended_generated_only = vectors.first().is_some_and(|v| v.meta.recommended_generated_only);
    generation.steer_prompt = !args.scope.map_or(recommended_generated_only, Scope::generated_only);
    let start = Instant::now();
    let texts = stream(args, &model, &vectors, &mut generation)?;
    let secs = start.elapsed().as_secs_f64();
    if args.side_by_side {
        println!("prompt:   {}", s.prompt);
        println!("--- raw");
        println!("{}{}", s.prompt, texts[0]);
        let scope = if generation.steer_prompt { "" } else { ", generated positions only" };
        println!("--- steered ({}{scope})", steering_label(&steering[1], &args.vectors));
        println!("{}{}", s.prompt, texts[1]);
    }
    let n: usize = (0..steering.len()).map(|r| generation.tokens(r).len()).sum();
    eprintln!("{} tokens in {secs:.2} s ({:.1} tokens/s over {} row(s))", n, n as f64 / secs, steering.len());
    Ok(())
}

/// Run the generation to its end; returns each row's text. Without --side-by-side, the steered row (if there
/// is one, else the raw one) is streamed to stdout after the prompt as it comes.
fn stream(
    args: &GenerateArgs,
    model: &Model,
    vectors: &[DetoxVectors],
    generation: &mut Generation,
) -> Result<Vec<String>> {
    let rows = if vectors.is_empty() { 1 } else { 2 };
    let mut texts = vec![String::new(); rows];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let streaming_row = rows - 1;
    if !args.side_by_side {
        write!(out, "{}", args.sampling.prompt)?;
    }
    while !generation.done() {
        let steps = generation.step(model, vectors)?;
        for (r, step) in steps.iter().enumerate() {
            texts[r].push_str(&step.text);
        }
        if !args.side_by_side {
            write!(out, "{}", steps[streaming_row].text)?;
            out.flush()?;
        }
    }
    if !args.side_by_side {
        writeln!(out)?;
    }
    Ok(texts)
}

/// Load the `--vectors` files for `model`, each error naming its file; then check they can steer together.
fn load_vector_set(model: &Model, paths: &[PathBuf]) -> Result<Vec<DetoxVectors>> {
    anyhow::ensure!(
        paths.len() <= MAX_VECTORS,
        "--vectors has {} files; at most {MAX_VECTORS} can steer together",
        paths.len()
    );
    let mut vectors = Vec::with_capacity(paths.len());
    for p in paths {
        let v = DetoxVectors::load(p).with_context(|| p.display().to_string())?;
        v.check_model(model).with_context(|| p.display().to_string())?;
        vectors.push(v);
    }
    let numbered: Vec<String> = paths.iter().enumerate().map(|(i, p)| format!("{} = {}", i + 1, p.display())).collect();
    check_compatible(&vectors).with_context(|| format!("--vectors (files {})", numbered.join(", ")))?;
    Ok(vectors)
}

/// The steered row: one α per vector file (default: each file's recommendation), and one mode (default:
/// the first file's recommendation).
fn steered_row(
    vectors: &[DetoxVectors],
    paths: &[PathBuf],
    alphas: &[f32],
    mode: Option<FusionMode>,
) -> Result<RowSteering> {
    anyhow::ensure!(
        alphas.is_empty() || alphas.len() == vectors.len(),
        "--alpha has {} value(s) but --vectors has {} file(s): give one α per file, in the same order",
        alphas.len(),
        vectors.len()
    );
    let mode = mode.unwrap_or(vectors[0].meta.recommended_mode);
    let mut row = RowSteering { mode, ..RowSteering::OFF };
    for (i, (v, p)) in vectors.iter().zip(paths).enumerate() {
        row.alphas[i] = alphas.get(i).copied().unwrap_or(v.meta.recommended_alpha);
        validate_alpha(row.alphas[i]).with_context(|| format!("--alpha for {}", p.display()))?;
    }
    Ok(row)
}

/// "rotate, α = 0.2" for one file; "rotate, α = 0.2 a.safetensors + α = 0.1 b.safetensors" for several.
fn steering_label(st: &RowSteering, paths: &[PathBuf]) -> String {
    if paths.len() == 1 {
        return format!("{}, α = {}", st.mode.name(), st.alphas[0]);
    }
    let name = |p: &PathBuf| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let parts: Vec<String> = paths.iter().zip(st.alphas).map(|(p, a)| format!("α = {a} {}", name(p))).collect();
    format!("{}, {}", st.mode.name(), parts.join(" + "))
}
