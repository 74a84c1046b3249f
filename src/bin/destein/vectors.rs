//! `vectors inspect|baseline|export|import`: look at vector files, measure their neutral read-out, and convert
//! `attn_out` files to and from llama.cpp control vectors.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use destein::control_vector;
use destein::model::{Model, Site};
use destein::steering::MAX_ALPHA;
use destein::vectors::{self, DetoxVectors};

use crate::common::{load_model, read_prompts, Common};

#[derive(Subcommand)]
pub enum VectorsCommand {
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
        format: ExportFormat,
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

/// `vectors export --format`: what the file is written as.
#[derive(Clone, Copy, Debug)]
pub enum ExportFormat {
    /// A llama.cpp control vector (GGUF), `control_vector::FORMAT_NAME`.
    LlamaCppControlVector,
}

impl FromStr for ExportFormat {
    type Err = anyhow::Error;
    fn from_str(format: &str) -> Result<Self> {
        match format {
            control_vector::FORMAT_NAME => Ok(ExportFormat::LlamaCppControlVector),
            other => anyhow::bail!("unknown --format `{other}` (the only one is {})", control_vector::FORMAT_NAME),
        }
    }
}

/// The model, and the texts its typical ‖attn_out‖ per layer is measured on.
#[derive(Args, Clone)]
pub struct NormTexts {
    #[command(flatten)]
    common: Common,
    /// Steering pairs: both sides of the first --norm-pairs pairs measure the typical ‖attn_out‖.
    #[arg(long, default_value = "data/steering_pairs.jsonl")]
    pairs: PathBuf,
    #[arg(long, default_value_t = control_vector::NORM_PAIRS)]
    norm_pairs: usize,
}

impl VectorsCommand {
    pub fn run(self) -> Result<()> {
        match self {
            VectorsCommand::Inspect { file } => inspect(&file),
            VectorsCommand::Baseline { common, out, files } => baselines(&common, &out, &files),
            VectorsCommand::Export { format: ExportFormat::LlamaCppControlVector, norms, out, file } => {
                export_control_vector(&norms, &out, &file)
            }
            VectorsCommand::Import { norms, recommended_alpha, out, file } => {
                import_control_vector(&norms, recommended_alpha, &out, &file)
            }
        }
    }
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

fn export_control_vector(n: &NormTexts, out: &Path, file: &Path) -> Result<()> {
    let v = DetoxVectors::load(file)?;
    control_vector::check_exportable(&v)?;
    let (model, _) = load_model(&n.common)?;
    v.check_model(&model)?;
    let (norms, what) = measure_norms(n, &model)?;
    destein::write_atomically(out, &control_vector::export_bytes(&v, &norms, &what)?)?;
    let (lo, hi) = norms[1..].iter().fold((f32::MAX, 0f32), |(lo, hi), &m| (lo.min(m), hi.max(m)));
    println!(
        "wrote {}: direction.1 … direction.{} ({} values each; our layer 0 has no llama.cpp slot)",
        out.display(),
        v.meta.layers - 1,
        v.meta.hidden
    );
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
    let cv =
        control_vector::ControlVector::from_gguf_bytes(&bytes).with_context(|| format!("in {}", file.display()))?;
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
    println!(
        "wrote {}: site attn_out, layers {} steered (z_l = −direction.l), recommended add at α = {alpha:.4}",
        out.display(),
        layers.join(",")
    );
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
        map.insert(
            name,
            serde_json::json!({ "neutral": (neutral * 1e6).round() / 1e6, "sha256": sha256, "texts": source }),
        );
    }
    destein::write_atomically(out, format!("{}\n", serde_json::to_string_pretty(&map)?).as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
