//! `derive`: detox (or concept) vectors from steering pairs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use destein::model::Site;
use destein::steering::{FusionMode, Scope};
use destein::vectors::{self, DeriveOptions};

use crate::common::{load_model, Common};

#[derive(Args)]
pub struct DeriveArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "data/steering_pairs.jsonl")]
    pairs: PathBuf,
    #[arg(long, default_value = "heads")]
    site: Site,
    /// How many pairs to sample from the file.
    #[arg(long, default_value_t = 200)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Mode stored as the file's recommendation (default: the best measured for the site, see README).
    #[arg(long)]
    recommended_mode: Option<FusionMode>,
    /// α stored as the file's recommendation (default: the best measured for the site, see README).
    #[arg(long)]
    recommended_alpha: Option<f32>,
    /// Steering scope stored as the file's recommendation: all or generated (default: the best measured).
    #[arg(long)]
    recommended_scope: Option<Scope>,
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
}

impl DeriveArgs {
    /// The derivation's options: the site's measured recommendation unless overridden. `pairs_sha256` is left
    /// empty for `run` to fill in from the pairs file.
    fn options(&self) -> DeriveOptions {
        let mut options = DeriveOptions::detox(self.site, self.count, self.seed, String::new());
        if let Some(mode) = self.recommended_mode {
            options.recommended_mode = mode;
        }
        options.recommended_alpha = self.recommended_alpha.unwrap_or(options.recommended_alpha);
        options.away_prefix = self.away_prefix.clone();
        options.toward_prefix = self.toward_prefix.clone();
        options.set_concept(self.concept.clone());
        if let Some(scope) = self.recommended_scope {
            options.recommended_generated_only = scope.generated_only();
        }
        options
    }
}

pub fn run(args: &DeriveArgs) -> Result<()> {
    let (pairs_path, out) = (&args.pairs, &args.out);
    let mut options = args.options();
    let bytes = std::fs::read(pairs_path).with_context(|| format!("cannot read {}", pairs_path.display()))?;
    let pairs = vectors::parse_pairs(&bytes).with_context(|| format!("in {}", pairs_path.display()))?;
    options.pairs_sha256 = destein::model::sha256_hex(&bytes);
    let (model, _) = load_model(&args.common)?;
    let (site, count) = (options.site, options.count);
    // One step per pair read, then one per layer whose probes are fitted.
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} steps (pairs, then layers' probes), {elapsed} elapsed, ETA {eta}",
        )
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
    println!(
        "wrote {} ({} pairs, site {}); probe accuracy mean {mean:.3}, max {max:.3}",
        out.display(),
        count,
        site.name()
    );
    Ok(())
}
