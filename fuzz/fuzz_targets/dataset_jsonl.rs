//! Any bytes as a JSONL dataset: loading, validation, prompt extraction, chat-template
//! rendering, tokenization and collation must return errors, never panic.
//!
//! The first byte picks the options (column format, prompt mode, skip_bad_rows, tokenization
//! limits); the rest is the file.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use orpo_data::{ColumnFormat, DataConfig, PreferenceDataset, PromptMode};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let path = common::scratch_file("d.jsonl", body);
    let config = DataConfig {
        format: match flags & 3 {
            1 => ColumnFormat::Standard,
            2 => ColumnFormat::Conversational,
            _ => ColumnFormat::Auto,
        },
        prompt_mode: match (flags >> 2) & 3 {
            1 => PromptMode::Explicit,
            2 => PromptMode::Implicit,
            _ => PromptMode::Auto,
        },
        skip_bad_rows: flags & 0x80 != 0,
        ..DataConfig::default()
    };
    if let Ok(ds) = PreferenceDataset::load(&path, None, &config) {
        common::tokenize(&ds, flags);
    }
});
