//! What the SmolLM2-shape benchmarks (`bench_train`, `lora_memory`) share: the model config,
//! the synthetic pairs and the memory readings.

use orpo_data::TokenizedPair;
use orpo_model::DecoderConfig;

/// Vocabulary of the SmolLM2-135M shape.
pub const VOCAB: usize = 49152;

/// The SmolLM2-135M shape (hidden 576, 9 heads / 3 KV heads, intermediate 1536, vocab 49152,
/// tied) with `layers` decoder layers.
pub fn smollm2_config(layers: usize) -> DecoderConfig {
    let json = format!(
        r#"{{"model_type":"llama","vocab_size":{VOCAB},"hidden_size":576,"intermediate_size":1536,
        "num_hidden_layers":{layers},"num_attention_heads":9,"num_key_value_heads":3,
        "rms_norm_eps":1e-5,"rope_theta":100000,"max_position_embeddings":8192,
        "tie_word_embeddings":true}}"#
    );
    DecoderConfig::from_json_str(&json, "bench".as_ref()).expect("bench config")
}

/// `pairs` synthetic pairs with exactly `prompt` + `completion` tokens each, ids spread over the
/// vocabulary (deterministic; `scripts/bench_trl.py` builds the same ids).
pub fn synthetic_pairs(pairs: usize, prompt: usize, completion: usize) -> Vec<TokenizedPair> {
    let ids = |seed: usize| -> Vec<u32> {
        (0..prompt + completion)
            .map(|i| ((i * 7919 + seed * 104_729) % (VOCAB - 3)) as u32 + 3)
            .collect()
    };
    (0..pairs)
        .map(|p| {
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
        .collect()
}

/// A `/proc/self/status` field in MiB (`VmHWM:`: peak resident set, `VmRSS:`: current).
#[allow(dead_code)] // each example uses what it needs
pub fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
