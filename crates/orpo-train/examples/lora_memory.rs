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
use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_data::{Collator, TokenizedPair};
use orpo_loss::{OrpoInputs, OrpoLossConfig, orpo_loss};
use orpo_model::{LlamaConfig, LlamaForCausalLM, LoraConfig};
use orpo_train::optim::{AdamW, AdamWSettings, clip_global_norm};

/// A `/proc/self/status` field in MiB (`VmHWM`: peak resident set, `VmRSS`: current).
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

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
    let json = format!(
        r#"{{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,
        "num_hidden_layers":{layers},"num_attention_heads":9,"num_key_value_heads":3,
        "rms_norm_eps":1e-5,"rope_theta":100000,"max_position_embeddings":8192,
        "tie_word_embeddings":true}}"#
    );
    let config = LlamaConfig::from_json_str(&json, "bench".as_ref()).expect("bench config");
    let device = Device::default().autodiff();
    device.seed(0);
    let mut model = LlamaForCausalLM::init(&config, &device);
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

    let batch_pairs: Vec<TokenizedPair> = (0..pairs)
        .map(|p| {
            let ids = |seed: usize| -> Vec<u32> {
                (0..prompt + completion)
                    .map(|i| ((i * 7919 + seed * 104_729) % 49_149) as u32 + 3)
                    .collect()
            };
            let chosen = ids(2 * p);
            let mut rejected = chosen.clone();
            rejected[prompt..].copy_from_slice(&ids(2 * p + 1)[prompt..]);
            TokenizedPair {
                index: p,
                chosen_ids: chosen,
                chosen_prompt_len: prompt,
                rejected_ids: rejected,
                rejected_prompt_len: prompt,
            }
        })
        .collect();
    let loss_config = OrpoLossConfig::new(0.1);
    let mut optim = AdamW::new(AdamWSettings::default());
    let batch = Collator::new(0).collate(batch_pairs.iter());
    let shape = batch.shape();
    let int = |v: &[i64]| Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), shape), &device);
    let mask_f: Vec<f32> = batch.attention_mask.iter().map(|&m| m as f32).collect();
    let mut seconds = Vec::new();
    for _ in 0..steps {
        let started = Instant::now();
        let attention = Tensor::<2>::from_data(TensorData::new(mask_f.clone(), shape), &device);
        let inputs = OrpoInputs {
            input_ids: int(&batch.input_ids),
            attention_mask: int(&batch.attention_mask),
            completion_mask: int(&batch.completion_mask),
        };
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
