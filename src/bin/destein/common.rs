//! What several commands share: the model options and loading, prompt files, and the steering scope.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use destein::evaluation::Prompt;
use destein::model::{LoadDtype, MatmulBackend, Model};

pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Clone)]
pub struct Common {
    /// A Llama-architecture GGUF file.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// How weights are held after loading: as-is (default: fastest, about as faithful as q8_0), q8_0, or f32.
    #[arg(long, default_value = "as-is")]
    pub load_dtype: LoadDtype,
    /// Worker threads for the matrix products (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Matrix products through our kernels (default) or candle's quantized matmul (the reference).
    #[arg(long, default_value = "ours")]
    pub matmul: MatmulBackend,
}

/// Where a measuring command (`eval`, `eval-concept`) writes its report, and where it finds the judges' files.
#[derive(Args, Clone)]
pub struct ReportArgs {
    /// Report folder name under --reports-dir.
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "reports")]
    pub reports_dir: PathBuf,
    #[arg(long, default_value = "data/judges")]
    pub judges: PathBuf,
}

impl ReportArgs {
    /// The run's report folder.
    pub fn dir(&self) -> PathBuf {
        self.reports_dir.join(&self.name)
    }
}

/// Load `--model` as the options say; returns the model and the seconds the load took.
pub fn load_model(common: &Common) -> Result<(Model, f64)> {
    if let Some(n) = common.threads {
        // candle's CPU kernels size their rayon pool from this variable, read once at first use.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    let start = Instant::now();
    let model = Model::load_with(&common.model, common.load_dtype, common.matmul)?;
    Ok((model, start.elapsed().as_secs_f64()))
}

/// Read a prompt file (skipped lines reported on stderr).
pub fn read_prompts(path: &Path) -> Result<Vec<Prompt>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read prompts {}", path.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let (prompts, skipped) = destein::evaluation::parse_prompts(&bytes, &name)?;
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    Ok(prompts)
}
