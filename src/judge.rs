//! Offline toxicity judges, scored by our own code from data files exported out of two
//! MIT-licensed PyPI packages by `scripts/export_judges.py` (see `data/judges/LICENSES.md`):
//!
//! * [`ToxBlock`]: tox-block 0.1.2, a Keras bidirectional LSTM (20k-word vocabulary, 6 Jigsaw
//!   labels). [`ToxBlock::score`] is the sigmoid output of its `toxic` label, i.e. what
//!   `tox_block.prediction.make_predictions(texts, rescale=False)` returns;
//!   [`ToxBlock::score_all_rescaled`] gives the package's default (`rescale=True`) numbers.
//! * [`ProfanityCheck`]: alt-profanity-check 1.9.1, TF-IDF + 5 sigmoid-calibrated linear SVMs;
//!   [`ProfanityCheck::score`] is `profanity_check.predict_prob([text])[0]`.
//!
//! Both replicate the packages' preprocessing exactly (checked against scores computed by the
//! packages themselves in `tests/fixtures/judge_reference.json`, see `tests/judges.rs`). Both are
//! built from bytes (no file I/O, no threads), so they work the same natively and in wasm32.
//!
//! Known limits of the judges themselves (not of this port): they score words, not meaning, so
//! negated insults ("You are not an idiot.") score as toxic, threats without insult words
//! ("I know where you live and I will find you tonight.") score as clean, and text without
//! known words (empty text, emoji, most non-English) gets the model's "nothing" score
//! (tox-block 0.0195, profanity-check 0.0364). tox-block only sees the last 100 known words.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

/// Why a judge could not be built from its data files.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("tox-block weights: not a readable safetensors file: {0}")]
    Safetensors(String),
    #[error("tox-block weights: missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tox-block weights: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    WrongShape { name: String, got: Vec<usize>, expected: Vec<usize> },
    #[error("tox-block weights: tensor `{name}` has dtype {got}, expected F32 or F16")]
    WrongDtype { name: String, got: String },
    #[error("{what}: bad JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {msg}")]
    Invalid { what: &'static str, msg: String },
}

fn invalid(what: &'static str, msg: impl Into<String>) -> JudgeError {
    JudgeError::Invalid { what, msg: msg.into() }
}

// ------------------------------------------------------------------------------ tox-block

/// Labels of [`ToxBlock::score_all`], in order.
pub const TOX_BLOCK_LABELS: [&str; 6] = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"];
/// `tox_block.config.config.RESCALE_PROBA`: (min, max) per label for `rescale=True`.
pub const TOX_BLOCK_RESCALE: [(f64, f64); 6] = [
    (0.002116, 0.999858),
    (0.000011, 0.648682),
    (0.000347, 0.997533),
    (0.000040, 0.918887),
    (0.000373, 0.986303),
    (0.000074, 0.901117),
];

/// Characters the keras Tokenizer replaces by the split character ' ' (its default `filters`).
const TOX_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";
/// `pad_sequences(maxlen=100)`: the model always runs over exactly this many steps.
const MAXLEN: usize = 100;
const EMB: usize = 50;
const UNITS: usize = 50;
const GATES: usize = 4 * UNITS;
const DENSE: usize = 50;
const LABELS: usize = 6;

/// Keras 2's `hard_sigmoid` (tf_keras backend): clip(0.2 x + 0.5, 0, 1), in f32 like the original.
#[inline(always)]
fn hard_sigmoid(x: f32) -> f32 {
    (x * 0.2 + 0.5).clamp(0.0, 1.0)
}

struct Lstm {
    /// Input kernel, row-major `[EMB][GATES]`, gate order i, f, c, o.
    kernel: Vec<f32>,
    /// Recurrent kernel, row-major `[UNITS][GATES]`.
    recurrent: Vec<f32>,
    bias: [f32; GATES],
}

impl Lstm {
    /// `x . kernel + bias`.
    #[inline]
    fn project(&self, x: &[f32], out: &mut [f32; GATES]) {
        *out = self.bias;
        for (&xk, row) in x.iter().zip(self.kernel.chunks_exact(GATES)) {
            for (o, &w) in out.iter_mut().zip(row) {
                *o += xk * w;
            }
        }
    }

    /// One LSTM step from the projected input `xp`; updates `h` and `c` in place.
    #[inline]
    fn step(&self, xp: &[f32; GATES], h: &mut [f32; UNITS], c: &mut [f32; UNITS]) {
        let mut z = *xp;
        for (&hk, row) in h.iter().zip(self.recurrent.chunks_exact(GATES)) {
            for (o, &w) in z.iter_mut().zip(row) {
                *o += hk * w;
            }
        }
        for u in 0..UNITS {
            let i = hard_sigmoid(z[u]);
            let f = hard_sigmoid(z[UNITS + u]);
            let g = z[2 * UNITS + u].tanh();
            let o = hard_sigmoid(z[3 * UNITS + u]);
            c[u] = f * c[u] + i * g;
            h[u] = o * c[u].tanh();
        }
    }
}

#[inline]
fn max_into(acc: &mut [f32; UNITS], h: &[f32; UNITS]) {
    for (a, &v) in acc.iter_mut().zip(h) {
        if v > *a {
            *a = v;
        }
    }
}

/// The tox-block judge (see the module docs). Build it once; scoring takes `&self`.
pub struct ToxBlock {
    vocab: HashMap<String, u32>,
    /// `[num_words][EMB]`, row 0 is the padding vector.
    embedding: Vec<f32>,
    num_words: usize,
    forward: Lstm,
    backward: Lstm,
    dense_kernel: Vec<f32>, // [2 UNITS][DENSE]
    dense_bias: [f32; DENSE],
    out_kernel: Vec<f32>, // [DENSE][LABELS]
    out_bias: [f32; LABELS],
    /// Projected padding input (`embedding[0] . kernel + bias`) of each direction.
    pad_proj: [[f32; GATES]; 2],
    /// Forward state after k leading padding steps, k = 0..=MAXLEN: (h, c, running max of h).
    fwd_pad: Vec<([f32; UNITS], [f32; UNITS], [f32; UNITS])>,
    filter: [bool; 128],
}

fn tensor_f32(st: &SafeTensors, name: &str, expected: &[usize]) -> Result<Vec<f32>, JudgeError> {
    let t = st.tensor(name).map_err(|_| JudgeError::MissingTensor(name.to_string()))?;
    if t.shape() != expected {
        return Err(JudgeError::WrongShape { name: name.into(), got: t.shape().to_vec(), expected: expected.to_vec() });
    }
    let data = t.data();
    let n: usize = expected.iter().product();
    let v: Vec<f32> = match t.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
        other => return Err(JudgeError::WrongDtype { name: name.into(), got: format!("{other:?}") }),
    };
    if v.len() != n {
        return Err(JudgeError::Safetensors(format!("tensor `{name}` holds {} values, expected {n}", v.len())));
    }
    if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
        return Err(invalid("tox-block weights", format!("tensor `{name}` has a non-finite value at {bad}")));
    }
    Ok(v)
}

fn to_array<const N: usize>(v: Vec<f32>) -> [f32; N] {
    let mut a = [0.0; N];
    a.copy_from_slice(&v);
    a
}

/// IEEE half → single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: value = m * 2^-24
            return if sign != 0 { -(m as f32) * 2f32.powi(-24) } else { m as f32 * 2f32.powi(-24) };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

impl ToxBlock {
    /// Builds the judge from `data/judges/tox_block.safetensors` and `data/judges/tox_block_vocab.json`.
    pub fn from_bytes(weights: &[u8], vocab_json: &[u8]) -> Result<Self, JudgeError> {
        let st = SafeTensors::deserialize(weights).map_err(|e| JudgeError::Safetensors(e.to_string()))?;
        let emb_view = st.tensor("embedding").map_err(|_| JudgeError::MissingTensor("embedding".into()))?;
        let num_words = match emb_view.shape() {
            [n, e] if *e == EMB && *n >= 1 => *n,
            other => {
                return Err(JudgeError::WrongShape {
                    name: "embedding".into(),
                    got: other.to_vec(),
                    expected: vec![20000, EMB],
                })
            }
        };
        let embedding = tensor_f32(&st, "embedding", &[num_words, EMB])?;
        let lstm = |d: &str| -> Result<Lstm, JudgeError> {
            Ok(Lstm {
                kernel: tensor_f32(&st, &format!("{d}.kernel"), &[EMB, GATES])?,
                recurrent: tensor_f32(&st, &format!("{d}.recurrent_kernel"), &[UNITS, GATES])?,
                bias: to_array(tensor_f32(&st, &format!("{d}.bias"), &[GATES])?),
            })
        };
        let forward = lstm("forward")?;
        let backward = lstm("backward")?;
        let dense_kernel = tensor_f32(&st, "dense.kernel", &[2 * UNITS, DENSE])?;
        let dense_bias = to_array(tensor_f32(&st, "dense.bias", &[DENSE])?);
        let out_kernel = tensor_f32(&st, "out.kernel", &[DENSE, LABELS])?;
        let out_bias = to_array(tensor_f32(&st, "out.bias", &[LABELS])?);

        let vocab: HashMap<String, u32> = serde_json::from_slice(vocab_json)
            .map_err(|source| JudgeError::Json { what: "tox-block vocabulary", source })?;
        if let Some((w, &i)) = vocab.iter().find(|(_, &i)| i == 0 || i as usize >= num_words) {
            return Err(invalid(
                "tox-block vocabulary",
                format!("word {w:?} has index {i}, outside 1..{num_words} (the embedding's rows)"),
            ));
        }

        let mut filter = [false; 128];
        for c in TOX_FILTERS.chars().chain([' ']) {
            filter[c as usize] = true;
        }
        let mut judge = ToxBlock {
            vocab,
            embedding,
            num_words,
            forward,
            backward,
            dense_kernel,
            dense_bias,
            out_kernel,
            out_bias,
            pad_proj: [[0.0; GATES]; 2],
            fwd_pad: Vec::with_capacity(MAXLEN + 1),
            filter,
        };
        let pad = judge.embedding[..EMB].to_vec();
        let (mut p0, mut p1) = ([0.0; GATES], [0.0; GATES]);
        judge.forward.project(&pad, &mut p0);
        judge.backward.project(&pad, &mut p1);
        judge.pad_proj = [p0, p1];
        let (mut h, mut c, mut m) = ([0.0f32; UNITS], [0.0f32; UNITS], [f32::NEG_INFINITY; UNITS]);
        judge.fwd_pad.push((h, c, m));
        for _ in 0..MAXLEN {
            judge.forward.step(&p0, &mut h, &mut c);
            max_into(&mut m, &h);
            judge.fwd_pad.push((h, c, m));
        }
        Ok(judge)
    }

    /// Number of embedding rows (the Tokenizer's `num_words`, 20000).
    pub fn num_words(&self) -> usize {
        self.num_words
    }

    /// keras `text_to_word_sequence`: `str.lower()`, each filter character → ' ', split on ' ' only,
    /// empty pieces dropped. Other whitespace (\r, NBSP, …) stays inside words, as in the original.
    pub fn words<'a>(&self, lowered: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let filter = self.filter;
        lowered.split(move |c: char| (c as u32) < 128 && filter[c as usize]).filter(|w| !w.is_empty())
    }

    /// Word ids the model sees: known words (index < num_words), the last 100 of them.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let lowered = text.to_lowercase();
        let mut ids: Vec<u32> = self
            .words(&lowered)
            .filter_map(|w| self.vocab.get(w).copied())
            .filter(|&i| (i as usize) < self.num_words)
            .collect();
        if ids.len() > MAXLEN {
            ids.drain(..ids.len() - MAXLEN);
        }
        ids
    }

    /// Probability of the `toxic` label (`make_predictions(..., rescale=False)`).
    pub fn score(&self, text: &str) -> f32 {
        self.score_all(text)[0]
    }

    /// Sigmoid outputs for the 6 labels of [`TOX_BLOCK_LABELS`].
    pub fn score_all(&self, text: &str) -> [f32; 6] {
        self.score_ids(&self.token_ids(text))
    }

    /// The package's default output (`rescale=True`): |p - min| / (max - min) per label, in f32
    /// like pandas does it; may slightly exceed 1.
    pub fn score_all_rescaled(&self, text: &str) -> [f32; 6] {
        let mut p = self.score_all(text);
        for (v, &(lo, hi)) in p.iter_mut().zip(&TOX_BLOCK_RESCALE) {
            *v = ((*v - lo as f32) / (hi - lo) as f32).abs();
        }
        p
    }

    /// Runs the network on word ids (as from [`Self::token_ids`]; ids ≥ num_words are skipped,
    /// only the last 100 are used).
    pub fn score_ids(&self, ids: &[u32]) -> [f32; 6] {
        let ids: Vec<usize> = ids.iter().map(|&i| i as usize).filter(|&i| i < self.num_words).collect();
        let ids = &ids[ids.len().saturating_sub(MAXLEN)..];
        let n = ids.len();
        let pad = MAXLEN - n;
        let mut xp = [0.0f32; GATES];

        // forward: `pad` padding steps (precomputed), then the words in order
        let (mut h, mut c, mut fmax) = self.fwd_pad[pad];
        for &id in ids {
            self.forward.project(&self.embedding[id * EMB..(id + 1) * EMB], &mut xp);
            self.forward.step(&xp, &mut h, &mut c);
            max_into(&mut fmax, &h);
        }

        // backward: the words in reverse order, then the padding steps
        let (mut h, mut c, mut bmax) = ([0.0f32; UNITS], [0.0f32; UNITS], [f32::NEG_INFINITY; UNITS]);
        for &id in ids.iter().rev() {
            self.backward.project(&self.embedding[id * EMB..(id + 1) * EMB], &mut xp);
            self.backward.step(&xp, &mut h, &mut c);
            max_into(&mut bmax, &h);
        }
        for _ in 0..pad {
            self.backward.step(&self.pad_proj[1], &mut h, &mut c);
            max_into(&mut bmax, &h);
        }

        // GlobalMaxPool1D (concat forward, backward) -> Dense(50, relu) -> Dense(6, sigmoid)
        let mut hidden = self.dense_bias;
        for (&x, row) in fmax.iter().chain(bmax.iter()).zip(self.dense_kernel.chunks_exact(DENSE)) {
            for (o, &w) in hidden.iter_mut().zip(row) {
                *o += x * w;
            }
        }
        let mut logits = self.out_bias;
        for (&x, row) in hidden.iter().zip(self.out_kernel.chunks_exact(LABELS)) {
            let x = x.max(0.0);
            for (o, &w) in logits.iter_mut().zip(row) {
                *o += x * w;
            }
        }
        logits.map(|z| 1.0 / (1.0 + (-z).exp()))
    }
}

// ---------------------------------------------------------------------- profanity-check

#[derive(Deserialize)]
struct ProfanityFile {
    format: String,
    word_char_ranges: Vec<[u32; 2]>,
    vocabulary: Vec<String>,
    idf: Vec<f64>,
    classifiers: Vec<ClassifierFile>,
}

#[derive(Deserialize)]
struct ClassifierFile {
    intercept: f64,
    a: f64,
    b: f64,
    coef: Vec<f64>,
}

/// The alt-profanity-check judge (see the module docs).
pub struct ProfanityCheck {
    vocab: HashMap<String, u32>,
    idf: Vec<f64>,
    /// `[n_vocab][n_classifiers]`.
    coef: Vec<f64>,
    /// (intercept, a, b) per calibrated classifier.
    calib: Vec<(f64, f64, f64)>,
    /// Python's `\w` as sorted, disjoint inclusive code-point ranges.
    word_ranges: Vec<[u32; 2]>,
    ascii_word: [bool; 128],
}

impl ProfanityCheck {
    /// Builds the judge from `data/judges/profanity_check.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, JudgeError> {
        const WHAT: &str = "profanity-check model";
        let f: ProfanityFile =
            serde_json::from_slice(bytes).map_err(|source| JudgeError::Json { what: WHAT, source })?;
        if f.format != "destein-profanity-check-v1" {
            return Err(invalid(WHAT, format!("unknown format {:?}", f.format)));
        }
        let n = f.vocabulary.len();
        if n == 0 || f.idf.len() != n {
            return Err(invalid(WHAT, format!("{} idf values for {n} words", f.idf.len())));
        }
        if f.classifiers.is_empty() {
            return Err(invalid(WHAT, "no classifiers"));
        }
        if let Some((k, c)) = f.classifiers.iter().enumerate().find(|(_, c)| c.coef.len() != n) {
            return Err(invalid(WHAT, format!("classifier {k} has {} coefficients for {n} words", c.coef.len())));
        }
        for w in f.word_char_ranges.windows(2) {
            if w[0][0] > w[0][1] || w[0][1] >= w[1][0] {
                return Err(invalid(WHAT, "word_char_ranges are not sorted and disjoint"));
            }
        }
        let mut vocab = HashMap::with_capacity(n);
        for (i, w) in f.vocabulary.into_iter().enumerate() {
            if vocab.insert(w, i as u32).is_some() {
                return Err(invalid(WHAT, format!("duplicate word at index {i}")));
            }
        }
        let k = f.classifiers.len();
        let mut coef = vec![0.0; n * k];
        for (ci, c) in f.classifiers.iter().enumerate() {
            for (j, &v) in c.coef.iter().enumerate() {
                coef[j * k + ci] = v;
            }
        }
        let calib = f.classifiers.iter().map(|c| (c.intercept, c.a, c.b)).collect();
        let mut judge = ProfanityCheck {
            vocab,
            idf: f.idf,
            coef,
            calib,
            word_ranges: f.word_char_ranges,
            ascii_word: [false; 128],
        };
        for c in 0u8..128 {
            judge.ascii_word[c as usize] = judge.in_ranges(c as u32);
        }
        Ok(judge)
    }

    fn in_ranges(&self, cp: u32) -> bool {
        let i = self.word_ranges.partition_point(|r| r[1] < cp);
        i < self.word_ranges.len() && self.word_ranges[i][0] <= cp
    }

    #[inline]
    fn is_word_char(&self, c: char) -> bool {
        let cp = c as u32;
        if cp < 128 {
            self.ascii_word[cp as usize]
        } else {
            self.in_ranges(cp)
        }
    }

    /// sklearn's `(?u)\b\w\w+\b` on an already lower-cased text: maximal runs of ≥ 2 word characters.
    pub fn words<'a>(&'a self, lowered: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut it = lowered.char_indices().peekable();
        std::iter::from_fn(move || loop {
            let (start, c) = it.next()?;
            if !self.is_word_char(c) {
                continue;
            }
            let mut end = start + c.len_utf8();
            let mut len = 1;
            while let Some(&(i, c)) = it.peek() {
                if !self.is_word_char(c) {
                    break;
                }
                end = i + c.len_utf8();
                len += 1;
                it.next();
            }
            if len >= 2 {
                return Some(&lowered[start..end]);
            }
        })
    }

    /// Probability that the text is offensive (`predict_prob([text])[0]`).
    pub fn score(&self, text: &str) -> f64 {
        let lowered = text.to_lowercase();
        // term counts by vocabulary index, in index order like sklearn's sorted CSR rows
        let mut idx: Vec<u32> = self.words(&lowered).filter_map(|w| self.vocab.get(w).copied()).collect();
        idx.sort_unstable();
        let mut feats: Vec<(usize, f64)> = Vec::with_capacity(idx.len());
        for &j in &idx {
            match feats.last_mut() {
                Some((last, tf)) if *last == j as usize => *tf += 1.0,
                _ => feats.push((j as usize, 1.0)),
            }
        }
        // tf * idf, then L2 normalisation (a zero row stays zero)
        let mut sumsq = 0.0;
        for (j, v) in feats.iter_mut() {
            *v *= self.idf[*j];
            sumsq += *v * *v;
        }
        if sumsq != 0.0 {
            let norm = sumsq.sqrt();
            for (_, v) in feats.iter_mut() {
                *v /= norm;
            }
        }
        let k = self.calib.len();
        let mut total = 0.0;
        for (ci, &(intercept, a, b)) in self.calib.iter().enumerate() {
            let mut d = 0.0;
            for &(j, x) in &feats {
                d += x * self.coef[j * k + ci];
            }
            d += intercept;
            total += 1.0 / (1.0 + (a * d + b).exp());
        }
        total / k as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn hard_sigmoid_is_keras2() {
        assert_eq!(hard_sigmoid(0.0), 0.5);
        assert_eq!(hard_sigmoid(3.0), 1.0);
        assert_eq!(hard_sigmoid(-3.0), 0.0);
        assert!((hard_sigmoid(1.0) - 0.7).abs() < 1e-7);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff{}", b"\x02\x00\x00\x00\x00\x00\x00\x00{}"] {
            assert!(ToxBlock::from_bytes(bytes, b"{}").is_err());
        }
        assert!(ProfanityCheck::from_json(b"").is_err());
        assert!(ProfanityCheck::from_json(b"{\"format\":1}").is_err());
    }
}
