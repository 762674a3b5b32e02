//! GFLOP/s of the CPU backend's matmul on the shapes of one training step at the SmolLM2-135M
//! shape (2 pairs × 512 tokens = 2 048 rows), with each operand contiguous or a transposed view
//! as autodiff's backward passes them (`grad_x = g · Wᵀ`, `grad_W = xᵀ · g`).
//!
//!     cargo run --release -p orpo-train --example bench_matmul [-- REPEATS]
//!
//! Issue 9: the matmuls take ~60% of a step but run well below the machine's matmul peak; this
//! says which operand layouts are slow.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

fn time_matmul(a: &Tensor<2>, b: &Tensor<2>, repeats: usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t0 = Instant::now();
        let c = a.clone().matmul(b.clone());
        c.device().sync().unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
        drop(c);
    }
    best
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("REPEATS"))
        .unwrap_or(5);
    let device = Device::flex();
    let rows = 2048;
    // (name, m, k, n): forward shapes of the step's 2D matmuls.
    let shapes = [
        ("q/o proj", rows, 576, 576),
        ("k/v proj", rows, 576, 192),
        ("mlp up", rows, 576, 1536),
        ("mlp down", rows, 1536, 576),
        ("lm head chunk", 512, 576, 49152),
        // A large square product: the machine's fp32 matmul peak, as far as gemm reaches it.
        ("square (peak)", 2048, 2048, 2048),
    ];
    println!("shape              layout            m     k     n    ms   GFLOP/s");
    for (name, m, k, n) in shapes {
        let random = |d: [usize; 2]| Tensor::<2>::random(d, Distribution::Default, &device);
        // A [m, k] and B [k, n], each either contiguous or the transpose of a contiguous tensor.
        let a = random([m, k]);
        let a_t = random([k, m]).transpose();
        let b = random([k, n]);
        let b_t = random([n, k]).transpose();
        for (layout, lhs, rhs) in [
            ("A · B", &a, &b),
            ("A · Bᵀview", &a, &b_t),
            ("Aᵀview · B", &a_t, &b),
            ("Aᵀview · Bᵀview", &a_t, &b_t),
        ] {
            let s = time_matmul(lhs, rhs, repeats);
            let gflops = 2.0 * (m * k * n) as f64 / s / 1e9;
            println!(
                "{name:<18} {layout:<16} {m:>5} {k:>5} {n:>5} {:>6.1} {gflops:>8.1}",
                s * 1e3
            );
        }
    }
}
