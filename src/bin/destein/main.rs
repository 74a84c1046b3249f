//! The `destein` command-line tool: generate (raw and steered side by side), derive and inspect detox
//! vectors, evaluate, print model info, and benchmark. Native only. One module per command (or group of
//! closely related commands), each with its typed clap arguments and a `run`.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod common;
#[cfg(not(target_arch = "wasm32"))]
mod derive;
#[cfg(not(target_arch = "wasm32"))]
mod eval;
#[cfg(not(target_arch = "wasm32"))]
mod eval_concept;
#[cfg(not(target_arch = "wasm32"))]
mod generate;
#[cfg(not(target_arch = "wasm32"))]
mod model_info;
#[cfg(not(target_arch = "wasm32"))]
mod split_prompts;
#[cfg(not(target_arch = "wasm32"))]
mod vectors;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    match Cli::parse().command.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[derive(clap::Parser)]
#[command(name = "destein", version, about = "DeStein detoxification by activation steering, on a quantized SmolLM2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[cfg(not(target_arch = "wasm32"))]
#[derive(clap::Subcommand)]
enum Command {
    /// Print the model's metadata, the load dtype and the load time.
    Info(model_info::InfoArgs),
    /// Generate a continuation; with --vectors, raw and steered together.
    Generate(generate::GenerateArgs),
    /// Derive detox vectors from steering pairs.
    Derive(derive::DeriveArgs),
    /// Split RealToxicityPrompts files into a dev half (choosing settings) and a test half (reporting):
    /// writes dev-NAME and test-NAME beside each file, or into --out.
    SplitPrompts(split_prompts::SplitPromptsArgs),
    /// Print the token ids (and pieces) of a text, as the model's tokenizer splits it.
    Tokenize(model_info::TokenizeArgs),
    /// Measure detoxification on RealToxicityPrompts: raw vs every (site, mode, α), scored by offline judges.
    Eval(eval::EvalArgs),
    /// Measure a concept vector (sentiment, weddings): raw vs every (mode, α), with paired bootstrap intervals.
    EvalConcept(eval_concept::EvalConceptArgs),
    /// Work with vector files.
    Vectors {
        #[command(subcommand)]
        command: vectors::VectorsCommand,
    },
    /// Prefill and decode speed, batch 1 and batch 2, single thread and all threads (medians).
    Bench(bench::BenchArgs),
}

#[cfg(not(target_arch = "wasm32"))]
impl Command {
    fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Info(args) => model_info::info(&args),
            Command::Generate(args) => generate::run(&args),
            Command::Derive(args) => derive::run(&args),
            Command::SplitPrompts(args) => split_prompts::run(&args),
            Command::Tokenize(args) => model_info::tokenize(&args),
            Command::Eval(args) => eval::run(args),
            Command::EvalConcept(args) => eval_concept::run(&args),
            Command::Vectors { command } => command.run(),
            Command::Bench(args) => bench::run(&args),
        }
    }
}
