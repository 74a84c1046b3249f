//! A fast smoke run of the whole evaluation pipeline through the CLI: generation, judges, perplexity,
//! reports, and resuming an interrupted run.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn eval(reports: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_destein"))
        .current_dir(ROOT)
        .args([
            "eval",
            "--prompts",
            "data/rtp/test100.jsonl",
            "--sample",
            "2",
            "--samples",
            "2",
            "--max-new-tokens",
            "8",
        ])
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
    // Raw (and the vectors' recommended setting, not in this sweep) runs over every prompt first.
    let order: Vec<(u64, String)> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| (r["prompt"].as_u64().unwrap(), r["setting"]["mode"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(order[..2], [(0, "raw".to_string()), (1, "raw".to_string())], "{order:?}");
    assert!(results["metrics_all_prompts"].is_null(), "a finished sweep has one table");

    // A run stopped after raw's pass and one steered record reports both views: raw on every prompt, and the
    // whole sweep on the one prompt done for every setting.
    let lines: Vec<&str> = records.lines().collect();
    std::fs::write(dir.join("records.jsonl"), lines[..3].join("\n") + "\n").unwrap();
    let (ok, out) = eval(&reports, &["--report-only"]);
    assert!(ok, "{out}");
    let partial: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    let on_all = partial["metrics_all_prompts"].as_array().unwrap();
    assert_eq!((on_all.len(), &on_all[0]["prompts"]), (1, &serde_json::json!(2)), "{partial}");
    assert!(partial["metrics"].as_array().unwrap().iter().all(|m| m["prompts"] == 1), "{partial}");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("All 2 prompts") && md.contains("on the 1 prompts done for every setting"), "{md}");

    // Same command again without --resume: refused, nothing lost.
    let (ok, out) = eval(&reports, &[]);
    assert!(!ok && out.contains("--resume"), "{out}");

    // Interrupt: keep one complete record and half of the next line; --resume redoes the rest.
    let lines: Vec<&str> = records.lines().collect();
    std::fs::write(dir.join("records.jsonl"), format!("{}\n{}", lines[0], &lines[1][..lines[1].len() / 2])).unwrap();
    std::fs::remove_file(dir.join("results.json")).unwrap();
    // Two batches at once, one matrix thread each: the same records as one batch at a time.
    let (ok, out) = eval(&reports, &["--resume", "--jobs", "2", "--threads", "1"]);
    assert!(ok, "{out}");
    assert!(out.contains("resuming: 1 of 4"), "{out}");
    let resumed = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    assert!(resumed.starts_with(&format!("{}\n", lines[0])), "the kept record stays as written");
    // Same seeds: the redone records equal the first run's, bit for bit (in the order the jobs finished).
    let sorted = |text: &str| {
        let mut v: Vec<String> = text.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&resumed), sorted(&records));
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(again["metrics"], results["metrics"]);

    // Intervals: paired bootstrap over prompts, the point inside its interval, changes against raw.
    let intervals = again["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 2);
    assert!(intervals[0]["vs_raw"].is_null() && intervals[1]["vs_raw"].is_object(), "{again}");
    for r in intervals {
        for key in ["emt", "tp", "emt_profanity", "tp_profanity", "perplexity_mean", "perplexity_median"] {
            let i = &r[key];
            let (lo, point, hi) = (i["lo"].as_f64().unwrap(), i["point"].as_f64().unwrap(), i["hi"].as_f64().unwrap());
            assert!(lo <= point + 1e-12 && point <= hi + 1e-12, "{key}: {i}");
        }
    }
    assert_eq!(again["prompt_sha256"].as_array().unwrap().len(), 2);

    // A resume with another protocol, or with other prompts (another split: --prompts adds a file), is refused
    // and names what differs.
    let (ok, out) = eval(&reports, &["--resume", "--seed", "9"]);
    assert!(!ok && out.contains("other seed"), "{out}");
    let (ok, out) = eval(&reports, &["--resume", "--prompts", "data/rtp/split/dev-toxic1k.jsonl"]);
    assert!(!ok && out.contains("holds a run with other") && out.contains("prompts"), "{out}");
    // A resume may add settings (only the new ones run) but not drop one.
    // (--alphas adds to the helper's 0,0.45; --settings replaces the sweep.)
    let (ok, out) = eval(&reports, &["--resume", "--alphas", "0.3"]);
    assert!(ok && out.contains("resuming: 4 of 6"), "{out}");
    let (ok, out) = eval(&reports, &["--resume", "--settings", "heads/rotate/0.3"]);
    assert!(!ok && out.contains("leaves out"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("records.jsonl")).unwrap().lines().count(), 6, "nothing lost");
    let final_results = dir.join("results.json");

    // The choice script refuses a dev and a test run that share prompts, and a results file without intervals.
    let choose = |args: &[&str]| {
        let out =
            Command::new("python3").current_dir(ROOT).arg("scripts/choose-defaults.py").args(args).output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let path = final_results.to_str().unwrap();
    let (code, out) = choose(&[path, "--test", path]);
    assert!(code == Some(2) && out.contains("must not overlap"), "{out}");
    let old_format = reports.join("old.json");
    std::fs::write(&old_format, serde_json::json!({ "metrics": results["metrics"] }).to_string()).unwrap();
    let (code, out) = choose(&[old_format.to_str().unwrap()]);
    assert!(code == Some(2) && out.contains("no 'intervals'"), "{out}");
    std::fs::remove_dir_all(&reports).unwrap();
}

#[test]
fn prompts_that_overlap_the_held_out_split_are_refused() {
    let reports = std::env::temp_dir().join(format!("destein-eval-overlap-{}", std::process::id()));
    let (ok, out) = eval(&reports, &["--held-out", "data/rtp/test100.jsonl"]);
    assert!(!ok && out.contains("held-out") && out.contains("must not overlap"), "{out}");
    assert!(!reports.join("smoke").exists(), "nothing written");
}

#[test]
fn missing_judges_name_the_export_script() {
    let reports = std::env::temp_dir().join(format!("destein-eval-nojudge-{}", std::process::id()));
    let (ok, out) = eval(&reports, &["--judges", "/nonexistent/judges"]);
    assert!(!ok && out.contains("export_judges.sh"), "{out}");
}
