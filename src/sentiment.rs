//! An offline sentiment judge: our Rust port of VADER (Hutto & Gilbert, "VADER: A Parsimonious
//! Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM 2014) as the PyPI package
//! `vaderSentiment==3.3.2` (MIT) computes it. The lexicon and emoji descriptions are the package's,
//! exported by `scripts/export_vader.py` into `data/judges/vader_lexicon.tsv` (licence in
//! `data/judges/LICENSES.md`); the rules below are re-implemented from reading the package's
//! source, including its quirks (they are part of the scores we must reproduce):
//!
//! * the "but" rule finds each valence by *value* (Python's `list.index`), so equal valences after
//!   the first are scaled at the first one's position;
//! * emoji are replaced one code point at a time, so multi-code-point entries (skin tones, "❤️")
//!   never match;
//! * words are Python's `str.split()` pieces with ASCII punctuation stripped unless that leaves
//!   two characters or fewer (which keeps emoticons like ":)").
//!
//! `tests/sentiment.rs` checks every score against the package's own on the texts of
//! `tests/fixtures/vader_reference.json`. Built from bytes (no file I/O), so it runs in wasm32 too.

use std::collections::HashMap;

use crate::judge::JudgeError;

/// VADER's documented threshold: "positive sentiment: compound score >= 0.05" (vaderSentiment
/// README on GitHub, "About the Scoring"; -0.05 < compound < 0.05 is neutral).
pub const POSITIVE_THRESHOLD: f64 = 0.05;

/// Increase of a valence by a booster word ("very"), the package's `B_INCR`.
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
/// Increase for an ALL-CAPS word among words that are not all caps (`C_INCR`).
const C_INCR: f64 = 0.733;
/// Factor applied by a negation (`N_SCALAR`).
const N_SCALAR: f64 = -0.74;

/// What [`Vader::polarity`] returns: the shares of negative, neutral and positive words, and
/// the normalised sum of valences in [-1, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Polarity {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

pub struct Vader {
    lexicon: HashMap<String, f64>,
    emojis: HashMap<char, String>,
}

/// An error naming the line of the lexicon file (0: the file as a whole).
fn invalid(line: usize, msg: impl std::fmt::Display) -> JudgeError {
    let msg = if line == 0 { msg.to_string() } else { format!("line {line}: {msg}") };
    JudgeError::Invalid { what: "vader lexicon", msg }
}

impl Vader {
    /// Reads `data/judges/vader_lexicon.tsv`: `L<TAB>token<TAB>valence` and
    /// `E<TAB>emoji<TAB>description` lines, `#` comments, and a last line `END<TAB>tokens<TAB>emoji`
    /// whose counts must match (so a truncated file is an error, not a smaller lexicon).
    pub fn from_bytes(lexicon: &[u8]) -> Result<Self, JudgeError> {
        let text = std::str::from_utf8(lexicon).map_err(|e| invalid(0, format!("not UTF-8: {e}")))?;
        let (mut words, mut emojis, mut n_emoji) = (HashMap::new(), HashMap::new(), 0usize);
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split('\t');
            let (kind, key, value) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
                (Some(k), Some(key), Some(v), None) if !key.is_empty() => (k, key, v),
                _ => return Err(invalid(n, "expected 3 tab-separated fields: kind, key, value")),
            };
            match kind {
                "L" => {
                    let v: f64 = value.parse().map_err(|_| invalid(n, format!("valence {value:?} is not a number")))?;
                    if !v.is_finite() || words.insert(key.to_string(), v).is_some() {
                        return Err(invalid(n, format!("bad or duplicate entry {key:?}")));
                    }
                }
                "E" => {
                    n_emoji += 1;
                    let mut chars = key.chars();
                    // the package compares one code point at a time, so longer keys can never match
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        emojis.insert(c, value.to_string());
                    }
                }
                "END" if (key, value) == (words.len().to_string().as_str(), n_emoji.to_string().as_str()) => {
                    return Ok(Self { lexicon: words, emojis });
                }
                "END" => {
                    return Err(invalid(
                        n,
                        format!("END says {key} tokens and {value} emoji, read {} and {n_emoji}", words.len()),
                    ))
                }
                _ => return Err(invalid(n, format!("unknown entry kind {kind:?} (expected L, E or END)"))),
            }
        }
        Err(invalid(0, "no END line: the file is truncated (re-export with scripts/export_vader.sh)"))
    }

    /// Number of lexicon tokens and of (single-code-point) emoji descriptions.
    pub fn entries(&self) -> (usize, usize) {
        (self.lexicon.len(), self.emojis.len())
    }

    /// `SentimentIntensityAnalyzer().polarity_scores(text)`, rounded as the package rounds
    /// (neg, neu, pos to 3 decimals, compound to 4).
    pub fn polarity(&self, text: &str) -> Polarity {
        let p = self.polarity_unrounded(text);
        Polarity {
            neg: py_round(p.neg, 3),
            neu: py_round(p.neu, 3),
            pos: py_round(p.pos, 3),
            compound: py_round(p.compound, 4),
        }
    }

    /// VADER calls the text positive: rounded compound ≥ [`POSITIVE_THRESHOLD`].
    pub fn is_positive(&self, text: &str) -> bool {
        self.polarity(text).compound >= POSITIVE_THRESHOLD
    }

    /// The same scores before the package's final rounding.
    pub fn polarity_unrounded(&self, text: &str) -> Polarity {
        let text = self.replace_emoji(text);
        let text = text.trim_matches(is_py_space);
        let words = words_and_emoticons(text);
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let cap_diff = allcap_differential(&words);
        let mut sentiments = Vec::with_capacity(words.len());
        for i in 0..words.len() {
            let kind_of = i + 1 < words.len() && lower[i] == "kind" && lower[i + 1] == "of";
            let v =
                if booster(&lower[i]).is_some() || kind_of { 0.0 } else { self.valence(&words, &lower, i, cap_diff) };
            sentiments.push(v);
        }
        but_check(&lower, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// The tokens VADER scores (after emoji replacement): for tests and explanations.
    pub fn words(&self, text: &str) -> Vec<String> {
        let text = self.replace_emoji(text);
        words_and_emoticons(text.trim_matches(is_py_space)).into_iter().map(str::to_string).collect()
    }

    /// Each emoji code point becomes its description, with a space before it unless one is there.
    fn replace_emoji(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut prev_space = true;
        for c in text.chars() {
            match self.emojis.get(&c) {
                Some(desc) => {
                    if !prev_space {
                        out.push(' ');
                    }
                    out.push_str(desc);
                    prev_space = false;
                }
                None => {
                    out.push(c);
                    prev_space = c == ' ';
                }
            }
        }
        out
    }

    fn in_lexicon(&self, lowered: &str) -> bool {
        self.lexicon.contains_key(lowered)
    }

    /// The package's `sentiment_valence` for word `i`: lexicon valence, then "no", caps, the three
    /// preceding words (boosters, negations, idioms) and "least".
    fn valence(&self, words: &[&str], lower: &[String], i: usize, cap_diff: bool) -> f64 {
        let Some(&base) = self.lexicon.get(&lower[i]) else { return 0.0 };
        let mut valence = base;
        if lower[i] == "no" && i + 1 != words.len() && self.in_lexicon(&lower[i + 1]) {
            valence = 0.0; // "no" negates the next word instead of counting itself
        }
        let or_nor = i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor");
        if (i > 0 && lower[i - 1] == "no") || (i > 1 && lower[i - 2] == "no") || or_nor {
            valence = base * N_SCALAR;
        }
        if cap_diff && py_isupper(words[i]) {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start in 0..3 {
            if i > start && !self.in_lexicon(&lower[i - start - 1]) {
                let mut s = scalar_inc_dec(words[i - start - 1], valence, cap_diff);
                // farther boosters count less
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, lower, start, i);
                if start == 2 {
                    valence = special_idioms_check(valence, lower, i);
                }
            }
        }
        self.least_check(valence, lower, i)
    }

    /// "least" before a word negates it, except in "at least" / "very least".
    fn least_check(&self, valence: f64, lower: &[String], i: usize) -> f64 {
        let prev_least = |i: usize| !self.in_lexicon(&lower[i - 1]) && lower[i - 1] == "least";
        if i > 1 && prev_least(i) {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && prev_least(i) {
            return valence * N_SCALAR;
        }
        valence
    }
}

/// Python's `str.isspace()`: Unicode White_Space plus the ASCII separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `text.split()` with leading and trailing ASCII punctuation stripped from each piece, unless
/// that leaves two characters or fewer (then it was probably an emoticon and stays whole).
fn words_and_emoticons(text: &str) -> Vec<&str> {
    text.split(is_py_space)
        .filter(|w| !w.is_empty())
        .map(|w| {
            let stripped = w.trim_matches(|c: char| c.is_ascii_punctuation());
            if stripped.chars().count() <= 2 {
                w
            } else {
                stripped
            }
        })
        .collect()
}

/// Unicode titlecase letters (category Lt), which make Python's `isupper()` false.
fn is_titlecase(c: char) -> bool {
    matches!(c, '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}' | '\u{1f88}'..='\u{1f8f}' | '\u{1f98}'..='\u{1f9f}'
        | '\u{1fa8}'..='\u{1faf}' | '\u{1fbc}' | '\u{1fcc}' | '\u{1ffc}')
}

/// Python's `str.isupper()`: at least one uppercase letter and no lowercase or titlecase one.
fn py_isupper(s: &str) -> bool {
    !s.chars().any(|c| c.is_lowercase() || is_titlecase(c)) && s.chars().any(char::is_uppercase)
}

/// Some but not all words are ALL CAPS: only then does caps emphasise.
fn allcap_differential(words: &[&str]) -> bool {
    let caps = words.iter().filter(|w| py_isupper(w)).count();
    0 < words.len() - caps && words.len() - caps < words.len()
}

/// The package's `BOOSTER_DICT`: degree adverbs that raise or lower the next words' intensity.
fn booster(w: &str) -> Option<f64> {
    match w {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably" | "decidedly"
        | "deeply" | "effing" | "enormous" | "enormously" | "entirely" | "especially" | "exceptional"
        | "exceptionally" | "extreme" | "extremely" | "fabulously" | "flipping" | "flippin" | "frackin"
        | "fracking" | "fricking" | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly" | "intensely"
        | "major" | "majorly" | "more" | "most" | "particularly" | "purely" | "quite" | "really" | "remarkably"
        | "so" | "substantially" | "thoroughly" | "total" | "totally" | "tremendous" | "tremendously" | "uber"
        | "unbelievably" | "unusually" | "utter" | "utterly" | "very" => Some(B_INCR),
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof" | "kind-of" | "less"
        | "little" | "marginal" | "marginally" | "occasional" | "occasionally" | "partly" | "scarce" | "scarcely"
        | "slight" | "slightly" | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => Some(B_DECR),
        _ => None,
    }
}

/// The package's `negated([w])` for one lower-cased word: a negation word, or any "n't".
fn is_negation(w: &str) -> bool {
    w.contains("n't")
        || matches!(
            w,
            "aint"
                | "arent"
                | "cannot"
                | "cant"
                | "couldnt"
                | "darent"
                | "didnt"
                | "doesnt"
                | "ain't"
                | "aren't"
                | "can't"
                | "couldn't"
                | "daren't"
                | "didn't"
                | "doesn't"
                | "dont"
                | "hadnt"
                | "hasnt"
                | "havent"
                | "isnt"
                | "mightnt"
                | "mustnt"
                | "neither"
                | "don't"
                | "hadn't"
                | "hasn't"
                | "haven't"
                | "isn't"
                | "mightn't"
                | "mustn't"
                | "neednt"
                | "needn't"
                | "never"
                | "none"
                | "nope"
                | "nor"
                | "not"
                | "nothing"
                | "nowhere"
                | "oughtnt"
                | "shant"
                | "shouldnt"
                | "uhuh"
                | "wasnt"
                | "werent"
                | "oughtn't"
                | "shan't"
                | "shouldn't"
                | "uh-uh"
                | "wasn't"
                | "weren't"
                | "without"
                | "wont"
                | "wouldnt"
                | "won't"
                | "wouldn't"
                | "rarely"
                | "seldom"
                | "despite"
        )
}

/// The package's `SPECIAL_CASES`: phrases whose valence replaces the word's.
fn special_case(phrase: &str) -> Option<f64> {
    Some(match phrase {
        "the shit" | "the bomb" | "to die for" => 3.0,
        "bad ass" | "badass" => 1.5,
        "bus stop" => 0.0,
        "yeah right" => -2.0,
        "kiss of death" => -1.5,
        "beating heart" => 3.5,
        _ => return None,
    })
}

/// A booster before a word, signed by the word's valence; ALL CAPS boosts more.
fn scalar_inc_dec(word: &str, valence: f64, cap_diff: bool) -> f64 {
    let Some(b) = booster(&word.to_lowercase()) else { return 0.0 };
    let mut scalar = if valence < 0.0 { -b } else { b };
    if py_isupper(word) && cap_diff {
        scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
    }
    scalar
}

/// Negation by the word `start + 1` places before word `i`, with the package's exceptions
/// ("never so/this" intensifies, "without doubt" is not a negation).
fn negation_check(valence: f64, lower: &[String], start: usize, i: usize) -> f64 {
    let w = |k: usize| lower[i - k].as_str();
    match start {
        0 if is_negation(w(1)) => valence * N_SCALAR,
        1 if w(2) == "never" && (w(1) == "so" || w(1) == "this") => valence * 1.25,
        1 if w(2) == "without" && w(1) == "doubt" => valence,
        1 if is_negation(w(2)) => valence * N_SCALAR,
        // as in the package, a plain "so"/"this" just before the word also counts here
        2 if (w(3) == "never" && (w(2) == "so" || w(2) == "this")) || w(1) == "so" || w(1) == "this" => valence * 1.25,
        2 if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") => valence,
        2 if is_negation(w(3)) => valence * N_SCALAR,
        _ => valence,
    }
}

/// Idioms around word `i` (`i >= 3`) replace its valence; "kind of"-style bigrams before it add.
fn special_idioms_check(mut valence: f64, lower: &[String], i: usize) -> f64 {
    let w = |k: usize| lower[k].as_str();
    let one_zero = format!("{} {}", w(i - 1), w(i));
    let two_one_zero = format!("{} {} {}", w(i - 2), w(i - 1), w(i));
    let two_one = format!("{} {}", w(i - 2), w(i - 1));
    let three_two_one = format!("{} {} {}", w(i - 3), w(i - 2), w(i - 1));
    let three_two = format!("{} {}", w(i - 3), w(i - 2));
    for seq in [&one_zero, &two_one_zero, &two_one, &three_two_one, &three_two] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if lower.len() - 1 > i {
        if let Some(v) = special_case(&format!("{} {}", w(i), w(i + 1))) {
            valence = v;
        }
    }
    if lower.len() - 1 > i + 1 {
        if let Some(v) = special_case(&format!("{} {} {}", w(i), w(i + 1), w(i + 2))) {
            valence = v;
        }
    }
    for n_gram in [&three_two_one, &three_two, &two_one] {
        if let Some(b) = booster(n_gram) {
            valence += b;
        }
    }
    valence
}

/// Words before the first "but" count half, words after it 1.5 times. Each valence is located by
/// value, as the package's `sentiments.index(sentiment)` does (see the module doc).
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else { return };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let si = sentiments.iter().position(|&x| x == v).unwrap_or(k);
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

/// Emphasis from "!" (0.292 each, up to 4) and from two or more "?" (0.18 each, 0.96 from 4 on).
fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        n @ 2..=3 => n as f64 * 0.18,
        n if n > 3 => 0.96,
        _ => 0.0,
    };
    ep + qm
}

/// Compound = normalised sum; neg/neu/pos = shares, each non-zero valence counting one extra.
fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    if sentiments.is_empty() {
        return Polarity { neg: 0.0, neu: 0.0, pos: 0.0, compound: 0.0 };
    }
    let punct = punctuation_emphasis(text);
    let mut sum: f64 = sentiments.iter().fold(0.0, |a, &s| a + s); // left to right, as Python ≤ 3.11
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos_sum, mut neg_sum, mut neu) = (0.0, 0.0, 0usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu as f64;
    Polarity { neg: (neg_sum / total).abs(), neu: (neu as f64 / total).abs(), pos: (pos_sum / total).abs(), compound }
}

/// Python's `round(x, digits)`: the correctly rounded decimal (ties to even on the exact binary
/// value), read back as the nearest f64. Rust's `{:.N}` formatting rounds the same way.
fn py_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}
