//! Forward + backward of the SmolLM2-135M shape (hidden 576, 30 layers, 9 heads, 3 KV heads,
//! intermediate 1536, vocab 49152, tied) at batch B × T tokens on one CPU backend.
//!
//! The backend is the one compiled in: `--features bench-flex` (default dev backend) or
//! `bench-ndarray`. The loss is the mean of the logits of the last layer's hidden states through
//! the tied head, so the LM head matmul is part of the work, as in training.
//!
//!     cargo run --release -p orpo-model --example bench_forward_backward -- [B] [T] [STEPS] [LAYERS]

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::{DecoderConfig, DecoderForCausalLM};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (batch, seq, steps, layers) = (
        *args.first().unwrap_or(&4),
        *args.get(1).unwrap_or(&256),
        *args.get(2).unwrap_or(&5),
        *args.get(3).unwrap_or(&30),
    );
    let json = format!(
        r#"{{"model_type":"llama","vocab_size":49152,"hidden_size":576,"intermediate_size":1536,
        "num_hidden_layers":{layers},"num_attention_heads":9,"num_key_value_heads":3,
        "rms_norm_eps":1e-5,"rope_theta":100000,"max_position_embeddings":8192,
        "tie_word_embeddings":true}}"#
    );
    let config = DecoderConfig::from_json_str(&json, "bench".as_ref()).unwrap();
    let device = Device::default().autodiff();
    device.seed(0);
    let model = DecoderForCausalLM::init(&config, &device);
    let ids: Vec<i64> = (0..batch * seq)
        .map(|i| (i * 7919 % 49152) as i64)
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
    let mask = Tensor::<2>::ones([batch, seq], &device);
    let mut times = Vec::new();
    for step in 0..steps + 1 {
        let start = Instant::now();
        let logits = model.forward_logits(ids.clone(), mask.clone());
        let grads = logits.mean().backward();
        let g = model.embed_tokens.weight.val().grad(&grads).unwrap();
        let _ = g.sum().into_scalar::<f32>();
        let t = start.elapsed().as_secs_f64();
        if step > 0 {
            times.push(t);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let params = 576 * 49152 + layers * (4 * 576 * 576 / 3 * 2 + 3 * 576 * 1536);
    let flop = 6.0 * params as f64 * (batch * seq) as f64;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.to_string())
        })
        .unwrap_or_default();
    println!(
        "backend={:?} batch={batch} seq={seq} layers={layers} median_step_s={median:.3} tokens_per_s={:.0} approx_gflops={:.1} {rss}",
        device,
        (batch * seq) as f64 / median,
        flop / median / 1e9
    );
}
