//! `eval-concept`: a concept vector (sentiment, weddings), raw vs every (mode, α), with paired bootstrap
//! intervals.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use destein::concept_eval::{self as ce, ConceptJudge};
use destein::evaluation::{self as ev, EvalParams};
use destein::steering::FusionMode;
use destein::vectors::DetoxVectors;

use crate::common::{load_model, Common, ReportArgs};

#[derive(Args)]
pub struct EvalConceptArgs {
    #[command(flatten)]
    common: Common,
    /// The concept's vector file (safetensors).
    #[arg(long)]
    vectors: PathBuf,
    /// Prompts in RealToxicityPrompts shape: one {"prompt": {"text": ...}} per line.
    #[arg(long)]
    prompts: PathBuf,
    /// sentiment (VADER calls it positive) or weddings (a wedding word appears).
    #[arg(long)]
    judge: String,
    #[arg(long, value_delimiter = ',', default_value = "rotate,headwise,add")]
    modes: Vec<FusionMode>,
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2,0.3", allow_hyphen_values = true)]
    alphas: Vec<f32>,
    /// Continuations per prompt and setting.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0.9)]
    top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    report: ReportArgs,
}

pub fn run(args: &EvalConceptArgs) -> Result<()> {
    let dir = args.report.dir();
    let p = &args.params();
    // Every bad input is refused before the model loads.
    let judge = ConceptJudge::load(&args.judge, &args.report.judges)?;
    for &a in &args.alphas {
        destein::steering::validate_alpha(a)?;
    }
    anyhow::ensure!(args.alphas.iter().any(|&a| a > 0.0), "--alphas needs at least one α > 0 to compare with raw");
    anyhow::ensure!(p.samples > 0, "--samples must be at least 1");
    p.sampling().validate()?;
    let bytes =
        std::fs::read(&args.prompts).with_context(|| format!("cannot read prompts {}", args.prompts.display()))?;
    let (prompts, skipped) = ev::parse_prompts(&bytes, &args.prompts.display().to_string())?;
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let (model, _) = load_model(&args.common)?;
    let vectors = DetoxVectors::load(&args.vectors)?;
    vectors.check_model(&model)?;
    for prompt in &prompts {
        ev::prompt_tokens(&model, prompt, p)?;
    }
    let settings = ev::sweep_settings(&[vectors.meta.site], &args.modes, &args.alphas);
    let records = ce::run_settings(&model, &judge, &vectors, &prompts, &settings, p, |s, i| {
        if i + 1 == prompts.len() {
            eprintln!("{}: {} prompts done", s.label(), prompts.len());
        }
    })?;
    let reports = ce::report(&settings, &records, prompts.len(), ce::BOOTSTRAP_DRAWS, ce::BOOTSTRAP_SEED)?;
    let (rate, mean) = judge.describe();
    let config = serde_json::json!({
        "model": model.config.name, "model_sha256": model.sha256, "load_dtype": model.load_dtype.name(),
        "vectors": args.vectors, "vectors_site": vectors.meta.site.name(), "prompts": args.prompts,
        "prompt_count": prompts.len(), "judge": judge.name(), "rate": rate, "mean_score": mean,
        "samples": p.samples, "max_new_tokens": p.max_new_tokens, "top_p": p.top_p, "temperature": p.temperature,
        "seed": p.seed, "bootstrap": { "draws": ce::BOOTSTRAP_DRAWS, "seed": ce::BOOTSTRAP_SEED, "level": 0.95,
            "resampled": "prompts, the same draw for every setting" },
    });
    let results = ce::Results { config, settings: &reports };
    destein::write_atomically(&dir.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    let lines: Vec<String> = records.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    destein::write_atomically(&dir.join("records.jsonl"), (lines.join("\n") + "\n").as_bytes())?;
    let table = ce::markdown_table(&reports);
    let md = format!(
        "# Concept evaluation: {}, {} prompts × {} samples\n\nModel `{}` ({}), vectors `{}`, prompts `{}`; \
         top-p {}, temperature {}, {} new tokens, seed {}.\nRate: {rate}. Mean score: {mean}. Intervals: 95%, \
         paired bootstrap over prompts ({} draws, seed {}); perplexity under the raw model.\n\n{table}",
        judge.name(),
        prompts.len(),
        p.samples,
        model.config.name,
        model.load_dtype.name(),
        args.vectors.display(),
        args.prompts.display(),
        p.top_p,
        p.temperature,
        p.max_new_tokens,
        p.seed,
        ce::BOOTSTRAP_DRAWS,
        ce::BOOTSTRAP_SEED
    );
    destein::write_atomically(&dir.join("results.md"), md.as_bytes())?;
    println!("{table}");
    println!("wrote {}/results.json, results.md, records.jsonl", dir.display());
    Ok(())
}

impl EvalConceptArgs {
    fn params(&self) -> EvalParams {
        EvalParams {
            samples: self.samples,
            max_new_tokens: self.max_new_tokens,
            top_p: self.top_p,
            temperature: self.temperature,
            seed: self.seed,
        }
    }
}
