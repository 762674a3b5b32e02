//! Peak memory of LoRA against full fine-tuning at the SmolLM2-135M shape (hidden 576, 30
//! layers, 9 heads, 3 KV heads, intermediate 1536, vocab 49152, tied; random weights).
//!
//! One step is what `OrpoTrainer` does per optimizer step: forward, the chunked ORPO loss,
//! backward, global-norm clipping, AdamW. With `--mode lora` the model first gets adapters
//! (`with_lora`: every base weight frozen, so no gradient and no AdamW moments for it).
//! One configuration per process: the peak is `VmHWM` from `/proc/self/status`.
//!
//!     cargo run --release -p orpo-train --example lora_memory -- --mode full|lora \
//!         [--r 16] [--targets all-linear|q_proj,v_proj] [--pairs 1] [--prompt 64] \
//!         [--completion 64] [--steps 3] [--layers 30] [--dropout 0.05]
//!
//! Prints one JSON line.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use orpo_data::Collator;
use orpo_loss::{OrpoLossConfig, orpo_loss};
use orpo_model::{DecoderForCausalLM, LoraConfig};
use orpo_train::OrpoStep;
use orpo_train::optim::{AdamW, AdamWSettings, clip_global_norm};

mod common;
use common::{smollm2_config, status_mib, synthetic_pairs};

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: &str| -> String {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let num = |name: &str, default: usize| -> usize {
        arg(name, &default.to_string())
            .parse()
            .unwrap_or_else(|_| panic!("{name} needs a number"))
    };
    let mode = arg("--mode", "lora");
    let (rank, pairs, prompt, completion, steps, layers) = (
        num("--r", 16),
        num("--pairs", 1),
        num("--prompt", 64),
        num("--completion", 64),
        num("--steps", 3),
        num("--layers", 30),
    );
    let targets = arg("--targets", "all-linear");
    let dropout: f64 = arg("--dropout", "0.05")
        .parse()
        .expect("--dropout needs a number");
    let config = smollm2_config(layers);
    let device = Device::default().autodiff();
    device.seed(0);
    let mut model = DecoderForCausalLM::init(&config, &device);
    let mut trainable = burn::module::Module::num_params(&model);
    match mode.as_str() {
        "full" => {}
        "lora" => {
            let names: Vec<&str> = targets.split(',').collect();
            let lora = LoraConfig::new(rank, 2.0 * rank as f64)
                .with_target_modules(&names)
                .expect("targets")
                .with_dropout(dropout);
            model = model.with_lora(&lora).expect("LoRA");
            trainable = model.lora_parameter_counts().0;
        }
        other => panic!("--mode full|lora, not {other}"),
    }
    // The weights are created lazily by burn; touch them so "after init" means it.
    let _ = model.head_weight().sum().into_scalar::<f32>();
    let rss_init = status_mib("VmRSS:");

    let batch_pairs = synthetic_pairs(pairs, prompt, completion);
    let loss_config = OrpoLossConfig::new(0.1);
    let mut optim = AdamW::new(AdamWSettings::default());
    let batch = Collator::new(0).collate(batch_pairs.iter());
    let mut seconds = Vec::new();
    for _ in 0..steps {
        let started = Instant::now();
        let (inputs, attention) = OrpoStep::batch_inputs(&batch, &device);
        let hidden = model.forward_hidden(inputs.input_ids.clone(), attention);
        let out = orpo_loss(hidden, model.head_weight(), None, &inputs, &loss_config);
        let mut grads = GradientsParams::from_grads(out.loss.backward(), &model);
        let _norm = clip_global_norm(&model, &mut grads, 1.0);
        model = optim.step(1e-4, model, &mut grads);
        let _ = model.head_weight().sum().into_scalar::<f32>();
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "mode": mode,
            "targets": if mode == "lora" { targets.as_str() } else { "-" },
            "r": if mode == "lora" { rank } else { 0 },
            "lora_dropout": if mode == "lora" { dropout } else { 0.0 },
            "backend": format!("{device:?}"),
            "layers": layers,
            "pairs": pairs,
            "tokens_per_row": prompt + completion,
            "trainable_params": trainable,
            "rss_after_init_mib": rss_init,
            "peak_rss_mib": status_mib("VmHWM:"),
            "median_step_s": seconds[seconds.len() / 2],
            "steps": steps,
        })
    );
}
