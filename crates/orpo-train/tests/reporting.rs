//! What a run reports besides metrics.jsonl: `report_to: tensorboard` (an event file with every
//! logged metric under transformers' names, at its step) and `generate_during_eval: true`
//! (`samples.jsonl`: greedy completions of the first evaluation prompts after every
//! evaluation), on the trajectory fixture's tiny model.
//!
//! `ORPO_REPORTING_RUN_DIR=DIR` keeps the run in DIR, for
//! `scripts/check_tensorboard_events.py --logdir DIR`, which loads it with the real
//! `tensorboard` package as `tensorboard --logdir` does.

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset};
use orpo_model::{DecoderForCausalLM, GenerationConfig};
use orpo_train::config::ReportTo;
use orpo_train::samples::{SAMPLES_FILE, read_samples};
use orpo_train::tensorboard::{read_events, tensorboard_tag};
use orpo_train::{OrpoTrainer, read_metrics, training_device};

#[test]
fn tensorboard_events_and_samples_follow_the_log() {
    let (dir, fx) = common::fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out: PathBuf = match std::env::var_os("ORPO_REPORTING_RUN_DIR") {
        Some(d) => {
            let _ = std::fs::remove_dir_all(&d);
            d.into()
        }
        None => tmp.path().join("run"),
    };
    let cfg = orpo_train::OrpoConfig {
        max_steps: 4,
        eval_steps: Some(2),
        per_device_eval_batch_size: 3,
        max_eval_samples: Some(6),
        max_completion_length: Some(12),
        report_to: ReportTo::List(vec!["tensorboard".into()]),
        generate_during_eval: true,
        logging_dir: None,
        ..common::config(&fx["settings"], &out)
    };
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    let (tokenizer, data) = common::fixture_data(&dir);
    let eval =
        PreferenceDataset::load(dir.join("pairs.jsonl"), None, &DataConfig::default()).unwrap();
    let summary = OrpoTrainer::new(model, cfg.clone(), data, tokenizer.clone())
        .unwrap()
        .with_eval_dataset(eval)
        .unwrap()
        .quiet(true)
        .train()
        .unwrap();
    assert_eq!(summary.global_step, 4);

    // One event file under output_dir/runs/<stamp>_<host>/, holding every logged value.
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let files: Vec<PathBuf> = std::fs::read_dir(&runs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let events = read_events(&files[0]).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let logged = read_metrics(&out.join("metrics.jsonl")).unwrap();
    // 4 logging steps and 2 evaluations (steps 2 and 4).
    assert_eq!(logged.len(), 6);
    let mut scalars = 0;
    for entry in &logged {
        let mut expected: Vec<(String, f32)> = entry
            .values
            .iter()
            .map(|(k, v)| (tensorboard_tag(k), *v as f32))
            .collect();
        expected.push(("train/epoch".into(), entry.epoch as f32));
        for (tag, value) in expected {
            let found = events.iter().any(|e| {
                e.step == entry.step as i64
                    && e.scalars
                        .iter()
                        .any(|(t, v)| *t == tag && v.to_bits() == value.to_bits())
            });
            assert!(
                found,
                "{tag} = {value} at step {} is not in the events",
                entry.step
            );
            scalars += 1;
        }
    }
    let written: usize = events.iter().map(|e| e.scalars.len()).sum();
    assert_eq!(
        written, scalars,
        "the events hold exactly the logged values"
    );
    assert!(events.iter().any(|e| {
        e.step == 4
            && e.scalars
                .iter()
                .any(|(t, _)| t == "eval/rewards/accuracies")
    }));

    // samples.jsonl: per evaluation, the first per_device_eval_batch_size eval prompts.
    let rows = read_samples(&out.join(SAMPLES_FILE)).unwrap();
    assert_eq!(rows.len(), 2 * 3, "{rows:?}");
    assert_eq!(
        rows.iter().map(|r| (r.step, r.index)).collect::<Vec<_>>(),
        [(2, 0), (2, 1), (2, 2), (4, 0), (4, 1), (4, 2)]
    );
    let pairs = std::fs::read_to_string(dir.join("pairs.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(pairs.lines().next().unwrap()).unwrap();
    assert!(
        rows[0].prompt.contains(first["prompt"].as_str().unwrap()),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        rows[0].chosen.trim(),
        first["chosen"].as_str().unwrap().trim()
    );
    // The last evaluation's model is final/: its greedy completions, by orpo-model's own
    // KV-cache generation, are the rows of step 4.
    let final_model =
        DecoderForCausalLM::from_pretrained(&summary.final_model_dir, &Device::flex()).unwrap();
    let eos: Vec<u32> = tokenizer.eos_id().into_iter().collect();
    let (pairs, _) = PreferenceDataset::load(dir.join("pairs.jsonl"), None, &DataConfig::default())
        .unwrap()
        .tokenize(&tokenizer, &orpo_train::tokenize_config(&cfg))
        .unwrap();
    for row in &rows[3..] {
        let pair = &pairs[row.index];
        let prompt = &pair.chosen_ids[..pair.chosen_prompt_len];
        let generated = final_model.generate(
            prompt,
            &GenerationConfig {
                max_new_tokens: 12,
                temperature: 0.0,
                eos_token_ids: eos.clone(),
                ..Default::default()
            },
        );
        let text = tokenizer.inner().decode(&generated, true).unwrap();
        assert_eq!(text, row.completion, "pair {}", row.index);
    }
}
