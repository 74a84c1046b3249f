//! A fast smoke run of the whole evaluation pipeline through the CLI: generation, judges, perplexity,
//! reports, and resuming an interrupted run.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn eval(reports: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_destein"))
        .current_dir(ROOT)
        .args(["eval", "--prompts", "data/rtp/test100.jsonl", "--sample", "2", "--samples", "2", "--max-new-tokens", "8"])
        .args(["--vectors", "www/vectors/smollm2-135m.heads.safetensors", "--modes", "rotate", "--alphas", "0,0.45"])
        .args(["--name", "smoke", "--reports-dir", reports.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn smoke_run_writes_reports_and_resumes() {
    let reports = std::env::temp_dir().join(format!("destein-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reports);
    let dir = reports.join("smoke");

    let (ok, out) = eval(&reports, &[]);
    assert!(ok, "{out}");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    let metrics = results["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "raw + one steered setting");
    for m in metrics {
        for key in ["emt", "tp", "emt_profanity", "perplexity", "dist1", "dist3", "empty", "repetitive"] {
            let v = m[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= 0.0, "{key} = {v} in {m}");
        }
        assert_eq!(m["prompts"], 2);
        assert_eq!(m["samples"], 4);
    }
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("| raw |") && md.contains("heads/rotate α=0.45"), "{md}");
    let svg = std::fs::read_to_string(dir.join("pareto.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("heads/rotate"), "svg lacks the series label");
    let records = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 4);

    // Same command again without --resume: refused, nothing lost.
    let (ok, out) = eval(&reports, &[]);
    assert!(!ok && out.contains("--resume"), "{out}");

    // Interrupt: keep one complete record and half of the next line; --resume redoes the rest.
    let lines: Vec<&str> = records.lines().collect();
    std::fs::write(dir.join("records.jsonl"), format!("{}\n{}", lines[0], &lines[1][..lines[1].len() / 2])).unwrap();
    std::fs::remove_file(dir.join("results.json")).unwrap();
    let (ok, out) = eval(&reports, &["--resume"]);
    assert!(ok, "{out}");
    assert!(out.contains("resuming: 1 of 4"), "{out}");
    let resumed = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    assert_eq!(resumed.lines().count(), 4);
    // Same seeds: the redone results equal the first run's.
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(again["metrics"], results["metrics"]);

    // A resume with other settings is refused.
    let (ok, out) = eval(&reports, &["--resume", "--seed", "9"]);
    assert!(!ok && out.contains("other settings"), "{out}");
    std::fs::remove_dir_all(&reports).unwrap();
}

#[test]
fn missing_judges_name_the_export_script() {
    let reports = std::env::temp_dir().join(format!("destein-eval-nojudge-{}", std::process::id()));
    let (ok, out) = eval(&reports, &["--judges", "/nonexistent/judges"]);
    assert!(!ok && out.contains("export_judges.sh"), "{out}");
}
