//! `split-prompts`: a dev half (choosing settings) and a test half (reporting) of each prompt file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::common::read_prompts;

#[derive(Args)]
pub struct SplitPromptsArgs {
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
}

pub fn run(args: &SplitPromptsArgs) -> Result<()> {
    let (files, seed, seen, out) = (&args.files, args.seed, &args.seen, args.out.as_deref());
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
