//! A faster stand-in for `tokenizers`' byte-level pre-tokenizer on ASCII text.
//!
//! Profiling data preparation showed two thirds of the time in pre-tokenization, and more than
//! half of that in Oniguruma running GPT-2's split regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, one regex
//! search per word. On ASCII text the classes are trivial (`\s` = `\t \n \v \f \r` and space,
//! `\p{L}` = `A-Za-z`, `\p{N}` = `0-9`), so [`FastPreTokenizer`] splits with a hand-written scan
//! of that regex and leaves the byte-to-character mapping to `tokenizers`' own `ByteLevel`. Any
//! text with a non-ASCII character goes through the original pre-tokenizer unchanged, so the
//! splits (and the token ids) are always the ones `tokenizers` produces; the tests compare both
//! on tricky and random text.

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::tokenizer::pattern::Pattern;
use tokenizers::{
    OffsetReferential, OffsetType, Offsets, PreTokenizedString, PreTokenizer,
    SplitDelimiterBehavior,
};

/// A tokenizer's pre-tokenizer with every regex `ByteLevel` step replaced by [`FastByteLevel`].
///
/// A `Sequence` is flattened into its steps (applying a sequence is applying its steps in
/// order), so the common `Sequence[Digits, ByteLevel]` of SmolLM2-style tokenizers benefits too.
#[derive(Debug, Clone)]
pub struct FastPreTokenizer {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Original(PreTokenizerWrapper),
    ByteLevel(FastByteLevel),
}

impl FastPreTokenizer {
    /// The fast equivalent of `pre_tokenizer`, or `None` when it has no regex `ByteLevel` step
    /// (there is nothing to speed up: use the tokenizer as it is).
    pub fn new(pre_tokenizer: &PreTokenizerWrapper) -> Option<Self> {
        let mut steps = Vec::new();
        flatten(pre_tokenizer, &mut steps);
        steps
            .iter()
            .any(|s| matches!(s, Step::ByteLevel(_)))
            .then_some(Self { steps })
    }
}

fn flatten(pre_tokenizer: &PreTokenizerWrapper, steps: &mut Vec<Step>) {
    match pre_tokenizer {
        PreTokenizerWrapper::Sequence(seq) => {
            for inner in seq.as_ref() {
                flatten(inner, steps);
            }
        }
        PreTokenizerWrapper::ByteLevel(bl) if bl.use_regex => {
            steps.push(Step::ByteLevel(FastByteLevel::new(*bl)));
        }
        other => steps.push(Step::Original(other.clone())),
    }
}

impl PreTokenizer for FastPreTokenizer {
    fn pre_tokenize(&self, pretokenized: &mut PreTokenizedString) -> tokenizers::Result<()> {
        for step in &self.steps {
            match step {
                Step::Original(pt) => pt.pre_tokenize(pretokenized)?,
                Step::ByteLevel(bl) => bl.pre_tokenize(pretokenized)?,
            }
        }
        Ok(())
    }
}

/// `ByteLevel { use_regex: true, .. }` with the GPT-2 split done by [`Gpt2AsciiSplit`] when all
/// of the text is ASCII; otherwise the original `ByteLevel`.
#[derive(Debug, Clone)]
pub struct FastByteLevel {
    original: ByteLevel,
    /// The same settings without the regex: only the byte-to-character mapping.
    mapping_only: ByteLevel,
}

impl FastByteLevel {
    /// Wraps a `ByteLevel` pre-tokenizer (its `use_regex` should be true).
    pub fn new(original: ByteLevel) -> Self {
        let mapping_only = ByteLevel::new(false, original.trim_offsets, false);
        Self {
            original,
            mapping_only,
        }
    }
}

impl PreTokenizer for FastByteLevel {
    fn pre_tokenize(&self, pretokenized: &mut PreTokenizedString) -> tokenizers::Result<()> {
        let ascii = pretokenized
            .get_splits(OffsetReferential::Normalized, OffsetType::None)
            .iter()
            .all(|(s, _, _)| s.is_ascii());
        if !ascii || !self.original.use_regex {
            return self.original.pre_tokenize(pretokenized);
        }
        let add_prefix_space = self.original.add_prefix_space;
        pretokenized.split(|_, mut normalized| {
            if add_prefix_space && !normalized.get().starts_with(' ') {
                normalized.prepend(" ");
            }
            normalized.split(Gpt2AsciiSplit, SplitDelimiterBehavior::Isolated)
        })?;
        self.mapping_only.pre_tokenize(pretokenized)
    }
}

/// GPT-2's split regex as a hand-written scan, for ASCII text only.
#[derive(Debug, Clone, Copy)]
pub struct Gpt2AsciiSplit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Letter,
    Number,
    Other,
}

fn class(b: u8) -> Class {
    match b {
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Space,
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Number,
        _ => Class::Other,
    }
}

/// Length of the contraction (`s t re ve m ll d`) right after an apostrophe, in regex order.
fn contraction(rest: &[u8]) -> Option<usize> {
    [&b"s"[..], b"t", b"re", b"ve", b"m", b"ll", b"d"]
        .iter()
        .find(|c| rest.starts_with(c))
        .map(|c| c.len())
}

/// The end of the regex match that starts at `i` (every position starts a match).
fn match_end(s: &[u8], i: usize) -> usize {
    let n = s.len();
    let run_end =
        |from: usize, c: Class| from + s[from..].iter().take_while(|&&b| class(b) == c).count();
    if s[i] == b'\''
        && let Some(len) = contraction(&s[i + 1..])
    {
        return i + 1 + len;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    let (from, c) = match s.get(i + 1) {
        Some(&next) if s[i] == b' ' && class(next) != Class::Space => (i + 1, class(next)),
        _ => (i, class(s[i])),
    };
    if c != Class::Space {
        return run_end(from, c);
    }
    // `\s+(?!\S)`: a whitespace run, less its last character when a non-space follows it;
    // `\s+`: a single whitespace character before a non-space.
    let end = run_end(i, Class::Space);
    if end == n || end - i == 1 {
        end
    } else {
        end - 1
    }
}

impl Pattern for Gpt2AsciiSplit {
    fn find_matches(&self, inside: &str) -> tokenizers::Result<Vec<(Offsets, bool)>> {
        if !inside.is_ascii() {
            return Err(format!("Gpt2AsciiSplit: non-ASCII text {inside:?}").into());
        }
        let s = inside.as_bytes();
        let mut matches = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let end = match_end(s, i);
            matches.push(((i, end), true));
            i = end;
        }
        Ok(matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_splits(text: &str) -> Vec<String> {
        Gpt2AsciiSplit
            .find_matches(text)
            .unwrap()
            .into_iter()
            .map(|((s, e), _)| text[s..e].to_string())
            .collect()
    }

    fn original_splits(text: &str) -> Vec<String> {
        let mut pre = PreTokenizedString::from(text);
        ByteLevel::new(false, false, true)
            .pre_tokenize(&mut pre)
            .unwrap();
        pre.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(_, (s, e), _)| text[s..e].to_string())
            .collect()
    }

    #[test]
    fn known_splits() {
        assert_eq!(
            fast_splits("I'll say  \"hi\"\n\n  there's 42x"),
            [
                "I", "'ll", " say", " ", " \"", "hi", "\"", "\n\n ", " there", "'s", " 42", "x"
            ]
        );
        assert_eq!(fast_splits("a \n b   "), ["a", " \n", " b", "   "]);
        assert_eq!(fast_splits(" 'sx' 't"), [" '", "sx", "'", " '", "t"]);
    }

    #[test]
    fn every_ascii_character_in_every_context_splits_like_the_regex() {
        let all: Vec<char> = (0u8..128).map(char::from).collect();
        let probes = ["", " ", "  ", "a", "1", "'", "\n", "s", "'s", " a", "  a"];
        for &c in &all {
            for before in probes {
                for after in probes {
                    let text = format!("{before}{c}{after}{c}");
                    assert_eq!(fast_splits(&text), original_splits(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn random_text_splits_like_the_regex() {
        let alphabet: Vec<char> = " \t\n\r\x0b\x0c\x1c\x1f\x00\x7f'sStTrevmlLdD09xQ.,!?-_\"()"
            .chars()
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(fast_splits(&text), original_splits(&text), "{text:?}");
        }
    }

    /// Token ids through the whole tokenizer, fast vs original, on the bundled (SmolLM2-style
    /// `Sequence[Digits, ByteLevel]`) tokenizer and on a plain `ByteLevel` with a prefix space.
    #[test]
    fn token_ids_equal_the_original_tokenizer() {
        use crate::PreferenceTokenizer;
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../datasets/arith-prefs/tokenizer"
        );
        let bundled = PreferenceTokenizer::from_dir(dir).unwrap();
        assert!(
            bundled.fast.is_some(),
            "the bundled tokenizer should take the fast path"
        );
        let mut prefixed = bundled.inner().clone();
        prefixed.with_pre_tokenizer(Some(ByteLevel::new(true, true, true)));
        let prefixed = PreferenceTokenizer::new(prefixed, Default::default(), None).unwrap();
        let texts = [
            "<|im_start|>user\nWhat is 12 + 7?<|im_end|>\n<|im_start|>assistant\n19.<|im_end|>\n",
            "It's   12,345 \t\n\n  apples; isn't it?<|endoftext|>",
            "café 'll 東京 1²3 — ok",
            "",
            "   ",
            "<|im_end|><|im_start|>",
        ];
        for tok in [&bundled, &prefixed] {
            for text in texts {
                assert_eq!(
                    tok.encode(text).unwrap(),
                    tok.encode_reference(text).unwrap(),
                    "{text:?}"
                );
            }
        }
    }
}
