//! Tokenization rules, drops, batching and the summary on the bundled dataset.

mod common;

use common::*;
use orpo_data::{
    BatchOrder, Collator, Content, DataConfig, PreferenceDataset, PreferenceExample,
    PreferenceTokenizer, TokenizeConfig, TruncationMode, batch_indices, summarize,
};

fn tok() -> PreferenceTokenizer {
    PreferenceTokenizer::from_dir(tokenizer_dir()).unwrap()
}

fn text(p: &str, c: &str, r: &str) -> PreferenceExample {
    PreferenceExample {
        prompt: Content::Text(p.into()),
        chosen: Content::Text(c.into()),
        rejected: Content::Text(r.into()),
    }
}

#[test]
fn tokenizer_files() {
    let t = tok();
    assert_eq!(t.bos_id(), None);
    assert_eq!(t.eos_id(), t.inner().token_to_id("<|im_end|>"));
    assert_eq!(t.pad_id(), t.inner().token_to_id("<|endoftext|>"));
    assert!(t.has_own_chat_template());
    assert!((256..=1024).contains(&t.vocab_size()));
}

#[test]
fn eos_appended_prompt_masked() {
    let t = tok();
    let ds = PreferenceDataset::from_examples(
        vec![text("What is 1 + 2?", " 1 + 2 = 3.", " 1 + 2 = 4.")],
        false,
    );
    let (pairs, report) = ds.tokenize(&t, &TokenizeConfig::default()).unwrap();
    assert_eq!(
        (report.rows_in, report.rows_out, report.truncated),
        (1, 1, 0)
    );
    let p = &pairs[0];
    let eos = t.eos_id().unwrap();
    assert_eq!(
        p.chosen_ids[..p.chosen_prompt_len],
        t.encode("What is 1 + 2?").unwrap()[..]
    );
    assert_eq!(*p.chosen_ids.last().unwrap(), eos);
    assert_eq!(*p.rejected_ids.last().unwrap(), eos);
    assert_eq!(
        p.chosen_completion().iter().filter(|&&x| x == eos).count(),
        1
    );
}

#[test]
fn rows_without_room_for_a_completion_are_dropped_and_counted() {
    let t = tok();
    let long = "word ".repeat(40);
    let ds = PreferenceDataset::from_examples(
        vec![text(&long, " a.", " b."), text("Hi", " a.", " b.")],
        false,
    );
    // the prompt budget takes the whole max_length: no room left
    let cfg = TokenizeConfig {
        max_length: Some(16),
        max_prompt_length: 16,
        ..Default::default()
    };
    let (pairs, report) = ds.tokenize(&t, &cfg).unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].index, 1);
    assert_eq!(report.dropped["empty_completion"], 1);
    assert_eq!(report.dropped_total(), 1);
    // a valid configuration never yields an empty completion
    let cfg = TokenizeConfig {
        max_length: Some(16),
        max_prompt_length: 8,
        truncation_mode: TruncationMode::KeepStart,
        ..Default::default()
    };
    let (pairs, report) = ds.tokenize(&t, &cfg).unwrap();
    assert_eq!((pairs.len(), report.prompt_truncated), (2, 1));
    assert_eq!(pairs[0].chosen_prompt_len, 8);
    assert_eq!(pairs[0].chosen_ids[..8], t.encode(&long).unwrap()[..8]);
    assert!(pairs[0].chosen_ids.len() <= 16);
    // max_prompt_length > max_length is rejected
    let bad = TokenizeConfig {
        max_length: Some(8),
        max_prompt_length: 16,
        ..Default::default()
    };
    assert!(ds.tokenize(&t, &bad).is_err());
}

#[test]
fn max_completion_length_caps_completions() {
    let t = tok();
    let ds = PreferenceDataset::from_examples(
        vec![text("Q?", " one two three four five six seven.", " no.")],
        false,
    );
    let cfg = TokenizeConfig {
        max_completion_length: Some(4),
        ..Default::default()
    };
    let (pairs, report) = ds.tokenize(&t, &cfg).unwrap();
    assert_eq!(pairs[0].chosen_completion().len(), 4);
    assert_eq!(report.completion_truncated, 1);
}

#[test]
fn chat_dataset_batches_and_summary() {
    let t = tok();
    let ds = PreferenceDataset::load(
        repo_root().join("datasets/arith-prefs-chat"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    let (pairs, report) = ds.tokenize(&t, &TokenizeConfig::default()).unwrap();
    assert_eq!(pairs.len(), 300);
    assert_eq!(report.truncated, 0);
    // ChatML: the prompt ends with the generation prompt, the completion with <|im_end|>\n + EOS
    let texts = ds.render(&t).unwrap();
    let first = texts[0].as_ref().unwrap();
    assert!(first.prompt.starts_with("<|im_start|>user\n"));
    assert!(first.prompt.ends_with("<|im_start|>assistant\n"));
    assert!(first.chosen.ends_with("<|im_end|>\n"));

    let collator = Collator::new(t.padding_id());
    let batches = batch_indices(&pairs, 16, BatchOrder::LengthGrouped, 7, false);
    assert_eq!(batches.len(), 19);
    for b in &batches {
        let batch = collator.collate(b.iter().map(|&i| &pairs[i]));
        let [rows, len] = batch.shape();
        assert_eq!(rows, 2 * b.len());
        assert_eq!(batch.input_ids.len(), rows * len);
        let completion: i64 = batch.completion_mask.iter().sum();
        let want: usize = b
            .iter()
            .map(|&i| pairs[i].chosen_completion().len() + pairs[i].rejected_completion().len())
            .sum();
        assert_eq!(completion as usize, want);
        let real: i64 = batch.attention_mask.iter().sum();
        let want: usize = b
            .iter()
            .map(|&i| pairs[i].chosen_ids.len() + pairs[i].rejected_ids.len())
            .sum();
        assert_eq!(real as usize, want);
    }

    let s = summarize(&ds, &pairs, &report);
    assert_eq!((s.examples, s.pairs, s.conversational), (300, 300, 300));
    assert_eq!(s.duplicate_pairs, 0);
    assert!(s.prompt_tokens.p50 > 0 && s.prompt_tokens.p50 <= s.prompt_tokens.p90);
    assert!(s.completion_tokens.max >= s.completion_tokens.p99);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["pairs"], 300);
    let txt = s.to_string();
    assert!(txt.contains("prompt tokens"), "{txt}");
}

#[test]
fn summary_counts_duplicates_and_identical_after_truncation() {
    let t = tok();
    let ex = text("Q?", " same start then a", " same start then b");
    let ds = PreferenceDataset::from_examples(vec![ex.clone(), ex, text("R?", " x", " y")], false);
    let cfg = TokenizeConfig {
        max_completion_length: Some(2),
        ..Default::default()
    };
    let (pairs, report) = ds.tokenize(&t, &cfg).unwrap();
    let s = summarize(&ds, &pairs, &report);
    assert_eq!(s.duplicate_pairs, 1);
    assert_eq!(s.identical_after_truncation, 2);
}
