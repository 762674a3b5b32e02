//! Vectorised f32 kernels over host slices, shared by orpo-rs's CPU (`flex`) code paths: the
//! fused SwiGLU and RMSNorm of `orpo-model` and the loss kernels of `orpo-loss`.
//!
//! libm's `expf` is a scalar call: loops over it do not vectorise, and it was ≈ 5% of a CPU
//! training step (attention, SiLU, the loss's softmax). [`exp_approx`] is Cephes' `expf`
//! written branch-free (≤ 1 ulp against the exact value, exact zero below the normal range), so
//! the loops below compile to 16-lane AVX-512 or 8-lane AVX2 code. Each public kernel checks once
//! per call whether the CPU has AVX-512 (F and VL), else AVX2 and FMA, and runs a copy compiled
//! for them, else the baseline build of the same code: results are the same up to summation
//! order.
//!
//! ```
//! let mut row = vec![0.0f32, -1.0, -2.0];
//! let sum = orpo_kernels::exp_shifted_in_place(&mut row, 0.0);
//! assert!((sum - (1.0 + (-1f64).exp() + (-2f64).exp())).abs() < 1e-6);
//! ```

mod exp;
mod rms_norm;
mod softmax;
mod swiglu;

pub use exp::{exp_approx, sigmoid_approx};
pub use rms_norm::{rms_norm_backward_rows, rms_norm_rows};
pub use softmax::{exp_shifted_in_place, exp_shifted_sum, row_max};
pub use swiglu::{swiglu, swiglu_backward};

/// NaN-filled output buffers for the kernels' tests: an element a kernel fails to write stays
/// NaN and fails the comparison.
#[cfg(test)]
pub(crate) fn nan_buffer(len: usize) -> Vec<std::mem::MaybeUninit<f32>> {
    vec![std::mem::MaybeUninit::new(f32::NAN); len]
}

/// The values of a buffer from [`nan_buffer`].
#[cfg(test)]
pub(crate) fn values(buffer: &[std::mem::MaybeUninit<f32>]) -> Vec<f32> {
    // SAFETY: every element was initialised (NaN, or a kernel's write).
    buffer.iter().map(|v| unsafe { v.assume_init() }).collect()
}

/// Defines `pub fn $name($args) -> $ret` running `$body` compiled for AVX-512 (16-lane) when the
/// CPU has it, else for AVX2 + FMA when it has those, else for the baseline target.
macro_rules! dispatch {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use dispatch;
