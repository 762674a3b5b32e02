//! `fp16: true` on the CPU backend (flex computes f16 natively): f16 compute with f32 master
//! weights and dynamic loss scaling (`orpo_train::precision`). The 20 steps of the TRL trajectory
//! fixture stay finite and follow TRL's f32 losses; a forced overflow of the scaled gradients
//! skips steps and lowers the scale, and the run trains on. With the f32 attention mask value
//! (-1e9, -inf in f16) the first step's loss was NaN, here and on an H100 through WGPU. Its own
//! test binary: a device's float type is set once per process (its tests share the f16 device).

use burn::tensor::FloatDType;

mod common;

#[test]
fn fp16_training_stays_finite_and_near_the_f32_trajectory() {
    let worst = common::low_precision_run(FloatDType::F16);
    eprintln!("fp16 against TRL's f32 losses: worst relative difference {worst:.2e}");
    // f16 keeps 11 bits of mantissa (relative rounding 2^-12 ≈ 2.4e-4 per operation).
    assert!(worst < 1e-2, "fp16 loss strays {worst:.2e} from f32");
}

/// f16 loss scaling (torch's `GradScaler`): with an initial scale of 2^24 the scaled gradients
/// overflow f16 (largest finite value 65504), so the first steps are skipped, each halving the
/// scale, until they fit; the run then trains on, and its weights still move and its loss falls.
/// (The fixture's gradients fit at torch's default 2^16: the test above skips no step.)
#[test]
fn fp16_overflow_skips_the_step_lowers_the_scale_and_continues() {
    use burn::tensor::Device;
    use orpo_model::DecoderForCausalLM;
    use orpo_train::precision::LossScaler;
    use orpo_train::{OrpoConfig, OrpoTrainer, read_metrics, training_device};

    let (dir, fx) = common::fixture();
    let out = tempfile::tempdir().unwrap();
    let cfg = OrpoConfig {
        fp16: true,
        ..common::config(&fx["settings"], out.path())
    };
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    let (tokenizer, data) = common::fixture_data(&dir);
    let initial = 2f64.powi(24);
    let summary = OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .with_loss_scaler(LossScaler::new(initial))
        .quiet(true)
        .train()
        .unwrap();
    let logged = read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    let skipped = summary.skipped_steps;
    eprintln!(
        "skipped {skipped} of 20 steps; logged loss scales {:?}",
        logged
            .iter()
            .map(|e| e.values["loss_scale"])
            .collect::<Vec<_>>()
    );
    assert!(skipped >= 1, "no step overflowed at scale 2^24");
    assert!(skipped <= 10, "{skipped} steps skipped");
    // One log line per applied step (logging_steps 1): the skipped ones have none.
    assert_eq!(logged.len(), 20 - skipped);
    let first = &logged[0];
    assert_eq!(
        first.step,
        skipped + 1,
        "the first steps were the skipped ones"
    );
    // Each skip halved the scale; no growth within 2000 good steps.
    assert_eq!(
        first.values["loss_scale"],
        initial / 2f64.powi(skipped as i32)
    );
    assert_eq!(first.values["loss_scale_skipped_steps"], skipped as f64);
    assert!(logged.iter().all(|e| e.values["loss"].is_finite()));
    assert!(logged.last().unwrap().values["loss"] < first.values["loss"]);
    // The run's weights moved (the skipped steps did not stop it).
    let before = common::read_weights(&dir.join("model/model.safetensors"));
    let after = common::read_weights(&out.path().join("final/model.safetensors"));
    let moved = before
        .iter()
        .any(|(name, (_, w))| w.iter().zip(&after[name].1).any(|(a, b)| a != b));
    assert!(moved);
}
