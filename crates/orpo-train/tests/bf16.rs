//! `bf16: true` on the CPU backend: bf16 compute (weights as the forward pass uses them,
//! activations, gradients) with f32 master weights in AdamW and f32 gradient sums
//! (`orpo_train::precision`). Its own test binary: a device's float type is set once per
//! process (the tests here share the one bf16 device; `f32_reference_run` runs in a child
//! process).
//!
//! - The 20 steps of the TRL trajectory fixture stay finite and near TRL's f32 losses, and
//!   follow TRL's own `bf16=True` run (`scripts/make_bf16_trajectory.py`).
//! - At a fine-tuning learning rate (8e-6), from a bf16-stored checkpoint, the weight change of a
//!   bf16 run agrees with that of an f32 run (it did not before the masters: 0.99 relative
//!   difference on SmolLM2-135M, issue 20).
//! - A bf16 run resumed from a checkpoint ends bit for bit where the uninterrupted one ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, FloatDType};
use orpo_model::{DecoderForCausalLM, SaveDtype};
use orpo_train::{OrpoConfig, OrpoTrainer, read_metrics, training_device};

mod common;

use common::{config, f, fixture, fixture_data, read_weights};

#[test]
fn bf16_training_stays_finite_and_near_the_f32_trajectory() {
    let worst = common::low_precision_run(FloatDType::BF16);
    eprintln!("bf16 against TRL's f32 losses: worst relative difference {worst:.2e}");
    // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 2e-3 per operation).
    assert!(worst < 2e-2, "bf16 loss strays {worst:.2e} from f32");
}

/// The bf16-stored copy of the trajectory fixture's model and TRL's `bf16=True` run from it.
fn bf16_fixture() -> (PathBuf, serde_json::Value) {
    let (dir, _) = fixture();
    let path = dir.join("trajectory-bf16.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} (scripts/make_bf16_trajectory.py): {e}", path.display()));
    (dir.join("model-bf16"), serde_json::from_str(&text).unwrap())
}

/// Trains `model_dir` with `cfg` on the CPU backend, in bf16 when `cfg.bf16`: the trainer's
/// summary is returned, the outputs are in `cfg.output_dir`.
fn train(model_dir: &Path, cfg: OrpoConfig) -> orpo_train::TrainSummary {
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = DecoderForCausalLM::from_pretrained(model_dir, &device).unwrap();
    let (dir, _) = fixture();
    let (tokenizer, data) = fixture_data(&dir);
    OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .quiet(true)
        .train()
        .unwrap()
}

/// The TRL trajectory in bf16 against TRL's own bf16 run (`bf16=True`: torch CPU autocast,
/// f32 parameters), both from the bf16-stored model, so that both start from the same weights.
///
/// The tolerance: the runs do not compute the same things in bf16. Autocast rounds the inputs
/// of the linear layers and attention products to bf16 but keeps the residual stream, RMSNorm,
/// the embedding and the loss's log-softmax in f32; orpo-rs keeps every activation in bf16 (the
/// residual stream is rounded after each of the 2 × 2 residual additions, RMSNorm's output is
/// bf16, the logits are bf16 before the f32 log-sum-exp). Each rounding is a relative error up
/// to 2^-9 ≈ 2e-3; on the loss (a mean log-probability over ≈ 70 tokens of a 512-way softmax)
/// they average out to a few 1e-3, and the step-to-step weight updates (lr 1e-3, normalised
/// by AdamW) carry the difference forward without amplifying it over 20 steps. Measured:
/// see `MEASURED` below; the bound is 1e-2 relative per step (TRL's own bf16 run is 6e-3 from
/// TRL's f32 run of the same start at worst, so a bound below that would ask more of us than of
/// bf16 itself), and the mean over the 20 steps within 5e-3.
#[test]
fn bf16_follows_trls_bf16_trajectory() {
    let (model_dir, trl) = bf16_fixture();
    let (_, fx) = fixture();
    let out = tempfile::tempdir().unwrap();
    let cfg = OrpoConfig {
        bf16: true,
        ..config(&fx["settings"], out.path())
    };
    train(&model_dir, cfg);
    let logged = read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    let steps = trl["steps"].as_array().unwrap();
    assert_eq!(logged.len(), steps.len());
    let (mut worst, mut sum) = (0.0f64, 0.0f64);
    let mut table = String::from("step  loss(ours bf16)  loss(TRL bf16)  rel.err\n");
    for (ours, theirs) in logged.iter().zip(steps) {
        let (a, b) = (ours.values["loss"], f(theirs, "loss"));
        let e = (a - b).abs() / b.abs();
        table.push_str(&format!("{:4}  {a:.6}  {b:.6}  {e:.2e}\n", ours.step));
        worst = worst.max(e);
        sum += e;
    }
    let mean = sum / steps.len() as f64;
    eprintln!("{table}worst {worst:.2e}, mean {mean:.2e}");
    assert!(
        worst < 1e-2 && mean < 5e-3,
        "{table}worst {worst:.2e}, mean {mean:.2e}"
    );
    // The run learned as TRL's did.
    let (first, last) = (
        logged[0].values["loss"],
        logged.last().unwrap().values["loss"],
    );
    assert!(last < first - 1.0, "loss {first} → {last}");
}

const F32_REFERENCE_OUT: &str = "ORPO_TEST_F32_REFERENCE_OUT";

/// The fine-tuning comparison's run: 4 steps at lr 8e-6 (the SmolLM2 recipe's rate) from the
/// bf16-stored model, `final/` written in f32 (from the masters in bf16).
fn fine_tuning_run(bf16: bool, out: &Path) {
    let (model_dir, _) = bf16_fixture();
    let (_, fx) = fixture();
    let cfg = OrpoConfig {
        bf16,
        learning_rate: 8e-6,
        max_steps: 4,
        save_dtype: Some(SaveDtype::F32),
        ..config(&fx["settings"], out)
    };
    train(&model_dir, cfg);
}

/// The f32 half of [`bf16_update_follows_the_f32_update_at_a_fine_tuning_rate`], which runs this
/// test in a child process (this process's CPU device computes in bf16).
#[test]
#[ignore = "run by bf16_update_follows_the_f32_update_at_a_fine_tuning_rate in a child process"]
fn f32_reference_run() {
    let out = std::env::var_os(F32_REFERENCE_OUT)
        .expect("run by bf16_update_follows_the_f32_update_at_a_fine_tuning_rate, which sets it");
    fine_tuning_run(false, Path::new(&out));
}

/// Issue 20's check: from a bf16-stored checkpoint, 4 steps at lr 8e-6 in bf16 and in f32; the
/// weight change ΔW of the bf16 run must agree with the f32 run's, ‖ΔW_bf16 − ΔW_f32‖ /
/// ‖ΔW_f32‖ ≤ 0.5. Without f32 master weights nearly every update is below half a bf16 ulp of
/// its weight and rounds away (measured here: the ratio is 1.00; with the masters see the
/// printed figure). The test also checks that this is that regime: most f32 updates are below
/// half a bf16 ulp.
#[test]
fn bf16_update_follows_the_f32_update_at_a_fine_tuning_rate() {
    let f32_out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["f32_reference_run", "--exact", "--ignored", "--quiet"])
        .env(F32_REFERENCE_OUT, f32_out.path())
        .status()
        .unwrap();
    assert!(status.success(), "the f32 reference run failed: {status}");
    let bf16_out = tempfile::tempdir().unwrap();
    fine_tuning_run(true, bf16_out.path());

    let (model_dir, _) = bf16_fixture();
    let initial = read_weights(&model_dir.join("model.safetensors"));
    let read_final = |out: &Path| -> BTreeMap<String, Vec<f32>> {
        read_weights(&out.join("final/model.safetensors"))
            .into_iter()
            .map(|(name, (dtype, values))| {
                assert_eq!(dtype, "F32", "{name}: final/ in save_dtype f32");
                (name, values)
            })
            .collect()
    };
    let (w32, w16) = (read_final(f32_out.path()), read_final(bf16_out.path()));
    let (mut diff, mut norm, mut below_half_ulp, mut n) = (0.0f64, 0.0f64, 0usize, 0usize);
    for (name, (_, w0)) in &initial {
        for ((&a, &b), &w) in w32[name].iter().zip(&w16[name]).zip(w0) {
            let (d32, d16) = ((a - w) as f64, (b - w) as f64);
            diff += (d16 - d32).powi(2);
            norm += d32.powi(2);
            // Half a bf16 ulp of w: 2^(exponent − 8) (a zero weight has none worth counting).
            let half_ulp = if w == 0.0 {
                0.0
            } else {
                2f64.powi(w.abs().log2().floor() as i32 - 8)
            };
            below_half_ulp += usize::from(d32.abs() < half_ulp);
            n += 1;
        }
    }
    let ratio = (diff / norm).sqrt();
    let share = below_half_ulp as f64 / n as f64;
    eprintln!(
        "‖ΔW_bf16 − ΔW_f32‖ / ‖ΔW_f32‖ = {ratio:.3}; {:.1}% of the f32 updates are below half a \
         bf16 ulp; ‖ΔW_f32‖ = {:.3e}",
        100.0 * share,
        norm.sqrt()
    );
    assert!(norm > 0.0, "the f32 run did not move");
    assert!(
        share > 0.5,
        "only {share:.2} of the updates are below half a bf16 ulp"
    );
    assert!(
        ratio <= 0.5,
        "bf16 weight change differs from f32's by {ratio:.3} relative"
    );
}

/// A bf16 trainer of the resume test: 6 steps of 2 × 2 pairs (accumulation 2), weight decay,
/// warm-up, a checkpoint every 3 steps, checkpoints and `final/` in the model's own bf16
/// (`save_dtype` unset), so that only the masters in the optimizer state can make the resumed
/// run exact.
fn resume_trainer(out: &Path, resume: bool) -> OrpoTrainer<DecoderForCausalLM> {
    let (model_dir, _) = bf16_fixture();
    let (dir, fx) = fixture();
    let cfg = OrpoConfig {
        bf16: true,
        learning_rate: 1e-4,
        per_device_train_batch_size: 2,
        gradient_accumulation_steps: 2,
        max_steps: 6,
        warmup_steps: 2,
        weight_decay: 0.01,
        save_steps: 3,
        ..config(&fx["settings"], out)
    };
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = DecoderForCausalLM::from_pretrained(&model_dir, &device).unwrap();
    let (tokenizer, data) = fixture_data(&dir);
    OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .resume(resume)
        .quiet(true)
}

#[test]
fn bf16_resumed_run_reaches_the_same_weights_and_metrics() {
    let a = tempfile::tempdir().unwrap();
    resume_trainer(a.path(), false).train().unwrap();
    let b = tempfile::tempdir().unwrap();
    resume_trainer(b.path(), false).train().unwrap();
    // The checkpoint keeps the masters next to the moments.
    let (state, _) =
        orpo_train::io::read_safetensors(&b.path().join("checkpoint-3/optimizer.safetensors"))
            .unwrap();
    let masters = state.iter().filter(|(n, _)| n.ends_with(".master")).count();
    let moments = state
        .iter()
        .filter(|(n, _)| n.ends_with(".exp_avg"))
        .count();
    assert!(
        masters > 0 && masters == moments,
        "{masters} masters, {moments} moments"
    );
    std::fs::remove_dir_all(b.path().join("checkpoint-6")).unwrap();
    std::fs::remove_dir_all(b.path().join("final")).unwrap();
    resume_trainer(b.path(), true).train().unwrap();

    let weights = |dir: &Path| std::fs::read(dir.join("final/model.safetensors")).unwrap();
    assert!(
        weights(a.path()) == weights(b.path()),
        "final weights differ"
    );
    let ma = read_metrics(&a.path().join("metrics.jsonl")).unwrap();
    let mb = read_metrics(&b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        ma, mb,
        "metrics after resume must equal the uninterrupted run's"
    );
    assert_eq!(ma.len(), 6);
    // Written in the type the model was loaded from (bf16), which transformers reads back.
    let fin = read_weights(&a.path().join("final/model.safetensors"));
    assert!(fin.values().all(|(dtype, _)| dtype == "BF16"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.path().join("final/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
}
