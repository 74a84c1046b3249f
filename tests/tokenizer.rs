//! The tokenizer built from the GGUF alone, on the real model.

mod common;

use destein::model::LoadDtype;
use destein::tokenizer::StreamDecoder;

fn tokenizer() -> &'static destein::tokenizer::Tokenizer {
    &common::model(LoadDtype::Q8_0).tokenizer
}

#[test]
fn known_sentence_encodes_to_reference_ids() {
    let ids = tokenizer().encode("Hello world! The quick brown fox jumps over the lazy dog.").unwrap();
    assert_eq!(ids, vec![19556, 905, 17, 378, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30]);
}

#[test]
fn digits_are_split_one_by_one_and_no_prefix_space() {
    let t = tokenizer();
    let ids = t.encode("2024").unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let pieces: Vec<String> = ids.iter().map(|&i| t.token_text(i)).collect();
    assert_eq!(pieces, ["2", "0", "2", "4"]);
    // No prefix space: "Hello" at the start is the bare word, not " Hello".
    assert_eq!(t.token_text(t.encode("Hello").unwrap()[0]), "Hello");
}

#[test]
fn chatml_specials_are_single_ids() {
    let t = tokenizer();
    let ids = t.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert!(t.is_special(1) && t.is_special(2) && !t.is_special(ids[1]));
}

const ROUND_TRIP: &[&str] = &[
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Prices rose 3.75% in 2023, to $1,234,567.89.",
    "Café, naïve, façade, Øresund, Straße, ĳ, Ærø.",
    "Emoji: 🙂👍🏽🇫🇷 and a family 👨‍👩‍👧‍👦.",
    "中文测试：你好，世界！日本語のテキスト。한국어 문장.",
    "   leading and trailing spaces   ",
    "tabs\there\tand\nnew\nlines\r\n and\n\n\nblank lines",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
    "mixed <|im_end|> specials inside <|endoftext|> text",
    "symbols: ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./ ½ ∑ ∞ ≠",
    "a",
    " ",
    "\n",
];

#[test]
fn exact_round_trips() {
    let t = tokenizer();
    for text in ROUND_TRIP {
        let ids = t.encode(text).unwrap();
        assert_eq!(&t.decode(&ids), text, "ids {ids:?}");
    }
}

#[test]
fn streaming_never_splits_a_character() {
    let t = tokenizer();
    for text in ROUND_TRIP {
        let ids = t.encode(text).unwrap();
        let mut decoder = StreamDecoder::default();
        let mut streamed = String::new();
        for &id in &ids {
            let piece = decoder.push(t, id);
            assert!(!piece.contains(char::REPLACEMENT_CHARACTER), "broken character in {piece:?} of {text:?}");
            streamed.push_str(&piece);
        }
        streamed.push_str(&decoder.finish());
        assert_eq!(&streamed, text);
    }
    // A multi-byte emoji is spread over several byte-level tokens: the pieces before it completes are empty.
    let ids = t.encode("🙂").unwrap();
    assert!(ids.len() > 1, "expected the emoji to span tokens: {ids:?}");
    let mut decoder = StreamDecoder::default();
    let pieces: Vec<String> = ids.iter().map(|&id| decoder.push(t, id)).collect();
    assert!(pieces[..pieces.len() - 1].iter().all(|p| p.is_empty()), "{pieces:?}");
    assert_eq!(pieces.last().unwrap(), "🙂");
}

#[test]
fn chat_prompt_follows_the_gguf_template() {
    let prompt = tokenizer().chat_prompt("Hi there").unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    );
}
