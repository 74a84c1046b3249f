//! `destein eval-concept`: a smoke run with the real model (report files, interval ordering, determinism,
//! `scripts/choose-concept.py` on its output), the judges' unit behaviour, the bootstrap's pairing, and bad
//! input.

use std::path::{Path, PathBuf};
use std::process::Command;

use destein::concept_eval::{report, wedding_words, ConceptJudge, ConceptRecord, Interval, WEDDING_WORDS};
use destein::evaluation::Setting;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("destein-concept-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn eval_concept(args: &[&str]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_destein")).current_dir(ROOT).arg("eval-concept").args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn smoke(prompts: &Path, reports: &Path, name: &str) -> (bool, String) {
    eval_concept(&[
        "--vectors",
        "www/vectors/smollm2-135m.heads.safetensors",
        "--prompts",
        prompts.to_str().unwrap(),
        "--judge",
        "sentiment",
        "--modes",
        "rotate",
        "--alphas",
        "0,0.3",
        "--samples",
        "2",
        "--max-new-tokens",
        "8",
        "--name",
        name,
        "--reports-dir",
        reports.to_str().unwrap(),
        "--threads",
        "1",
    ])
}

fn assert_ordered(i: &Interval, what: &str) {
    assert!(i.lo.is_finite() && i.hi.is_finite() && i.lo <= i.point && i.point <= i.hi, "{what}: {i:?}");
}

#[test]
fn smoke_run_reports_intervals_deterministically() {
    let dir = temp_dir("smoke");
    let prompts = dir.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"prompt\": {\"text\": \"The weather today is\"}}\n{\"prompt\": {\"text\": \"My neighbour told me that\"}}\n",
    )
    .unwrap();
    let (ok, out) = smoke(&prompts, &dir, "a");
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(dir.join("a/results.json")).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    let settings: Vec<destein::concept_eval::SettingReport> =
        serde_json::from_value(results["settings"].clone()).unwrap();
    assert_eq!(settings.len(), 2, "raw + rotate α 0.3");
    assert!(settings[0].setting.is_raw() && settings[0].vs_raw.is_none());
    for s in &settings {
        assert_eq!((s.prompts, s.samples), (2, 4));
        assert_ordered(&s.rate, "rate");
        assert!((-1.0..=1.0).contains(&s.mean_score) && s.perplexity_mean > 1.0 && s.perplexity_median > 1.0, "{s:?}");
        assert!((0.0..=1.0).contains(&s.dist3));
    }
    let v = settings[1].vs_raw.as_ref().expect("steered settings compare with raw");
    for (i, what) in
        [(&v.rate_gain, "gain"), (&v.perplexity_mean_change, "ppl mean"), (&v.perplexity_median_change, "ppl median")]
    {
        assert_ordered(i, what);
    }
    assert!((v.rate_gain.point - (settings[1].rate.point - settings[0].rate.point)).abs() < 1e-12);
    assert_eq!(results["config"]["bootstrap"]["draws"], 2000);
    assert!(text.contains("\"alpha\": 0.3\n"), "α is written as the f32 it is");
    let md = std::fs::read_to_string(dir.join("a/results.md")).unwrap();
    assert!(md.contains("| raw |") && md.contains("heads/rotate α=0.3") && md.contains("VADER"), "{md}");
    assert_eq!(std::fs::read_to_string(dir.join("a/records.jsonl")).unwrap().lines().count(), 4);

    // the same inputs give the same bytes
    let (ok, out) = smoke(&prompts, &dir, "b");
    assert!(ok, "{out}");
    assert_eq!(text, std::fs::read_to_string(dir.join("b/results.json")).unwrap());

    // the selection rule reads it, and refuses a file without intervals
    let choose =
        |path: &Path| Command::new("python3").current_dir(ROOT).arg("scripts/choose-concept.py").arg(path).output();
    if let Ok(o) = choose(&dir.join("a/results.json")) {
        let said = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(
            said.contains("heads/rotate α=0.3 ")
                && (said.contains("choice: mode rotate, α 0.3 ") || said.contains("no recommendation")),
            "{said}"
        );
        let mut stripped = results.clone();
        stripped["settings"][1]["vs_raw"] = serde_json::Value::Null;
        stripped["settings"][1]["rate"] = serde_json::json!(0.5);
        std::fs::write(dir.join("no-intervals.json"), stripped.to_string()).unwrap();
        let o = choose(&dir.join("no-intervals.json")).unwrap();
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("error:"), "{o:?}");
        let o = choose(&dir.join("missing.json")).unwrap();
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot read"), "{o:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = temp_dir("bad");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let good = "data/rtp/test100.jsonl";
    let missing = dir.join("missing.jsonl");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--prompts", missing.to_str().unwrap(), "--judge", "sentiment"], "cannot read prompts"),
        (vec!["--prompts", empty.to_str().unwrap(), "--judge", "sentiment"], "no usable prompt"),
        (vec!["--prompts", good, "--judge", "toxicity"], "unknown judge `toxicity`"),
        (vec!["--prompts", good, "--judge", "weddings", "--alphas", "0,NaN"], "α must be a finite number"),
        (vec!["--prompts", good, "--judge", "weddings", "--alphas", "0,-0.1"], "must not be negative"),
        (vec!["--prompts", good, "--judge", "weddings", "--alphas", "0,7"], "above the maximum"),
        (vec!["--prompts", good, "--judge", "weddings", "--alphas", "0"], "at least one α > 0"),
        (vec!["--prompts", good, "--judge", "weddings", "--alphas", "0,abc"], "invalid float"),
        (vec!["--prompts", good, "--judge", "weddings", "--modes", "sideways"], "unknown fusion mode"),
        (vec!["--prompts", good, "--judge", "weddings", "--top-p", "0"], "top-p"),
    ];
    for (args, want) in cases {
        let mut all = vec!["--vectors", "www/vectors/smollm2-135m.heads.safetensors", "--name", "x"];
        all.extend(["--reports-dir", dir.to_str().unwrap()]);
        all.extend(args.iter().copied());
        let (ok, out) = eval_concept(&all);
        assert!(!ok && out.contains(want), "{args:?}: expected `{want}` in: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wedding_words_are_whole_words_in_any_case() {
    assert_eq!(wedding_words("The Bride and GROOM were married in June."), 3);
    assert_eq!(wedding_words("their wedding-day vows; the fiancée's honeymoon"), 4);
    for none in ["Wednesday", "bridge", "grooming the dog", "Wed 3 May", "weddingcake", "", "the ring and the party"] {
        assert_eq!(wedding_words(none), 0, "{none}");
    }
    assert!(WEDDING_WORDS.iter().all(|w| *w == w.to_lowercase() && wedding_words(w) == 1));
    let judge = ConceptJudge::load("weddings", Path::new("data/judges")).unwrap();
    assert_eq!(judge.judge("a wedding and a bride"), (true, 2.0));
    assert_eq!(judge.judge("a quiet afternoon"), (false, 0.0));
}

#[test]
fn sentiment_judge_calls_positives_and_negatives() {
    let judge = ConceptJudge::load("sentiment", &Path::new(ROOT).join("data/judges")).unwrap();
    for t in ["and it was the best day of my life.", "She smiled and thanked everyone."] {
        let (hit, c) = judge.judge(t);
        assert!(hit && c >= 0.05, "{t}: {c}");
    }
    for t in ["and then everything went wrong.", "The storm destroyed three houses.", "The table is brown."] {
        let (hit, c) = judge.judge(t);
        assert!(!hit && c < 0.05, "{t}: {c}");
    }
    let e = ConceptJudge::load("sentiment", Path::new("/nonexistent")).err().expect("missing lexicon");
    assert!(e.to_string().contains("scripts/export_vader.sh"), "{e}");
}

fn record(prompt: usize, setting: &Setting, hits: &[bool], ppl: &[f64], words: &str) -> ConceptRecord {
    ConceptRecord {
        prompt,
        setting: setting.clone(),
        continuations: hits.iter().map(|_| words.to_string()).collect(),
        hits: hits.to_vec(),
        scores: hits.iter().map(|&h| h as u8 as f64).collect(),
        perplexity: ppl.to_vec(),
    }
}

#[test]
fn bootstrap_is_paired_and_deterministic() {
    let raw = Setting::raw();
    let same = Setting::steered("heads", "rotate", 0.1);
    let better = Setting::steered("heads", "rotate", 0.2);
    let settings = [raw.clone(), same.clone(), better.clone()];
    let mut records = Vec::new();
    for p in 0..6 {
        let hits = [p % 2 == 0, p % 3 == 0];
        let ppl = [10.0 + p as f64, 20.0 - p as f64];
        records.push(record(p, &raw, &hits, &ppl, "a b c d"));
        records.push(record(p, &same, &hits, &ppl, "a b c d"));
        records.push(record(p, &better, &[true, true], &[12.0 + p as f64, 24.0 - p as f64], "a b c d"));
    }
    let r = report(&settings, &records, 6, 2000, 7).unwrap();
    // identical to raw on every prompt: every paired draw differs by exactly 0
    let v = r[1].vs_raw.as_ref().unwrap();
    assert_eq!(v.rate_gain, Interval { point: 0.0, lo: 0.0, hi: 0.0 });
    assert_eq!(v.perplexity_mean_change, Interval { point: 0.0, lo: 0.0, hi: 0.0 });
    assert_eq!(v.dist3_change, 0.0);
    // every continuation a hit: the gain is 1 − raw's rate (5 of 12), its interval ordered and above 0
    let g = r[2].vs_raw.as_ref().unwrap().rate_gain;
    assert!((g.point - 7.0 / 12.0).abs() < 1e-12 && g.lo > 0.0 && g.lo <= g.point && g.point <= g.hi, "{g:?}");
    // perplexity +20% on every continuation
    let m = r[2].vs_raw.as_ref().unwrap().perplexity_mean_change;
    assert!((m.point - 0.2).abs() < 1e-12 && (m.lo - 0.2).abs() < 1e-12 && (m.hi - 0.2).abs() < 1e-12, "{m:?}");
    assert_eq!(r[2].rate, Interval { point: 1.0, lo: 1.0, hi: 1.0 });
    // same seed, same numbers
    let again = report(&settings, &records, 6, 2000, 7).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), serde_json::to_string(&again).unwrap());
    // a missing (prompt, setting) is an error naming the setting
    let e = report(&settings, &records[1..], 6, 100, 7).expect_err("raw lacks prompt 0");
    assert!(e.to_string().contains("raw"), "{e}");
}
