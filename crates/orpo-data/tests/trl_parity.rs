//! Token ids and label masks identical to TRL v0.25's own `tokenize_row` (fixtures written by
//! `scripts/make_data_fixtures.py` with the bundled tokenizer).

mod common;

use std::collections::BTreeMap;

use common::*;
use orpo_data::{
    CompletionBudget, DataConfig, PreferenceDataset, PreferenceTokenizer, TokenizeConfig,
    TruncationMode,
};
use serde_json::Value;

fn fixture() -> Value {
    let path = repo_root().join("tests/fixtures/data/trl_parity.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn prompt_len(labels: &Value) -> usize {
    labels
        .as_array()
        .unwrap()
        .iter()
        .take_while(|x| x.as_i64() == Some(-100))
        .count()
}

fn setup(fx: &Value, cfg: &Value) -> (PreferenceTokenizer, TokenizeConfig) {
    let mut tok = PreferenceTokenizer::from_dir(tokenizer_dir()).unwrap();
    if cfg["bos"].as_bool().unwrap() {
        let mut special = BTreeMap::new();
        special.insert("bos_token".to_string(), "<|endoftext|>".to_string());
        special.insert("eos_token".to_string(), "<|im_end|>".to_string());
        special.insert("pad_token".to_string(), "<|endoftext|>".to_string());
        tok = PreferenceTokenizer::new(
            tok.inner().clone(),
            special,
            Some(fx["bos_template"].as_str().unwrap()),
        )
        .unwrap();
    }
    let tc = TokenizeConfig {
        max_length: Some(cfg["max_length"].as_u64().unwrap() as usize),
        max_prompt_length: cfg["max_prompt_length"].as_u64().unwrap() as usize,
        max_completion_length: None,
        truncation_mode: match cfg["truncation_mode"].as_str().unwrap() {
            "keep_end" => TruncationMode::KeepEnd,
            _ => TruncationMode::KeepStart,
        },
        completion_budget: CompletionBudget::TrlV025,
    };
    (tok, tc)
}

fn input() -> PreferenceDataset {
    let path = repo_root().join("tests/fixtures/data/trl_parity_input.jsonl");
    PreferenceDataset::load(path, None, &DataConfig::default()).unwrap()
}

#[test]
fn rendering_matches_trl() {
    let fx = fixture();
    let ds = input();
    for cfg in fx["configs"].as_array().unwrap() {
        let (tok, _) = setup(&fx, cfg);
        let texts = ds.render(&tok).unwrap();
        let rows = cfg["rows"].as_array().unwrap();
        assert_eq!(texts.len(), rows.len());
        for (i, (t, row)) in texts.iter().zip(rows).enumerate() {
            let t = t.as_ref().unwrap();
            let want = &row["text"];
            assert_eq!(
                t.prompt,
                want["prompt"].as_str().unwrap(),
                "{} row {i}",
                cfg["name"]
            );
            assert_eq!(
                t.chosen,
                want["chosen"].as_str().unwrap(),
                "{} row {i}",
                cfg["name"]
            );
            assert_eq!(
                t.rejected,
                want["rejected"].as_str().unwrap(),
                "{} row {i}",
                cfg["name"]
            );
        }
    }
}

#[test]
fn token_ids_and_labels_match_trl_exactly() {
    let fx = fixture();
    let ds = input();
    let mut prompt_truncations = 0;
    let mut completion_truncations = 0;
    let mut boundary_merges = 0;
    for cfg in fx["configs"].as_array().unwrap() {
        let (tok, tc) = setup(&fx, cfg);
        let (pairs, report) = ds.tokenize(&tok, &tc).unwrap();
        if report.prompt_truncated == 0 {
            let texts = ds.render(&tok).unwrap();
            for (p, t) in pairs.iter().zip(&texts) {
                let alone = tok.encode(&t.as_ref().unwrap().prompt).unwrap().len();
                let bos = tok.bos_id().is_some() as usize;
                boundary_merges += (p.chosen_prompt_len != alone + bos) as usize;
            }
        }
        let rows = cfg["rows"].as_array().unwrap();
        assert_eq!(pairs.len(), rows.len(), "{}", cfg["name"]);
        prompt_truncations += report.prompt_truncated;
        completion_truncations += report.completion_truncated;
        for (i, (p, row)) in pairs.iter().zip(rows).enumerate() {
            let name = &cfg["name"];
            assert_eq!(
                p.chosen_ids,
                ids(&row["chosen_input_ids"]),
                "{name} row {i} chosen"
            );
            assert_eq!(
                p.rejected_ids,
                ids(&row["rejected_input_ids"]),
                "{name} row {i} rejected"
            );
            assert_eq!(
                p.chosen_prompt_len,
                prompt_len(&row["chosen_labels"]),
                "{name} row {i}"
            );
            assert_eq!(
                p.rejected_prompt_len,
                prompt_len(&row["rejected_labels"]),
                "{name} row {i}"
            );
        }
    }
    // the fixtures reach both truncation branches and a BPE merge at the prompt boundary
    assert!(prompt_truncations > 0 && completion_truncations > 0);
    assert!(boundary_merges > 0);
}

#[test]
fn default_budget_keeps_trl_prefix_and_fills_max_length() {
    let fx = fixture();
    let ds = input();
    let mut longer = 0;
    for cfg in fx["configs"].as_array().unwrap() {
        let (tok, mut tc) = setup(&fx, cfg);
        tc.completion_budget = CompletionBudget::Remaining;
        let max = tc.max_length.unwrap();
        let (pairs, _) = ds.tokenize(&tok, &tc).unwrap();
        for (p, row) in pairs.iter().zip(cfg["rows"].as_array().unwrap()) {
            for (ours, theirs) in [
                (&p.chosen_ids, ids(&row["chosen_input_ids"])),
                (&p.rejected_ids, ids(&row["rejected_input_ids"])),
            ] {
                assert!(ours.starts_with(&theirs));
                assert!(ours.len() <= max);
                longer += (ours.len() > theirs.len()) as usize;
            }
        }
    }
    assert!(
        longer > 0,
        "the fixtures contain a row where the rules differ"
    );
}
