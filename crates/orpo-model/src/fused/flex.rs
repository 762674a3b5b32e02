//! The fused ops on flex: a burn backend extension ([`FusedOps`]) with host kernels for flex
//! tensors and tracked ops for autodiff over flex. f32 only: the callers in `super` check.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// `silu(gate) ⊙ up` through burn's dispatch.
pub(super) fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    let out = <Dispatch as FusedOps>::swiglu(gate.into_dispatch(), up.into_dispatch());
    Tensor::from_dispatch(out)
}

/// RMSNorm of `x` `[.., H]` with weight `gamma` `[H]` through burn's dispatch.
pub(super) fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let out = <Dispatch as FusedOps>::rms_norm(x.into_dispatch(), gamma.into_dispatch(), epsilon);
    Tensor::from_dispatch(out)
}

/// RoPE of `x` `[B, heads, T, d]` with tables `cos`, `sin` `[T, d]`, times `scale`.
pub(super) fn rope(x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>, scale: f64) -> Tensor<4> {
    let out = <Dispatch as FusedOps>::rope(
        x.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        scale,
    );
    Tensor::from_dispatch(out)
}

/// The fused ops, routed by burn's dispatch to flex and to autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// `silu(gate) ⊙ up`; f32 operands of the same shape.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `γ ⊙ x / √(mean(x²) + ε)` over the last axis; f32 `x` `[.., H]` and `gamma` `[H]`.
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self>;
    /// `(x ⊙ cos + rotate_half(x) ⊙ sin) · scale`; f32 `x` `[B, heads, T, d]` (any strides),
    /// contiguous f32 tables `[T, d]`; the output is contiguous.
    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
}

impl FusedOps for Flex {
    fn swiglu(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        let (g, u) = (f32_values(&gate), f32_values(&up));
        // (The zip below would stop at the shorter operand, leaving output unwritten.)
        assert_eq!(g.len(), u.len(), "swiglu: gate and up differ in size");
        // SAFETY: the chunks cover the output and `swiglu` writes every element of each.
        let out = unsafe {
            written(g.len(), |out| {
                out.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
                    .for_each(|(out, (g, u))| orpo_kernels::swiglu(out, g, u))
            })
        };
        tensor_like(&gate, out)
    }

    fn rms_norm(x: FlexTensor, gamma: FlexTensor, epsilon: f64) -> FlexTensor {
        let (xs, gamma_values) = (f32_values(&x), f32_values(&gamma));
        let width = gamma_values.len();
        // SAFETY: the row blocks cover the output and `rms_norm_rows` writes all of each.
        let out = unsafe {
            written(xs.len(), |out| {
                out.par_chunks_mut(width * ROWS)
                    .zip(xs.par_chunks(width * ROWS))
                    .for_each(|(out, xs)| {
                        orpo_kernels::rms_norm_rows(out, xs, &gamma_values, epsilon)
                    })
            })
        };
        tensor_like(&x, out)
    }

    fn rope(x: FlexTensor, cos: FlexTensor, sin: FlexTensor, scale: f64) -> FlexTensor {
        rotate(&x, &cos, &sin, scale as f32, Rotation::Forward)
    }
}

/// Which way [`rotate`] turns each `(x[i], x[i + d/2])` pair.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rotation {
    /// RoPE itself.
    Forward,
    /// Its transpose, which maps the output's gradient to the input's.
    Transpose,
}

/// RoPE (or its transpose) of `x` `[B, heads, T, d]` with tables `[T, d]`, times `scale`, as a
/// contiguous tensor; `x` may be any strided view with a unit last stride (the projections'
/// `[B, T, heads, d]` output with heads and positions swapped). One rayon task per (batch, head).
fn rotate(
    x: &FlexTensor,
    cos: &FlexTensor,
    sin: &FlexTensor,
    scale: f32,
    rotation: Rotation,
) -> FlexTensor {
    let unit_last_stride = x.layout().strides().last() == Some(&1);
    let x = match unit_last_stride && x.layout().has_positive_strides() {
        true => Cow::Borrowed(x),
        false => Cow::Owned(x.to_contiguous()),
    };
    let layout = x.layout();
    let shape = layout.shape();
    let (batch, heads, seq, dim) = (shape[0], shape[1], shape[2], shape[3]);
    let strides = layout.strides();
    let (s_batch, s_head, s_seq) = (
        strides[0] as usize,
        strides[1] as usize,
        strides[2] as usize,
    );
    let offset = layout.start_offset();
    let values = x.storage::<f32>();
    let (cos, sin) = (f32_values(cos), f32_values(sin));
    assert!(dim % 2 == 0, "rope: odd head dim {dim}");
    let half = dim / 2;
    // One chunk per (batch, head); none for an empty tensor (`par_chunks_mut(0)` would panic).
    // SAFETY: the chunks cover the output and each (t, i < half) writes lo[i] and hi[i], all of
    // a row.
    let out = unsafe {
        written(batch * heads * seq * dim, |out| {
            out.par_chunks_mut((seq * dim).max(1))
                .enumerate()
                .for_each(|(block, out)| {
                    let base = offset + (block / heads) * s_batch + (block % heads) * s_head;
                    for t in 0..seq {
                        let x = &values[base + t * s_seq..][..dim];
                        let (c, s) = (&cos[t * dim..][..dim], &sin[t * dim..][..dim]);
                        let (lo, hi) = out[t * dim..][..dim].split_at_mut(half);
                        for i in 0..half {
                            let (x1, x2) = (x[i], x[half + i]);
                            let (a, b) = match rotation {
                                // The tensor ops' order: x·cos + rotate_half(x)·sin, then the scale.
                                Rotation::Forward => (
                                    (x1 * c[i] + -x2 * s[i]) * scale,
                                    (x2 * c[half + i] + x1 * s[half + i]) * scale,
                                ),
                                Rotation::Transpose => (
                                    (x1 * c[i] + x2 * s[half + i]) * scale,
                                    (x2 * c[half + i] - x1 * s[i]) * scale,
                                ),
                            };
                            lo[i].write(a);
                            hi[i].write(b);
                        }
                    }
                })
        })
    };
    FlexTensor::from_data(TensorData::new(out, [batch, heads, seq, dim]))
}

/// Elements per rayon task of the element-wise kernels (64 KiB of f32 per operand).
const CHUNK: usize = 16 * 1024;
/// Rows per rayon task of the RMSNorm kernels.
const ROWS: usize = 32;

/// The values of an f32 tensor in row-major order (a copy only for a strided view).
fn f32_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(t.dtype(), DType::F32, "fused ops take f32 tensors");
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

/// `len` values written by `fill` straight into a new vector's storage: the kernels' outputs
/// without a zero-filling pass first (≈ 1.5% of a training step).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `fill` wrote all `len` elements.
    unsafe { values.set_len(len) };
    values
}

/// A contiguous f32 tensor of `like`'s shape holding `values`.
fn tensor_like(like: &FlexTensor, values: Vec<f32>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.layout().shape().clone()))
}

/// `(∂gate, ∂up)` of `Σ grad ⊙ swiglu(gate, up)`, one pass.
fn swiglu_backward(
    gate: &FlexTensor,
    up: &FlexTensor,
    grad: &FlexTensor,
) -> (FlexTensor, FlexTensor) {
    let (g, u, dy) = (f32_values(gate), f32_values(up), f32_values(grad));
    let n = g.len();
    assert!(
        u.len() == n && dy.len() == n,
        "swiglu backward: sizes differ"
    );
    let mut grad_up = Vec::new();
    // SAFETY: the chunks cover both outputs and `swiglu_backward` writes every element of each.
    let grad_gate = unsafe {
        written(n, |grad_gate| {
            grad_up = written(n, |grad_up| {
                grad_gate
                    .par_chunks_mut(CHUNK)
                    .zip(grad_up.par_chunks_mut(CHUNK))
                    .zip(
                        g.par_chunks(CHUNK)
                            .zip(u.par_chunks(CHUNK))
                            .zip(dy.par_chunks(CHUNK)),
                    )
                    .for_each(|((dg, du), ((g, u), dy))| {
                        orpo_kernels::swiglu_backward(dg, du, g, u, dy)
                    })
            })
        })
    };
    (tensor_like(gate, grad_gate), tensor_like(up, grad_up))
}

/// `(∂x, ∂γ)` of `Σ grad ⊙ rms_norm(x, γ)`: ∂x row by row; ∂γ summed over rows in f32 within a
/// block of rows, in f64 across blocks.
fn rms_norm_backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    grad: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor) {
    let (xs, gamma_values, dy) = (f32_values(x), f32_values(gamma), f32_values(grad));
    let width = gamma_values.len();
    assert_eq!(
        dy.len(),
        xs.len(),
        "rms_norm backward: x and its gradient differ in size"
    );
    let mut grad_gamma = Vec::new();
    // SAFETY: the row blocks cover ∂x and `rms_norm_backward_rows` writes all of each.
    let grad_x = unsafe {
        written(xs.len(), |grad_x| {
            grad_gamma = grad_x
                .par_chunks_mut(width * ROWS)
                .zip(xs.par_chunks(width * ROWS).zip(dy.par_chunks(width * ROWS)))
                .map(|(dx, (xs, dy))| {
                    // f32 over one block of rows, f64 across blocks.
                    let mut grad_gamma = vec![0f32; width];
                    orpo_kernels::rms_norm_backward_rows(
                        dx,
                        &mut grad_gamma,
                        xs,
                        &gamma_values,
                        dy,
                        epsilon,
                    );
                    grad_gamma.into_iter().map(f64::from).collect::<Vec<f64>>()
                })
                .reduce(
                    || vec![0f64; width],
                    |mut a, b| {
                        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                        a
                    },
                );
        })
    };
    let grad_gamma: Vec<f32> = grad_gamma.into_iter().map(|g| g as f32).collect();
    (tensor_like(x, grad_x), tensor_like(gamma, grad_gamma))
}

/// Tracked ops: each keeps its inputs and runs its backward kernel. Their outputs are not kept:
/// the projection that reads one (a matmul, which keeps its input for the weight's gradient)
/// gets it recomputed in backward, a cheap element-wise pass instead of a `[rows, width]`
/// tensor held from forward to backward in every layer (vendor/burn-autodiff PATCHES.md item 3).
impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Swiglu;

        impl Backward<Flex, 2> for Swiglu {
            /// The checkpointed gate and up.
            type State = (NodeId, NodeId);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_gate, node_up] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let gate: FlexTensor = checkpointer.retrieve_node_output(ops.state.0);
                let up: FlexTensor = checkpointer.retrieve_node_output(ops.state.1);
                let (grad_gate, grad_up) = swiglu_backward(&gate, &up, &grad);
                for (node, grad) in [(node_gate, grad_gate), (node_up, grad_up)] {
                    if let Some(node) = node {
                        grads.register::<Flex>(node.id, grad);
                    }
                }
            }
        }

        /// Recomputes the output from the checkpointed gate and up for the down projection's
        /// backward, which would otherwise keep it: one `[rows, I]` tensor less per layer.
        #[derive(Debug)]
        struct RetroSwiglu {
            gate: NodeId,
            up: NodeId,
        }

        impl RetroForward for RetroSwiglu {
            fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
                let gate: FlexTensor = states.get_state(&self.gate);
                let up: FlexTensor = states.get_state(&self.up);
                states.save(out_node, Flex::swiglu(gate, up));
            }
        }

        let retro = RetroSwiglu {
            gate: gate.id(),
            up: up.id(),
        };
        match Swiglu
            .prepare::<C>([gate.node(), up.node()])
            .memory_bound()
            .recompute_always(retro, [&gate, &up])
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&gate), prep.checkpoint(&up));
                let output = Flex::swiglu(gate.primitive().clone(), up.primitive().clone());
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::swiglu(gate.into_primitive(), up.into_primitive()))
            }
        }
    }

    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RmsNorm;

        impl Backward<Flex, 2> for RmsNorm {
            /// The checkpointed x and γ, and ε.
            type State = (NodeId, NodeId, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x_state, gamma_state, epsilon) = ops.state;
                let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
                let gamma: FlexTensor = checkpointer.retrieve_node_output(gamma_state);
                let (grad_x, grad_gamma) = rms_norm_backward(&x, &gamma, &grad, epsilon);
                for (node, grad) in [(node_x, grad_x), (node_gamma, grad_gamma)] {
                    if let Some(node) = node {
                        grads.register::<Flex>(node.id, grad);
                    }
                }
            }
        }

        /// Recomputes the output from the checkpointed x and γ for the backward of the
        /// projections that read it (q, k, v; gate, up), which would otherwise keep it.
        #[derive(Debug)]
        struct RetroRmsNorm {
            x: NodeId,
            gamma: NodeId,
            epsilon: f64,
        }

        impl RetroForward for RetroRmsNorm {
            fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
                let x: FlexTensor = states.get_state(&self.x);
                let gamma: FlexTensor = states.get_state(&self.gamma);
                states.save(out_node, Flex::rms_norm(x, gamma, self.epsilon));
            }
        }

        let retro = RetroRmsNorm {
            x: x.id(),
            gamma: gamma.id(),
            epsilon,
        };
        match RmsNorm
            .prepare::<C>([x.node(), gamma.node()])
            .memory_bound()
            .recompute_always(retro, [&x, &gamma])
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&gamma), epsilon);
                let output =
                    Flex::rms_norm(x.primitive().clone(), gamma.primitive().clone(), epsilon);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::rms_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                epsilon,
            )),
        }
    }

    fn rope(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Rope;

        impl Backward<Flex, 1> for Rope {
            /// The tables (untracked constants) and the scale: RoPE is linear in x, so its
            /// backward needs nothing of x.
            type State = (FlexTensor, FlexTensor, f32);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(node) = node_x {
                    let (cos, sin, scale) = &ops.state;
                    let grad_x = rotate(&grad, cos, sin, *scale, Rotation::Transpose);
                    grads.register::<Flex>(node.id, grad_x);
                }
            }
        }

        let (cos, sin) = (cos.into_primitive(), sin.into_primitive());
        match Rope.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = Flex::rope(x.primitive().clone(), cos.clone(), sin.clone(), scale);
                prep.finish((cos, sin, scale as f32), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::rope(x.into_primitive(), cos, sin, scale))
            }
        }
    }
}
