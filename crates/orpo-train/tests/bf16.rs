//! `bf16: true` on the CPU backend: the 20 steps of the TRL trajectory fixture
//! (`scripts/make_train_fixtures.py`) trained in bfloat16 — weights, activations and gradients
//! bf16, since burn has no automatic mixed precision; AdamW's moments and update f32 — stay finite
//! and follow TRL's f32 losses loosely. Its own test binary: a device's float type can be set once
//! per process.

use burn::tensor::FloatDType;

mod common;

#[test]
fn bf16_training_stays_finite_and_near_the_f32_trajectory() {
    let worst = common::low_precision_run(FloatDType::BF16);
    eprintln!("bf16 against TRL's f32 losses: worst relative difference {worst:.2e}");
    // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 2e-3 per operation).
    assert!(worst < 2e-2, "bf16 loss strays {worst:.2e} from f32");
}
