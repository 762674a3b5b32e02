//! RMSNorm `γ ⊙ x / √(mean(x²) + ε)` over rows, and its gradients.
//!
//! The row sums run in 16 f64 lanes: a single running sum is one chain of dependent adds, which
//! neither vectorises nor pipelines (it was ≈ 3% of a CPU training step at the SmolLM2 shape).

use std::mem::MaybeUninit;

use crate::dispatch;

const LANES: usize = 16;

/// `Σ a[i]·b[i]·c[i]`, in f64 lanes.
#[inline(always)]
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f64 {
    let mut acc = [0f64; LANES];
    let chunks = a
        .chunks_exact(LANES)
        .zip(b.chunks_exact(LANES))
        .zip(c.chunks_exact(LANES));
    for ((a, b), c) in chunks {
        for i in 0..LANES {
            acc[i] += f64::from(a[i] * b[i]) * f64::from(c[i]);
        }
    }
    let done = a.len() / LANES * LANES;
    let tail: f64 = (done..a.len())
        .map(|i| f64::from(a[i] * b[i]) * f64::from(c[i]))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// `1 / √(mean(x²) + ε)` of one row.
#[inline(always)]
fn inverse_rms(x: &[f32], epsilon: f64) -> f32 {
    let mut acc = [0f64; LANES];
    for chunk in x.chunks_exact(LANES) {
        for i in 0..LANES {
            acc[i] += f64::from(chunk[i]) * f64::from(chunk[i]);
        }
    }
    let tail: f64 = x
        .chunks_exact(LANES)
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    let sum = acc.iter().sum::<f64>() + tail;
    (1.0 / (sum / x.len() as f64 + epsilon).sqrt()) as f32
}

dispatch! {
    /// RMSNorm of each row of `x` (rows of `gamma.len()` values) into `out`, every element of
    /// which is written (it may start uninitialised).
    pub fn rms_norm_rows(out: &mut [MaybeUninit<f32>], x: &[f32], gamma: &[f32], epsilon: f64) -> () {
        let width = gamma.len();
        assert!(width > 0 && x.len().is_multiple_of(width) && out.len() == x.len(), "rms_norm_rows: lengths");
        for (out, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
            let r = inverse_rms(x, epsilon);
            for ((o, &x), &w) in out.iter_mut().zip(x).zip(gamma) {
                o.write(w * (x * r));
            }
        }
    }
}

dispatch! {
    /// The gradients of `Σ grad ⊙ rms_norm(x, γ)` for each row: `grad_x` is written, and each
    /// row's `grad ⊙ x · r` is added to `grad_gamma` (`r = 1 / rms(x)`). With
    /// `c = mean(grad ⊙ γ ⊙ x) · r³`: `grad_x = r · (grad ⊙ γ) − x · c`. Every element of
    /// `grad_x` is written (it may start uninitialised).
    pub fn rms_norm_backward_rows(
        grad_x: &mut [MaybeUninit<f32>],
        grad_gamma: &mut [f32],
        x: &[f32],
        gamma: &[f32],
        grad: &[f32],
        epsilon: f64,
    ) -> () {
        let width = gamma.len();
        assert!(
            width > 0
                && x.len().is_multiple_of(width)
                && grad_x.len() == x.len()
                && grad.len() == x.len()
                && grad_gamma.len() == width,
            "rms_norm_backward_rows: lengths"
        );
        let rows = grad_x
            .chunks_exact_mut(width)
            .zip(x.chunks_exact(width).zip(grad.chunks_exact(width)));
        for (dx, (x, dy)) in rows {
            let r = inverse_rms(x, epsilon);
            let c = (dot3(dy, gamma, x) / width as f64) as f32 * r * r * r;
            for i in 0..width {
                dx[i].write(r * (dy[i] * gamma[i]) - x[i] * c);
                grad_gamma[i] += dy[i] * (x[i] * r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f64], gamma: &[f64], eps: f64) -> Vec<f64> {
        let r = 1.0 / (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
        x.iter().zip(gamma).map(|(x, w)| w * x * r).collect()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * 0.37 + seed as f32).sin() * 2.0)
            .collect()
    }

    #[test]
    fn rows_and_gradients_match_f64() {
        let (width, rows, eps) = (37, 5, 1e-5);
        let (x, gamma, dy) = (
            values(width * rows, 1),
            values(width, 2),
            values(width * rows, 3),
        );
        let mut out = crate::nan_buffer(x.len());
        rms_norm_rows(&mut out, &x, &gamma, eps);
        let out = crate::values(&out);
        let (mut dx, mut dgamma) = (crate::nan_buffer(x.len()), vec![0f32; width]);
        rms_norm_backward_rows(&mut dx, &mut dgamma, &x, &gamma, &dy, eps);
        let dx = crate::values(&dx);
        let f64s = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let (x64, g64, dy64) = (f64s(&x), f64s(&gamma), f64s(&dy));
        // Loss Σ dy ⊙ y; gradients by central differences in f64.
        let loss = |x: &[f64], g: &[f64]| -> f64 {
            x.chunks(width)
                .zip(dy64.chunks(width))
                .map(|(x, dy)| {
                    reference(x, g, eps)
                        .iter()
                        .zip(dy)
                        .map(|(y, d)| y * d)
                        .sum::<f64>()
                })
                .sum()
        };
        let h = 1e-6;
        for row in 0..rows {
            let y = reference(&x64[row * width..][..width], &g64, eps);
            for i in 0..width {
                assert!((f64::from(out[row * width + i]) - y[i]).abs() < 1e-5);
            }
        }
        // Checks `got` against central differences of the loss over each element of `at`
        // (`loss_at` evaluates the loss with `at` replaced).
        let check = |name: &str, got: &[f32], at: &[f64], loss_at: &dyn Fn(&[f64]) -> f64| {
            for i in 0..at.len() {
                let (mut up, mut down) = (at.to_vec(), at.to_vec());
                up[i] += h;
                down[i] -= h;
                let numeric = (loss_at(&up) - loss_at(&down)) / (2.0 * h);
                assert!(
                    (f64::from(got[i]) - numeric).abs() < 1e-4,
                    "{name}[{i}]: {} vs {numeric}",
                    got[i]
                );
            }
        };
        check("dx", &dx, &x64, &|x| loss(x, &g64));
        check("dγ", &dgamma, &g64, &|g| loss(&x64, g));
    }
}
