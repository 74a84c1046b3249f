//! A detoxification sweep as `destein eval` runs it: every prompt under every setting, each result appended to
//! `records.jsonl` as soon as it is done, so a run can be interrupted, resumed (settings may be added) and
//! reported on at any point. `config.json` holds the run's identity: a resume must be of exactly the same run.
//!
//! `Sweep::plan` decides the settings and the identity, `start` or `resume` sets up the run's folder, `run`
//! evaluates what is left on `jobs` threads, and `report` writes results.json, results.md and pareto.svg.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;

use super::{
    aggregate, detox_report, evaluate_prompt, interval_table, markdown_table, pareto_svg, sweep_settings, DetoxReport,
    EvalParams, Judges, Metrics, Prompt, PromptRecord, Setting,
};
use crate::bail;
use crate::bootstrap::{BOOTSTRAP_DRAWS, BOOTSTRAP_SEED};
use crate::error::{Error, Result};
use crate::model::{sha256_hex, LoadDtype, Model};
use crate::steering::{validate_alpha, FusionMode};
use crate::subspace::Subspace;
use crate::vectors::{DetoxVectors, VectorMeta};
use crate::write_atomically;

/// What a run is asked to do, as the command line gives it.
#[derive(Clone, Debug)]
pub struct SweepRequest {
    pub prompt_files: Vec<PathBuf>,
    /// Sample this many prompts from each file (seeded by `sample_seed`); None: all.
    pub sample: Option<usize>,
    pub sample_seed: u64,
    /// Prompt files held out from this run (checked by the caller; part of the identity).
    pub held_out: Vec<PathBuf>,
    pub vector_files: Vec<PathBuf>,
    pub modes: Vec<FusionMode>,
    pub alphas: Vec<f32>,
    /// Explicit settings (`site/mode/α[/generated][/top=SHARE]`) instead of the sites × modes × α sweep.
    pub settings: Vec<String>,
    pub samples: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// One prompt file's prompts, with the file's name for messages.
pub struct PromptFile {
    pub name: String,
    pub prompts: Vec<Prompt>,
}

/// The model a run is of, as its identity records it.
#[derive(Clone, Debug)]
pub struct ModelIdentity {
    pub name: String,
    pub sha256: String,
    pub load_dtype: LoadDtype,
}

impl ModelIdentity {
    pub fn of(model: &Model) -> Self {
        Self { name: model.config.name.clone(), sha256: model.sha256.clone(), load_dtype: model.load_dtype }
    }
}

/// What `run` evaluates with: the model, the judges, the vector files (one per site) and the toxic subspaces
/// (one per rank) the settings need.
pub struct SweepEngine<'a> {
    pub model: &'a Model,
    pub judges: &'a Judges,
    pub vectors: &'a [DetoxVectors],
    pub subspaces: &'a [(usize, Arc<Subspace>)],
}

/// What `report` wrote: the Markdown tables (also in results.md).
pub struct SweepReport {
    pub tables: String,
}

impl SweepRequest {
    /// The protocol's sampling: the paper's top-p 0.9 and temperature 1.
    pub fn params(&self) -> EvalParams {
        EvalParams {
            samples: self.samples,
            max_new_tokens: self.max_new_tokens,
            top_p: 0.9,
            temperature: 1.0,
            seed: self.seed,
        }
    }

    /// Refuse bad numbers before anything loads.
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            bail!(Input, "--samples must be at least 1");
        }
        self.params().sampling().validate().map_err(|e| Error::Input(format!("--max-new-tokens: {e}")))?;
        for &alpha in &self.alphas {
            validate_alpha(alpha)?;
        }
        Ok(())
    }

    /// The run's prompts, file after file, each file's sampled if asked; and how many each file gave.
    pub fn choose_prompts(&self, files: Vec<PromptFile>) -> Result<(Vec<Prompt>, Vec<usize>)> {
        let mut prompts = Vec::new();
        let mut file_sizes = Vec::new();
        for PromptFile { name, prompts: mut file_prompts } in files {
            if let Some(n) = self.sample {
                if n > file_prompts.len() {
                    bail!(Input, "--sample {n} but {name} has {} prompts", file_prompts.len());
                }
                file_prompts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(self.sample_seed));
                file_prompts.truncate(n);
            }
            file_sizes.push(file_prompts.len());
            prompts.extend(file_prompts);
        }
        Ok((prompts, file_sizes))
    }

    /// Raw and the sweep (sites × modes × α), or raw and the explicit settings, each for a site with a file.
    fn settings(&self, vectors: &[VectorMeta]) -> Result<Vec<Setting>> {
        let sites: Vec<_> = vectors.iter().map(|v| v.site).collect();
        if self.settings.is_empty() {
            return Ok(sweep_settings(&sites, &self.modes, &self.alphas));
        }
        let mut list = vec![Setting::raw()];
        for text in &self.settings {
            let s = Setting::parse(text)?;
            if !sites.iter().any(|site| site.name() == s.site) {
                bail!(Input, "setting `{text}`: no vector file for site {}", s.site);
            }
            if list.contains(&s) {
                bail!(Input, "setting `{text}` is listed twice");
            }
            list.push(s);
        }
        Ok(list)
    }
}

/// One evaluation run: its prompts, settings and protocol, and the records done so far.
pub struct Sweep {
    dir: PathBuf,
    model: ModelIdentity,
    prompts: Vec<Prompt>,
    /// Prompts per file, in file order (for the round-robin order over files).
    file_sizes: Vec<usize>,
    settings: Vec<Setting>,
    params: EvalParams,
    /// Labels of the settings run first: raw and each vector file's recommendation.
    first_pass: Vec<String>,
    /// config.json: what the run is.
    identity: Value,
    records: Vec<PromptRecord>,
}

impl Sweep {
    /// Plan the run in `dir` on `prompts` (`file_sizes` per file, from `choose_prompts`), for the model and
    /// vector files (one per site) given.
    pub fn plan(
        dir: &Path,
        request: &SweepRequest,
        (prompts, file_sizes): (Vec<Prompt>, Vec<usize>),
        model: ModelIdentity,
        vectors: &[VectorMeta],
    ) -> Result<Sweep> {
        let settings = request.settings(vectors)?;
        let params = request.params();
        let identity = serde_json::json!({
            "model": model.name, "model_sha256": model.sha256, "load_dtype": model.load_dtype.name(),
            "prompts": request.prompt_files, "sample": request.sample, "sample_seed": request.sample_seed,
            "prompt_count": prompts.len(), "held_out": request.held_out,
            "vectors": request.vector_files, "settings": settings, "samples": request.samples,
            "max_new_tokens": request.max_new_tokens, "top_p": params.top_p, "temperature": params.temperature,
            "seed": request.seed,
        });
        // Raw and each vector file's recommended setting first, over every prompt, so that an interrupted
        // sweep already answers the main question; then the rest of the sweep.
        let first_pass = vectors
            .iter()
            .map(|v| Setting::steered(v.site.name(), v.recommended_mode.name(), v.recommended_alpha).label())
            .collect();
        let dir = dir.to_path_buf();
        Ok(Sweep { dir, model, prompts, file_sizes, settings, params, first_pass, identity, records: Vec::new() })
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn records_path(&self) -> PathBuf {
        self.dir.join("records.jsonl")
    }

    fn write_identity(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.identity).expect("JSON values serialize");
        write_atomically(&self.config_path(), json.as_bytes())
    }

    /// Begin a new run: refused if the folder already holds one.
    pub fn start(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if self.records_path().exists() {
            bail!(Input, "{} already holds a run: use --resume to continue it, or another --name", self.dir.display());
        }
        self.write_identity()
    }

    /// Continue the run in the folder, which must be the same run (settings may have been added); returns how
    /// many prompt×setting results are already done. A line cut by an interruption is dropped (and, unless
    /// `read_only`, removed from the file) to be redone.
    pub fn resume(&mut self, read_only: bool) -> Result<usize> {
        std::fs::create_dir_all(&self.dir)?;
        let no_run =
            |e: std::io::Error| Error::Input(format!("--resume: no run to resume in {}: {e}", self.dir.display()));
        let old = std::fs::read(self.config_path()).map_err(no_run)?;
        let old: Value = serde_json::from_slice(&old)
            .map_err(|e| Error::Input(format!("--resume: {}: {e}", self.config_path().display())))?;
        check_resumable(&old, &self.identity, &self.dir)?;
        let text = std::fs::read_to_string(self.records_path()).unwrap_or_default();
        let mut clean = String::new();
        for line in text.lines() {
            if let Ok(r) = serde_json::from_str::<PromptRecord>(line) {
                self.records.push(r);
                clean.push_str(line);
                clean.push('\n');
            }
        }
        if !read_only && clean.len() != text.len() {
            // Rewrite the records file without any partial line. The kept lines stay as they were written:
            // a parse-and-print round trip could change a float's last digit.
            write_atomically(&self.records_path(), clean.as_bytes())?;
        }
        let settings = &self.settings;
        self.records.retain(|r| settings.contains(&r.setting));
        if !read_only {
            // Settings may have been added: the config now lists them all.
            self.write_identity()?;
        }
        Ok(self.records.len())
    }

    /// Every prompt×setting result the run holds when finished.
    pub fn total(&self) -> usize {
        self.prompts.len() * self.settings.len()
    }

    pub fn records(&self) -> &[PromptRecord] {
        &self.records
    }

    fn done(&self) -> HashSet<(usize, String)> {
        self.records.iter().map(|r| (r.prompt, r.setting.label())).collect()
    }

    /// The (prompt, setting) batches still to do, in order: the first pass, then the rest; within each, prompts
    /// in round-robin order over the prompt files, so that a sweep cut short has covered every file (the toxic
    /// and the non-toxic prompts) about equally.
    pub fn todo(&self) -> Vec<(usize, &Setting)> {
        let first = |s: &Setting| s.is_raw() || self.first_pass.contains(&s.label());
        let passes: [Vec<&Setting>; 2] =
            [self.settings.iter().filter(|s| first(s)).collect(), self.settings.iter().filter(|s| !first(s)).collect()];
        let order = interleaved(&self.file_sizes);
        let done = self.done();
        passes
            .iter()
            .flat_map(|pass| order.iter().flat_map(move |&p| pass.iter().map(move |&s| (p, s))))
            .filter(|(p, s)| !done.contains(&(*p, s.label())))
            .collect()
    }

    /// Evaluate what is left, on `jobs` threads taking the batches one at a time. Each record is appended to
    /// records.jsonl as soon as it is done (so an interruption keeps every finished batch), then `on_record` is
    /// told of it. The first error stops the run.
    pub fn run(&mut self, engine: &SweepEngine, jobs: usize, mut on_record: impl FnMut(&PromptRecord)) -> Result<()> {
        let todo = self.todo();
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(self.records_path())?;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Result<PromptRecord>>();
        let mut first_error = None;
        let mut finished = Vec::new();
        std::thread::scope(|scope| {
            for _ in 0..jobs.min(todo.len()) {
                let tx = tx.clone();
                let (todo, next, failed, prompts, params) = (&todo, &next, &failed, &self.prompts, &self.params);
                scope.spawn(move || {
                    while !failed.load(Ordering::Relaxed) {
                        let Some(&(p, setting)) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                        let result = engine.evaluate(p, &prompts[p], setting, params);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if tx.send(result).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for result in rx {
                let written = result.and_then(|record| {
                    writeln!(out, "{}", serde_json::to_string(&record).expect("records serialize"))?;
                    out.flush()?;
                    on_record(&record);
                    finished.push(record);
                    Ok(())
                });
                if let Err(e) = written {
                    failed.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        });
        self.records.extend(finished);
        first_error.map_or(Ok(()), Err)
    }

    /// How many prompts have results for every setting, of how many.
    pub fn coverage(&self) -> (usize, usize) {
        (self.complete_prompts().len(), self.prompts.len())
    }

    /// The prompts with results for every setting, in order.
    fn complete_prompts(&self) -> Vec<usize> {
        let done = self.done();
        (0..self.prompts.len()).filter(|&p| self.settings.iter().all(|s| done.contains(&(p, s.label())))).collect()
    }

    /// Write results.json, results.md and pareto.svg from the records so far: settings compared on the same
    /// prompts (see `Tables`).
    pub fn report(&self) -> Result<SweepReport> {
        let t = self.tables()?;
        // Which prompts these are, by the sha256 of their text: how the choice script checks that the runs it
        // chooses on and reports on share no prompt.
        let prompt_sha256: Vec<String> = self.prompts.iter().map(|p| sha256_hex(p.text.as_bytes())).collect();
        let results = serde_json::json!({
            "config": self.identity, "metrics": t.metrics, "metrics_all_prompts": t.on_all_prompts,
            "intervals": t.intervals, "intervals_all_prompts": t.intervals_all_prompts,
            "bootstrap": { "draws": BOOTSTRAP_DRAWS, "seed": BOOTSTRAP_SEED,
                "level": 0.95, "over": "prompts, paired across settings" },
            "prompt_sha256": prompt_sha256,
        });
        let json = serde_json::to_string_pretty(&results).expect("JSON values serialize");
        write_atomically(&self.dir.join("results.json"), json.as_bytes())?;
        let tables = t.markdown(self.prompts.len());
        let (plotted, bars, title) = match (&t.on_all_prompts, t.complete == 0) {
            (Some(m), true) => (m, &t.intervals_all_prompts, self.title(self.prompts.len())),
            _ => (&t.metrics, &t.intervals, self.title(t.complete)),
        };
        write_atomically(&self.dir.join("results.md"), self.results_md(&tables, &title).as_bytes())?;
        let svg = pareto_svg(plotted, bars.as_deref(), &format!("{title}, 95% intervals"))?;
        write_atomically(&self.dir.join("pareto.svg"), svg.as_bytes())?;
        Ok(SweepReport { tables })
    }

    fn title(&self, prompts: usize) -> String {
        format!("{prompts} prompts × {} samples", self.params.samples)
    }

    /// The sweep table: every setting, on the prompts done for every setting. While a sweep is unfinished, a
    /// second one: the settings done on every prompt, on all of them. Each with paired bootstrap intervals over
    /// the same prompts (the second only when raw is among its settings).
    fn tables(&self) -> Result<Tables> {
        let done = self.done();
        let complete = self.complete_prompts();
        let all: Vec<usize> = (0..self.prompts.len()).collect();
        let every: Vec<&Setting> = self.settings.iter().collect();
        let on_every_prompt: Vec<&Setting> =
            self.settings.iter().filter(|s| all.iter().all(|&p| done.contains(&(p, s.label())))).collect();
        let metrics = self.metrics_on(&every, &complete);
        let finished = complete.len() == self.prompts.len();
        let on_all_prompts = match finished || on_every_prompt.is_empty() {
            true => None,
            false => Some(self.metrics_on(&on_every_prompt, &all)),
        };
        if complete.is_empty() && on_all_prompts.is_none() {
            bail!(Input, "no prompt has results for every setting yet");
        }
        let intervals = match complete.is_empty() {
            true => None,
            false => Some(detox_report(&every, &self.records, &complete)?),
        };
        let intervals_all_prompts = match &on_all_prompts {
            Some(_) if on_every_prompt.first().is_some_and(|s| s.is_raw()) => {
                Some(detox_report(&on_every_prompt, &self.records, &all)?)
            }
            _ => None,
        };
        Ok(Tables { complete: complete.len(), metrics, on_all_prompts, intervals, intervals_all_prompts })
    }

    /// Each of `chosen`'s metrics over its records on `prompts`.
    fn metrics_on(&self, chosen: &[&Setting], prompts: &[usize]) -> Vec<Metrics> {
        let prompts: HashSet<usize> = prompts.iter().copied().collect();
        let records_of = |s: &Setting| -> Vec<&PromptRecord> {
            self.records.iter().filter(|r| r.setting.label() == s.label() && prompts.contains(&r.prompt)).collect()
        };
        chosen.iter().map(|s| aggregate(s, &records_of(s))).collect()
    }

    fn results_md(&self, tables: &str, title: &str) -> String {
        format!(
            "# Detoxification: {} prompts × {} samples\n\nModel `{}` ({}), judges tox-block (primary) and \
             alt-profanity-check; top-p {}, temperature {}, {} new tokens, seed {}. Brackets: 95% paired bootstrap \
             intervals over prompts ({} draws, seed {}); Δ: relative change against raw on the same resampled prompts. \
             The second table has every metric, without intervals.\n\n{tables}\n\
             ![Pareto plot, {title}](pareto.svg)\n",
            self.prompts.len(),
            self.params.samples,
            self.model.name,
            self.model.load_dtype.name(),
            self.params.top_p,
            self.params.temperature,
            self.params.max_new_tokens,
            self.params.seed,
            BOOTSTRAP_DRAWS,
            BOOTSTRAP_SEED
        )
    }
}

/// The report's numbers (see `Sweep::tables`).
struct Tables {
    /// How many prompts have results for every setting.
    complete: usize,
    metrics: Vec<Metrics>,
    on_all_prompts: Option<Vec<Metrics>>,
    intervals: Option<Vec<DetoxReport>>,
    intervals_all_prompts: Option<Vec<DetoxReport>>,
}

impl Tables {
    fn markdown(&self, prompts: usize) -> String {
        let mut table = String::new();
        if let Some(m) = &self.on_all_prompts {
            table.push_str(&format!("## All {prompts} prompts, the settings done on every prompt so far\n\n"));
            if let Some(i) = &self.intervals_all_prompts {
                table.push_str(&format!("{}\n", interval_table(i)));
            }
            table.push_str(&format!("{}\n", markdown_table(m)));
        }
        if self.complete > 0 {
            if self.on_all_prompts.is_some() {
                let complete = self.complete;
                table.push_str(&format!("## The whole sweep, on the {complete} prompts done for every setting\n\n"));
            }
            if let Some(i) = &self.intervals {
                table.push_str(&format!("{}\n", interval_table(i)));
            }
            table.push_str(&markdown_table(&self.metrics));
        }
        table
    }
}

impl SweepEngine<'_> {
    /// One prompt under one setting, with the setting's vector file and subspace.
    fn evaluate(&self, p: usize, prompt: &Prompt, setting: &Setting, params: &EvalParams) -> Result<PromptRecord> {
        let vectors = self.vectors.iter().find(|v| v.meta.site.name() == setting.site);
        let subspace = self.subspaces.iter().find(|(rank, _)| Some(*rank) == setting.subspace_rank).map(|(_, s)| s);
        evaluate_prompt(self.model, self.judges, vectors, subspace, p, prompt, setting, params)
    }
}

/// A resume must run the same prompts with the same protocol; it may add settings but not drop any
/// (the records of every listed setting stay comparable: same prompts, seeds and judges).
fn check_resumable(old: &Value, new: &Value, dir: &Path) -> Result<()> {
    let without_settings = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("settings"));
        v
    };
    let (a, b) = (without_settings(old), without_settings(new));
    if a != b {
        let differing: Vec<String> = b
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| a.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        bail!(
            Input,
            "--resume: {} holds a run with other {} (a resume must use the same prompts, split and protocol)",
            dir.display(),
            differing.join(", ")
        );
    }
    let empty = Vec::new();
    let old_settings = old["settings"].as_array().unwrap_or(&empty);
    let new_settings = new["settings"].as_array().unwrap_or(&empty);
    if let Some(dropped) = old_settings.iter().find(|s| !new_settings.contains(s)) {
        bail!(Input, "--resume: the run in {} has setting {dropped} that this command leaves out", dir.display());
    }
    Ok(())
}

/// Indices of prompts laid out file after file (`sizes[f]` each), taken one per file in turn.
fn interleaved(sizes: &[usize]) -> Vec<usize> {
    let starts: Vec<usize> = sizes.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
    let longest = sizes.iter().copied().max().unwrap_or(0);
    let starts = &starts;
    (0..longest).flat_map(|k| (0..sizes.len()).filter(move |&f| k < sizes[f]).map(move |f| starts[f] + k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Site;

    #[test]
    fn prompts_interleave_file_by_file() {
        assert_eq!(interleaved(&[3, 2]), vec![0, 3, 1, 4, 2]);
        assert_eq!(interleaved(&[2]), vec![0, 1]);
        assert!(interleaved(&[]).is_empty());
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("destein-sweep-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn request() -> SweepRequest {
        SweepRequest {
            prompt_files: vec!["a.jsonl".into(), "b.jsonl".into()],
            sample: None,
            sample_seed: 0,
            held_out: Vec::new(),
            vector_files: vec!["heads.safetensors".into()],
            modes: vec![FusionMode::Rotate, FusionMode::Add],
            alphas: vec![0.0, 0.2],
            settings: Vec::new(),
            samples: 2,
            max_new_tokens: 4,
            seed: 0,
        }
    }

    fn heads_meta() -> VectorMeta {
        VectorMeta {
            format_version: 1,
            site: Site::Heads,
            model_name: "m".into(),
            model_sha256: "0".repeat(64),
            hidden: 4,
            heads: 2,
            head_dim: 2,
            layers: 1,
            pairs: 1,
            pairs_sha256: String::new(),
            seed: 0,
            toxic_prefix: String::new(),
            nontoxic_prefix: String::new(),
            recommended_mode: FusionMode::Add,
            recommended_alpha: 0.2,
            recommended_generated_only: false,
            max_alpha: 2.0,
            concept: None,
            source: None,
        }
    }

    fn prompt(text: &str) -> Prompt {
        Prompt { text: text.into(), toxicity: None, source: text.into() }
    }

    /// Two files of 2 and 1 prompts, raw + rotate 0.2 + add 0.2 (add 0.2 is the file's recommendation).
    fn plan(dir: &Path, request: &SweepRequest) -> Result<Sweep> {
        let files = vec![
            PromptFile { name: "a.jsonl".into(), prompts: vec![prompt("a0"), prompt("a1")] },
            PromptFile { name: "b.jsonl".into(), prompts: vec![prompt("b0")] },
        ];
        let model = ModelIdentity { name: "m".into(), sha256: "0".repeat(64), load_dtype: LoadDtype::AsIs };
        Sweep::plan(dir, request, request.choose_prompts(files)?, model, &[heads_meta()])
    }

    fn record(prompt: usize, setting: &Setting) -> PromptRecord {
        PromptRecord {
            prompt,
            setting: setting.clone(),
            continuations: vec!["a b c".into(), "d e f".into()],
            tox_block: vec![0.1, 0.6],
            profanity: vec![0.0, 0.2],
            perplexity: vec![10.0, 20.0],
        }
    }

    #[test]
    fn plan_orders_the_recommendation_first_and_prompts_round_robin() {
        let sweep = plan(&scratch("plan"), &request()).unwrap();
        let labels: Vec<String> = sweep.settings.iter().map(Setting::label).collect();
        assert_eq!(labels, ["raw", "heads/rotate α=0.2", "heads/add α=0.2"]);
        assert_eq!(sweep.total(), 9);
        let todo: Vec<(usize, String)> = sweep.todo().into_iter().map(|(p, s)| (p, s.label())).collect();
        let raw = "raw".to_string();
        let add = "heads/add α=0.2".to_string();
        assert_eq!(
            todo[..6],
            [(0, raw.clone()), (0, add.clone()), (2, raw.clone()), (2, add.clone()), (1, raw), (1, add)]
        );
        assert!(todo[6..].iter().all(|(_, s)| s == "heads/rotate α=0.2"), "{todo:?}");
    }

    #[test]
    fn plan_refuses_bad_explicit_settings_and_oversampling() {
        let dir = scratch("bad");
        let mut r = request();
        r.settings = vec!["attn_out/rotate/0.2".into()];
        assert!(plan(&dir, &r).err().unwrap().to_string().contains("no vector file for site attn_out"));
        r.settings = vec!["heads/rotate/0.2".into(), "heads/rotate/0.2".into()];
        assert!(plan(&dir, &r).err().unwrap().to_string().contains("listed twice"));
        let mut r = request();
        r.sample = Some(2);
        assert!(plan(&dir, &r).err().unwrap().to_string().contains("--sample 2 but b.jsonl has 1 prompts"));
        r.samples = 0;
        assert!(r.validate().unwrap_err().to_string().contains("--samples"));
    }

    #[test]
    fn resume_drops_a_cut_line_and_accepts_added_settings() {
        let dir = scratch("resume");
        let mut r = request();
        r.alphas = vec![0.2];
        r.modes = vec![FusionMode::Add];
        let mut first = plan(&dir, &r).unwrap();
        first.start().unwrap();
        let kept = serde_json::to_string(&record(0, &Setting::raw())).unwrap();
        std::fs::write(dir.join("records.jsonl"), format!("{kept}\n{{\"prompt\": 1, \"sett")).unwrap();
        assert!(plan(&dir, &r).unwrap().start().unwrap_err().to_string().contains("already holds a run"));

        // Reading only (report-only) leaves the file as it is.
        assert_eq!(plan(&dir, &r).unwrap().resume(true).unwrap(), 1);
        assert!(std::fs::read_to_string(dir.join("records.jsonl")).unwrap().contains("\"sett"));

        r.modes = vec![FusionMode::Add, FusionMode::Rotate];
        let mut resumed = plan(&dir, &r).unwrap();
        assert_eq!(resumed.resume(false).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(dir.join("records.jsonl")).unwrap(), format!("{kept}\n"));
        let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["settings"].as_array().unwrap().len(), 3, "the added setting is recorded");
        assert_eq!(resumed.todo().len(), resumed.total() - 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resume_refuses_another_run() {
        let dir = scratch("other");
        assert!(plan(&dir, &request()).unwrap().resume(false).unwrap_err().to_string().contains("no run to resume"));
        plan(&dir, &request()).unwrap().start().unwrap();
        let mut r = request();
        r.seed = 9;
        assert!(plan(&dir, &r).unwrap().resume(false).unwrap_err().to_string().contains("other seed"));
        let mut r = request();
        r.modes = vec![FusionMode::Rotate];
        assert!(plan(&dir, &r).unwrap().resume(false).unwrap_err().to_string().contains("leaves out"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn report_compares_settings_on_the_prompts_done_for_all() {
        let dir = scratch("report");
        let mut r = request();
        r.modes = vec![FusionMode::Add];
        r.alphas = vec![0.2];
        let mut sweep = plan(&dir, &r).unwrap();
        sweep.start().unwrap();
        assert!(sweep.report().is_err(), "nothing done yet");
        let (raw, add) = (sweep.settings[0].clone(), sweep.settings[1].clone());
        sweep.records = vec![record(0, &raw), record(1, &raw), record(2, &raw), record(0, &add)];
        assert_eq!(sweep.coverage(), (1, 3));
        let report = sweep.report().unwrap();
        assert!(
            report.tables.contains("## All 3 prompts") && report.tables.contains("on the 1 prompts"),
            "{}",
            report.tables
        );
        let results: Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(results["metrics"].as_array().unwrap().len(), 2);
        assert_eq!(results["metrics_all_prompts"].as_array().unwrap().len(), 1);
        assert!(std::fs::read_to_string(dir.join("pareto.svg")).unwrap().starts_with("<svg"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
