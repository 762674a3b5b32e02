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
            // WGPU on Vulkan stores bf16 but computes nothing in it: refuse before any tensor.
            let other = if dtype == FloatDType::BF16 && device.supports_dtype(FloatDType::F16) {
                "; train in f32 or with `fp16: true` instead"
            } else {
                "; train in f32 instead"
            };
            bail!("`{key}: true`, but the device {device:?} has no {dtype:?} arithmetic{other}");
        }
        // A device already set to this type (an earlier run in the same process) is kept: the
        // setting is per device and process, and can be made once.
        if let Err(e) = device.configure(dtype)
            && device.settings().float_dtype != dtype
        {
            return Err(e)
                .with_context(|| format!("`{key}: true`: setting {device:?}'s float type"));
        }
    }
    let device = device.autodiff();
    Ok(if config.gradient_checkpointing {
        device.gradient_checkpointing()
    } else {
        device
    })
}
