//! The device a run trains on. In burn 0.22 the float type and gradient checkpointing are
//! properties of the `Device`, not of a backend type, so a run's `bf16` / `fp16` /
//! `gradient_checkpointing` keys are applied here, to the device, before any tensor exists.

use anyhow::{Context, bail};
use burn::tensor::{Device, FloatDType};

use crate::OrpoConfig;

/// The float type `config` asks for (`bf16` or `fp16`) with the key that asked, or `None` for
/// the backend's default (f32).
pub fn requested_float_dtype(config: &OrpoConfig) -> Option<(&'static str, FloatDType)> {
    match (config.bf16, config.fp16) {
        (true, _) => Some(("bf16", FloatDType::BF16)),
        (false, true) => Some(("fp16", FloatDType::F16)),
        (false, false) => None,
    }
}

/// Turns a plain backend device (`Device::flex()`, `Device::cuda(0)`, ...) into the autodiff
/// device a run with `config` trains on: default float type set to bf16 / f16 when asked, then
/// autodiff, with burn's `Balanced` gradient checkpointing when `gradient_checkpointing` is on.
///
/// Call it before creating or loading the model: a device's float type can only be set before
/// its first tensor.
pub fn training_device(mut device: Device, config: &OrpoConfig) -> anyhow::Result<Device> {
    if let Some((key, dtype)) = requested_float_dtype(config) {
        if !device.supports_dtype(dtype) {
            bail!("`{key}: true`, but the device {device:?} has no {dtype:?} arithmetic");
        }
        device
            .configure(dtype)
            .with_context(|| format!("`{key}: true`: setting {device:?}'s float type"))?;
    }
    let device = device.autodiff();
    Ok(if config.gradient_checkpointing {
        device.gradient_checkpointing()
    } else {
        device
    })
}
