//! The workspace's patched burn-flex (vendor/burn-flex/PATCHES.md) computes element-wise ops on
//! several threads and short-cuts `exp`'s underflow; these tests hold it to a scalar reference,
//! bit for bit, on tensors large enough to take the parallel paths (≥ 64 Ki elements), with the
//! operands shared (as autodiff keeps them) and in the layouts the model produces: same shape,
//! broadcast rows and columns, broadcast heads, transposed views.

use burn::tensor::{Device, Tensor, TensorData};

fn values(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic spread of magnitudes and signs.
    (0..n as u32)
        .map(|i| {
            let x = i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (x % 20_011) as f32 / 997.0 - 10.0
        })
        .collect()
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), &Device::default())
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Which operands the caller keeps alive: a shared operand cannot be overwritten in place.
#[derive(Debug, Clone, Copy)]
enum Owner {
    BothShared,
    LhsUnique,
    RhsUnique,
}

/// Checks `op(a, b)` against the scalar op on `[B, H, T, S]` operands broadcast as given.
fn check_broadcast(a_shape: [usize; 4], b_shape: [usize; 4], op: &str, owner: Owner) {
    let a_vals = values(a_shape.iter().product(), 1);
    let b_vals = values(b_shape.iter().product(), 2);
    let a = tensor(a_vals.clone(), a_shape);
    let b = tensor(b_vals.clone(), b_shape);
    let keep = match owner {
        Owner::BothShared => (Some(a.clone()), Some(b.clone())),
        Owner::LhsUnique => (None, Some(b.clone())),
        Owner::RhsUnique => (Some(a.clone()), None),
    };
    let out = match op {
        "add" => a + b,
        "sub" => a - b,
        "mul" => a * b,
        "div" => a / b,
        _ => unreachable!(),
    };
    drop(keep);
    let out_shape: [usize; 4] = std::array::from_fn(|d| a_shape[d].max(b_shape[d]));
    assert_eq!(out.dims(), out_shape);
    let got = host(out);
    let index = |shape: [usize; 4], i: [usize; 4]| {
        let mut flat = 0;
        for d in 0..4 {
            flat = flat * shape[d] + if shape[d] == 1 { 0 } else { i[d] };
        }
        flat
    };
    let mut k = 0;
    for i0 in 0..out_shape[0] {
        for i1 in 0..out_shape[1] {
            for i2 in 0..out_shape[2] {
                for i3 in 0..out_shape[3] {
                    let i = [i0, i1, i2, i3];
                    let (x, y) = (a_vals[index(a_shape, i)], b_vals[index(b_shape, i)]);
                    let want = match op {
                        "add" => x + y,
                        "sub" => x - y,
                        "mul" => x * y,
                        _ => x / y,
                    };
                    assert_eq!(
                        got[k].to_bits(),
                        want.to_bits(),
                        "{op} {a_shape:?} {b_shape:?} {owner:?} at {i:?}"
                    );
                    k += 1;
                }
            }
        }
    }
}

#[test]
fn binary_ops_on_shared_operands_match_the_scalar_reference() {
    for owner in [Owner::BothShared, Owner::LhsUnique, Owner::RhsUnique] {
        for op in ["add", "sub", "mul", "div"] {
            // Same shape.
            check_broadcast([2, 3, 120, 100], [2, 3, 120, 100], op, owner);
            // Per-row scalar (RMSNorm's `x · rsqrt(mean)`), per-column row (`x · γ`).
            check_broadcast([2, 3, 120, 100], [2, 3, 120, 1], op, owner);
            check_broadcast([2, 3, 120, 100], [1, 1, 1, 100], op, owner);
            // An attention mask broadcast over heads, and the broadcast on the left.
            check_broadcast([2, 3, 120, 100], [2, 1, 120, 100], op, owner);
            check_broadcast([2, 1, 120, 100], [2, 3, 120, 100], op, owner);
        }
    }
}

#[test]
fn binary_op_on_a_transposed_view_matches_the_scalar_reference() {
    let (rows, cols) = (300, 400);
    let a_vals = values(rows * cols, 3);
    let b_vals = values(rows * cols, 4);
    let a = tensor(a_vals.clone(), [cols, rows]).transpose(); // [rows, cols], strided
    let b = tensor(b_vals.clone(), [rows, cols]);
    let keep = (a.clone(), b.clone());
    let got = (a * b).into_data().try_to_vec::<f32>().unwrap();
    drop(keep);
    for r in 0..rows {
        for c in 0..cols {
            let want = a_vals[c * rows + r] * b_vals[r * cols + c];
            assert_eq!(got[r * cols + c].to_bits(), want.to_bits(), "at [{r}, {c}]");
        }
    }
}

#[test]
fn exp_matches_libm_including_underflow_overflow_and_nan() {
    let special = [
        -1.0e9,
        -104.5,
        -104.0,
        -103.98,
        -103.97,
        -103.5,
        -100.0,
        -87.5,
        -10.0,
        -1.0e-3,
        0.0,
        -0.0,
        1.0,
        88.0,
        88.8,
        1.0e9,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
    ];
    let mut data = values(100_000, 5);
    for (i, &x) in special.iter().enumerate() {
        // Spread the special values over the chunks that different threads take.
        for j in 0..5 {
            data[i * 5 + j * 20_000] = x;
        }
    }
    let n = data.len();
    let shared = tensor(data.clone(), [n]);
    let keep = shared.clone();
    let out_shared = shared.exp().into_data().try_to_vec::<f32>().unwrap();
    drop(keep);
    let out_unique = tensor(data.clone(), [n])
        .exp()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (k, &x) in data.iter().enumerate() {
        let want = x.exp();
        for (path, got) in [("shared", out_shared[k]), ("in place", out_unique[k])] {
            if want.is_nan() {
                assert!(got.is_nan(), "{path}: exp({x}) = {got}, want NaN");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{path}: exp({x})");
            }
        }
    }
}

/// The patched burn-autodiff (vendor/burn-autodiff/PATCHES.md) tracks softmax as one op with its
/// own backward: its value and gradient must equal those of the explicit decomposition.
#[test]
fn softmax_gradient_matches_the_decomposed_softmax() {
    let device = Device::default().autodiff();
    let shape = [2, 3, 40, 50];
    let mut data = values(shape.iter().product(), 6);
    // Masked scores, as the attention bias makes them.
    for (k, x) in data.iter_mut().enumerate() {
        if k % 50 > k % 40 + 10 {
            *x = -1.0e9;
        }
    }
    let weights: Vec<f32> = values(data.len(), 7).iter().map(|w| w / 10.0).collect();
    let run = |fused: bool| {
        let x =
            Tensor::<4>::from_data(TensorData::new(data.clone(), shape), &device).require_grad();
        let w = Tensor::<4>::from_data(TensorData::new(weights.clone(), shape), &device);
        let y = if fused {
            burn::tensor::activation::softmax(x.clone(), 3)
        } else {
            let shifted = x.clone() - x.clone().max_dim(3).detach();
            let e = shifted.exp();
            e.clone() / e.sum_dim(3)
        };
        let grads = (y.clone() * w).sum().backward();
        let grad = x.grad(&grads).unwrap();
        (
            y.inner().into_data().try_to_vec::<f32>().unwrap(),
            grad.into_data().try_to_vec::<f32>().unwrap(),
        )
    };
    let (y_fused, g_fused) = run(true);
    let (y_plain, g_plain) = run(false);
    for (k, (a, b)) in y_fused.iter().zip(&y_plain).enumerate() {
        assert!((a - b).abs() <= 1e-6, "softmax at {k}: {a} vs {b}");
    }
    for (k, (a, b)) in g_fused.iter().zip(&g_plain).enumerate() {
        assert!((a - b).abs() <= 1e-6, "gradient at {k}: {a} vs {b}");
    }
    assert!(
        g_fused.iter().any(|g| g.abs() > 1e-3),
        "the gradient is not trivial"
    );
}

/// One attention check: `b` sequences of `t` positions, `h` query heads on `kv` key/value heads
/// of width `d`, inputs drawn from `values` with `seed` (q, k, v: seed, seed + 1, seed + 2, divided
/// by `spread`; the output's weights: seed + 10, divided by 10), in `dtype`.
struct AttentionCheck {
    shape: [usize; 5],
    dtype: burn::tensor::DType,
    seed: u32,
    spread: f32,
}

impl AttentionCheck {
    /// Runs the tracked `attention` op for each `(is_causal, the bias masks the future too)` of
    /// `fused_cases` and the explicit `softmax(cap(q kᵀ · scale) + bias) v` (k and v repeated for
    /// each query head; `cap` = `x ↦ softcap · tanh(x / softcap)` when a soft-cap is given,
    /// identity otherwise), and asserts that the outputs and the q, k, v gradients agree within
    /// 1e-5 and are not trivial. The bias pads the second sequence's last 5 positions, with the
    /// causal mask on top where the case asks (as the model's mask bias).
    fn assert_matches_reference(
        &self,
        scale: f64,
        softcap: Option<f64>,
        fused_cases: &[(bool, bool)],
    ) {
        use burn::tensor::DType;
        use burn::tensor::module::attention;
        use burn::tensor::ops::AttentionModuleOptions;

        let device = Device::default().autodiff();
        let [b, h, kv, t, d] = self.shape;
        let dtype = self.dtype;
        let heads = [h, kv, kv]; // of q, k and v
        let qkv: Vec<Vec<f32>> = (0..3)
            .map(|s| {
                values(b * heads[s] * t * d, self.seed + s as u32)
                    .iter()
                    .map(|x| x / self.spread)
                    .collect()
            })
            .collect();
        let bias_of = |causal: bool| {
            let mut bias = vec![0f32; b * t * t];
            for row in 0..b {
                for i in 0..t {
                    for j in 0..t {
                        if (causal && j > i) || (row == 1 && j >= t - 5) {
                            bias[(row * t + i) * t + j] = -1.0e9;
                        }
                    }
                }
            }
            bias
        };
        let out_weights: Vec<f32> = values(b * h * t * d, self.seed + 10)
            .iter()
            .map(|w| w / 10.0)
            .collect();
        let run = |fused: Option<(bool, bool)>| {
            let leaf = |k: usize| {
                let x = Tensor::<4>::from_data(
                    TensorData::new(qkv[k].clone(), [b, heads[k], t, d]),
                    &device,
                );
                x.cast(dtype).require_grad()
            };
            // Each key/value head repeated for its query heads, as the model did.
            let repeated = |x: Tensor<4>| {
                x.unsqueeze_dim::<5>(2)
                    .expand([b, kv, h / kv, t, d])
                    .reshape([b, h, t, d])
            };
            let (q, k, v) = (leaf(0), leaf(1), leaf(2));
            let bias = |causal: bool| {
                Tensor::<4>::from_data(TensorData::new(bias_of(causal), [b, 1, t, t]), &device)
                    .cast(dtype)
            };
            let out = match fused {
                Some((is_causal, causal_bias)) => {
                    let options = AttentionModuleOptions {
                        scale: Some(scale),
                        softcap,
                        is_causal,
                    };
                    let bias = Some(bias(causal_bias));
                    attention(q.clone(), k.clone(), v.clone(), None, bias, options)
                }
                None => {
                    let (k, v) = (repeated(k.clone()), repeated(v.clone()));
                    let scores = q.clone().matmul(k.swap_dims(2, 3)).mul_scalar(scale);
                    let scores = match softcap {
                        Some(cap) => scores.div_scalar(cap).tanh().mul_scalar(cap),
                        None => scores,
                    };
                    burn::tensor::activation::softmax(scores + bias(true), 3).matmul(v)
                }
            };
            let w =
                Tensor::<4>::from_data(TensorData::new(out_weights.clone(), [b, h, t, d]), &device)
                    .cast(dtype);
            let grads = (out.clone() * w).sum().backward();
            let read = |x: Tensor<4>| x.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap();
            [
                read(out.inner()),
                read(q.grad(&grads).unwrap()),
                read(k.grad(&grads).unwrap()),
                read(v.grad(&grads).unwrap()),
            ]
        };
        let plain = run(None);
        for &case in fused_cases {
            let fused = run(Some(case));
            for (name, (a, b)) in ["output", "grad q", "grad k", "grad v"]
                .iter()
                .zip(fused.iter().zip(&plain))
            {
                for (k, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                        "T {t} {dtype:?} kv heads {kv}, scale {scale}, soft-cap {softcap:?}, \
                         (is_causal, causal bias) {case:?}, {name} at {k}: {x} vs {y}"
                    );
                }
                assert!(a.iter().any(|x| x.abs() > 1e-3), "{name} is not trivial");
            }
        }
    }
}

/// The patched burn-autodiff tracks attention (additive untracked bias, no bool mask) as one op
/// whose backward recomputes the weights: its value and the gradients of q, k and v must equal
/// those of the explicit `softmax(q kᵀ · scale + bias) v`, for a scale of 1 (the model scales q
/// itself) and another one; with `is_causal` (flex then skips the masked key blocks, 64 query
/// rows at a time: 150 positions make three blocks, the last one partial) on top of the causal
/// bias, or with a padding-only bias; with as many key/value heads as query heads and with one
/// shared by three (grouped-query attention: the reference repeats k and v, the op takes them as
/// they are); in f32 (flex's fused backward) and in f64 (the tensor-op backward that other
/// backends run).
#[test]
fn attention_gradients_match_the_decomposed_attention() {
    use burn::tensor::DType;

    let cases = [
        (24, DType::F32, 3),
        (150, DType::F32, 3),
        (150, DType::F64, 3),
        (150, DType::F32, 1),
        (150, DType::F64, 1),
    ];
    for (t, dtype, kv) in cases {
        let check = AttentionCheck {
            shape: [2, 3, kv, t, 8],
            dtype,
            seed: 20,
            spread: 10.0,
        };
        for scale in [1.0, 0.35] {
            check.assert_matches_reference(
                scale,
                None,
                &[(false, true), (true, true), (true, false)],
            );
        }
    }
}

/// With a logit soft-cap (Gemma 2: `cap · tanh(s / cap)` on the scaled scores, before the mask
/// and the bias) the tracked attention op recomputes the capped weights itself and multiplies
/// the score gradient by `1 − tanh²`: its value and gradients must equal those of the explicit
/// `softmax(cap · tanh(q kᵀ · scale / cap) + bias) v`, for a mild cap (50: the slope
/// `1 − tanh²` stays in 0.978-1) and one that saturates (2: at scale 1 the scores reach ±7.5,
/// the slope falls to 0.002), with 4 query heads on 2 key/value heads (the reference repeats
/// k and v, the op takes them grouped), the causal flag and/or the causal bias, a padding bias;
/// in f32 (flex's fused backward, 150 positions: three causal row blocks) and in f64 (the
/// tensor-op backward).
#[test]
fn soft_capped_attention_gradients_match_the_decomposed_attention() {
    use burn::tensor::DType;

    for dtype in [DType::F32, DType::F64] {
        let check = AttentionCheck {
            shape: [2, 4, 2, 150, 8],
            dtype,
            seed: 40,
            spread: 7.0,
        };
        for (cap, scale) in [(50.0, 1.0), (2.0, 1.0), (2.0, 0.6)] {
            check.assert_matches_reference(
                scale,
                Some(cap),
                &[(true, true), (true, false), (false, true)],
            );
        }
    }
}

/// Scalar ops run on several threads for large contiguous tensors (in place when the tensor is
/// unique, into a new buffer when it is shared): the same values as one scalar loop.
#[test]
fn scalar_ops_match_a_scalar_loop_in_place_and_shared() {
    let data = values(3 * 70_000, 11);
    let reference: Vec<f32> = data.iter().map(|x| x * 0.3 + 1.5).collect();
    let unique = tensor(data.clone(), [3, 70_000])
        .mul_scalar(0.3)
        .add_scalar(1.5);
    let shared = tensor(data.clone(), [3, 70_000]);
    let computed = shared.clone().mul_scalar(0.3).add_scalar(1.5);
    for (name, t) in [("unique", unique), ("shared", computed)] {
        let got = t.into_data().try_to_vec::<f32>().unwrap();
        assert!(
            got.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: scalar ops differ from the scalar loop"
        );
    }
    assert_eq!(
        host(shared.reshape([1, 1, 3, 70_000])),
        data,
        "the shared input is untouched"
    );
}

/// The fused SwiGLU and RMSNorm (`orpo_model::fused`, one tracked op each on flex) give the
/// values and gradients of the tensor-op compositions they replace, with and without autodiff,
/// for contiguous operands and for a transposed view.
#[test]
fn fused_swiglu_and_rms_norm_match_the_tensor_ops() {
    use burn::module::Param;
    use burn::nn::{RmsNorm, RmsNormConfig};
    use burn::tensor::activation::silu;
    use orpo_model::fused::{rms_norm, swiglu};

    let read = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
    // ∂γ and ∂project sum 210 rows of terms up to ≈ 5, in f32 on the tensor path (and in f64
    // for ∂γ in the fused kernel): their rounding reaches 1e-4 of a result.
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{what}");
        let tolerance = if what.starts_with("∂γ") || what.starts_with("∂project") {
            2e-4
        } else {
            2e-6
        };
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tolerance * (1.0 + y.abs()),
                "{what} at {k}: {x} vs {y}"
            );
        }
        assert!(a.iter().any(|x| x.abs() > 1e-3), "{what} is not trivial");
    };
    let shape = [3, 70, 40];
    let n: usize = shape.iter().product();
    for tracked in [false, true] {
        let device = match tracked {
            false => Device::default(),
            true => Device::default().autodiff(),
        };
        for transposed in [false, true] {
            let leaf = |seed: u32, scale: f32| {
                let values = values(n, seed).iter().map(|x| x * scale).collect();
                let x = Tensor::<3>::from_data(TensorData::new(values, shape), &device);
                // A transposed view of a [3, 40, 70] tensor, same values where it matters.
                let x = match transposed {
                    false => x,
                    true => x.reshape([3, 40, 70]).swap_dims(1, 2),
                };
                if tracked { x.require_grad() } else { x }
            };
            let weights = Tensor::<3>::from_data(
                TensorData::new(values(3 * 70 * 40, 9), [3, 70, 40]),
                &device,
            );
            let gamma: Vec<f32> = values(40, 5).iter().map(|w| 1.0 + w / 20.0).collect();
            let norm = RmsNorm {
                gamma: Param::from_tensor(Tensor::from_data(TensorData::new(gamma, [40]), &device)),
                ..RmsNormConfig::new(40).with_epsilon(1e-5).init(&device)
            };
            let mut outputs = Vec::new();
            for fused in [true, false] {
                let (gate, up, x) = (leaf(1, 0.5), leaf(2, 0.3), leaf(3, 0.2));
                // A product with a tracked matrix reads each output again in backward (for the
                // matrix's gradient): the fused ops' outputs are recomputed there, not kept.
                let project = Tensor::<3>::from_data(
                    TensorData::new(values(40 * 8, 11), [1, 40, 8]),
                    &device,
                );
                let project = if tracked {
                    project.require_grad()
                } else {
                    project
                };
                let (h, y) = match fused {
                    true => (swiglu(gate.clone(), up.clone()), rms_norm(&norm, x.clone())),
                    false => (silu(gate.clone()) * up.clone(), norm.forward(x.clone())),
                };
                let mut got = vec![read(h.clone().inner()), read(y.clone().inner())];
                if tracked {
                    let loss = (h.clone() * weights.clone()).sum()
                        + (y.clone() * weights.clone()).sum()
                        + (h.matmul(project.clone()) + y.matmul(project.clone())).sum();
                    let grads = loss.backward();
                    for t in [&gate, &up, &x] {
                        got.push(read(t.grad(&grads).unwrap()));
                    }
                    let gamma_grad = norm.gamma.val().grad(&grads).unwrap();
                    got.push(gamma_grad.into_data().try_to_vec::<f32>().unwrap());
                    got.push(read(project.grad(&grads).unwrap()));
                }
                outputs.push(got);
            }
            let names = ["swiglu", "rms_norm", "∂gate", "∂up", "∂x", "∂γ", "∂project"];
            for (name, (a, b)) in names.iter().zip(outputs[0].iter().zip(&outputs[1])) {
                close(
                    &format!("{name} (autodiff {tracked}, transposed {transposed})"),
                    a,
                    b,
                );
            }
        }
    }
}

#[test]
fn fused_rope_matches_the_tensor_ops() {
    use orpo_model::fused::rope;
    use orpo_model::rope::rope_tables;

    let read = |x: Tensor<4>| x.into_data().try_to_vec::<f32>().unwrap();
    let (batch, heads, seq, dim) = (2, 3, 37, 16);
    let n = batch * heads * seq * dim;
    let inv_freq: Vec<f32> = (0..dim / 2)
        .map(|i| 10_000f32.powf(-(2.0 * i as f32) / dim as f32))
        .collect();
    // What the fused op replaces, as attention computed it before.
    let tensor_ops = |x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>, scale: f64| {
        let x1 = x.clone().narrow(3, 0, dim / 2);
        let x2 = x.clone().narrow(3, dim / 2, dim / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        (x * cos.unsqueeze::<4>() + rotated * sin.unsqueeze::<4>()).mul_scalar(scale)
    };
    for tracked in [false, true] {
        let device = match tracked {
            false => Device::default(),
            true => Device::default().autodiff(),
        };
        let tables = rope_tables(&inv_freq, 5, seq, &device);
        let weights = Tensor::<4>::from_data(
            TensorData::new(values(n, 4), [batch, heads, seq, dim]),
            &device,
        );
        for scale in [1.0, 0.35] {
            let mut outputs = Vec::new();
            for fused in [true, false] {
                // The projections' [B, T, heads, d] output seen as [B, heads, T, d].
                let x = Tensor::<4>::from_data(
                    TensorData::new(values(n, 7), [batch, seq, heads, dim]),
                    &device,
                );
                let x = if tracked { x.require_grad() } else { x };
                let view = x.clone().swap_dims(1, 2);
                let (cos, sin) = (tables.cos.clone(), tables.sin.clone());
                let y = match fused {
                    true => rope(view, cos, sin, scale),
                    false => tensor_ops(view, cos, sin, scale),
                };
                let mut got = vec![read(y.clone().inner())];
                if tracked {
                    let grads = (y * weights.clone()).sum().backward();
                    got.push(read(x.grad(&grads).unwrap()));
                }
                outputs.push(got);
            }
            // The forward is the tensor ops' arithmetic in their order: bitwise equal.
            assert_eq!(outputs[0][0], outputs[1][0], "rope, scale {scale}");
            if tracked {
                let (a, b) = (&outputs[0][1], &outputs[1][1]);
                for (k, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                        "∂x at {k} (scale {scale}): {x} vs {y}"
                    );
                }
                assert!(a.iter().any(|x| x.abs() > 1e-3), "∂x is not trivial");
            }
        }
    }
}

#[test]
fn bf16_matmul_rounds_as_half_does() {
    // flex multiplies bf16 in f32 and rounds the product back (vendor/burn-flex, the bf16
    // matmul's conversions): an outer product `[m, 1] × [1, n]` of bf16 values is exact in f32,
    // so every output must be half's `bf16::from_f32` of the f32 product, ties, infinities and
    // NaN included, on a result large enough for the parallel conversion (≥ 64 Ki elements).
    use burn::tensor::DType;
    use half::bf16;
    let (m, n) = (512, 160);
    let mut lhs: Vec<f32> = values(m, 3).iter().map(|v| v * 1.37).collect();
    let rhs: Vec<f32> = values(n, 4).iter().map(|v| v * 0.731 + 0.011).collect();
    lhs[0] = f32::NAN;
    lhs[1] = f32::INFINITY;
    lhs[2] = 1.0e-39; // subnormal
    lhs[3] = 1.0 + 1.0 / 128.0; // odd last mantissa bit: ties round up
    let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| bf16::from_f32(*x).to_f32()).collect() };
    let (lhs, rhs) = (round(&lhs), round(&rhs));
    let product = tensor(lhs.clone(), [m, 1])
        .cast(DType::BF16)
        .matmul(tensor(rhs.clone(), [1, n]).cast(DType::BF16));
    assert_eq!(product.dtype(), DType::BF16);
    let got: Vec<bf16> = product.into_data().try_to_vec::<bf16>().unwrap();
    for i in 0..m {
        for j in 0..n {
            let want = bf16::from_f32(lhs[i] * rhs[j]);
            let have = got[i * n + j];
            assert!(
                have.to_bits() == want.to_bits() || (have.is_nan() && want.is_nan()),
                "({i}, {j}): {} × {} gave {have} ({:#06x}), half rounds to {want} ({:#06x})",
                lhs[i],
                rhs[j],
                have.to_bits(),
                want.to_bits()
            );
        }
    }
}
