//! [`PreferenceTokenizer`]: a `tokenizers` tokenizer plus what `transformers` reads from
//! `tokenizer_config.json` / `special_tokens_map.json`: special tokens and the chat template.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use tokenizers::{
    DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, Tokenizer, TokenizerImpl,
};

use crate::error::{DataError, Result};
use crate::pretokenize::FastPreTokenizer;
use crate::prompt_prefix::{EncodedPrompt, cut_after_last_separator, separator_ids};
use crate::template::ChatTemplate;

/// The tokenizer with its pre-tokenizer replaced by [`FastPreTokenizer`] (same ids, faster).
type FastTokenizer = TokenizerImpl<
    ModelWrapper,
    NormalizerWrapper,
    FastPreTokenizer,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// The token ids of an encoding, or the tokenizer's error.
fn ids(encoding: tokenizers::Result<tokenizers::Encoding>) -> Result<Vec<u32>> {
    encoding
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| DataError::Tokenizer(e.to_string()))
}

/// `tokenizer` with a [`FastPreTokenizer`], when its pre-tokenizer has a step to speed up.
fn fast_tokenizer(tokenizer: &Tokenizer) -> Result<Option<FastTokenizer>> {
    let Some(pre) = tokenizer
        .get_pre_tokenizer()
        .and_then(FastPreTokenizer::new)
    else {
        return Ok(None);
    };
    let mut fast = FastTokenizer::new(tokenizer.get_model().clone());
    fast.with_normalizer(tokenizer.get_normalizer().cloned())
        .with_pre_tokenizer(Some(pre))
        .with_post_processor(tokenizer.get_post_processor().cloned())
        .with_decoder(tokenizer.get_decoder().cloned())
        .with_added_vocabulary(tokenizer.get_added_vocabulary().clone())
        .with_padding(tokenizer.get_padding().cloned())
        .with_truncation(tokenizer.get_truncation().cloned())
        .map_err(|e| DataError::Tokenizer(e.to_string()))?;
    Ok(Some(fast))
}

/// A tokenizer with its special tokens and chat template.
#[derive(Debug, Clone)]
pub struct PreferenceTokenizer {
    tokenizer: Tokenizer,
    /// Used by [`Self::encode`] when present: the same ids as `tokenizer`, faster.
    pub(crate) fast: Option<FastTokenizer>,
    /// Added tokens after which a prompt's encoding is reused (`crate::prompt_prefix`).
    separators: Vec<u32>,
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
    pad: Option<(String, u32)>,
    special: BTreeMap<String, String>,
    template: ChatTemplate,
    has_own_template: bool,
}

fn token_string(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Option<Json>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))
}

fn chat_template_of(config: &Json) -> Option<String> {
    match config.get("chat_template")? {
        Json::String(s) => Some(s.clone()),
        // a list of named templates: take "default", else the first
        Json::Array(list) => {
            let named = |want: Option<&str>| {
                list.iter().find_map(|t| {
                    let name = t.get("name").and_then(Json::as_str);
                    let tmpl = t.get("template").and_then(Json::as_str)?;
                    (want.is_none() || name == want).then(|| tmpl.to_string())
                })
            };
            named(Some("default")).or_else(|| named(None))
        }
        _ => None,
    }
}

impl PreferenceTokenizer {
    /// Loads `tokenizer.json`, `tokenizer_config.json` and, if present, `special_tokens_map.json`
    /// and `chat_template.jinja` from a directory (a Hugging Face model or tokenizer folder).
    ///
    /// Special tokens come from `tokenizer_config.json` (`bos_token`, `eos_token`, `pad_token`,
    /// `unk_token`; strings or `{content: …}` objects), else from `special_tokens_map.json`.
    /// Without a chat template the ChatML template is used ([`crate::CHATML_TEMPLATE`]).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
        let map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Json::Null);
        let mut special = BTreeMap::new();
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            // an explicit null in tokenizer_config.json means "none"
            let s = match config.get(key) {
                Some(Json::Null) => None,
                Some(v) => token_string(Some(v)),
                None => token_string(map.get(key)),
            };
            if let Some(s) = s {
                special.insert(key.to_string(), s);
            }
        }
        let mut template_src = chat_template_of(&config);
        let jinja = dir.join("chat_template.jinja");
        if template_src.is_none() && jinja.exists() {
            template_src =
                Some(std::fs::read_to_string(&jinja).map_err(|e| DataError::io(&jinja, e))?);
        }
        Self::build(tokenizer, special, template_src.as_deref())
    }

    /// Wraps an existing tokenizer. `special_tokens` maps `bos_token`, `eos_token`, `pad_token`,
    /// `unk_token` to token strings (each must be in the vocabulary); `chat_template` is a Jinja
    /// source, `None` for ChatML.
    pub fn new(
        tokenizer: Tokenizer,
        special_tokens: BTreeMap<String, String>,
        chat_template: Option<&str>,
    ) -> Result<Self> {
        Self::build(tokenizer, special_tokens, chat_template)
    }

    fn build(
        tokenizer: Tokenizer,
        special: BTreeMap<String, String>,
        template: Option<&str>,
    ) -> Result<Self> {
        let id = |key: &str| -> Result<Option<(String, u32)>> {
            match special.get(key) {
                None => Ok(None),
                Some(s) => match tokenizer.token_to_id(s) {
                    Some(id) => Ok(Some((s.clone(), id))),
                    None => Err(DataError::Tokenizer(format!(
                        "{key} `{s}` is not in the vocabulary"
                    ))),
                },
            }
        };
        let bos = id("bos_token")?;
        let eos = id("eos_token")?;
        let pad = id("pad_token")?;
        let has_own_template = template.is_some();
        let template = match template {
            Some(src) => ChatTemplate::new(src, special.clone())?,
            None => ChatTemplate::chatml(special.clone()),
        };
        Ok(PreferenceTokenizer {
            fast: fast_tokenizer(&tokenizer)?,
            separators: separator_ids(&tokenizer),
            tokenizer,
            bos,
            eos,
            pad,
            special,
            template,
            has_own_template,
        })
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// BOS id, if the tokenizer has a BOS token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|t| t.1)
    }

    /// EOS id, if any.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos.as_ref().map(|t| t.1)
    }

    /// Pad id, if the tokenizer has a pad token.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad.as_ref().map(|t| t.1)
    }

    /// The id used for padding: the pad token, else EOS, else 0.
    pub fn padding_id(&self) -> u32 {
        self.pad_id().or(self.eos_id()).unwrap_or(0)
    }

    /// The chat template (the tokenizer's own, or ChatML).
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Whether the chat template came with the tokenizer (false: ChatML fallback).
    pub fn has_own_chat_template(&self) -> bool {
        self.has_own_template
    }

    /// Replaces the chat template.
    pub fn set_chat_template(&mut self, source: &str) -> Result<()> {
        self.template = ChatTemplate::new(source, self.special.clone())?;
        self.has_own_template = true;
        Ok(())
    }

    /// Encodes text without special tokens (HF `add_special_tokens=False`).
    ///
    /// Byte-level tokenizers (GPT-2, SmolLM2, …) run with [`FastPreTokenizer`]: same ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.fast {
            Some(fast) => ids(fast.encode_fast(text, false)),
            None => self.encode_reference(text),
        }
    }

    /// Encodes a prompt whose completions [`Self::encode_continuation`] will encode.
    pub fn encode_prompt<'a>(&self, prompt: &'a str) -> Result<EncodedPrompt<'a>> {
        let ids = self.encode(prompt)?;
        let mut prefix = None;
        if let Some(cut) = cut_after_last_separator(&self.tokenizer, &self.separators, prompt) {
            let tail = self.encode(&prompt[cut..])?;
            // Always true for a separator; checked so that a surprise costs speed, not ids.
            if ids.ends_with(&tail) {
                prefix = Some((cut, ids.len() - tail.len()));
            }
        }
        Ok(EncodedPrompt {
            text: prompt,
            ids,
            prefix,
        })
    }

    /// `encode(prompt + completion)`: the prompt's tokens up to its last special token that
    /// separates the text (the ChatML prompt's last `<|im_start|>`) are reused, the rest is
    /// encoded with the completion. The ids are always those of encoding the joined text
    /// (`crate::prompt_prefix` says when reuse is exact; otherwise the text is encoded whole).
    pub fn encode_continuation(
        &self,
        prompt: &EncodedPrompt,
        completion: &str,
    ) -> Result<Vec<u32>> {
        let (cut, kept) = prompt.prefix.unwrap_or((0, 0));
        let rest = &prompt.text[cut..];
        let mut text = String::with_capacity(rest.len() + completion.len());
        text.push_str(rest);
        text.push_str(completion);
        let tail = self.encode(&text)?;
        let mut ids = Vec::with_capacity(kept + tail.len());
        ids.extend_from_slice(&prompt.ids[..kept]);
        ids.extend_from_slice(&tail);
        Ok(ids)
    }

    /// Encodes text like [`Self::encode`] but always through the original pre-tokenizer
    /// (for comparisons with the fast path).
    pub fn encode_reference(&self, text: &str) -> Result<Vec<u32>> {
        ids(self.tokenizer.encode_fast(text, false))
    }

    /// The special tokens by variable name (`bos_token`, `eos_token`, `pad_token`, `unk_token`).
    pub fn special_tokens(&self) -> &BTreeMap<String, String> {
        &self.special
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}
