//! `destein eval-concept`: how far a steering vector moves continuations toward a concept, and what it
//! costs in fluency and diversity. Raw (α = 0) and every steered (mode, α) continue the same prompts with
//! the same seeds (`evaluation::sample_prompt`); a concept judge marks each continuation; 95% intervals
//! come from a paired bootstrap over prompts (every draw resamples the same prompts for all settings).
//!
//! Judges:
//! * `sentiment`: VADER ([`crate::sentiment::Vader`]) calls the continuation positive; the mean is of
//!   VADER's compound score.
//! * `weddings`: the continuation contains at least one word of [`WEDDING_WORDS`]; the mean is of the
//!   number of such words. Turner et al. 2023 ("Activation Addition", arXiv 2308.10248) measured their
//!   wedding steering by counting wedding-related words in continuations; the idea is theirs, the list ours.

use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::Result;
use crate::evaluation::{distinct, mean, median, sample_prompt, EvalParams, Prompt, Setting};
use crate::model::Model;
use crate::sentiment::Vader;
use crate::vectors::DetoxVectors;

use crate::bootstrap::interval;
pub use crate::bootstrap::{Interval, BOOTSTRAP_DRAWS, BOOTSTRAP_SEED};

/// Our list of wedding-related words (whole words, case-insensitive). Left out on purpose: words with a
/// common other sense ("wed" is also Wednesday, "ring", "engagement", "reception", "ceremony", "party").
pub const WEDDING_WORDS: &[&str] = &[
    "wedding",
    "weddings",
    "weds",
    "wedded",
    "marry",
    "marries",
    "married",
    "marrying",
    "marriage",
    "marriages",
    "bride",
    "brides",
    "bridal",
    "bridesmaid",
    "bridesmaids",
    "bridegroom",
    "groom",
    "grooms",
    "groomsman",
    "groomsmen",
    "fiance",
    "fiancee",
    "fiancé",
    "fiancée",
    "newlywed",
    "newlyweds",
    "honeymoon",
    "honeymoons",
    "vows",
    "elope",
    "eloped",
];

/// How many words of `text` are in [`WEDDING_WORDS`] (words: maximal runs of letters and digits).
pub fn wedding_words(text: &str) -> usize {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && WEDDING_WORDS.contains(&w.to_lowercase().as_str()))
        .count()
}

pub enum ConceptJudge {
    Sentiment(Vader),
    Weddings,
}

impl ConceptJudge {
    /// The judge called `name`; `sentiment` reads `vader_lexicon.tsv` from `judges_dir`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(name: &str, judges_dir: &std::path::Path) -> Result<Self> {
        match name {
            "sentiment" => {
                let path = judges_dir.join("vader_lexicon.tsv");
                let bytes = std::fs::read(&path).map_err(|e| {
                    crate::Error::Input(format!(
                        "cannot read judge file {}: {e} (it is committed; regenerate with scripts/export_vader.sh)",
                        path.display()
                    ))
                })?;
                Ok(Self::Sentiment(Vader::from_bytes(&bytes)?))
            }
            "weddings" => Ok(Self::Weddings),
            other => bail!(Input, "unknown judge `{other}` (expected sentiment or weddings)"),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sentiment(_) => "sentiment",
            Self::Weddings => "weddings",
        }
    }

    /// What the rate and the mean of this judge count, for reports.
    pub fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Self::Sentiment(_) => {
                ("share of continuations VADER calls positive (compound ≥ 0.05)", "mean VADER compound")
            }
            Self::Weddings => ("share of continuations with a wedding word", "mean wedding words per continuation"),
        }
    }

    /// (does the continuation show the concept, its score).
    pub fn judge(&self, text: &str) -> (bool, f64) {
        match self {
            Self::Sentiment(v) => {
                let c = v.polarity(text).compound;
                (c >= crate::sentiment::POSITIVE_THRESHOLD, c)
            }
            Self::Weddings => {
                let n = wedding_words(text);
                (n > 0, n as f64)
            }
        }
    }
}

/// What one prompt gave under one setting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConceptRecord {
    pub prompt: usize,
    pub setting: Setting,
    pub continuations: Vec<String>,
    pub hits: Vec<bool>,
    pub scores: Vec<f64>,
    /// Perplexity of each non-empty continuation under the raw model.
    pub perplexity: Vec<f64>,
}

/// Sample and judge the continuations of one prompt under one setting.
pub fn evaluate_concept_prompt(
    model: &Model,
    judge: &ConceptJudge,
    vectors: Option<&DetoxVectors>,
    prompt_index: usize,
    prompt: &Prompt,
    setting: &Setting,
    params: &EvalParams,
) -> Result<ConceptRecord> {
    let sampled = sample_prompt(model, vectors, prompt_index, prompt, setting, params)?;
    let (hits, scores) = sampled.continuations.iter().map(|c| judge.judge(c)).unzip();
    Ok(ConceptRecord {
        prompt: prompt_index,
        setting: setting.clone(),
        continuations: sampled.continuations,
        hits,
        scores,
        perplexity: sampled.perplexity,
    })
}

/// A steered setting against raw, on the same prompts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VsRaw {
    /// Judge rate minus raw's.
    pub rate_gain: Interval,
    /// Mean perplexity / raw's − 1.
    pub perplexity_mean_change: Interval,
    /// Median perplexity / raw's − 1.
    pub perplexity_median_change: Interval,
    /// Dist-3 minus raw's.
    pub dist3_change: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettingReport {
    pub setting: Setting,
    pub prompts: usize,
    pub samples: usize,
    pub rate: Interval,
    pub mean_score: f64,
    pub perplexity_mean: f64,
    pub perplexity_median: f64,
    pub dist3: f64,
    pub vs_raw: Option<VsRaw>,
}

/// What `results.json` holds. Serialised as a struct, not through `serde_json::Value`, so α stays the
/// f32 it is (0.2, not 0.20000000298023224).
#[derive(Serialize)]
pub struct Results<'a> {
    pub config: serde_json::Value,
    pub settings: &'a [SettingReport],
}

/// The numbers of one setting on one prompt that the bootstrap adds up.
struct PromptStats {
    hits: usize,
    samples: usize,
    perplexity: Vec<f64>,
}

impl PromptStats {
    fn of(r: &ConceptRecord) -> Self {
        Self { hits: r.hits.iter().filter(|&&h| h).count(), samples: r.hits.len(), perplexity: r.perplexity.clone() }
    }
}

/// Rate, mean perplexity and median perplexity over the prompts `idx` (with repeats).
fn stats_on(per_prompt: &[PromptStats], idx: &[usize]) -> [f64; 3] {
    let hits: usize = idx.iter().map(|&p| per_prompt[p].hits).sum();
    let samples: usize = idx.iter().map(|&p| per_prompt[p].samples).sum();
    let ppl: Vec<f64> = idx.iter().flat_map(|&p| per_prompt[p].perplexity.iter().copied()).collect();
    [hits as f64 / samples.max(1) as f64, mean(ppl.iter().copied()), median(ppl)]
}

/// `records` as `[setting][prompt]`; an error if any (setting, prompt) is missing.
fn grid<'a>(
    settings: &[Setting],
    records: &'a [ConceptRecord],
    n_prompts: usize,
) -> Result<Vec<Vec<&'a ConceptRecord>>> {
    let mut table: Vec<Vec<Option<&ConceptRecord>>> = vec![vec![None; n_prompts]; settings.len()];
    for r in records {
        if let (Some(s), true) = (settings.iter().position(|s| *s == r.setting), r.prompt < n_prompts) {
            table[s][r.prompt] = Some(r);
        }
    }
    let mut rows = Vec::with_capacity(settings.len());
    for (setting, row) in settings.iter().zip(table) {
        match row.into_iter().collect::<Option<Vec<_>>>() {
            Some(r) => rows.push(r),
            None => bail!(Input, "setting {} lacks results for some prompts", setting.label()),
        }
    }
    Ok(rows)
}

/// Per-setting numbers with paired bootstrap intervals. `records` must hold every (prompt, setting);
/// `settings[0]` is raw.
pub fn report(
    settings: &[Setting],
    records: &[ConceptRecord],
    n_prompts: usize,
    draws: usize,
    seed: u64,
) -> Result<Vec<SettingReport>> {
    if settings.first().map(|s| s.is_raw()) != Some(true) || n_prompts == 0 {
        bail!(Input, "a concept report needs raw as its first setting and at least one prompt");
    }
    let rows = grid(settings, records, n_prompts)?;
    let per: Vec<Vec<PromptStats>> = rows.iter().map(|rs| rs.iter().map(|r| PromptStats::of(r)).collect()).collect();
    let all: Vec<usize> = (0..n_prompts).collect();
    let points: Vec<[f64; 3]> = per.iter().map(|p| stats_on(p, &all)).collect();
    // drawn[s][d] = [rate, mean ppl, median ppl] of setting s in draw d; all settings share each draw's prompts
    let mut drawn: Vec<Vec<[f64; 3]>> = vec![Vec::with_capacity(draws); settings.len()];
    for idx in crate::bootstrap::resamples(n_prompts, draws, seed) {
        for (s, p) in per.iter().enumerate() {
            drawn[s].push(stats_on(p, &idx));
        }
    }
    let dist3: Vec<f64> = rows.iter().map(|rs| mean(rs.iter().filter_map(|r| distinct(&r.continuations, 3)))).collect();
    let boot = Boot { points: &points, drawn: &drawn, dist3: &dist3 };
    Ok(settings.iter().enumerate().map(|(s, setting)| boot.setting_report(setting, &rows[s], s)).collect())
}

/// Point estimates and bootstrap draws of every setting (index 0: raw).
struct Boot<'a> {
    points: &'a [[f64; 3]],
    drawn: &'a [Vec<[f64; 3]>],
    dist3: &'a [f64],
}

impl Boot<'_> {
    /// Interval of setting `s`'s statistic `k` against raw's: a difference, or a ratio − 1 (`rel`).
    fn change(&self, s: usize, k: usize, rel: bool) -> Interval {
        let d: Vec<(f64, f64)> = self.drawn[s].iter().zip(&self.drawn[0]).map(|(x, r)| (x[k], r[k])).collect();
        crate::bootstrap::change((self.points[s][k], self.points[0][k]), &d, rel)
    }

    fn setting_report(&self, setting: &Setting, rows: &[&ConceptRecord], s: usize) -> SettingReport {
        let vs_raw = (s > 0).then(|| VsRaw {
            rate_gain: self.change(s, 0, false),
            perplexity_mean_change: self.change(s, 1, true),
            perplexity_median_change: self.change(s, 2, true),
            dist3_change: self.dist3[s] - self.dist3[0],
        });
        SettingReport {
            setting: setting.clone(),
            prompts: rows.len(),
            samples: rows.iter().map(|r| r.hits.len()).sum(),
            rate: interval(self.points[s][0], self.drawn[s].iter().map(|d| d[0]).collect()),
            mean_score: mean(rows.iter().flat_map(|r| r.scores.iter().copied())),
            perplexity_mean: self.points[s][1],
            perplexity_median: self.points[s][2],
            dist3: self.dist3[s],
            vs_raw,
        }
    }
}

/// Every (setting, prompt) record, settings in order, each prompt's samples as one batch.
pub fn run_settings(
    model: &Model,
    judge: &ConceptJudge,
    vectors: &DetoxVectors,
    prompts: &[Prompt],
    settings: &[Setting],
    params: &EvalParams,
    mut progress: impl FnMut(&Setting, usize),
) -> Result<Vec<ConceptRecord>> {
    let mut records = Vec::with_capacity(settings.len() * prompts.len());
    for setting in settings {
        for (p, prompt) in prompts.iter().enumerate() {
            records.push(evaluate_concept_prompt(model, judge, Some(vectors), p, prompt, setting, params)?);
            progress(setting, p);
        }
    }
    Ok(records)
}

/// The results table: rates and perplexity changes with their 95% intervals.
pub fn markdown_table(reports: &[SettingReport]) -> String {
    let ci = |i: &Interval, pct: bool| match pct {
        true => format!("{:+.1}% [{:+.1}, {:+.1}]", i.point * 100.0, i.lo * 100.0, i.hi * 100.0),
        false => format!("{:.3} [{:.3}, {:.3}]", i.point, i.lo, i.hi),
    };
    let mut s = String::from(
        "| setting | rate [95% CI] | gain vs raw [95% CI] | mean score | perplexity mean | change [95% CI] | \
         perplexity median | change [95% CI] | Dist-3 | Δ Dist-3 |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        let v = r.vs_raw.as_ref();
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.2} | {} | {:.2} | {} | {:.3} | {} |\n",
            r.setting.label(),
            ci(&r.rate, false),
            v.map_or("–".into(), |v| ci(&v.rate_gain, false)),
            r.mean_score,
            r.perplexity_mean,
            v.map_or("–".into(), |v| ci(&v.perplexity_mean_change, true)),
            r.perplexity_median,
            v.map_or("–".into(), |v| ci(&v.perplexity_median_change, true)),
            r.dist3,
            v.map_or("–".into(), |v| format!("{:+.3}", v.dist3_change)),
        ));
    }
    s
}
