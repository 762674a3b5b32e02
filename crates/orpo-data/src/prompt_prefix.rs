//! Encoding a prompt once for both of its completions.
//!
//! TRL encodes `prompt`, `prompt + chosen` and `prompt + rejected`: the prompt's text three
//! times. In a chat-templated row most of the prompt sits before its last special token (the
//! ChatML prompt ends `<|im_start|>assistant\n`), and `tokenizers` encodes the text between two
//! special tokens independently of the rest: it splits on special tokens first, then normalizes,
//! pre-tokenizes and runs the model on each piece. So
//! `enc(prompt + c) == enc(prompt[..s]) ++ enc(prompt[s..] + c)` when `s` is the end of a
//! special token in the prompt, and `enc(prompt[..s])` is the start of `enc(prompt)`.
//!
//! That holds only for some tokenizers and tokens; [`separator_ids`] lists the tokens for which
//! it does (a *separator*), and is empty when the tokenizer as a whole does not qualify:
//! - no added token is `single_word` (its match looks at the characters around it), and
//!   special tokens are split off (`encode_special_tokens` is false);
//! - every pre-tokenizer step works on each piece alone (not `Metaspace`, whose
//!   `prepend_scheme: first` treats the text's first piece differently; a fixed-length split is
//!   excluded too, to be safe);
//! - no truncation or padding is set on the tokenizer (they act on the whole encoding);
//! - a separator is matched before normalization (`normalized: false`), does not swallow the
//!   spaces after it (`rstrip: false`), and no other added token contains its text. Added tokens
//!   are matched leftmost-longest, so a match that differs between `prompt` and
//!   `prompt + completion` would have to run past the separator's end from a start at or before
//!   its start, i.e. contain it.

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{NormalizerWrapper, OffsetReferential, OffsetType, Tokenizer};

/// A prompt's token ids, from [`PreferenceTokenizer::encode_prompt`].
#[derive(Debug, Clone)]
pub struct EncodedPrompt<'a> {
    pub(crate) text: &'a str,
    /// `encode(text)`.
    pub ids: Vec<u32>,
    /// `(cut, kept)`: `encode(text[..cut])` is `ids[..kept]`, and any text appended after
    /// `cut` is encoded on its own.
    pub(crate) prefix: Option<(usize, usize)>,
}

/// Ids of the added tokens that a prompt can be cut after (see the module docs); empty when
/// the tokenizer does not qualify.
pub(crate) fn separator_ids(tokenizer: &Tokenizer) -> Vec<u32> {
    let added = tokenizer.get_added_vocabulary();
    let tokens = added.get_added_tokens_decoder();
    let qualifies = !added.get_encode_special_tokens()
        && tokens.values().all(|t| !t.single_word)
        && tokenizer.get_truncation().is_none()
        && tokenizer.get_padding().is_none()
        && tokenizer.get_pre_tokenizer().is_none_or(pieces_alone);
    if !qualifies {
        return Vec::new();
    }
    let mut ids: Vec<u32> = tokens
        .iter()
        .filter(|(_, t)| !t.normalized && !t.rstrip && !t.content.is_empty())
        .filter(|(id, t)| {
            tokens
                .iter()
                .all(|(other, u)| other == *id || !u.content.contains(&t.content))
        })
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Whether a pre-tokenizer handles each piece of text on its own.
fn pieces_alone(pre_tokenizer: &PreTokenizerWrapper) -> bool {
    match pre_tokenizer {
        PreTokenizerWrapper::Sequence(seq) => seq.as_ref().iter().all(pieces_alone),
        PreTokenizerWrapper::Metaspace(_) | PreTokenizerWrapper::FixedLength(_) => false,
        _ => true,
    }
}

/// Byte offset just after the last separator token in `prompt`, as `tokenizer` splits it, or
/// `None` when the prompt has none. `separators` is sorted ([`separator_ids`]).
pub(crate) fn cut_after_last_separator(
    tokenizer: &Tokenizer,
    separators: &[u32],
    prompt: &str,
) -> Option<usize> {
    if separators.is_empty() {
        return None;
    }
    // Only the split on added tokens: no normalizer (separators are matched before it).
    let pieces = tokenizer
        .get_added_vocabulary()
        .extract_and_normalize::<NormalizerWrapper>(None, prompt);
    pieces
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .rev()
        .find(|(_, _, tokens)| {
            matches!(tokens, Some(t) if t.len() == 1 && separators.binary_search(&t[0].id).is_ok())
        })
        .map(|(_, (_, end), _)| end)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::Value;
    use tokenizers::Tokenizer;

    use super::separator_ids;
    use crate::PreferenceTokenizer;

    fn bundled_json() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/arith-prefs/tokenizer/tokenizer.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The bundled tokenizer with `edit` applied to its `tokenizer.json`.
    fn tokenizer(edit: impl FnOnce(&mut Value)) -> PreferenceTokenizer {
        let mut json = bundled_json();
        edit(&mut json);
        let tok = Tokenizer::from_str(&json.to_string()).unwrap();
        PreferenceTokenizer::new(tok, Default::default(), None).unwrap()
    }

    fn add_token(json: &mut Value, id: u64, content: &str, flag: Option<&str>) {
        let mut token = serde_json::json!({
            "id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        });
        if let Some(flag) = flag {
            token[flag] = Value::Bool(true);
        }
        json["added_tokens"].as_array_mut().unwrap().push(token);
    }

    fn set_flag(json: &mut Value, content: &str, flag: &str) {
        for t in json["added_tokens"].as_array_mut().unwrap() {
            if t["content"] == content {
                t[flag] = Value::Bool(true);
            }
        }
    }

    /// Random prompts and completions built from pieces that stress the cut: special tokens,
    /// fragments of them split across prompt and completion, spaces, digits, non-ASCII text.
    fn check_against_whole_encoding(tok: &PreferenceTokenizer, rows: usize) -> usize {
        let pieces = [
            "<|im_start|>",
            "<|im_end|>",
            "<|endoftext|>",
            "<|im_",
            "start|>",
            "_end|>",
            "<|",
            "|>",
            "user\n",
            "assistant\n",
            " ",
            "  ",
            "\n",
            "\n\n",
            "a",
            "What is",
            " 12",
            "3",
            "'s",
            "é",
            " 東京",
            "x<|im",
            "<|im_start|>x",
            ".",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut reused = 0;
        for _ in 0..rows {
            let mut text = || -> String {
                let n = (next() % 7) as usize;
                (0..n)
                    .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                    .collect()
            };
            let (prompt, chosen, rejected) = (text(), text(), text());
            let encoded = tok.encode_prompt(&prompt).unwrap();
            reused += encoded.prefix.is_some_and(|(_, kept)| kept > 0) as usize;
            assert_eq!(
                encoded.ids,
                tok.encode_reference(&prompt).unwrap(),
                "{prompt:?}"
            );
            for completion in [&chosen, &rejected] {
                assert_eq!(
                    tok.encode_continuation(&encoded, completion).unwrap(),
                    tok.encode_reference(&format!("{prompt}{completion}"))
                        .unwrap(),
                    "{prompt:?} + {completion:?}"
                );
            }
        }
        reused
    }

    #[test]
    fn bundled_tokenizer_reuses_prompts_after_its_special_tokens() {
        let tok = tokenizer(|_| {});
        let ids = |s: &str| tok.inner().token_to_id(s).unwrap();
        assert_eq!(
            separator_ids(tok.inner()),
            [ids("<|endoftext|>"), ids("<|im_start|>"), ids("<|im_end|>")]
        );
        let prompt = "<|im_start|>user\nWhat is 30 - 19?<|im_end|>\n<|im_start|>assistant\n";
        let encoded = tok.encode_prompt(prompt).unwrap();
        let (cut, kept) = encoded.prefix.unwrap();
        assert_eq!(&prompt[cut..], "assistant\n");
        assert_eq!(encoded.ids[kept - 1], ids("<|im_start|>"));
        let reused = check_against_whole_encoding(&tok, 3000);
        assert!(reused > 1000, "the cut was taken in {reused} rows only");
    }

    #[test]
    fn tokens_that_look_around_or_overlap_keep_the_ids_exact() {
        // rstrip swallows the spaces after the token: not a separator.
        let rstrip = tokenizer(|j| set_flag(j, "<|im_end|>", "rstrip"));
        assert_eq!(separator_ids(rstrip.inner()).len(), 2);
        check_against_whole_encoding(&rstrip, 1000);
        // lstrip reaches back into the text before a token: allowed, still exact.
        let lstrip = tokenizer(|j| set_flag(j, "<|im_start|>", "lstrip"));
        assert_eq!(separator_ids(lstrip.inner()).len(), 3);
        check_against_whole_encoding(&lstrip, 1000);
        // A longer token contains `<|im_start|>`; another overlaps its start.
        let overlapping = tokenizer(|j| {
            add_token(j, 600, "<|im_start|>x", None);
            add_token(j, 601, "x<|im", None);
        });
        let seps = separator_ids(overlapping.inner());
        assert!(!seps.contains(&overlapping.inner().token_to_id("<|im_start|>").unwrap()));
        check_against_whole_encoding(&overlapping, 1000);
        // single_word looks at the characters around a match: no reuse at all.
        let single = tokenizer(|j| add_token(j, 600, "<|tool|>", Some("single_word")));
        assert!(separator_ids(single.inner()).is_empty());
        assert_eq!(check_against_whole_encoding(&single, 300), 0);
    }
}
