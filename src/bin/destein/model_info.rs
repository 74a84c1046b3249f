//! `info` and `tokenize`: what the model file holds and how its tokenizer splits a text.

use anyhow::Result;
use clap::Args;

use crate::common::{load_model, Common};

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    common: Common,
    text: String,
}

pub fn info(args: &InfoArgs) -> Result<()> {
    let common = &args.common;
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

pub fn tokenize(args: &TokenizeArgs) -> Result<()> {
    let (model, _) = load_model(&args.common)?;
    let ids = model.tokenizer.encode(&args.text)?;
    let ids_text: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    println!("{}", ids_text.join(", "));
    let pieces: Vec<String> = ids.iter().map(|&i| format!("{:?}", model.tokenizer.token_text(i))).collect();
    println!("{}", pieces.join(" "));
    Ok(())
}
