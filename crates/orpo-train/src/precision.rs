//! Mixed precision: what a `bf16: true` / `fp16: true` run does beyond computing in that type.
//!
//! burn 0.22 sets the float type on the device ([`crate::training_device`]), so the model's
//! weights, activations and gradients are bf16 / f16. Three things make such a run train like
//! torch's automatic mixed precision (which TRL's `bf16=True` / `fp16=True` use):
//! - **f32 master weights**, kept by the optimizer ([`crate::optim::AdamW`]): AdamW updates an
//!   f32 copy of every trained parameter and the model receives its rounding.
//! - **f32 gradients** ([`Precision::unscale_to_f32`]): each micro-batch's gradients are widened
//!   to f32 before they are summed over accumulation steps, clipped and applied, as torch's
//!   `.grad` of f32 parameters is f32.
//! - **dynamic loss scaling** for f16 ([`LossScaler`], torch's `GradScaler`): the loss is
//!   multiplied by a scale before the backward pass so that small gradients do not flush to zero
//!   in f16's narrow range; the gradients are divided by it again, and a step whose gradients
//!   overflowed (inf/NaN) is skipped and the scale halved. bf16 has f32's exponent range and
//!   needs none.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::OrpoConfig;

/// torch's `GradScaler` for f16 training: the scale and its schedule (torch's defaults in
/// [`LossScaler::default`]), and how many steps it skipped. Saved in checkpoints
/// (`trainer_state.json`, `loss_scaler`) so that a resumed run continues with the same scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The factor the loss is multiplied by before the backward pass.
    pub scale: f64,
    /// The scale is multiplied by this after `growth_interval` good steps in a row.
    pub growth_factor: f64,
    /// The scale is multiplied by this after a step whose gradients overflowed.
    pub backoff_factor: f64,
    /// Good steps in a row before the scale grows.
    pub growth_interval: u64,
    /// Good steps in a row so far (torch's `_growth_tracker`).
    pub growth_tracker: u64,
    /// Steps skipped because their scaled gradients overflowed, over the whole run.
    pub skipped_steps: u64,
}

impl Default for LossScaler {
    /// `torch.cuda.amp.GradScaler()`: initial scale 2^16, ×2 every 2000 good steps, ×0.5 on an
    /// overflow.
    fn default() -> Self {
        Self::new(65536.0)
    }
}

impl LossScaler {
    /// torch's schedule from `init_scale` (a power of two keeps the unscaling exact).
    pub fn new(init_scale: f64) -> Self {
        Self {
            scale: init_scale,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            growth_tracker: 0,
            skipped_steps: 0,
        }
    }

    /// After a step's gradients are unscaled: `found_inf` (some gradient is inf or NaN) backs
    /// the scale off, counts a skipped step and returns `false` (skip the update); otherwise
    /// counts a good step, grows the scale after `growth_interval` of them in a row, and returns
    /// `true`. The same rule as torch's `_amp_update_scale_`, including keeping the scale when
    /// growing it would overflow.
    pub fn update(&mut self, found_inf: bool) -> bool {
        if found_inf {
            self.scale *= self.backoff_factor;
            self.growth_tracker = 0;
            self.skipped_steps += 1;
            return false;
        }
        self.growth_tracker += 1;
        if self.growth_tracker == self.growth_interval {
            let grown = self.scale * self.growth_factor;
            // torch keeps the scale in an f32 tensor and grows it only while that stays finite.
            if (grown as f32).is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        }
        true
    }
}

/// What the trainer does with a step once its gradients are clipped ([`Precision::judge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepVerdict {
    /// Apply the update.
    Update,
    /// f16 loss scaling: the scaled gradients overflowed; skip the update (the scale was
    /// lowered). Expected now and then, not an error.
    SkipOverflow,
    /// A non-finite loss or gradient norm that loss scaling does not explain: an error, or a
    /// skipped step with `skip_nonfinite_steps`.
    NonFinite,
}

/// The precision a run computes in, with the f16 loss scaler when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// bf16 or f16; `None` for f32.
    dtype: Option<FloatDType>,
    /// f16 only.
    scaler: Option<LossScaler>,
}

impl Precision {
    /// The precision of a run with `config` (`bf16` / `fp16`); f16 starts with torch's default
    /// loss scaler.
    pub fn from_config(config: &OrpoConfig) -> Self {
        let dtype = crate::device::requested_float_dtype(config).map(|(_, dtype)| dtype);
        Self {
            dtype,
            scaler: (dtype == Some(FloatDType::F16)).then(LossScaler::default),
        }
    }

    /// Replaces the loss scaler of an f16 run (another initial scale or schedule, or the state
    /// a checkpoint saved). Ignored in f32 and bf16, which scale nothing.
    pub fn set_loss_scaler(&mut self, scaler: LossScaler) {
        if self.scaler.is_some() {
            self.scaler = Some(scaler);
        }
    }

    /// The loss scaler of an f16 run.
    pub fn loss_scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// What the training log says about the run's precision.
    pub fn describe(&self) -> String {
        match (self.dtype, &self.scaler) {
            (None, _) => "f32 (weights, activations, gradients and AdamW in f32)".into(),
            (Some(FloatDType::F16), Some(s)) => format!(
                "fp16 compute with f32 master weights and dynamic loss scaling (initial scale \
                 {}, x{} every {} good steps, x{} and the step skipped on inf/NaN gradients)",
                s.scale, s.growth_factor, s.growth_interval, s.backoff_factor
            ),
            (Some(dtype), _) => format!(
                "{} compute with f32 master weights (activations and gradients {0}; gradients \
                 summed, clipped and applied in f32 by AdamW on f32 masters)",
                name(dtype)
            ),
        }
    }

    /// The factor to multiply the loss by before the backward pass (1 unless f16).
    pub fn loss_scale(&self) -> f64 {
        self.scaler.as_ref().map_or(1.0, |s| s.scale)
    }

    /// A micro-batch's gradients as f32, divided by the loss scale (torch's `unscale_`; the
    /// scale is a power of two, so the division is exact). f32 runs get `grads` back untouched.
    pub fn unscale_to_f32<M: Module>(&self, module: &M, grads: GradientsParams) -> GradientsParams {
        if self.dtype.is_none() {
            return grads;
        }
        let mut visitor = Unscale {
            grads,
            inverse: 1.0 / self.loss_scale(),
        };
        module.visit(&mut visitor);
        visitor.grads
    }

    /// Decides a step from its loss and its (unscaled) gradient norm, and updates the f16 loss
    /// scale as torch's `GradScaler.update` does. A non-finite norm under f16 with a finite
    /// loss is an overflow of the scaled gradients: skip and back off. A non-finite loss is a
    /// forward-pass problem the scale cannot cause (it applies to the backward pass only): it
    /// stays [`StepVerdict::NonFinite`], and the scale is left alone.
    pub fn judge(&mut self, loss: f64, grad_norm: f64) -> StepVerdict {
        if !loss.is_finite() {
            return StepVerdict::NonFinite;
        }
        if let Some(scaler) = &mut self.scaler
            && !scaler.update(!grad_norm.is_finite())
        {
            return StepVerdict::SkipOverflow;
        }
        if grad_norm.is_finite() {
            StepVerdict::Update
        } else {
            StepVerdict::NonFinite
        }
    }
}

fn name(dtype: FloatDType) -> &'static str {
    match dtype {
        FloatDType::BF16 => "bf16",
        FloatDType::F16 => "fp16",
        _ => "f32",
    }
}

struct Unscale {
    grads: GradientsParams,
    inverse: f64,
}

impl ModuleVisitor for Unscale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let grad = grad.cast(FloatDType::F32);
            let grad = if self.inverse == 1.0 {
                grad
            } else {
                grad.mul_scalar(self.inverse)
            };
            self.grads.register(param.id, grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch's `GradScaler` schedule: back off and skip on an overflow, grow after
    /// `growth_interval` good steps in a row, the count restarting after each growth or
    /// overflow.
    #[test]
    fn loss_scaler_follows_torchs_schedule() {
        let mut s = LossScaler {
            growth_interval: 3,
            ..LossScaler::default()
        };
        assert_eq!(s.scale, 65536.0);
        assert!(!s.update(true));
        assert_eq!((s.scale, s.skipped_steps), (32768.0, 1));
        assert!(s.update(false) && s.update(false));
        assert_eq!(s.scale, 32768.0);
        assert!(!s.update(true));
        assert_eq!(
            (s.scale, s.growth_tracker, s.skipped_steps),
            (16384.0, 0, 2)
        );
        for _ in 0..3 {
            assert!(s.update(false));
        }
        assert_eq!((s.scale, s.growth_tracker), (32768.0, 0));
        // Never grown past what an f32 holds.
        let mut s = LossScaler {
            growth_interval: 1,
            ..LossScaler::new(2f64.powi(127))
        };
        s.update(false);
        assert_eq!(s.scale, 2f64.powi(127));
    }

    #[test]
    fn verdicts() {
        let cfg = |bf16, fp16| OrpoConfig {
            bf16,
            fp16,
            ..Default::default()
        };
        for mut p in [
            Precision::from_config(&cfg(false, false)),
            Precision::from_config(&cfg(true, false)),
        ] {
            assert_eq!(p.loss_scale(), 1.0);
            assert_eq!(p.judge(1.0, 2.0), StepVerdict::Update);
            assert_eq!(p.judge(1.0, f64::INFINITY), StepVerdict::NonFinite);
            assert_eq!(p.judge(f64::NAN, 2.0), StepVerdict::NonFinite);
        }
        let mut p = Precision::from_config(&cfg(false, true));
        assert_eq!(p.loss_scale(), 65536.0);
        assert_eq!(p.judge(1.0, f64::NAN), StepVerdict::SkipOverflow);
        assert_eq!(p.loss_scale(), 32768.0);
        assert_eq!(p.judge(f64::INFINITY, 2.0), StepVerdict::NonFinite);
        assert_eq!(p.loss_scale(), 32768.0);
        assert_eq!(p.judge(1.0, 2.0), StepVerdict::Update);
        assert_eq!(p.loss_scaler().unwrap().growth_tracker, 1);
        assert!(
            p.describe()
                .starts_with("fp16 compute with f32 master weights")
        );
        assert!(
            Precision::from_config(&cfg(true, false))
                .describe()
                .starts_with("bf16 compute with f32 master weights")
        );
    }
}
