//! The fast path on burn's CPU backend (`flex`): host-memory logit kernels
//! ([`kernels`]) and a tracked op that hands a gradient to the graph ([`inject`]).

mod inject;
mod kernels;

use burn::tensor::{Device, Tensor};

pub(super) use inject::inject_gradient;

/// Whether `device` keeps tensors in host memory, so that these kernels apply.
pub(super) fn applies(device: &Device) -> bool {
    *device == Device::flex()
}

/// [`super::LogitKernels`] on flex: vectorised, multi-threaded, in place.
pub(super) struct FlexKernels;

impl super::LogitKernels for FlexKernels {
    fn logits_to_host(&self, z: Tensor<2>) -> Vec<f32> {
        kernels::into_host(z)
    }

    fn target_logps(&self, z: &[f32], v: usize, targets: &[usize]) -> Vec<f32> {
        kernels::rows_target_logps(z, v, targets)
    }

    fn softmax_gradient_in_place(&self, g: &mut [f32], coef: &[f32], targets: &[usize]) {
        kernels::softmax_gradient_in_place(g, coef, targets)
    }

    fn add_weight_gradient(&self, sum: &mut Vec<f32>, h: usize, v: usize, hc: &[f32], g: &[f32]) {
        kernels::add_weight_gradient(sum, h, v, hc, g)
    }
}
