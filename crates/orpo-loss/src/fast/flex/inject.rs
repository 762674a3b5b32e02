//! A tracked op that hands a precomputed gradient to a tensor, on the CPU backend (`flex`).
//!
//! `crate::attach_gradient` splices the head's gradients into the caller's graph as
//! `⟨x, grad⟩ − stopgrad(⟨x, grad⟩)` from tensor ops: a forward product and sum over `x` and a
//! backward product, each a full pass. For the tied LM head (`x` = the embedding's transposed
//! view, `[H, V]` column-major) the forward product walked two differently laid out
//! `[576, 49152]` operands element by element, and the gradient then reached the embedding as a
//! transposed view added to its contiguous gradient: ≈ 3% of a training step at the SmolLM2
//! benchmark shape. [`inject_gradient`] returns a `[1]` zero with no pass over `x`; its backward
//! gives `x` `grad` (scaled by the upstream gradient, which is 1 for a plain `loss.backward()`)
//! laid out as `x` is (one transposed copy of `grad` for the tied head), so the embedding adds it
//! contiguously.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor};

/// `[1]` zero whose backward gives `x` the gradient `grad` (see the module docs), when `x` is
/// an f32 tensor on a flex device (tracked or not) and `grad` an f32 tensor of its shape;
/// otherwise `None` (the caller composes tensor ops instead).
pub(crate) fn inject_gradient<const D: usize>(
    x: &Tensor<D>,
    grad: &Tensor<D>,
) -> Option<Tensor<1>> {
    let applies = x.dtype() == DType::F32
        && grad.dtype() == DType::F32
        && x.dims() == grad.dims()
        && x.device().inner() == Device::flex()
        && grad.device().inner() == Device::flex();
    applies.then(|| {
        Tensor::from_dispatch(<Dispatch as InjectGradient>::inject_gradient(
            x.clone().into_dispatch(),
            grad.clone().into_dispatch(),
        ))
    })
}

#[backend_extension(Flex, Autodiff)]
pub(crate) trait InjectGradient: Backend {
    /// `[1]` f32 zero; backward registers `grad · upstream` for `x`.
    fn inject_gradient(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl InjectGradient for Flex {
    fn inject_gradient(_x: FlexTensor, _grad: FlexTensor) -> FlexTensor {
        FlexTensor::zeros([1].into(), DType::F32)
    }
}

/// Whether `t` is a matrix stored column by column (the transposed view of a contiguous one).
fn is_column_major(t: &FlexTensor) -> bool {
    let (shape, strides) = (t.layout().shape(), t.layout().strides());
    shape.num_dims() == 2 && strides[0] == 1 && strides[1] == shape[0] as isize
}

/// `grad` with the memory layout of `x` when `x` is a column-major matrix (a transposed view,
/// as the tied LM head is) and `grad` is not: then what `x`'s transpose passes back to the
/// embedding is contiguous. Otherwise `grad` unchanged.
fn laid_out_like(x: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    if !is_column_major(x) || is_column_major(&grad) {
        return grad;
    }
    let transposed = Flex::float_swap_dims(grad, 0, 1).to_contiguous();
    Flex::float_swap_dims(transposed, 0, 1)
}

impl<C: CheckpointStrategy> InjectGradient for Autodiff<Flex, C> {
    fn inject_gradient(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Inject;

        impl Backward<Flex, 1> for Inject {
            /// The gradient to hand to `x`.
            type State = FlexTensor;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let upstream = grads.consume::<Flex>(&ops.node).to_contiguous();
                let Some(node) = node_x else { return };
                let scale = upstream.as_slice::<f32>().expect("an f32 [1] gradient")[0];
                let grad = if scale == 1.0 {
                    ops.state
                } else if is_column_major(&ops.state) {
                    // Scaled as the contiguous `[V, H]` it views, so it stays column-major.
                    let rows = Flex::float_swap_dims(ops.state, 0, 1);
                    Flex::float_swap_dims(Flex::float_mul_scalar(rows, scale.into()), 0, 1)
                } else {
                    Flex::float_mul_scalar(ops.state, scale.into())
                };
                grads.register::<Flex>(node.id, grad);
            }
        }

        let zero = || FlexTensor::zeros([1].into(), DType::F32);
        match Inject.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let grad = laid_out_like(x.primitive(), grad.into_primitive());
                prep.finish(grad, zero())
            }
            OpsKind::UnTracked(prep) => prep.finish(zero()),
        }
    }
}
