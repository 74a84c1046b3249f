//! The `destein` command-line tool: generate (raw and steered side by side), derive and inspect detox
//! vectors, print model info, and benchmark. Native only.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::{Context, Result};
    use clap::{Args, Parser, Subcommand};
    use indicatif::{ProgressBar, ProgressStyle};

    use destein::generation::{check_prompt_chars, prompt_ids, Generation, PromptMode, SamplingParams, Steerer};
    use destein::model::{LoadDtype, MatmulBackend, Model, Site};
    use destein::steering::{validate_alpha, FusionMode, RowSteering, MAX_VECTORS};
    use destein::vectors::{self, check_compatible, DetoxVectors};
    use destein::{control_vector, steering::MAX_ALPHA};

    pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

    #[derive(Parser)]
    #[command(name = "destein", version, about = "DeStein detoxification by activation steering, on a quantized SmolLM2")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Args, Clone)]
    struct Common {
        /// A Llama-architecture GGUF file.
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        /// How weights are held after loading: as-is (default: fastest, about as faithful as q8_0), q8_0, or f32.
        #[arg(long, default_value = "as-is")]
        load_dtype: String,
        /// Worker threads for the matrix products (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Matrix products through our kernels (default) or candle's quantized matmul (the reference).
        #[arg(long, default_value = "ours")]
        matmul: String,
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

    #[derive(Subcommand)]
    enum Command {
        /// Print the model's metadata, the load dtype and the load time.
        Info {
            #[command(flatten)]
            common: Common,
        },
        /// Generate a continuation; with --vectors, raw and steered together.
        Generate {
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
            mode: Option<String>,
            /// Show the raw and the steered continuation one after the other, labelled.
            #[arg(long)]
            side_by_side: bool,
            /// Which positions are steered: all (the prompt too) or generated (only those producing new tokens;
            /// the prompt's KV cache stays raw). Default: the first vector file's recommendation.
            #[arg(long)]
            scope: Option<String>,
        },
        /// Derive detox vectors from steering pairs.
        Derive {
            #[command(flatten)]
            common: Common,
            #[arg(long, default_value = "data/steering_pairs.jsonl")]
            pairs: PathBuf,
            #[arg(long, default_value = "heads")]
            site: String,
            /// How many pairs to sample from the file.
            #[arg(long, default_value_t = 200)]
            count: usize,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Mode stored as the file's recommendation (default: the best measured for the site, see README).
            #[arg(long)]
            recommended_mode: Option<String>,
            /// α stored as the file's recommendation (default: the best measured for the site, see README).
            #[arg(long)]
            recommended_alpha: Option<f32>,
            /// Steering scope stored as the file's recommendation: all or generated (default: the best measured).
            #[arg(long)]
            recommended_scope: Option<String>,
            /// Prefix of the side steered away from (the pairs' `toxic` key). Default: DeStein's toxic prefix.
            #[arg(long, default_value = vectors::TOXIC_PREFIX)]
            away_prefix: String,
            /// Prefix of the side steered toward (the pairs' `nontoxic` key). Default: DeStein's non-toxic prefix.
            #[arg(long, default_value = vectors::NONTOXIC_PREFIX)]
            toward_prefix: String,
            /// Name of the concept, stored in the file (e.g. sentiment); none for detox.
            #[arg(long)]
            concept: Option<String>,
            #[arg(long)]
            out: PathBuf,
        },
        /// Split RealToxicityPrompts files into a dev half (choosing settings) and a test half (reporting):
        /// writes dev-NAME and test-NAME beside each file, or into --out.
        SplitPrompts {
            /// Prompt files to split, each on its own.
            #[arg(required = true)]
            files: Vec<PathBuf>,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Prompt files already looked at elsewhere: their prompts go to dev.
            #[arg(long, value_delimiter = ',')]
            seen: Vec<PathBuf>,
            #[arg(long)]
            out: Option<PathBuf>,
        },
        /// Print the token ids (and pieces) of a text, as the model's tokenizer splits it.
        Tokenize {
            #[command(flatten)]
            common: Common,
            text: String,
        },
        /// Measure detoxification on RealToxicityPrompts: raw vs every (site, mode, α), scored by offline judges.
        Eval {
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
            #[arg(long, value_delimiter = ',', default_value = "www/vectors/smollm2-135m.heads.safetensors,www/vectors/smollm2-135m.attn_out.safetensors")]
            vectors: Vec<PathBuf>,
            #[arg(long, value_delimiter = ',', default_value = "rotate,headwise,add")]
            modes: Vec<String>,
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
            /// Report folder name under reports/.
            #[arg(long)]
            name: String,
            #[arg(long, default_value = "reports")]
            reports_dir: PathBuf,
            #[arg(long, default_value = "data/judges")]
            judges: PathBuf,
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
        },
        /// Measure a concept vector (sentiment, weddings): raw vs every (mode, α), with paired bootstrap intervals.
        EvalConcept {
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
            modes: Vec<String>,
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
            /// Report folder name under --reports-dir.
            #[arg(long)]
            name: String,
            #[arg(long, default_value = "reports")]
            reports_dir: PathBuf,
            #[arg(long, default_value = "data/judges")]
            judges: PathBuf,
        },
        /// Work with vector files.
        Vectors {
            #[command(subcommand)]
            command: VectorsCommand,
        },
        /// Prefill and decode speed, batch 1 and batch 2, single thread and all threads (medians).
        Bench {
            #[command(flatten)]
            common: Common,
            #[arg(long, default_value_t = 5)]
            repeats: usize,
            #[arg(long, default_value_t = 32)]
            decode_tokens: usize,
            /// Also measure the steering overhead with this vector file (its recommended mode and α).
            #[arg(long)]
            vectors: Option<PathBuf>,
            /// Then profile one decode per configuration: milliseconds per step in each phase of the forward.
            #[arg(long)]
            profile: bool,
        },
    }

    #[derive(Subcommand)]
    enum VectorsCommand {
        /// Print metadata, per-layer norms and the probe-accuracy grid.
        Inspect { file: PathBuf },
        /// Measure each file's neutral read-out baseline (the mean of cos(a_l, z_l) over layers and positions on the
        /// raw model), which the page centres its token colours on, and write them all to --out (JSON). Detox files
        /// are measured on the non-toxic sides of data/steering_pairs.jsonl, concept files on the neutral dev prompts
        /// of data/concepts/.
        Baseline {
            #[command(flatten)]
            common: Common,
            #[arg(long, default_value = "www/vectors/readout-baselines.json")]
            out: PathBuf,
            #[arg(required = true)]
            files: Vec<PathBuf>,
        },
        /// Write an `attn_out` vector file as a llama.cpp control vector (GGUF): direction.l = −n(z_l)·m_l,
        /// m_l the model's mean ‖attn_out_l‖, so `--control-vector-scaled FILE α` is like our `add` at α.
        Export {
            /// The output format: llama-cpp-control-vector (the only one).
            #[arg(long)]
            format: String,
            #[command(flatten)]
            norms: NormTexts,
            #[arg(long)]
            out: PathBuf,
            /// The vector file (safetensors) to export.
            file: PathBuf,
        },
        /// Read a llama.cpp control vector (repeng, cvector-generator) as our `attn_out` vector file for --model.
        Import {
            #[command(flatten)]
            norms: NormTexts,
            /// The α stored as the file's recommendation (default: the α matching llama.cpp's scale 1).
            #[arg(long)]
            recommended_alpha: Option<f32>,
            #[arg(long)]
            out: PathBuf,
            /// The control vector (GGUF) to import.
            file: PathBuf,
        },
    }

    /// The model, and the texts its typical ‖attn_out‖ per layer is measured on.
    #[derive(Args, Clone)]
    struct NormTexts {
        #[command(flatten)]
        common: Common,
        /// Steering pairs: both sides of the first --norm-pairs pairs measure the typical ‖attn_out‖.
        #[arg(long, default_value = "data/steering_pairs.jsonl")]
        pairs: PathBuf,
        #[arg(long, default_value_t = control_vector::NORM_PAIRS)]
        norm_pairs: usize,
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        match run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn set_threads(threads: Option<usize>) {
        if let Some(n) = threads {
            // candle's CPU kernels size their rayon pool from this variable, read once at first use.
            std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
        }
    }

    fn load_model(common: &Common) -> Result<(Model, f64)> {
        set_threads(common.threads);
        let dtype = LoadDtype::parse(&common.load_dtype)?;
        let backend = match common.matmul.as_str() {
            "ours" => MatmulBackend::Ours,
            "candle" => MatmulBackend::Candle,
            other => anyhow::bail!("unknown --matmul `{other}` (expected ours or candle)"),
        };
        let start = Instant::now();
        let model = Model::load_with(&common.model, dtype, backend)?;
        Ok((model, start.elapsed().as_secs_f64()))
    }

    fn run(cli: Cli) -> Result<()> {
        match cli.command {
            Command::Info { common } => info(&common),
            Command::Generate { common, sampling, vectors, alpha, mode, side_by_side, scope } => {
                let generated_only = scope.as_deref().map(parse_scope).transpose()?;
                generate(&common, &sampling, &vectors, &alpha, mode.as_deref(), generated_only, side_by_side)
            }
            Command::Derive {
                common,
                pairs,
                site,
                count,
                seed,
                recommended_mode,
                recommended_alpha,
                recommended_scope,
                away_prefix,
                toward_prefix,
                concept,
                out,
            } => {
                let site = Site::parse(&site)?;
                let mut options = vectors::DeriveOptions::detox(site, count, seed, String::new());
                if let Some(m) = recommended_mode {
                    options.recommended_mode = FusionMode::parse(&m)?;
                }
                options.recommended_alpha = recommended_alpha.unwrap_or(options.recommended_alpha);
                options.away_prefix = away_prefix;
                options.toward_prefix = toward_prefix;
                options.set_concept(concept);
                if let Some(scope) = recommended_scope {
                    options.recommended_generated_only = parse_scope(&scope)?;
                }
                derive(&common, &pairs, options, &out)
            }
            Command::Vectors { command: VectorsCommand::Inspect { file } } => inspect(&file),
            Command::Vectors { command: VectorsCommand::Baseline { common, out, files } } => baselines(&common, &out, &files),
            Command::Vectors { command: VectorsCommand::Export { format, norms, out, file } } => {
                export_control_vector(&format, &norms, &out, &file)
            }
            Command::Vectors { command: VectorsCommand::Import { norms, recommended_alpha, out, file } } => {
                import_control_vector(&norms, recommended_alpha, &out, &file)
            }
            Command::Eval {
                common, prompts, sample, sample_seed, vectors, modes, alphas, samples, max_new_tokens, seed, name,
                reports_dir, judges, held_out, resume, report_only, jobs, settings,
            } => {
                let plan = EvalPlan {
                    prompts, sample, sample_seed, vectors, modes, alphas, settings, samples, max_new_tokens, seed, held_out,
                };
                eval(&common, &plan, &reports_dir.join(&name), &judges, resume, report_only, jobs)
            }
            Command::EvalConcept {
                common, vectors, prompts, judge, modes, alphas, samples, max_new_tokens, top_p, temperature, seed,
                name, reports_dir, judges,
            } => {
                let params = destein::evaluation::EvalParams { samples, max_new_tokens, top_p, temperature, seed };
                let plan = ConceptPlan { vectors, prompts, judge, judges, modes, alphas, params };
                eval_concept(&common, &plan, &reports_dir.join(&name))
            }
            Command::SplitPrompts { files, seed, seen, out } => split_prompts(&files, seed, &seen, out.as_deref()),
            Command::Tokenize { common, text } => {
                let (model, _) = load_model(&common)?;
                let ids = model.tokenizer.encode(&text)?;
                let ids_text: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                println!("{}", ids_text.join(", "));
                let pieces: Vec<String> = ids.iter().map(|&i| format!("{:?}", model.tokenizer.token_text(i))).collect();
                println!("{}", pieces.join(" "));
                Ok(())
            }
            Command::Bench { common, repeats, decode_tokens, vectors, profile } => {
                bench(&common, repeats, decode_tokens, vectors.as_deref(), profile)
            }
        }
    }

    fn info(common: &Common) -> Result<()> {
        let (model, secs) = load_model(common)?;
        let c = &model.config;
        println!("model          {}", c.name);
        println!("file           {}", common.model.display());
        println!("sha256         {}", model.sha256);
        println!("layers         {}", c.n_layers);
        println!("hidden         {}", c.hidden);
        println!("heads          {} (kv heads {}, head dim {})", c.n_heads, c.n_kv_heads, c.head_dim);
        println!("ffn            {}", c.ffn);
        println!("vocab          {}", c.vocab);
        println!("context        {}", c.context_length);
        println!("rope base      {}", c.rope_base);
        println!("rms eps        {:e}", c.rms_eps);
        println!("load dtype     {}", model.load_dtype.name());
        println!("load time      {:.2} s", secs);
        Ok(())
    }

    /// `--scope`: whether only the positions producing new tokens are steered.
    fn parse_scope(scope: &str) -> Result<bool> {
        match scope {
            "all" => Ok(false),
            "generated" => Ok(true),
            other => anyhow::bail!("--scope must be `all` or `generated`, not `{other}`"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn generate(
        common: &Common,
        s: &Sampling,
        vector_paths: &[PathBuf],
        alphas: &[f32],
        mode: Option<&str>,
        generated_only: Option<bool>,
        side_by_side: bool,
    ) -> Result<()> {
        if vector_paths.is_empty() && (!alphas.is_empty() || mode.is_some() || generated_only.is_some() || side_by_side) {
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
        let (model, secs) = load_model(common)?;
        eprintln!("loaded {} ({}) in {secs:.2} s", model.config.name, model.load_dtype.name());
        let vectors = load_vector_set(&model, vector_paths)?;
        let prompt_mode = if s.chat { PromptMode::Chat } else { PromptMode::Continuation };
        let ids = prompt_ids(&model, &s.prompt, prompt_mode)?;
        let steering = match vectors.is_empty() {
            false => vec![RowSteering::OFF, steered_row(&vectors, vector_paths, alphas, mode)?],
            true => vec![RowSteering::OFF],
        };
        let seeds = vec![s.seed; steering.len()];
        let mut generation = Generation::new(&model, ids, &params, &seeds, steering.clone())?;
        generation.steer_prompt = !generated_only.unwrap_or(vectors.first().is_some_and(|v| v.meta.recommended_generated_only));
        let start = Instant::now();
        let mut texts = vec![String::new(); steering.len()];
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let streaming_row = steering.len() - 1;
        if !side_by_side {
            write!(out, "{}", s.prompt)?;
        }
        while !generation.done() {
            let steps = generation.step(&model, &vectors)?;
            for (r, step) in steps.iter().enumerate() {
                texts[r].push_str(&step.text);
            }
            if !side_by_side {
                // Without --side-by-side, stream the steered row if there is one, else the raw one.
                write!(out, "{}", steps[streaming_row].text)?;
                out.flush()?;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if side_by_side {
            println!("prompt:   {}", s.prompt);
            println!("--- raw");
            println!("{}{}", s.prompt, texts[0]);
            let scope = if generation.steer_prompt { "" } else { ", generated positions only" };
            println!("--- steered ({}{scope})", steering_label(&steering[1], vector_paths));
            println!("{}{}", s.prompt, texts[1]);
        } else {
            writeln!(out)?;
        }
        let n: usize = (0..steering.len()).map(|r| generation.tokens(r).len()).sum();
        eprintln!("{} tokens in {secs:.2} s ({:.1} tokens/s over {} row(s))", n, n as f64 / secs, steering.len());
        Ok(())
    }

    /// Load the `--vectors` files for `model`, each error naming its file; then check they can steer together.
    fn load_vector_set(model: &Model, paths: &[PathBuf]) -> Result<Vec<DetoxVectors>> {
        anyhow::ensure!(paths.len() <= MAX_VECTORS, "--vectors has {} files; at most {MAX_VECTORS} can steer together", paths.len());
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
    fn steered_row(vectors: &[DetoxVectors], paths: &[PathBuf], alphas: &[f32], mode: Option<&str>) -> Result<RowSteering> {
        anyhow::ensure!(
            alphas.is_empty() || alphas.len() == vectors.len(),
            "--alpha has {} value(s) but --vectors has {} file(s): give one α per file, in the same order",
            alphas.len(),
            vectors.len()
        );
        let mode = match mode {
            Some(m) => FusionMode::parse(m)?,
            None => vectors[0].meta.recommended_mode,
        };
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

    /// `options.pairs_sha256` is filled in from the pairs file.
    fn derive(common: &Common, pairs_path: &Path, mut options: vectors::DeriveOptions, out: &Path) -> Result<()> {
        let bytes = std::fs::read(pairs_path).with_context(|| format!("cannot read {}", pairs_path.display()))?;
        let pairs = vectors::parse_pairs(&bytes).with_context(|| format!("in {}", pairs_path.display()))?;
        options.pairs_sha256 = destein::model::sha256_hex(&bytes);
        let (model, _) = load_model(common)?;
        let (site, count) = (options.site, options.count);
        // One step per pair read, then one per layer whose probes are fitted.
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} steps (pairs, then layers' probes), {elapsed} elapsed, ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("deriving ({})", site.name()));
        let v = vectors::derive(&model, &pairs, options, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64)
        })
            .with_context(|| format!("in {}", pairs_path.display()))?;
        bar.finish();
        v.save(out)?;
        let acc = &v.probe_accuracy;
        let mean = acc.iter().sum::<f32>() / acc.len() as f32;
        let max = acc.iter().cloned().fold(0f32, f32::max);
        println!("wrote {} ({} pairs, site {}); probe accuracy mean {mean:.3}, max {max:.3}", out.display(), count, site.name());
        Ok(())
    }

    /// Load the model and measure m_l, its mean ‖attn_out_l‖ per layer; returns them with a description.
    fn measure_norms(n: &NormTexts, model: &Model) -> Result<(Vec<f32>, String)> {
        let bytes = std::fs::read(&n.pairs).with_context(|| format!("cannot read {}", n.pairs.display()))?;
        let pairs = vectors::parse_pairs(&bytes).with_context(|| format!("in {}", n.pairs.display()))?;
        let texts = control_vector::norm_texts(&pairs, n.norm_pairs)?;
        let norms = control_vector::attn_out_norms(model, &texts)?;
        let what = format!(
            "mean per-position ‖attn_out‖ over the last {} tokens of both sides of the first {} pairs of {} (sha256 {})",
            vectors::LAST_TOKENS,
            n.norm_pairs,
            n.pairs.display(),
            destein::model::sha256_hex(&bytes)
        );
        Ok((norms, what))
    }

    fn export_control_vector(format: &str, n: &NormTexts, out: &Path, file: &Path) -> Result<()> {
        if format != control_vector::FORMAT_NAME {
            anyhow::bail!("unknown --format `{format}` (the only one is {})", control_vector::FORMAT_NAME);
        }
        let v = DetoxVectors::load(file)?;
        control_vector::check_exportable(&v)?;
        let (model, _) = load_model(&n.common)?;
        v.check_model(&model)?;
        let (norms, what) = measure_norms(n, &model)?;
        destein::write_atomically(out, &control_vector::export_bytes(&v, &norms, &what)?)?;
        let (lo, hi) = norms[1..].iter().fold((f32::MAX, 0f32), |(lo, hi), &m| (lo.min(m), hi.max(m)));
        println!("wrote {}: direction.1 … direction.{} ({} values each; our layer 0 has no llama.cpp slot)", out.display(), v.meta.layers - 1, v.meta.hidden);
        println!("‖direction.l‖ = m_l, the {what}: {lo:.3} … {hi:.3}");
        println!(
            "use: llama-completion -m {} --control-vector-scaled {}:α   (≈ our `add` at α, one site later; see README)",
            n.common.model.display(),
            out.display()
        );
        Ok(())
    }

    fn import_control_vector(n: &NormTexts, recommended_alpha: Option<f32>, out: &Path, file: &Path) -> Result<()> {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let cv = control_vector::ControlVector::from_gguf_bytes(&bytes).with_context(|| format!("in {}", file.display()))?;
        let (model, _) = load_model(&n.common)?;
        let alpha = match recommended_alpha {
            Some(a) => a,
            None => {
                let alpha = cv.scale_one_alpha(&measure_norms(n, &model)?.0);
                if alpha > MAX_ALPHA {
                    anyhow::bail!("llama.cpp's scale 1 corresponds to our α = {alpha:.3}, above the maximum {MAX_ALPHA}; pass --recommended-alpha");
                }
                alpha
            }
        };
        let name = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let source = format!(
            "llama.cpp control vector {name} (sha256 {}, model_hint {})",
            destein::model::sha256_hex(&bytes),
            cv.model_hint.as_deref().unwrap_or("none")
        );
        let v = control_vector::to_detox_vectors(&cv, &model, source, alpha)?;
        v.save(out)?;
        let layers: Vec<String> = cv.directions.keys().map(|l| l.to_string()).collect();
        println!("wrote {}: site attn_out, layers {} steered (z_l = −direction.l), recommended add at α = {alpha:.4}", out.display(), layers.join(","));
        Ok(())
    }

    fn inspect(file: &Path) -> Result<()> {
        let v = DetoxVectors::load(file)?;
        let m = &v.meta;
        println!("file               {}", file.display());
        println!("format version     {}", m.format_version);
        println!("site               {}", m.site.name());
        println!("model              {} (sha256 {})", m.model_name, m.model_sha256);
        println!("shape              {} layers × {} heads × {} (hidden {})", m.layers, m.heads, m.head_dim, m.hidden);
        println!("pairs              {} (seed {}, pairs file sha256 {})", m.pairs, m.seed, m.pairs_sha256);
        println!("recommended        {} at α = {} (max α {})", m.recommended_mode.name(), m.recommended_alpha, m.max_alpha);
        println!("toxic prefix       {:?}", m.toxic_prefix);
        println!("non-toxic prefix   {:?}", m.nontoxic_prefix);
        if let Some(source) = &m.source {
            println!("source             {source}");
        }
        let acc = &v.probe_accuracy;
        let mean = acc.iter().sum::<f32>() / acc.len() as f32;
        let min = acc.iter().cloned().fold(f32::INFINITY, f32::min);
        let perfect = acc.iter().filter(|&&a| a >= 1.0).count();
        let (best, max) = acc.iter().enumerate().fold((0, 0f32), |b, (i, &a)| if a > b.1 { (i, a) } else { b });
        println!(
            "probe accuracy     mean {mean:.3}, min {min:.3}, max {max:.3} (first at layer {}, head {}); {perfect} of {} heads at 1.00",
            best / m.heads,
            best % m.heads,
            acc.len()
        );
        if m.site == Site::AttnOut {
            println!("                   (at attn_out a \"head\" is a {}-wide slice of the o_proj output)", m.head_dim);
        }
        println!();
        println!("probe accuracy per (layer, head); darker = more accurate; then the layer's mean accuracy and ‖z_l‖");
        let norms = v.layer_norms();
        print!("layer ");
        for h in 0..m.heads {
            print!(" h{h:<4}");
        }
        println!("  mean   norm");
        let color = std::env::var_os("NO_COLOR").is_none();
        for l in 0..m.layers {
            print!("{l:>5} ");
            for h in 0..m.heads {
                let a = acc[l * m.heads + h];
                if color {
                    // 24-bit background from white (0.5, chance) to deep blue (1.0).
                    let t = ((a - 0.5) * 2.0).clamp(0.0, 1.0);
                    let (r, g, b) = (255.0 * (1.0 - t * 0.85), 255.0 * (1.0 - t * 0.6), 255.0);
                    let fg = if t > 0.55 { "97" } else { "30" };
                    print!("\x1b[48;2;{};{};{}m\x1b[{fg}m {a:.2} \x1b[0m", r as u8, g as u8, b as u8);
                } else {
                    print!(" {a:.2} ");
                }
            }
            let layer_mean = acc[l * m.heads..(l + 1) * m.heads].iter().sum::<f32>() / m.heads as f32;
            println!("  {layer_mean:.3}  {:.2}", norms[l]);
        }
        Ok(())
    }

    /// Read a prompt file (skipped lines reported on stderr).
    fn read_prompts(path: &Path) -> Result<Vec<destein::evaluation::Prompt>> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read prompts {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let (prompts, skipped) = destein::evaluation::parse_prompts(&bytes, &name)?;
        for s in &skipped {
            eprintln!("skipped {s}");
        }
        Ok(prompts)
    }

    fn split_prompts(files: &[PathBuf], seed: u64, seen: &[PathBuf], out: Option<&Path>) -> Result<()> {
        let mut seen_texts = std::collections::HashSet::new();
        for path in seen {
            seen_texts.extend(read_prompts(path)?.into_iter().map(|p| p.text));
        }
        for path in files {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read prompts {}", path.display()))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let (dev, test) = destein::evaluation::split_dev_test(&lines, seed, &seen_texts)
                .with_context(|| format!("splitting {}", path.display()))?;
            let dir = out.map(Path::to_path_buf).unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
            let name = path.file_name().context("a prompt file path has a file name")?.to_string_lossy().to_string();
            for (half, part) in [("dev", &dev), ("test", &test)] {
                let target = dir.join(format!("{half}-{name}"));
                destein::write_atomically(&target, format!("{}\n", part.join("\n")).as_bytes())?;
                println!("wrote {} ({} prompts)", target.display(), part.len());
            }
        }
        Ok(())
    }

    /// A resume must run the same prompts with the same protocol; it may add settings but not drop any
    /// (the records of every listed setting stay comparable: same prompts, seeds and judges).
    fn check_resumable(old: &serde_json::Value, new: &serde_json::Value, dir: &Path) -> Result<()> {
        let without_settings = |v: &serde_json::Value| {
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
            anyhow::bail!(
                "--resume: {} holds a run with other {} (a resume must use the same prompts, split and protocol)",
                dir.display(),
                differing.join(", ")
            );
        }
        let empty = Vec::new();
        let old_settings = old["settings"].as_array().unwrap_or(&empty);
        let new_settings = new["settings"].as_array().unwrap_or(&empty);
        if let Some(dropped) = old_settings.iter().find(|s| !new_settings.contains(s)) {
            anyhow::bail!("--resume: the run in {} has setting {dropped} that this command leaves out", dir.display());
        }
        Ok(())
    }

    /// The texts a vector file's neutral read-out is measured on, and how the JSON names them.
    fn baseline_texts(v: &DetoxVectors) -> Result<(Vec<String>, String)> {
        match &v.meta.concept {
            None => {
                let path = "data/steering_pairs.jsonl";
                let pairs = vectors::parse_pairs(&std::fs::read(path).with_context(|| format!("cannot read {path}"))?)?;
                let texts: Vec<String> = pairs.iter().map(|p| p.nontoxic.clone()).collect();
                let source = format!("{path}: the non-toxic sides of all {} pairs, without their prefix", texts.len());
                Ok((texts, source))
            }
            Some(_) => {
                let path = Path::new("data/concepts/neutral_dev.jsonl");
                let texts: Vec<String> = read_prompts(path)?.into_iter().map(|p| p.text).collect();
                Ok((texts.clone(), format!("{}: all {} neutral dev prompts", path.display(), texts.len())))
            }
        }
    }

    fn baselines(common: &Common, out: &Path, files: &[PathBuf]) -> Result<()> {
        let (model, _) = load_model(common)?;
        let mut map = serde_json::Map::new();
        map.insert(
            "_comment".into(),
            "Neutral read-out baselines: per vector file, the mean over layers, positions and texts of cos(a_l, z_l) on \
             the raw model. The page centres its token colours on it, for the file with this sha256. Written by `destein vectors baseline`."
                .into(),
        );
        for path in files {
            let v = DetoxVectors::load(path)?;
            let (texts, source) = baseline_texts(&v)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let neutral = vectors::neutral_readout(&model, &v, &refs)?;
            let name = path.file_name().context("a vector file path has a file name")?.to_string_lossy().to_string();
            println!("{name}: {neutral:+.5} ({source})");
            let sha256 = destein::model::sha256_hex(&std::fs::read(path)?);
            map.insert(name, serde_json::json!({ "neutral": (neutral * 1e6).round() / 1e6, "sha256": sha256, "texts": source }));
        }
        destein::write_atomically(out, format!("{}\n", serde_json::to_string_pretty(&map)?).as_bytes())?;
        println!("wrote {}", out.display());
        Ok(())
    }

    /// Indices of prompts laid out file after file (`sizes[f]` each), taken one per file in turn.
    fn interleaved(sizes: &[usize]) -> Vec<usize> {
        let starts: Vec<usize> = sizes.iter().scan(0, |at, &n| Some(std::mem::replace(at, *at + n))).collect();
        let longest = sizes.iter().copied().max().unwrap_or(0);
        let starts = &starts;
        (0..longest).flat_map(|k| (0..sizes.len()).filter(move |&f| k < sizes[f]).map(move |f| starts[f] + k)).collect()
    }

    /// The toxic subspaces the settings still to run need (one per rank), built from data/steering_pairs.jsonl on
    /// the vectors' site.
    fn eval_subspaces(
        model: &Model,
        vector_sets: &[DetoxVectors],
        todo: &[(usize, &destein::evaluation::Setting)],
    ) -> Result<Vec<(usize, std::sync::Arc<destein::subspace::Subspace>)>> {
        let mut out: Vec<(usize, std::sync::Arc<destein::subspace::Subspace>)> = Vec::new();
        for (_, setting) in todo {
            let Some(rank) = setting.subspace_rank else { continue };
            if out.iter().any(|(r, _)| *r == rank) {
                continue;
            }
            let v = vector_sets.iter().find(|v| v.meta.site.name() == setting.site).context("no vectors for the site")?;
            let path = "data/steering_pairs.jsonl";
            let pairs = vectors::parse_pairs(&std::fs::read(path).with_context(|| format!("cannot read {path}"))?)?;
            eprintln!("building the rank-{rank} toxic subspace from {path} ({} pairs)", pairs.len());
            out.push((rank, std::sync::Arc::new(destein::subspace::Subspace::derive(model, &pairs, v, rank)?)));
        }
        Ok(out)
    }

    struct EvalPlan {
        held_out: Vec<PathBuf>,
        settings: Vec<String>,
        prompts: Vec<PathBuf>,
        sample: Option<usize>,
        sample_seed: u64,
        vectors: Vec<PathBuf>,
        modes: Vec<String>,
        alphas: Vec<f32>,
        samples: usize,
        max_new_tokens: usize,
        seed: u64,
    }

    fn eval(
        common: &Common,
        plan: &EvalPlan,
        dir: &Path,
        judges_dir: &Path,
        resume: bool,
        report_only: bool,
        jobs: usize,
    ) -> Result<()> {
        let resume = resume || report_only;
        anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
        // Several jobs share the cores: unless told otherwise, each one's matrix products get cores / jobs.
        let mut common = common.clone();
        if jobs > 1 && common.threads.is_none() {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            common.threads = Some((cores / jobs).max(1));
        }
        let common = &common;
        use destein::evaluation::{self as ev, EvalParams, PromptRecord, Setting};
        use rand::seq::SliceRandom;
        use rand::SeedableRng;

        let judges = ev::Judges::load(judges_dir)?;
        let mut prompts = Vec::new();
        let mut file_sizes = Vec::new();
        for path in &plan.prompts {
            let mut file_prompts = read_prompts(path)?;
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if let Some(n) = plan.sample {
                anyhow::ensure!(n <= file_prompts.len(), "--sample {n} but {} has {} prompts", name, file_prompts.len());
                file_prompts.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(plan.sample_seed));
                file_prompts.truncate(n);
            }
            file_sizes.push(file_prompts.len());
            prompts.extend(file_prompts);
        }
        for path in &plan.held_out {
            ev::check_disjoint(&prompts, &read_prompts(path)?).with_context(|| format!("--held-out {}", path.display()))?;
        }
        anyhow::ensure!(plan.samples > 0, "--samples must be at least 1");
        let params = EvalParams {
            samples: plan.samples,
            max_new_tokens: plan.max_new_tokens,
            top_p: 0.9,
            temperature: 1.0,
            seed: plan.seed,
        };
        params.sampling().validate().context("--max-new-tokens")?;
        let modes: Vec<FusionMode> = plan.modes.iter().map(|m| FusionMode::parse(m)).collect::<Result<_, _>>()?;
        for &a in &plan.alphas {
            destein::steering::validate_alpha(a)?;
        }
        let (model, _) = load_model(common)?;
        let mut vector_sets = Vec::new();
        for path in &plan.vectors {
            let v = DetoxVectors::load(path)?;
            v.check_model(&model)?;
            vector_sets.push(v);
        }
        // Every prompt must fit the context: refused now, not hours in when the run reaches it.
        for p in &prompts {
            ev::prompt_tokens(&model, p, &params)?;
        }
        let sites: Vec<Site> = vector_sets.iter().map(|v| v.meta.site).collect();
        let settings = match plan.settings.is_empty() {
            true => ev::sweep_settings(&sites, &modes, &plan.alphas),
            false => {
                let mut list = vec![Setting::raw()];
                for text in &plan.settings {
                    let s = Setting::parse(text)?;
                    anyhow::ensure!(sites.iter().any(|site| site.name() == s.site), "setting `{text}`: no vector file for site {}", s.site);
                    anyhow::ensure!(!list.contains(&s), "setting `{text}` is listed twice");
                    list.push(s);
                }
                list
            }
        };

        // The run's identity: a resume must be of exactly the same run.
        let config = serde_json::json!({
            "model": model.config.name, "model_sha256": model.sha256, "load_dtype": model.load_dtype.name(),
            "prompts": plan.prompts, "sample": plan.sample, "sample_seed": plan.sample_seed,
            "prompt_count": prompts.len(), "held_out": plan.held_out,
            "vectors": plan.vectors, "settings": settings, "samples": plan.samples,
            "max_new_tokens": plan.max_new_tokens, "top_p": params.top_p, "temperature": params.temperature,
            "seed": plan.seed,
        });
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join("config.json");
        let records_path = dir.join("records.jsonl");
        let mut records: Vec<PromptRecord> = Vec::new();
        if resume {
            let old: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).with_context(|| {
                format!("--resume: no run to resume in {}", dir.display())
            })?)?;
            check_resumable(&old, &config, dir)?;
            let text = std::fs::read_to_string(&records_path).unwrap_or_default();
            let mut clean = String::new();
            for line in text.lines() {
                // A line cut by the interruption is dropped and redone.
                if let Ok(r) = serde_json::from_str::<PromptRecord>(line) {
                    records.push(r);
                    clean.push_str(line);
                    clean.push('\n');
                }
            }
            if !report_only && clean.len() != text.len() {
                // Rewrite the records file without any partial line. The kept lines stay as they were written:
                // a parse-and-print round trip could change a float's last digit.
                destein::write_atomically(&records_path, clean.as_bytes())?;
            }
            records.retain(|r| settings.contains(&r.setting));
            if !report_only {
                // Settings may have been added: the config now lists them all.
                destein::write_atomically(&config_path, serde_json::to_string_pretty(&config)?.as_bytes())?;
            }
            eprintln!("resuming: {} of {} prompt×setting results already done", records.len(), prompts.len() * settings.len());
        } else {
            anyhow::ensure!(
                !records_path.exists(),
                "{} already holds a run: use --resume to continue it, or another --name",
                dir.display()
            );
            destein::write_atomically(&config_path, serde_json::to_string_pretty(&config)?.as_bytes())?;
        }

        let done: std::collections::HashSet<(usize, String)> =
            records.iter().map(|r| (r.prompt, r.setting.label())).collect();
        let total = (prompts.len() * settings.len()) as u64;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} prompt×setting, {elapsed} elapsed, ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_position(done.len() as u64);
        let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&records_path)?;
        // Raw and each vector file's recommended setting first, over every prompt, so that an interrupted
        // sweep already answers the main question; then the rest of the sweep.
        let recommended: Vec<String> = vector_sets
            .iter()
            .map(|v| {
                Setting::steered(v.meta.site.name(), v.meta.recommended_mode.name(), v.meta.recommended_alpha).label()
            })
            .collect();
        let first_pass = |s: &Setting| s.is_raw() || recommended.contains(&s.label());
        let passes: [Vec<&Setting>; 2] = [
            settings.iter().filter(|s| first_pass(s)).collect(),
            settings.iter().filter(|s| !first_pass(s)).collect(),
        ];
        // The batches still to do, in order; `jobs` threads take them one at a time and send each record back
        // here, where it is written as soon as it is done (so an interruption keeps every finished batch).
        // Prompts in round-robin order over the prompt files, so that a sweep cut short has covered every file
        // (the toxic and the non-toxic prompts) about equally.
        let order = interleaved(&file_sizes);
        let todo: Vec<(usize, &Setting)> = match report_only {
            true => Vec::new(),
            false => passes
                .iter()
                .flat_map(|pass| order.iter().flat_map(move |&p| pass.iter().map(move |&s| (p, s))))
                .filter(|(p, s)| !done.contains(&(*p, s.label())))
                .collect(),
        };
        let subspaces = eval_subspaces(&model, &vector_sets, &todo)?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<Result<PromptRecord>>();
        let mut first_error = None;
        std::thread::scope(|scope| {
            for _ in 0..jobs.min(todo.len()) {
                let tx = tx.clone();
                let (todo, next, failed) = (&todo, &next, &failed);
                let (model, judges, prompts, vector_sets, params) = (&model, &judges, &prompts, &vector_sets, &params);
                let subspaces = &subspaces;
                scope.spawn(move || {
                    use std::sync::atomic::Ordering;
                    while !failed.load(Ordering::Relaxed) {
                        let Some(&(p, setting)) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                        let vectors = vector_sets.iter().find(|v| v.meta.site.name() == setting.site);
                        let subspace = subspaces.iter().find(|(rank, _)| Some(*rank) == setting.subspace_rank).map(|(_, s)| s);
                        let result = ev::evaluate_prompt(model, judges, vectors, subspace, p, &prompts[p], setting, params);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if tx.send(result.map_err(anyhow::Error::from)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for result in rx {
                let written = result.and_then(|record| {
                    writeln!(out, "{}", serde_json::to_string(&record)?)?;
                    out.flush()?;
                    bar.set_message(record.setting.label());
                    records.push(record);
                    bar.inc(1);
                    Ok(())
                });
                if let Err(e) = written {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        bar.finish();

        // Compare settings on the same prompts. The sweep table: every setting, on the prompts done for every
        // setting. While a sweep is unfinished, a second table: the settings done on every prompt, on all of them.
        let done_now: std::collections::HashSet<(usize, String)> =
            records.iter().map(|r| (r.prompt, r.setting.label())).collect();
        let complete: std::collections::HashSet<usize> =
            (0..prompts.len()).filter(|&p| settings.iter().all(|s| done_now.contains(&(p, s.label())))).collect();
        let on_every_prompt: Vec<&Setting> =
            settings.iter().filter(|s| (0..prompts.len()).all(|p| done_now.contains(&(p, s.label())))).collect();
        let metrics_on = |chosen: &[&Setting], all_prompts: bool| -> Vec<ev::Metrics> {
            chosen
                .iter()
                .map(|s| {
                    let rs: Vec<&PromptRecord> = records
                        .iter()
                        .filter(|r| r.setting.label() == s.label() && (all_prompts || complete.contains(&r.prompt)))
                        .collect();
                    ev::aggregate(s, &rs)
                })
                .collect()
        };
        let metrics = metrics_on(&settings.iter().collect::<Vec<_>>(), false);
        let finished = complete.len() == prompts.len();
        let on_all_prompts = match finished || on_every_prompt.is_empty() {
            true => None,
            false => Some(metrics_on(&on_every_prompt, true)),
        };
        if !finished {
            eprintln!("the sweep table covers the {} of {} prompts done for every setting", complete.len(), prompts.len());
        }
        anyhow::ensure!(
            !complete.is_empty() || on_all_prompts.is_some(),
            "no prompt has results for every setting yet"
        );
        // Paired bootstrap intervals over the same prompts as each table.
        let complete_prompts: Vec<usize> = (0..prompts.len()).filter(|p| complete.contains(p)).collect();
        let intervals = match complete_prompts.is_empty() {
            true => None,
            false => Some(ev::detox_report(&settings.iter().collect::<Vec<_>>(), &records, &complete_prompts)?),
        };
        let intervals_all_prompts = match &on_all_prompts {
            Some(_) if on_every_prompt.first().is_some_and(|s| s.is_raw()) => {
                Some(ev::detox_report(&on_every_prompt, &records, &(0..prompts.len()).collect::<Vec<_>>())?)
            }
            _ => None,
        };
        // Which prompts these are, by the sha256 of their text: how the choice script checks that the runs it
        // chooses on and reports on share no prompt.
        let prompt_sha256: Vec<String> = prompts.iter().map(|p| destein::model::sha256_hex(p.text.as_bytes())).collect();
        let results = serde_json::json!({
            "config": config, "metrics": metrics, "metrics_all_prompts": on_all_prompts,
            "intervals": intervals, "intervals_all_prompts": intervals_all_prompts,
            "bootstrap": { "draws": destein::bootstrap::BOOTSTRAP_DRAWS, "seed": destein::bootstrap::BOOTSTRAP_SEED,
                "level": 0.95, "over": "prompts, paired across settings" },
            "prompt_sha256": prompt_sha256,
        });
        destein::write_atomically(&dir.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
        let mut table = String::new();
        if let Some(m) = &on_all_prompts {
            table.push_str(&format!("## All {} prompts, the settings done on every prompt so far\n\n", prompts.len()));
            if let Some(i) = &intervals_all_prompts {
                table.push_str(&format!("{}\n", ev::interval_table(i)));
            }
            table.push_str(&format!("{}\n", ev::markdown_table(m)));
        }
        if !complete.is_empty() {
            if on_all_prompts.is_some() {
                table.push_str(&format!("## The whole sweep, on the {} prompts done for every setting\n\n", complete.len()));
            }
            if let Some(i) = &intervals {
                table.push_str(&format!("{}\n", ev::interval_table(i)));
            }
            table.push_str(&ev::markdown_table(&metrics));
        }
        let (plotted, bars, title) = match (&on_all_prompts, complete.is_empty()) {
            (Some(m), true) => (m, &intervals_all_prompts, format!("{} prompts × {} samples", prompts.len(), plan.samples)),
            _ => (&metrics, &intervals, format!("{} prompts × {} samples", complete.len(), plan.samples)),
        };
        let md = format!(
            "# Detoxification: {} prompts × {} samples\n\nModel `{}` ({}), judges tox-block (primary) and \
             alt-profanity-check; top-p {}, temperature {}, {} new tokens, seed {}. Brackets: 95% paired bootstrap \
             intervals over prompts ({} draws, seed {}); Δ: relative change against raw on the same resampled prompts. \
             The second table has every metric, without intervals.\n\n{table}\n\
             ![Pareto plot, {title}](pareto.svg)\n",
            prompts.len(),
            plan.samples,
            model.config.name,
            model.load_dtype.name(),
            params.top_p,
            params.temperature,
            plan.max_new_tokens,
            plan.seed,
            destein::bootstrap::BOOTSTRAP_DRAWS,
            destein::bootstrap::BOOTSTRAP_SEED
        );
        destein::write_atomically(&dir.join("results.md"), md.as_bytes())?;
        destein::write_atomically(&dir.join("pareto.svg"), ev::pareto_svg(plotted, bars.as_deref(), &format!("{title}, 95% intervals"))?.as_bytes())?;
        println!("{table}");
        println!("wrote {}/results.json, results.md, pareto.svg", dir.display());
        Ok(())
    }

    struct ConceptPlan {
        vectors: PathBuf,
        prompts: PathBuf,
        judge: String,
        judges: PathBuf,
        modes: Vec<String>,
        alphas: Vec<f32>,
        params: destein::evaluation::EvalParams,
    }

    fn eval_concept(common: &Common, plan: &ConceptPlan, dir: &Path) -> Result<()> {
        use destein::concept_eval::{self as ce, ConceptJudge};
        use destein::evaluation as ev;
        // Every bad input is refused before the model loads.
        let judge = ConceptJudge::load(&plan.judge, &plan.judges)?;
        let modes: Vec<FusionMode> = plan.modes.iter().map(|m| FusionMode::parse(m)).collect::<Result<_, _>>()?;
        for &a in &plan.alphas {
            destein::steering::validate_alpha(a)?;
        }
        anyhow::ensure!(plan.alphas.iter().any(|&a| a > 0.0), "--alphas needs at least one α > 0 to compare with raw");
        anyhow::ensure!(plan.params.samples > 0, "--samples must be at least 1");
        let p = &plan.params;
        p.sampling().validate()?;
        let bytes = std::fs::read(&plan.prompts).with_context(|| format!("cannot read prompts {}", plan.prompts.display()))?;
        let (prompts, skipped) = ev::parse_prompts(&bytes, &plan.prompts.display().to_string())?;
        for s in &skipped {
            eprintln!("skipped {s}");
        }
        let (model, _) = load_model(common)?;
        let vectors = DetoxVectors::load(&plan.vectors)?;
        vectors.check_model(&model)?;
        for prompt in &prompts {
            ev::prompt_tokens(&model, prompt, p)?;
        }
        let settings = ev::sweep_settings(&[vectors.meta.site], &modes, &plan.alphas);
        let records = ce::run_settings(&model, &judge, &vectors, &prompts, &settings, p, |s, i| {
            if i + 1 == prompts.len() {
                eprintln!("{}: {} prompts done", s.label(), prompts.len());
            }
        })?;
        let reports = ce::report(&settings, &records, prompts.len(), ce::BOOTSTRAP_DRAWS, ce::BOOTSTRAP_SEED)?;
        let (rate, mean) = judge.describe();
        let config = serde_json::json!({
            "model": model.config.name, "model_sha256": model.sha256, "load_dtype": model.load_dtype.name(),
            "vectors": plan.vectors, "vectors_site": vectors.meta.site.name(), "prompts": plan.prompts,
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
            judge.name(), prompts.len(), p.samples, model.config.name, model.load_dtype.name(),
            plan.vectors.display(), plan.prompts.display(), p.top_p, p.temperature, p.max_new_tokens, p.seed,
            ce::BOOTSTRAP_DRAWS, ce::BOOTSTRAP_SEED
        );
        destein::write_atomically(&dir.join("results.md"), md.as_bytes())?;
        println!("{table}");
        println!("wrote {}/results.json, results.md, records.jsonl", dir.display());
        Ok(())
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    }

    fn bench(common: &Common, repeats: usize, decode_tokens: usize, vectors: Option<&Path>, profile: bool) -> Result<()> {
        anyhow::ensure!(repeats > 0 && decode_tokens > 0, "--repeats and --decode-tokens must be at least 1");
        if common.threads.is_none() {
            // The thread pool is sized once per process, so each thread count runs in its own process.
            let all = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mut counts = vec![1];
            if all > 1 {
                counts.push(all);
            }
            for threads in counts {
                let status = std::process::Command::new(std::env::current_exe()?)
                    .args(["bench", "--threads", &threads.to_string(), "--repeats", &repeats.to_string()])
                    .args(["--decode-tokens", &decode_tokens.to_string(), "--load-dtype", &common.load_dtype])
                    .args(["--matmul", &common.matmul])
                    .args(vectors.iter().flat_map(|v| [std::ffi::OsStr::new("--vectors"), v.as_os_str()]))
                    .args(profile.then_some("--profile"))
                    .arg("--model")
                    .arg(&common.model)
                    .status()?;
                anyhow::ensure!(status.success(), "bench with {threads} thread(s) failed");
            }
            return Ok(());
        }
        let (model, secs) = load_model(common)?;
        let threads = common.threads.unwrap_or(1);
        println!(
            "model {} ({}, {} matmul), loaded in {secs:.2} s; {repeats} alternating rounds, medians",
            model.config.name,
            model.load_dtype.name(),
            common.matmul
        );
        let prompt = "The following text is kind, polite, positive, respectful and supportive: thank you so much for the help you gave me with the garden last weekend, it looks wonderful now.";
        let ids = model.tokenizer.encode(prompt)?;
        println!("prompt: {} tokens; decode: {decode_tokens} tokens; threads: {threads}", ids.len());
        // The steering overhead is measured with the shipped vectors when they are there.
        let vectors = match vectors {
            Some(p) => {
                let v = DetoxVectors::load(p)?;
                v.check_model(&model)?;
                Some(v)
            }
            None => None,
        };
        struct Config {
            label: String,
            steering: Vec<RowSteering>,
        }
        let mut configs = vec![
            Config { label: "batch 1".into(), steering: vec![RowSteering::OFF] },
            Config { label: "batch 2".into(), steering: vec![RowSteering::OFF; 2] },
        ];
        if let Some(v) = &vectors {
            let steer = RowSteering::single(v.meta.recommended_alpha, v.meta.recommended_mode);
            configs.push(Config {
                label: format!("batch 2, row 2 steered ({} α={})", steer.mode.name(), steer.alphas[0]),
                steering: vec![RowSteering::OFF, steer],
            });
        }
        // One prefill and decode of a configuration: (prefill tok/s, decode steps/s); with `profile`, the decode
        // steps are profiled by phase.
        let one_run = |config: &Config, profile: bool| -> Result<(f64, f64)> {
            let batch = config.steering.len();
            let steered = !config.steering.iter().all(RowSteering::is_off);
            let run = |tokens: &candle_core::Tensor, cache: &mut destein::model::Cache| -> Result<candle_core::Tensor> {
                Ok(match (&vectors, steered) {
                    (Some(v), true) => {
                        let mut steerer = Steerer::new(std::slice::from_ref(v), &config.steering)?;
                        model.forward_last(tokens, cache, Some(&mut steerer))?
                    }
                    _ => model.forward_last(tokens, cache, None)?,
                })
            };
            let rows = vec![ids.clone(); batch];
            let mut cache = destein::model::Cache::new(&model);
            let t = Instant::now();
            let logits = run(&model.token_tensor(&rows)?, &mut cache)?;
            let prefill = (ids.len() * batch) as f64 / t.elapsed().as_secs_f64();
            let mut next: Vec<u32> = logits.argmax(1)?.to_vec1()?;
            destein::profile::enable(profile);
            let t = Instant::now();
            for _ in 0..decode_tokens {
                let step: Vec<Vec<u32>> = next.iter().map(|&i| vec![i]).collect();
                next = run(&model.token_tensor(&step)?, &mut cache)?.argmax(1)?.to_vec1()?;
            }
            let decode = decode_tokens as f64 / t.elapsed().as_secs_f64();
            destein::profile::enable(false);
            Ok((prefill, decode))
        };
        let mut prefill = vec![Vec::new(); configs.len()];
        let mut decode = vec![Vec::new(); configs.len()];
        for _ in 0..repeats {
            // Alternate the configurations within each round, so a busy moment of the machine hits all of them.
            for (c, config) in configs.iter().enumerate() {
                let (p, d) = one_run(config, false)?;
                prefill[c].push(p);
                decode[c].push(d);
            }
        }
        println!("| configuration | prefill tok/s | decode steps/s | decode tok/s |");
        println!("|---|---|---|---|");
        let mut steps_per_s = Vec::new();
        for (c, config) in configs.iter().enumerate() {
            let steps = median(decode[c].clone());
            steps_per_s.push(steps);
            let batch = config.steering.len() as f64;
            println!("| {} | {:.1} | {:.1} | {:.1} |", config.label, median(prefill[c].clone()), steps, steps * batch);
        }
        println!("batch 2 step time / batch 1 step time: {:.2}", steps_per_s[0] / steps_per_s[1]);
        if steps_per_s.len() == 3 {
            println!("steering overhead (steered / unsteered batch-2 step time): {:+.1}%", (steps_per_s[1] / steps_per_s[2] - 1.0) * 100.0);
        }
        if profile {
            // Where a decoding step's time goes, per configuration (argmax instead of sampling here).
            let mut columns = Vec::new();
            for config in &configs {
                let (_, steps) = one_run(config, true)?;
                columns.push((destein::profile::totals_ms(), 1000.0 / steps));
            }
            println!("\nprofile of one decode of {decode_tokens} tokens, ms per step (share of the step)");
            println!("| phase | {} |", configs.iter().map(|c| c.label.as_str()).collect::<Vec<_>>().join(" | "));
            println!("|---|{}", "---|".repeat(configs.len()));
            for (i, (phase, _)) in columns[0].0.iter().enumerate() {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|(totals, step_ms)| {
                        let ms = totals[i].1 / decode_tokens as f64;
                        format!("{ms:.3} ({:.0}%)", ms / step_ms * 100.0)
                    })
                    .collect();
                println!("| {phase} | {} |", cells.join(" | "));
            }
            let rest: Vec<String> = columns
                .iter()
                .map(|(totals, step_ms)| {
                    let ms = step_ms - totals.iter().map(|t| t.1).sum::<f64>() / decode_tokens as f64;
                    format!("{ms:.3} ({:.0}%)", ms / step_ms * 100.0)
                })
                .collect();
            println!("| other (tensor glue, argmax, outside the phases) | {} |", rest.join(" | "));
            let totals: Vec<String> = columns.iter().map(|(_, step_ms)| format!("{step_ms:.3}")).collect();
            println!("| whole step | {} |", totals.join(" | "));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn prompts_interleave_file_by_file() {
            assert_eq!(super::interleaved(&[3, 2]), vec![0, 3, 1, 4, 2]);
            assert_eq!(super::interleaved(&[2]), vec![0, 1]);
            assert!(super::interleaved(&[]).is_empty());
        }
    }
}
