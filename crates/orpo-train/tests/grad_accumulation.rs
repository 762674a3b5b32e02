//! Gradient accumulation is one big batch: 4 pairs × 1 micro-batch, 2 × 2 and 1 × 4 give the same
//! losses, metrics and weights, with pairs of very different lengths (so that the mean of the
//! micro-batch means, the Hugging Face Trainer's rule, would not be the big batch's token mean).
//! Data parallelism is accumulation across devices: 2 pairs on each of 2 devices, and 1 pair ×
//! 2 accumulation steps on each of 2 devices, give the same again. (The CPU backend has one
//! device, so the "two devices" are two replicas on it, each run on its own thread: the code path
//! of `--devices cuda:0,cuda:1` except the transfers.)

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::DecoderForCausalLM;
use orpo_train::{BatchOrder, LogEntry, OrpoConfig, OrpoTrainer, SchedulerType};

mod common;
use common::root;

/// 8 pairs whose prompts and completions differ widely in length (4 to 60 tokens).
const PAIRS: [(&str, &str, &str); 8] = [
    ("What is 3 + 4?", " 7.", " 8."),
    (
        "What is 30 - 19? Show the working, then give the answer.",
        " Start from 30. Taking away 10 leaves 20; taking away 9 more leaves 11. So 30 - 19 = 11.",
        " 30 - 19 = 9.",
    ),
    (
        "What is 9 - 2?",
        " 9 - 2 = 7.",
        " 9 - 2 = 6, I think, but it could also be 5.",
    ),
    (
        "Add 48 and 93.",
        " 48 + 93 = 141.",
        " 48 + 93 = 140. Adding the tens gives 130 and the units 10, so 140.",
    ),
    ("What is 6 + 6?", " 12.", " 13."),
    (
        "What is 52 - 48? Answer in a full sentence, please.",
        " The difference between 52 and 48 is 4.",
        " 5.",
    ),
    (
        "What is 22 + 33?",
        " 55.",
        " 22 + 33 = 53, because 20 + 30 = 50 and 2 + 3 = 3.",
    ),
    ("Compute 43 - 14.", " 43 - 14 = 29.", " 39."),
];

fn run(
    dir: &Path,
    batch: usize,
    accumulation: usize,
    devices: usize,
) -> (Vec<LogEntry>, BTreeMap<String, Vec<f32>>) {
    let data_file = dir.join("pairs.jsonl");
    if !data_file.exists() {
        let lines: Vec<String> = PAIRS
            .iter()
            .map(|(p, c, r)| {
                serde_json::json!({"prompt": p, "chosen": c, "rejected": r}).to_string()
            })
            .collect();
        std::fs::write(&data_file, lines.join("\n") + "\n").unwrap();
    }
    let out = dir.join(format!("run-{batch}x{accumulation}x{devices}"));
    let device = Device::flex().autodiff();
    let model =
        DecoderForCausalLM::from_pretrained(root().join("tests/fixtures/train/model"), &device)
            .unwrap();
    let tokenizer =
        PreferenceTokenizer::from_dir(root().join("datasets/arith-prefs/tokenizer")).unwrap();
    let data = PreferenceDataset::load(&data_file, None, &DataConfig::default()).unwrap();
    let config = OrpoConfig {
        output_dir: out.display().to_string(),
        learning_rate: 1e-3,
        lr_scheduler_type: SchedulerType::Constant,
        per_device_train_batch_size: batch,
        gradient_accumulation_steps: accumulation,
        max_steps: 3,
        weight_decay: 0.01,
        beta: 0.5,
        logging_steps: 1,
        save_steps: 0,
        train_sampling_strategy: BatchOrder::Sequential,
        ..Default::default()
    };
    let mut trainer = OrpoTrainer::new(model, config, data, tokenizer)
        .unwrap()
        .quiet(true)
        .with_devices(vec![device; devices])
        .unwrap();
    assert_eq!(trainer.world_size(), devices);
    trainer.train().unwrap();
    let metrics = orpo_train::read_metrics(&out.join("metrics.jsonl")).unwrap();
    let (tensors, _) =
        orpo_train::io::read_safetensors(&out.join("final/model.safetensors")).unwrap();
    (metrics, tensors.into_iter().collect())
}

#[test]
fn accumulated_micro_batches_update_as_one_big_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (base_metrics, base_weights) = run(dir.path(), 4, 1, 1);
    let initial: BTreeMap<String, Vec<f32>> = orpo_train::io::read_safetensors(
        &root().join("tests/fixtures/train/model/model.safetensors"),
    )
    .unwrap()
    .0
    .into_iter()
    .collect();
    // The run moved the weights far beyond the tolerance (so equal weights mean something).
    let moved = base_weights
        .iter()
        .flat_map(|(k, v)| v.iter().zip(&initial[k]).map(|(a, b)| (a - b).abs()))
        .fold(0f32, f32::max);
    assert!(moved > 1e-3, "largest weight change {moved}");

    for (batch, accumulation, devices) in [(2, 2, 1), (1, 4, 1), (2, 1, 2), (1, 2, 2)] {
        let (metrics, weights) = run(dir.path(), batch, accumulation, devices);
        let what = format!("batch {batch} × accumulation {accumulation} × {devices} devices");
        assert_eq!(metrics.len(), base_metrics.len());
        for (a, b) in metrics.iter().zip(&base_metrics) {
            assert_eq!(a.step, b.step);
            for name in [
                "loss",
                "nll_loss",
                "log_odds_ratio",
                "log_odds_chosen",
                "logps/chosen",
                "logps/rejected",
                "rewards/accuracies",
                "rewards/margins",
                "grad_norm",
            ] {
                let (x, y) = (a.values[name], b.values[name]);
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{what}, step {}: {name} {x} vs {y} with one batch",
                    a.step
                );
            }
        }
        let mut worst = (0f32, String::new());
        for (name, w) in &weights {
            let base = &base_weights[name];
            for (x, y) in w.iter().zip(base) {
                let d = (x - y).abs();
                if d > worst.0 {
                    worst = (d, name.clone());
                }
            }
        }
        assert!(
            worst.0 <= 1e-5,
            "{what}: weights differ from one batch's by up to {:.2e} ({})",
            worst.0,
            worst.1
        );
    }
}
