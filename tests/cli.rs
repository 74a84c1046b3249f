//! The `destein` binary: clear errors and a non-zero exit on bad input, never a panic.

use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn destein(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_destein")).args(args).current_dir(ROOT).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn assert_clean_failure(args: &[&str], needle: &str) {
    let (ok, _, err) = destein(args);
    assert!(!ok, "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: stderr {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

#[test]
fn bad_model_files() {
    let dir = std::env::temp_dir().join(format!("destein-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truncated = dir.join("truncated.gguf");
    let model = std::fs::read(format!("{ROOT}/models/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    std::fs::write(&truncated, &model[..3_000_000]).unwrap();
    let text = dir.join("text.gguf");
    std::fs::write(&text, "hello, I am not a model").unwrap();
    assert_clean_failure(&["info", "--model", "models/missing.gguf"], "fetch-model");
    assert_clean_failure(&["info", "--model", truncated.to_str().unwrap()], "truncated");
    assert_clean_failure(&["generate", "--model", text.to_str().unwrap()], "not a GGUF");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_requests() {
    assert_clean_failure(&["generate", "--prompt", "  "], "the prompt is empty");
    let v = "www/vectors/smollm2-135m.heads.safetensors";
    assert_clean_failure(&["generate", "--vectors", v, "--alpha", "NaN"], "finite");
    assert_clean_failure(&["generate", "--vectors", v, "--alpha", "-1"], "negative");
    assert_clean_failure(&["generate", "--vectors", v, "--alpha", "50"], "maximum");
    assert_clean_failure(&["generate", "--vectors", v, "--mode", "sideways"], "unknown fusion mode");
    assert_clean_failure(&["generate", "--vectors", "Cargo.toml"], "vectors:");
    assert_clean_failure(&["generate", "--load-dtype", "q2"], "unknown load dtype");
}

/// The request limits (`generation::MAX_PROMPT_CHARS`, `MAX_NEW_TOKENS`) are refused by name, before the model
/// loads: every command here names a model file that does not exist, so reaching the load would fail otherwise.
#[test]
fn requests_over_the_limits_are_refused_before_loading() {
    let missing = "models/no-such-model.gguf";
    let long = "word ".repeat(1000);
    assert_clean_failure(
        &["generate", "--model", missing, "--prompt", &long],
        "--prompt is 5000 characters long; at most 4000",
    );
    assert_clean_failure(
        &["generate", "--model", missing, "--max-new-tokens", "513"],
        "max new tokens is 513; at most 512",
    );

    let dir = std::env::temp_dir().join(format!("destein-cli-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prompts = dir.join("long.jsonl");
    let line = |text: &str| serde_json::json!({ "prompt": { "text": text } }).to_string();
    std::fs::write(&prompts, format!("{}\n{}\n", line("A short prompt"), line(&"a".repeat(4001)))).unwrap();
    let reports = dir.join("reports");
    let eval = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["eval", "--model", missing, "--name", "limits", "--reports-dir", reports.to_str().unwrap()];
        args.extend(["--vectors", "www/vectors/smollm2-135m.heads.safetensors"]);
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(&refs, needle);
    };
    run(
        eval(&["--prompts", prompts.to_str().unwrap()]),
        "long.jsonl:2: the prompt is 4001 characters long; at most 4000",
    );
    run(eval(&["--max-new-tokens", "513"]), "max new tokens is 513; at most 512");
    assert!(!reports.exists(), "a refused eval writes nothing");
    let concept = |extra: &[&str]| {
        let mut args = vec!["eval-concept", "--model", missing, "--judge", "sentiment", "--name", "limits"];
        args.extend([
            "--reports-dir",
            reports.to_str().unwrap(),
            "--vectors",
            "www/vectors/smollm2-135m.heads.safetensors",
        ]);
        args.extend(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    run(concept(&["--prompts", prompts.to_str().unwrap()]), "long.jsonl:2: the prompt is 4001 characters long");
    run(
        concept(&["--prompts", "data/rtp/test100.jsonl", "--max-new-tokens", "600"]),
        "max new tokens is 600; at most 512",
    );
    assert!(!reports.exists(), "a refused eval-concept writes nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failed_derive_writes_nothing() {
    let out = std::env::temp_dir().join(format!("destein-derive-{}.safetensors", std::process::id()));
    assert_clean_failure(&["derive", "--count", "100000", "--out", out.to_str().unwrap()], "asked for 100000 pairs");
    assert!(!out.exists());
}

#[test]
fn side_by_side_shows_both_rows() {
    let (ok, stdout, err) = destein(&[
        "generate",
        "--vectors",
        "www/vectors/smollm2-135m.heads.safetensors",
        "--side-by-side",
        "--prompt",
        "You are a horrible person who",
        "--max-new-tokens",
        "12",
    ]);
    assert!(ok, "{err}");
    // The heads file recommends rotate α 0.25 on the generated positions only (measured, README
    // "Detoxification"); generate uses it by default.
    assert!(
        stdout.contains("--- raw") && stdout.contains("--- steered (rotate, α = 0.25, generated positions only)"),
        "{stdout}"
    );
}

#[test]
fn bad_vector_lists() {
    let v = "www/vectors/smollm2-135m.heads.safetensors";
    let a = "www/vectors/smollm2-135m.attn_out.safetensors";
    let two = format!("{v},{v}");
    assert_clean_failure(
        &["generate", "--vectors", &two, "--alpha", "0.1"],
        "--alpha has 1 value(s) but --vectors has 2 file(s)",
    );
    assert_clean_failure(&["generate", "--vectors", v, "--alpha", "0.1,0.2"], "one α per file");
    assert_clean_failure(&["generate", "--vectors", &two, "--alpha", "0.1,NaN"], "finite");
    assert_clean_failure(&["generate", "--vectors", &format!("{v},{a}"), "--alpha", "0.1,0.1"], "same site");
    assert_clean_failure(&["generate", "--vectors", &format!("{v},{v},{v},{v}")], "at most 3");
    assert_clean_failure(&["generate", "--vectors", &format!("{v},Cargo.toml")], "Cargo.toml");
    assert_clean_failure(
        &["generate", "--vectors", v, "--scope", "prompt"],
        "unknown scope `prompt` (expected all or generated)",
    );
    assert_clean_failure(&["generate", "--scope", "generated"], "need --vectors FILE");
}

#[test]
fn side_by_side_with_two_vector_files_shows_the_combined_setting() {
    let v = "www/vectors/smollm2-135m.heads.safetensors";
    let (ok, stdout, err) = destein(&[
        "generate",
        "--vectors",
        &format!("{v},{v}"),
        "--alpha",
        "0.2,0.1",
        "--mode",
        "headwise",
        "--scope",
        "all",
        "--side-by-side",
        "--prompt",
        "You are a horrible person who",
        "--max-new-tokens",
        "8",
    ]);
    assert!(ok, "{err}");
    let label =
        "--- steered (headwise, α = 0.2 smollm2-135m.heads.safetensors + α = 0.1 smollm2-135m.heads.safetensors)";
    assert!(stdout.contains("--- raw") && stdout.contains(label), "{stdout}");
}
