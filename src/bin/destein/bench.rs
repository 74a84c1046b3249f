//! `bench`: prefill and decode speed, batch 1 and batch 2, single thread and all threads (medians); optionally
//! the steering overhead and a per-phase profile of a decoding step.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::Tensor;
use clap::Args;

use destein::generation::Steerer;
use destein::model::{Cache, Model};
use destein::steering::RowSteering;
use destein::vectors::DetoxVectors;

use crate::common::{load_model, Common};

#[derive(Args)]
pub struct BenchArgs {
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
}

const PROMPT: &str = "The following text is kind, polite, positive, respectful and supportive: thank you so much for the help you gave me with the garden last weekend, it looks wonderful now.";

/// One measured batch: its label and how each row is steered.
struct Config {
    label: String,
    steering: Vec<RowSteering>,
}

/// What every measurement shares: the model, the prompt's ids, the optional vector file, the decode length.
struct Bench {
    model: Model,
    ids: Vec<u32>,
    vectors: Option<DetoxVectors>,
    decode_tokens: usize,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(args.repeats > 0 && args.decode_tokens > 0, "--repeats and --decode-tokens must be at least 1");
    if args.common.threads.is_none() {
        return run_per_thread_count(args);
    }
    let common = &args.common;
    let (model, secs) = load_model(common)?;
    let threads = common.threads.unwrap_or(1);
    println!(
        "model {} ({}, {} matmul), loaded in {secs:.2} s; {} alternating rounds, medians",
        model.config.name,
        model.load_dtype.name(),
        common.matmul,
        args.repeats
    );
    let ids = model.tokenizer.encode(PROMPT)?;
    println!("prompt: {} tokens; decode: {} tokens; threads: {threads}", ids.len(), args.decode_tokens);
    // The steering overhead is measured with the shipped vectors when they are there.
    let vectors = match &args.vectors {
        Some(p) => {
            let v = DetoxVectors::load(p)?;
            v.check_model(&model)?;
            Some(v)
        }
        None => None,
    };
    let bench = Bench { model, ids, vectors, decode_tokens: args.decode_tokens };
    let configs = bench.configs();
    let mut prefill = vec![Vec::new(); configs.len()];
    let mut decode = vec![Vec::new(); configs.len()];
    for _ in 0..args.repeats {
        // Alternate the configurations within each round, so a busy moment of the machine hits all of them.
        for (c, config) in configs.iter().enumerate() {
            let (p, d) = bench.one_run(config, false)?;
            prefill[c].push(p);
            decode[c].push(d);
        }
    }
    print_speeds(&configs, &prefill, &decode);
    if args.profile {
        bench.print_profile(&configs)?;
    }
    Ok(())
}

/// The thread pool is sized once per process, so each thread count (1, then all cores) runs in its own process.
fn run_per_thread_count(args: &BenchArgs) -> Result<()> {
    let all = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut counts = vec![1];
    if all > 1 {
        counts.push(all);
    }
    let common = &args.common;
    for threads in counts {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["bench", "--threads", &threads.to_string(), "--repeats", &args.repeats.to_string()])
            .args(["--decode-tokens", &args.decode_tokens.to_string(), "--load-dtype", common.load_dtype.name()])
            .args(["--matmul", common.matmul.name()])
            .args(args.vectors.iter().flat_map(|v| [std::ffi::OsStr::new("--vectors"), v.as_os_str()]))
            .args(args.profile.then_some("--profile"))
            .arg("--model")
            .arg(&common.model)
            .status()?;
        anyhow::ensure!(status.success(), "bench with {threads} thread(s) failed");
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn print_speeds(configs: &[Config], prefill: &[Vec<f64>], decode: &[Vec<f64>]) {
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
        println!(
            "steering overhead (steered / unsteered batch-2 step time): {:+.1}%",
            (steps_per_s[1] / steps_per_s[2] - 1.0) * 100.0
        );
    }
}

impl Bench {
    /// Batch 1, batch 2, and with a vector file, batch 2 with its second row steered as the file recommends.
    fn configs(&self) -> Vec<Config> {
        let mut configs = vec![
            Config { label: "batch 1".into(), steering: vec![RowSteering::OFF] },
            Config { label: "batch 2".into(), steering: vec![RowSteering::OFF; 2] },
        ];
        if let Some(v) = &self.vectors {
            let steer = RowSteering::single(v.meta.recommended_alpha, v.meta.recommended_mode);
            configs.push(Config {
                label: format!("batch 2, row 2 steered ({} α={})", steer.mode.name(), steer.alphas[0]),
                steering: vec![RowSteering::OFF, steer],
            });
        }
        configs
    }

    /// One forward pass of `tokens`, steered as `config` says.
    fn forward(&self, config: &Config, tokens: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let steered = !config.steering.iter().all(RowSteering::is_off);
        Ok(match (&self.vectors, steered) {
            (Some(v), true) => {
                let mut steerer = Steerer::new(std::slice::from_ref(v), &config.steering)?;
                self.model.forward_last(tokens, cache, Some(&mut steerer))?
            }
            _ => self.model.forward_last(tokens, cache, None)?,
        })
    }

    /// One prefill and decode of a configuration: (prefill tok/s, decode steps/s); with `profile`, the decode
    /// steps are profiled by phase.
    fn one_run(&self, config: &Config, profile: bool) -> Result<(f64, f64)> {
        let model = &self.model;
        let batch = config.steering.len();
        let rows = vec![self.ids.clone(); batch];
        let mut cache = Cache::new(model);
        let t = Instant::now();
        let logits = self.forward(config, &model.token_tensor(&rows)?, &mut cache)?;
        let prefill = (self.ids.len() * batch) as f64 / t.elapsed().as_secs_f64();
        let mut next: Vec<u32> = logits.argmax(1)?.to_vec1()?;
        destein::profile::enable(profile);
        let t = Instant::now();
        for _ in 0..self.decode_tokens {
            let step: Vec<Vec<u32>> = next.iter().map(|&i| vec![i]).collect();
            next = self.forward(config, &model.token_tensor(&step)?, &mut cache)?.argmax(1)?.to_vec1()?;
        }
        let decode = self.decode_tokens as f64 / t.elapsed().as_secs_f64();
        destein::profile::enable(false);
        Ok((prefill, decode))
    }

    /// Where a decoding step's time goes, per configuration (argmax instead of sampling here).
    fn print_profile(&self, configs: &[Config]) -> Result<()> {
        let decode_tokens = self.decode_tokens;
        let mut columns = Vec::new();
        for config in configs {
            let (_, steps) = self.one_run(config, true)?;
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
        Ok(())
    }
}
