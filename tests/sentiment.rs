//! Our VADER port against scores computed by the PyPI package `vaderSentiment==3.3.2` itself
//! (`tests/fixtures/vader_reference.json`, written by `scripts/export_vader.py`).

use std::path::PathBuf;

use destein::judge::JudgeError;
use destein::sentiment::{Polarity, Vader, POSITIVE_THRESHOLD};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    python: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Scores {
    neg: f64,
    neu: f64,
    pos: f64,
    compound: f64,
}

/// The unrounded scores, as Python's repr: parsed by Rust's exact `str::parse` (serde_json's own float
/// reader may be one unit in the last place off for 17-digit numbers).
#[derive(Deserialize)]
struct ReprScores {
    neg: String,
    neu: String,
    pos: String,
    compound: String,
}

impl ReprScores {
    fn parse(&self) -> Scores {
        let f = |s: &String| s.parse::<f64>().unwrap_or_else(|e| panic!("{s}: {e}"));
        Scores { neg: f(&self.neg), neu: f(&self.neu), pos: f(&self.pos), compound: f(&self.compound) }
    }
}

#[derive(Deserialize)]
struct Case {
    category: String,
    text: String,
    scores: Scores,
    unrounded: ReprScores,
}

fn read(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn reference() -> Reference {
    serde_json::from_slice(&read("tests/fixtures/vader_reference.json")).expect("reference json")
}

fn vader() -> Vader {
    Vader::from_bytes(&read("data/judges/vader_lexicon.tsv")).expect("vader lexicon loads")
}

fn short(t: &str) -> String {
    format!("{:?}", t.chars().take(60).collect::<String>())
}

/// Largest |ours − package| over the four scores.
fn max_diff(got: Polarity, want: &Scores) -> f64 {
    [(got.neg, want.neg), (got.neu, want.neu), (got.pos, want.pos), (got.compound, want.compound)]
        .iter()
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn reference_covers_the_rules() {
    let r = reference();
    assert!(r.cases.len() >= 300, "{} cases", r.cases.len());
    assert!(r.python.starts_with("3.11."), "sum() of floats is compensated from Python 3.12 on: {}", r.python);
    for cat in ["edge", "negation", "but", "booster", "caps", "punctuation", "emoji", "idiom", "long"] {
        assert!(r.cases.iter().filter(|c| c.category == cat).count() >= 4, "category {cat}");
    }
    assert!(r.cases.iter().any(|c| c.text.is_empty()));
    assert!(r.cases.iter().any(|c| c.category.starts_with("hutto2014/")));
}

#[test]
fn vader_matches_the_package() {
    let v = vader();
    let (mut worst_rounded, mut worst_unrounded) = (0f64, 0f64);
    for c in reference().cases {
        // the port does the package's float operations in the package's order, so the scores are identical
        let unrounded = max_diff(v.polarity_unrounded(&c.text), &c.unrounded.parse());
        let rounded = max_diff(v.polarity(&c.text), &c.scores);
        assert!(unrounded == 0.0, "unrounded [{}] {}: {:?}", c.category, short(&c.text), v.polarity_unrounded(&c.text));
        assert!(rounded == 0.0, "rounded [{}] {}: {:?}", c.category, short(&c.text), v.polarity(&c.text));
        assert_eq!(v.is_positive(&c.text), c.scores.compound >= POSITIVE_THRESHOLD, "{}", short(&c.text));
        worst_rounded = worst_rounded.max(rounded);
        worst_unrounded = worst_unrounded.max(unrounded);
    }
    eprintln!("vader max |rust - package|: rounded {worst_rounded:.3e}, unrounded {worst_unrounded:.3e}");
}

#[test]
fn positives_and_negatives() {
    let v = vader();
    for t in ["What a wonderful day!", "I love this place.", "not bad at all", "The food was great."] {
        assert!(v.is_positive(t), "{t}: {:?}", v.polarity(t));
    }
    for t in [
        "This is terrible.",
        "I hate it",
        "not good",
        "The plot was good, but the ending was awful.",
        "",
        "The table is brown.",
    ] {
        assert!(!v.is_positive(t), "{t}: {:?}", v.polarity(t));
    }
    // rules: boosters, caps and "!" each raise the compound of a positive sentence
    let c = |t: &str| v.polarity(t).compound;
    assert!(c("very good") > c("good") && c("GOOD stuff") > c("good stuff") && c("good!") > c("good"));
    assert_eq!(v.polarity(""), Polarity { neg: 0.0, neu: 0.0, pos: 0.0, compound: 0.0 });
    assert_eq!(v.words("I ❤ it :) !"), ["I", "red", "heart", "it", ":)", "!"]);
}

#[test]
fn bad_lexicon_files_are_named_errors() {
    let good = read("data/judges/vader_lexicon.tsv");
    let (words, emojis) = vader().entries();
    assert!(words > 7000 && emojis > 1000, "{words} {emojis}");
    let cases: [(&[u8], &str); 8] = [
        (b"", "no END line"),
        (b"# only a comment\n", "no END line"),
        (b"L\tgood\t1.9\n", "no END line"),
        (b"L\tgood\tnot-a-number\nEND\t1\t0\n", "line 1: valence"),
        (b"L\tgood\t1.9\nL\tgood\t2\nEND\t2\t0\n", "line 2: bad or duplicate"),
        (b"L\tgood\n", "line 1: expected 3"),
        (b"X\tgood\t1\n", "unknown entry kind"),
        (b"L\tgood\t1.9\nEND\t2\t0\n", "END says 2 tokens and 0 emoji, read 1 and 0"),
    ];
    for (bytes, want) in cases {
        let e = Vader::from_bytes(bytes).err().expect("an error");
        assert!(matches!(e, JudgeError::Invalid { .. }) && e.to_string().contains(want), "{e}");
    }
    let e = Vader::from_bytes(&[0xff, 0xfe, 0x00]).err().expect("not utf-8");
    assert!(e.to_string().contains("UTF-8"), "{e}");
    for cut in [1, 10, good.len() / 3, good.len() - 6] {
        let e = Vader::from_bytes(&good[..cut]).err().expect("truncated file");
        assert!(e.to_string().contains("truncated") || e.to_string().contains("expected 3"), "cut at {cut}: {e}");
    }
    assert!(Vader::from_bytes(b"L\tgood\t1.9\nEND\t1\t0\n").unwrap().is_positive("good"));
}
