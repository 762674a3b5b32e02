//! Peak-memory benchmark of the ORPO loss: chunked [`orpo_loss`] vs the naive full
//! `log_softmax` ([`naive_orpo_loss`]), forward + backward, one configuration per process
//! (peak RSS is read from `/proc/self/status` `VmHWM`, which never decreases).
//!
//! ```text
//! cargo run --release -p orpo-loss --example loss_memory -- chunked [rows seq hidden vocab chunk]
//! cargo run --release -p orpo-loss --example loss_memory -- naive   [rows seq hidden vocab]
//! ```
//! Defaults: 8 rows × 512 tokens, hidden 576, vocabulary 49 152 (SmolLM2-135M's head),
//! chunk 512 (the default). Every token is real; the prompt is the first 128 tokens of each row.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use orpo_loss::{OrpoInputs, OrpoLossConfig, naive_orpo_loss, orpo_loss};

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .first()
        .map(String::as_str)
        .unwrap_or("chunked")
        .to_string();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("number"));
    let (rows, seq, hidden_size, vocab, chunk) = (
        num(1, 8),
        num(2, 512),
        num(3, 576),
        num(4, 49152),
        num(5, OrpoLossConfig::default().chunk_size),
    );
    let prompt = 128.min(seq - 1);

    let device = Device::flex().autodiff();
    device.seed(42); // same inputs in both modes: the loss values can be compared
    let hidden = Tensor::<3>::random(
        [rows, seq, hidden_size],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .require_grad();
    let weight = Tensor::<2>::random(
        [hidden_size, vocab],
        Distribution::Normal(0.0, 0.02),
        &device,
    )
    .require_grad();
    let ids: Vec<i64> = (0..rows * seq)
        .map(|i| ((i * 7919) % vocab) as i64)
        .collect();
    let comp: Vec<i64> = (0..rows * seq)
        .map(|i| (i % seq >= prompt) as i64)
        .collect();
    let int = |d: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(d, [rows, seq]), &device);
    let inputs = OrpoInputs {
        input_ids: int(ids),
        attention_mask: int(vec![1; rows * seq]),
        completion_mask: int(comp),
    };
    let config = OrpoLossConfig::default().with_chunk_size(chunk);
    // Materialise the inputs before measuring the baseline.
    let _ = hidden.clone().sum().into_scalar::<f32>() + weight.clone().sum().into_scalar::<f32>();
    let base_rss = status_kib("VmRSS:");
    let base_hwm = status_kib("VmHWM:");

    let start = Instant::now();
    let loss = match mode.as_str() {
        "chunked" => orpo_loss(hidden.clone(), weight.clone(), None, &inputs, &config).loss,
        "naive" => naive_orpo_loss(hidden.clone(), weight.clone(), None, &inputs, &config),
        other => panic!("mode must be chunked or naive, got {other}"),
    };
    let value = loss.clone().inner().into_scalar::<f32>();
    let grads = loss.backward();
    let gh = hidden
        .grad(&grads)
        .unwrap()
        .abs()
        .sum()
        .into_scalar::<f32>();
    let gw = weight
        .grad(&grads)
        .unwrap()
        .abs()
        .sum()
        .into_scalar::<f32>();
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    println!(
        "{{\"mode\":\"{mode}\",\"rows\":{rows},\"seq\":{seq},\"hidden\":{hidden_size},\"vocab\":{vocab},\"chunk\":{chunk},\
         \"loss\":{value},\"grad_hidden_l1\":{gh},\"grad_weight_l1\":{gw},\"seconds\":{secs:.2},\
         \"baseline_rss_mib\":{:.1},\"baseline_hwm_mib\":{:.1},\"peak_rss_mib\":{:.1},\"peak_minus_baseline_mib\":{:.1}}}",
        base_rss as f64 / 1024.0,
        base_hwm as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak.saturating_sub(base_rss)) as f64 / 1024.0
    );
}
