//! `destein derive` and `destein eval` killed mid-run (SIGKILL: no chance to clean up) leave no half-written
//! output under a final name and lose no earlier output; an interrupted eval resumes to the records of a run that
//! was never interrupted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn destein() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_destein"));
    c.current_dir(ROOT);
    c
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("destein-interrupt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kill a run that is still going: a run that already finished would make the test prove nothing.
fn kill_mid_run(child: &mut Child, what: &str) {
    assert!(child.try_wait().unwrap().is_none(), "{what} finished before it could be interrupted: give it more work");
    child.kill().unwrap();
    child.wait().unwrap();
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn derive_args(out: &Path, count: &str) -> Vec<String> {
    ["derive", "--threads", "1", "--count", count, "--out", out.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn killed_derive_leaves_no_file_and_keeps_the_previous_one() {
    let dir = scratch("derive");
    let out = dir.join("v.safetensors");

    // Killed with no earlier output: nothing at all under the output's name.
    let mut child =
        destein().args(derive_args(&out, "200")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Loading takes well under a second; 200 pairs take several more on one thread.
    std::thread::sleep(Duration::from_millis(1500));
    kill_mid_run(&mut child, "derive --count 200");
    assert!(!out.exists(), "a killed derive left {}", out.display());
    assert!(file_names(&dir).iter().all(|n| n.starts_with('.') && n.ends_with(".partial")), "{:?}", file_names(&dir));

    // A good file, then a killed derive to the same path: the good file is still there, byte for byte.
    let ok = destein().args(derive_args(&out, "8")).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let good = std::fs::read(&out).unwrap();
    let mut child =
        destein().args(derive_args(&out, "200")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    kill_mid_run(&mut child, "derive --count 200");
    assert_eq!(std::fs::read(&out).unwrap(), good, "the killed derive changed the earlier file");

    // What a kill during the final write would leave (a part-written temporary file) is named as unfinished, and
    // the next successful run replaces it: only the output remains, whole.
    let partial = dir.join(".v.safetensors.partial");
    std::fs::write(&partial, &good[..good.len() / 3]).unwrap();
    let ok = destein().args(derive_args(&out, "8")).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(file_names(&dir), ["v.safetensors"]);
    destein::vectors::DetoxVectors::load(&out).expect("the rewritten file loads");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The settings of tests/eval.rs's smoke run, on more prompts, so that a run can be caught mid-way.
fn eval_command(reports: &Path, extra: &[&str]) -> Command {
    let mut c = destein();
    c.args([
        "eval",
        "--prompts",
        "data/rtp/test100.jsonl",
        "--sample",
        "10",
        "--samples",
        "2",
        "--max-new-tokens",
        "8",
    ])
    .args(["--vectors", "www/vectors/smollm2-135m.heads.safetensors", "--modes", "rotate", "--alphas", "0,0.45"])
    .args(["--threads", "1", "--name", "run", "--reports-dir", reports.to_str().unwrap()])
    .args(extra);
    c
}

fn run_eval(reports: &Path, extra: &[&str]) -> String {
    let out = eval_command(reports, extra).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn killed_eval_leaves_no_reports_and_resumes_to_the_same_records() {
    let reports = scratch("eval");
    let dir = reports.join("run");
    let records = dir.join("records.jsonl");

    let mut child = eval_command(&reports, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Kill once two records are written (of 20: raw and α = 0.45 on 10 prompts).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&records).map_or(0, |t| t.lines().count()) < 2 {
        assert!(Instant::now() < deadline, "no records after 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_mid_run(&mut child, "eval of 20 prompt×setting batches");
    // A line the kill cut short is not a record; --resume drops and redoes it.
    let text = std::fs::read_to_string(&records).unwrap();
    let kept = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
    assert!((2..20).contains(&kept), "{kept} records at the kill");
    // The reports are written only at the end: none yet, and nothing else but the run's identity and its records.
    let names = file_names(&dir);
    assert!(
        names.iter().all(|n| n == "config.json" || n == "records.jsonl" || n.ends_with(".partial")),
        "after the kill: {names:?}"
    );
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("config.json")).unwrap())
        .expect("config.json is whole");

    let out = run_eval(&reports, &["--resume"]);
    assert!(out.contains(&format!("resuming: {kept} of 20")), "{out}");
    assert_eq!(file_names(&dir), ["config.json", "pareto.svg", "records.jsonl", "results.json", "results.md"]);
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert!(results["metrics"].as_array().unwrap().iter().all(|m| m["prompts"] == 10), "{results}");

    // The same run, never interrupted: the same records (same seeds), in whatever order they were written.
    let straight = scratch("eval-straight");
    run_eval(&straight, &[]);
    assert_eq!(sorted_lines(&records), sorted_lines(&straight.join("run/records.jsonl")));
    let straight_results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(straight.join("run/results.json")).unwrap()).unwrap();
    assert_eq!(results["metrics"], straight_results["metrics"]);
    std::fs::remove_dir_all(&reports).unwrap();
    std::fs::remove_dir_all(&straight).unwrap();
}
