//! Trains the small byte-level BPE tokenizer bundled with `datasets/arith-prefs`.
//!
//! ```text
//! cargo run -p orpo-data --release --example train_tokenizer [-- DATASET_DIR [VOCAB_SIZE]]
//! ```
//!
//! Writes `DATASET_DIR/tokenizer/tokenizer.json` and `tokenizer_config.json` (ChatML chat
//! template, no BOS, EOS `<|im_end|>`, pad `<|endoftext|>`). Digits are split one by one (helps
//! arithmetic). Deterministic for a given dataset.

use std::path::PathBuf;

use orpo_data::{CHATML_TEMPLATE, Content, DataConfig, PreferenceDataset};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Tokenizer, TokenizerBuilder,
};

const ENGLISH: &str = "You are a helpful assistant. Please answer the question and show your work. \
The answer is correct because the numbers add up. Check the sum again before you reply. \
What is the capital of France? Paris is the capital of France. Think carefully step by step. \
I don't know the answer yet, but I will find out. This is not right; that one is wrong. \
Could you explain how to add two numbers? First add the ones, then carry the tens. \
Subtract the smaller number from the larger one. The result should be a whole number. \
Thank you for your help. You are welcome, let me know if there is anything else. \
Write a short story about a cat who learns to count. Once upon a time there was a little cat. \
The quick brown fox jumps over the lazy dog. All good things come to those who wait. \
Sure, here is a summary of the text with the main points and an example of each point. \
Hello, how are you today? I am fine, thanks for asking. Good morning and good night. \
Because of this, we can say that the model prefers the chosen answer over the rejected one";

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

fn texts(c: &Content, out: &mut Vec<String>) {
    match c {
        Content::Text(t) => out.push(t.clone()),
        Content::Messages(ms) => out.extend(ms.iter().map(|m| m.content.clone())),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/arith-prefs").to_string()
    }));
    let vocab_size: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(512);

    let mut corpus = Vec::new();
    for split in ["train", "test"] {
        let ds = PreferenceDataset::load(&root, Some(split), &DataConfig::default())?;
        for ex in ds.examples() {
            texts(&ex.prompt, &mut corpus);
            texts(&ex.chosen, &mut corpus);
            texts(&ex.rejected, &mut corpus);
        }
    }
    // role names and template text, so that rendered chats tokenize compactly, and some common
    // English so that the vocabulary is not all arithmetic
    for _ in 0..100 {
        corpus.push("system\nuser\nassistant\n".to_string());
        corpus.extend(ENGLISH.split('.').map(str::to_string));
    }

    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(
                SPECIALS
                    .iter()
                    .map(|s| AddedToken::from(*s, true))
                    .collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default().into())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
    ))
    .with_post_processor(Some(byte_level.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(|e| e.to_string())?;
    tokenizer
        .train(&mut trainer, corpus.iter())
        .map_err(|e| e.to_string())?;
    tokenizer.add_special_tokens(
        &SPECIALS
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect::<Vec<_>>(),
    );
    let tokenizer = Tokenizer::from(tokenizer);

    let out = root.join("tokenizer");
    std::fs::create_dir_all(&out)?;
    tokenizer
        .save(out.join("tokenizer.json"), false)
        .map_err(|e| e.to_string())?;
    let mut added = serde_json::Map::new();
    for s in SPECIALS {
        let id = tokenizer.token_to_id(s).expect("special token");
        added.insert(
            id.to_string(),
            serde_json::json!({"content": s, "lstrip": false, "normalized": false,
                "rstrip": false, "single_word": false, "special": true}),
        );
    }
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "clean_up_tokenization_spaces": false,
        "model_max_length": 1024,
        "chat_template": CHATML_TEMPLATE,
    });
    std::fs::write(
        out.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&config)? + "\n",
    )?;
    println!(
        "wrote {} (vocab {})",
        out.display(),
        tokenizer.get_vocab_size(true)
    );
    Ok(())
}
