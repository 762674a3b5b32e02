//! `bf16: true` on the CPU backend: the 20 steps of the TRL trajectory fixture
//! (`scripts/make_train_fixtures.py`) trained in bfloat16 — weights, activations and gradients
//! bf16, since burn has no automatic mixed precision; AdamW's moments and update f32 — stay finite
//! and follow TRL's f32 losses loosely. Its own test binary: a device's float type can be set once per process.

use burn::tensor::{DType, Device, FloatDType};
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::LlamaForCausalLM;
use orpo_train::{OrpoConfig, OrpoTrainer, read_metrics, training_device};

mod common;

use common::{config, f, fixture, root};

#[test]
fn bf16_training_stays_finite_and_near_the_f32_trajectory() {
    let (dir, fx) = fixture();
    let out = tempfile::tempdir().unwrap();
    let cfg = OrpoConfig {
        bf16: true,
        ..config(&fx["settings"], out.path())
    };
    assert!(Device::flex().supports_dtype(FloatDType::BF16));
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = LlamaForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    let (head, _) = orpo_train::CausalLm::output_head(&model);
    assert_eq!(
        head.dtype(),
        DType::BF16,
        "weights load into the run's float type"
    );
    let tokenizer =
        PreferenceTokenizer::from_dir(root().join("datasets/arith-prefs/tokenizer")).unwrap();
    let data =
        PreferenceDataset::load(dir.join("pairs.jsonl"), None, &DataConfig::default()).unwrap();
    OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .quiet(true)
        .train()
        .unwrap();

    let logged = read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    let steps = fx["steps"].as_array().unwrap();
    assert_eq!(logged.len(), steps.len());
    let mut worst = 0.0f64;
    for (ours, trl) in logged.iter().zip(steps) {
        let (a, b) = (ours.values["loss"], f(trl, "loss"));
        assert!(a.is_finite(), "step {}: loss {a}", ours.step);
        worst = worst.max((a - b).abs() / b.abs());
    }
    eprintln!("bf16 against TRL's f32 losses: worst relative difference {worst:.2e}");
    // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 2e-3 per operation).
    assert!(worst < 2e-2, "bf16 loss strays {worst:.2e} from f32");
    // And the run learned: the loss fell over the 20 steps as TRL's did.
    let first = logged.first().unwrap().values["loss"];
    let last = logged.last().unwrap().values["loss"];
    assert!(last < first, "loss {first} → {last}");
}
