//! `--device`: picks one of the backends compiled in by cargo features.

use anyhow::bail;
use burn::tensor::Device;

/// The backends this binary was built with.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "cpu") || cfg!(feature = "ndarray") {
        v.push("cpu");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda[:N]");
    }
    v
}

/// Parses `cpu`, `wgpu`, `cuda` or `cuda:N` into a device (without autodiff).
pub fn parse_device(spec: &str) -> anyhow::Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k.to_string(),
            Some(
                i.parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("--device {spec}: `{i}` is not a device index"))?,
            ),
        ),
        None => (spec.clone(), None),
    };
    let built = compiled_backends().join(", ");
    match kind.as_str() {
        "cpu" => {
            #[cfg(feature = "cpu")]
            return Ok(Device::flex());
            #[cfg(all(feature = "ndarray", not(feature = "cpu")))]
            #[allow(deprecated)]
            return Ok(Device::ndarray());
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(index.unwrap_or(0)));
        }
        _ => bail!("--device {spec}: unknown device; this build has: {built}"),
    }
    let _ = index;
    #[allow(unreachable_code)]
    {
        bail!(
            "--device {spec}: this build was compiled without that backend (it has: {built}); rebuild with `--features {kind}`"
        )
    }
}
