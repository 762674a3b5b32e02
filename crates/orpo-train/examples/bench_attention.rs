//! Forward and forward+backward time of one attention core, `softmax(q kᵀ + bias) v`, at the
//! SmolLM2-135M benchmark shape ([4, 9, 512, 64], causal bias), decomposed into tensor ops
//! against burn's `attention` op (flex's fused kernel; under autodiff the patched
//! burn-autodiff's recomputing backward).
//!
//!     cargo run --release -p orpo-train --example bench_attention [-- REPEATS]

use std::time::Instant;

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("REPEATS"))
        .unwrap_or(10);
    let [b, h, t, d] = [4, 9, 512, 64];
    let device = Device::flex().autodiff();
    let mut bias = vec![0f32; b * t * t];
    for row in 0..b {
        for i in 0..t {
            for j in i + 1..t {
                bias[(row * t + i) * t + j] = -1.0e9;
            }
        }
    }
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, t, t]), &device);
    let input = || Tensor::<4>::random([b, h, t, d], Distribution::Default, &device).require_grad();
    let (q, k, v) = (input(), input(), input());
    // 0: decomposed; 1: the attention op with the causal bias; 2: the same with `is_causal`,
    // which lets flex skip the masked upper triangle (what the model calls).
    let forward = |variant: usize| {
        if variant == 0 {
            let scores = q.clone().matmul(k.clone().swap_dims(2, 3)) + bias.clone();
            return burn::tensor::activation::softmax(scores, 3).matmul(v.clone());
        }
        let options = AttentionModuleOptions {
            scale: Some(1.0),
            softcap: None,
            is_causal: variant == 2,
        };
        attention(
            q.clone(),
            k.clone(),
            v.clone(),
            None,
            Some(bias.clone()),
            options,
        )
    };
    // The pieces on the plain backend.
    let time = |name: &str, f: &dyn Fn() -> Tensor<4>| {
        let mut best = f64::INFINITY;
        for _ in 0..repeats {
            let t0 = Instant::now();
            let out = f();
            out.device().sync().unwrap();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!("{name:<28} {:6.1} ms", best * 1e3);
    };
    let (qi, ki, vi, bi) = (
        q.clone().inner(),
        k.clone().inner(),
        v.clone().inner(),
        bias.clone().inner(),
    );
    let scores = qi.clone().matmul(ki.clone().swap_dims(2, 3));
    let weights = burn::tensor::activation::softmax(scores.clone(), 3);
    time("q kT (batched matmul)", &|| {
        qi.clone().matmul(ki.clone().swap_dims(2, 3))
    });
    time("scores + bias (shared)", &|| scores.clone() + bi.clone());
    time("softmax", &|| {
        burn::tensor::activation::softmax(scores.clone(), 3)
    });
    time("weights v (batched matmul)", &|| {
        weights.clone().matmul(vi.clone())
    });
    time("weightsT g (batched matmul)", &|| {
        weights.clone().swap_dims(2, 3).matmul(vi.clone())
    });
    time("weights * scores (shared)", &|| {
        weights.clone() * scores.clone()
    });
    time("sum_dim(3)", &|| scores.clone().sum_dim(3));
    for variant in [0, 1, 2, 0, 1, 2] {
        let (mut fwd, mut both) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..repeats {
            let t0 = Instant::now();
            let out = forward(variant);
            device.sync().unwrap();
            fwd = fwd.min(t0.elapsed().as_secs_f64());
            drop(out);
            let t0 = Instant::now();
            let grads = forward(variant).sum().backward();
            device.sync().unwrap();
            both = both.min(t0.elapsed().as_secs_f64());
            drop(grads);
        }
        let name = ["decomposed", "attention op", "+ is_causal"][variant];
        println!(
            "{name:<14} forward {:6.1} ms   forward+backward {:6.1} ms (best of {repeats})",
            fwd * 1e3,
            both * 1e3
        );
    }
}
