//! SwiGLU `silu(gate) ⊙ up` and its gradients, element-wise over slices.

use std::mem::MaybeUninit;

use crate::{dispatch, sigmoid_approx};

dispatch! {
    /// `out = gate · σ(gate) · up`; all slices of one length. Every element of `out` is written
    /// (it may start uninitialised).
    pub fn swiglu(out: &mut [MaybeUninit<f32>], gate: &[f32], up: &[f32]) -> () {
        assert!(gate.len() == out.len() && up.len() == out.len(), "swiglu: lengths differ");
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            o.write(g * sigmoid_approx(g) * u);
        }
    }
}

dispatch! {
    /// The gradients of `Σ grad ⊙ swiglu(gate, up)`, with `s = σ(gate)`:
    /// `grad_up = grad · gate · s`, `grad_gate = grad · up · s · (1 + gate · (1 − s))`. Every
    /// element of both outputs is written (they may start uninitialised).
    pub fn swiglu_backward(
        grad_gate: &mut [MaybeUninit<f32>],
        grad_up: &mut [MaybeUninit<f32>],
        gate: &[f32],
        up: &[f32],
        grad: &[f32],
    ) -> () {
        let n = grad.len();
        assert!(
            [grad_gate.len(), grad_up.len(), gate.len(), up.len()] == [n; 4],
            "swiglu_backward: lengths differ"
        );
        for i in 0..n {
            let (g, s) = (gate[i], sigmoid_approx(gate[i]));
            grad_up[i].write(grad[i] * (g * s));
            grad_gate[i].write(grad[i] * up[i] * s * (1.0 + g * (1.0 - s)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_and_its_gradients_match_f64() {
        let n = 1000;
        let gate: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) / 40.0).collect();
        let up: Vec<f32> = (0..n)
            .map(|i| ((i * 31) % 97) as f32 / 20.0 - 2.0)
            .collect();
        let grad: Vec<f32> = (0..n)
            .map(|i| ((i * 17) % 89) as f32 / 30.0 - 1.5)
            .collect();
        let mut out = crate::nan_buffer(n);
        swiglu(&mut out, &gate, &up);
        let out = crate::values(&out);
        let (mut dg, mut du) = (crate::nan_buffer(n), crate::nan_buffer(n));
        swiglu_backward(&mut dg, &mut du, &gate, &up, &grad);
        let (dg, du) = (crate::values(&dg), crate::values(&du));
        for i in 0..n {
            let (g, u, dy) = (f64::from(gate[i]), f64::from(up[i]), f64::from(grad[i]));
            let s = 1.0 / (1.0 + (-g).exp());
            let close =
                |got: f32, exact: f64| (f64::from(got) - exact).abs() <= 1e-6 * (1.0 + exact.abs());
            assert!(close(out[i], g * s * u), "swiglu at {i}");
            assert!(close(du[i], dy * g * s), "∂up at {i}");
            assert!(
                close(dg[i], dy * u * s * (1.0 + g * (1.0 - s))),
                "∂gate at {i}"
            );
        }
    }
}
