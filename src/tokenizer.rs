//! The tokenizer, built from the GGUF's own metadata (tokens, merges, token types) so that one file
//! carries everything. Byte-level BPE as in GPT-2; for SmolLM2 (`tokenizer.ggml.pre = "smollm"`) digits are
//! split one by one first, and there is no prefix space. candle's `TokenizerFromGguf` adds a prefix space,
//! which is wrong for this model, hence our own.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::bail;
use crate::error::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The bytes each token stands for, so streamed text can be cut on UTF-8 character boundaries.
    token_bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Every id that ends a generation (EOS, `<|endoftext|>`, `<|im_end|>` when present).
    pub stop_ids: Vec<u32>,
    pub chat_template: Option<String>,
}

fn metadata_strings(ct: &gguf_file::Content, key: &str) -> Result<Vec<String>> {
    let value = ct
        .metadata
        .get(key)
        .ok_or_else(|| Error::Tokenizer(format!("the GGUF has no `{key}`: it carries no tokenizer")))?;
    let items = value.to_vec().map_err(|_| Error::Tokenizer(format!("`{key}` is not an array")))?;
    items
        .iter()
        .map(|v| v.to_string().cloned().map_err(|_| Error::Tokenizer(format!("`{key}` holds a non-string entry"))))
        .collect()
}

fn metadata_u32(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// GPT-2's reversible map from bytes to printable characters, inverted: char -> byte.
fn byte_level_char_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).expect("valid code point"), b as u8);
    }
    map
}

/// Refuse tokenizers we do not reproduce exactly (a silent guess would give wrong ids); returns whether the
/// pre-tokenizer splits digits (SmolLM's) or not (GPT-2's).
fn supported_pre_tokenizer(ct: &gguf_file::Content) -> Result<bool> {
    let model = ct.metadata.get("tokenizer.ggml.model").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    if model != "gpt2" {
        bail!(Tokenizer, "tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)");
    }
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_else(|| "default".to_string());
    match pre.as_str() {
        "smollm" => Ok(true),
        "gpt2" | "default" => Ok(false),
        other => bail!(Tokenizer, "unknown tokenizer pre-type `{other}` (supported: smollm, gpt2, default)"),
    }
}

/// Each token's type (1, normal, when the file lists none); one per token.
fn token_types(ct: &gguf_file::Content, tokens: usize) -> Result<Vec<i32>> {
    let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|_| Error::Tokenizer("`tokenizer.ggml.token_type` is not an array".into()))?
            .iter()
            .map(|t| t.to_i32().unwrap_or(1))
            .collect(),
        None => vec![1; tokens],
    };
    if types.len() != tokens {
        bail!(Tokenizer, "{} token types for {} tokens", types.len(), tokens);
    }
    Ok(types)
}

/// The `tokenizers` tokenizer: BPE over the vocabulary and merges, the byte-level pre-tokenizer (after a digit
/// split if `split_digits`) and decoder, and the special tokens.
fn build_inner(
    tokens: &[String],
    merges: &[String],
    special: &[bool],
    split_digits: bool,
) -> Result<tokenizers::Tokenizer> {
    let vocab: ahash::AHashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| Error::Tokenizer(format!("merge #{i} `{m}` is not two tokens")))
        })
        .collect::<Result<_>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::Tokenizer(format!("cannot build BPE: {e}")))?;

    let mut inner = tokenizers::Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, false, true);
    let pre_tokenizer: PreTokenizerWrapper = if split_digits {
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else {
        byte_level.into()
    };
    inner.with_pre_tokenizer(Some(pre_tokenizer));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    let added: Vec<AddedToken> =
        tokens.iter().zip(special).filter(|(_, &s)| s).map(|(t, _)| AddedToken::from(t.clone(), true)).collect();
    inner.add_special_tokens(added).map_err(|e| Error::Tokenizer(format!("cannot add special tokens: {e}")))?;
    Ok(inner)
}

/// The bytes each token stands for: a special token's text as is, other tokens through the byte-level map.
fn token_bytes(tokens: &[String], special: &[bool]) -> Vec<Vec<u8>> {
    let char_to_byte = byte_level_char_to_byte();
    tokens
        .iter()
        .zip(special)
        .map(|(t, &s)| {
            if s {
                t.as_bytes().to_vec()
            } else {
                // A char outside the byte-level alphabet cannot occur in a well-formed vocabulary;
                // keep its UTF-8 bytes rather than dropping text.
                t.chars()
                    .flat_map(|c| match char_to_byte.get(&c) {
                        Some(&b) => vec![b],
                        None => c.to_string().into_bytes(),
                    })
                    .collect()
            }
        })
        .collect()
}

impl Tokenizer {
    /// The byte-level BPE tokenizer a GGUF file carries in its metadata.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let split_digits = supported_pre_tokenizer(ct)?;
        let tokens = metadata_strings(ct, "tokenizer.ggml.tokens")?;
        let merges = metadata_strings(ct, "tokenizer.ggml.merges")?;
        let types = token_types(ct, tokens.len())?;
        let special: Vec<bool> =
            types.iter().map(|&t| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED).collect();
        let inner = build_inner(&tokens, &merges, &special, split_digits)?;
        let token_bytes = token_bytes(&tokens, &special);
        let bos_id = metadata_u32(ct, "tokenizer.ggml.bos_token_id");
        let eos_id = metadata_u32(ct, "tokenizer.ggml.eos_token_id");
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        for name in ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>"] {
            if let Some(id) = tokens.iter().position(|t| t == name) {
                if !stop_ids.contains(&(id as u32)) {
                    stop_ids.push(id as u32);
                }
            }
        }
        let chat_template = ct.metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();

        Ok(Self { inner, token_bytes, special, bos_id, eos_id, stop_ids, chat_template })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Encode text; special tokens written in the text (`<|im_start|>`) become their single ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Tokenizer(format!("cannot encode text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decode ids to text, special tokens included as written.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.bytes_of(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn bytes_of(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(|b| b.as_slice()).unwrap_or(&[])
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The token as text, for display of a single token (lossy if it is part of a character).
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.bytes_of(id)).into_owned()
    }

    /// The ChatML prompt for one user message, as the GGUF's template renders it (SmolLM2 adds its default
    /// system message when none is given). We render the template's fixed ChatML shape rather than run a
    /// Jinja engine; a template that is not ChatML is refused.
    pub fn chat_prompt(&self, user_message: &str) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::Input("this model's GGUF has no chat template; use continuation mode".into()))?;
        if !template.contains("<|im_start|>") {
            bail!(Input, "this model's chat template is not ChatML; use continuation mode");
        }
        let mut prompt = String::new();
        // SmolLM2's template inserts this system message when the first message is not a system one.
        if let Some(system) = default_system_message(template) {
            prompt.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
        }
        prompt.push_str(&format!("<|im_start|>user\n{user_message}<|im_end|>\n<|im_start|>assistant\n"));
        Ok(prompt)
    }
}

/// The system message a ChatML template adds by default, read from the template text itself.
fn default_system_message(template: &str) -> Option<String> {
    let start = template.find("<|im_start|>system\n")? + "<|im_start|>system\n".len();
    let rest = &template[start..];
    let end = rest.find("<|im_end|>")?;
    Some(rest[..end].to_string())
}

/// Turns a stream of token ids into text pieces that never split a UTF-8 character: bytes of a character
/// that spans tokens are held back until the character is complete.
#[derive(Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.pending.extend_from_slice(tokenizer.bytes_of(id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked prefix"));
                    match e.error_len() {
                        // Incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid: show a replacement character and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// What is left when the stream ends (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
