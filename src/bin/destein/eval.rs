//! `eval`: detoxification on RealToxicityPrompts, raw vs every (site, mode, α), scored by offline judges; a
//! `destein::evaluation::Sweep` with a progress bar.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use destein::evaluation::{self as ev, Judges, ModelIdentity, PromptFile, Setting, Sweep, SweepEngine, SweepRequest};
use destein::model::Model;
use destein::steering::FusionMode;
use destein::subspace::Subspace;
use destein::vectors::{self, DetoxVectors};

use crate::common::{load_model, read_prompts, Common, ReportArgs};

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    common: Common,
    /// RealToxicityPrompts JSONL files, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "data/rtp/test100.jsonl")]
    prompts: Vec<PathBuf>,
    /// Sample this many prompts from each file (seeded by --sample-seed); default: all.
    #[arg(long)]
    sample: Option<usize>,
    #[arg(long, default_value_t = 0)]
    sample_seed: u64,
    /// Vector files, comma-separated: one per site to evaluate.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "www/vectors/smollm2-135m.heads.safetensors,www/vectors/smollm2-135m.attn_out.safetensors"
    )]
    vectors: Vec<PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "rotate,headwise,add")]
    modes: Vec<FusionMode>,
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2,0.3")]
    alphas: Vec<f32>,
    /// Explicit settings instead of the sites × modes × α sweep, comma-separated, each
    /// site/mode/α[/generated][/top=SHARE] (raw is always included).
    #[arg(long, value_delimiter = ',')]
    settings: Vec<String>,
    /// Continuations per prompt (the paper: 25).
    #[arg(long, default_value_t = 25)]
    samples: usize,
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    report: ReportArgs,
    /// Prompt files held out from this run (the other split): an error if any prompt is in both.
    #[arg(long, value_delimiter = ',')]
    held_out: Vec<PathBuf>,
    /// Continue an interrupted run with the same prompts and protocol; settings may be added.
    #[arg(long)]
    resume: bool,
    /// Write the reports from the results recorded so far (prompts done for every setting), generating
    /// nothing: for a look at a run still in progress or cut short.
    #[arg(long)]
    report_only: bool,
    /// Prompt×setting batches to run at once, each on its own thread (default 1). Everything outside
    /// the matrix products runs on one thread per batch, so on several cores `--jobs 2 --threads 1`
    /// keeps them busier than `--threads 2`. The records are the same bits either way.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

impl EvalArgs {
    fn request(&self) -> SweepRequest {
        SweepRequest {
            prompt_files: self.prompts.clone(),
            sample: self.sample,
            sample_seed: self.sample_seed,
            held_out: self.held_out.clone(),
            vector_files: self.vectors.clone(),
            modes: self.modes.clone(),
            alphas: self.alphas.clone(),
            settings: self.settings.clone(),
            samples: self.samples,
            max_new_tokens: self.max_new_tokens,
            seed: self.seed,
        }
    }
}

pub fn run(mut args: EvalArgs) -> Result<()> {
    let resume = args.resume || args.report_only;
    anyhow::ensure!(args.jobs >= 1, "--jobs must be at least 1");
    // Several jobs share the cores: unless told otherwise, each one's matrix products get cores / jobs.
    if args.jobs > 1 && args.common.threads.is_none() {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        args.common.threads = Some((cores / args.jobs).max(1));
    }
    let request = args.request();
    // Every bad input is refused before the model loads.
    let judges = Judges::load(&args.report.judges)?;
    let (prompts, file_sizes) = request.choose_prompts(read_prompt_files(&args.prompts)?)?;
    for path in &args.held_out {
        ev::check_disjoint(&prompts, &read_prompts(path)?).with_context(|| format!("--held-out {}", path.display()))?;
    }
    request.validate()?;
    let (model, _) = load_model(&args.common)?;
    let mut vector_sets = Vec::new();
    for path in &args.vectors {
        let v = DetoxVectors::load(path)?;
        v.check_model(&model)?;
        vector_sets.push(v);
    }
    // Every prompt must fit the context: refused now, not hours in when the run reaches it.
    for p in &prompts {
        ev::prompt_tokens(&model, p, &request.params())?;
    }
    let metas: Vec<_> = vector_sets.iter().map(|v| v.meta.clone()).collect();
    let dir = args.report.dir();
    let mut sweep = Sweep::plan(&dir, &request, (prompts, file_sizes), ModelIdentity::of(&model), &metas)?;
    if resume {
        let done = sweep.resume(args.report_only)?;
        eprintln!("resuming: {done} of {} prompt×setting results already done", sweep.total());
    } else {
        sweep.start()?;
    }
    if !args.report_only {
        let subspaces = eval_subspaces(&model, &vector_sets, &sweep.todo())?;
        let engine = SweepEngine { model: &model, judges: &judges, vectors: &vector_sets, subspaces: &subspaces };
        let bar = progress_bar(sweep.total(), sweep.records().len());
        sweep.run(&engine, args.jobs, |record| {
            bar.set_message(record.setting.label());
            bar.inc(1);
        })?;
        bar.finish();
    }
    let (complete, all) = sweep.coverage();
    if complete != all {
        eprintln!("the sweep table covers the {complete} of {all} prompts done for every setting");
    }
    let report = sweep.report()?;
    println!("{}", report.tables);
    println!("wrote {}/results.json, results.md, pareto.svg", dir.display());
    Ok(())
}

fn read_prompt_files(paths: &[PathBuf]) -> Result<Vec<PromptFile>> {
    let name = |path: &PathBuf| path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    paths.iter().map(|path| Ok(PromptFile { name: name(path), prompts: read_prompts(path)? })).collect()
}

fn progress_bar(total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} prompt×setting, {elapsed} elapsed, ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_position(done as u64);
    bar
}

/// The toxic subspaces the settings still to run need (one per rank), built from data/steering_pairs.jsonl on
/// the vectors' site.
fn eval_subspaces(
    model: &Model,
    vector_sets: &[DetoxVectors],
    todo: &[(usize, &Setting)],
) -> Result<Vec<(usize, Arc<Subspace>)>> {
    let mut out: Vec<(usize, Arc<Subspace>)> = Vec::new();
    for (_, setting) in todo {
        let Some(rank) = setting.subspace_rank else { continue };
        if out.iter().any(|(r, _)| *r == rank) {
            continue;
        }
        let v = vector_sets.iter().find(|v| v.meta.site.name() == setting.site).context("no vectors for the site")?;
        let path = "data/steering_pairs.jsonl";
        let pairs = vectors::parse_pairs(&std::fs::read(path).with_context(|| format!("cannot read {path}"))?)?;
        eprintln!("building the rank-{rank} toxic subspace from {path} ({} pairs)", pairs.len());
        out.push((rank, Arc::new(Subspace::derive(model, &pairs, v, rank)?)));
    }
    Ok(out)
}
