//! `fp16: true` on the CPU backend (flex computes f16 natively): the 20 steps of the TRL
//! trajectory fixture in float16 — weights, activations and gradients f16 (burn has no automatic
//! mixed precision), AdamW's moments and update f32 — stay finite and follow TRL's f32 losses.
//! With the f32 attention mask value (-1e9, -inf in f16) the first step's loss was NaN, here and
//! on an H100 through WGPU. Its own test binary: a device's float type is set once per process.

use burn::tensor::FloatDType;

mod common;

#[test]
fn fp16_training_stays_finite_and_near_the_f32_trajectory() {
    let worst = common::low_precision_run(FloatDType::F16);
    eprintln!("fp16 against TRL's f32 losses: worst relative difference {worst:.2e}");
    // f16 keeps 11 bits of mantissa (relative rounding 2^-12 ≈ 2.4e-4 per operation).
    assert!(worst < 1e-2, "fp16 loss strays {worst:.2e} from f32");
}
