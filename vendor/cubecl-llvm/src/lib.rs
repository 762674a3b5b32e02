//! A stand-in for `cubecl-llvm` 0.11.3 without LLVM, for orpo-rs's offline `cuda` build.
//!
//! `cubecl-cuda` 0.11.3 always depends on `cubecl-llvm`, whose build script downloads an
//! LLVM/MLIR bundle from GitHub (`tracel-llvm-bundler`): a machine that reaches only the package
//! registries cannot link a CUDA binary. orpo-rs compiles CUDA kernels with cubecl-cuda's other
//! compiler, CUDA C++ through NVRTC (its `cpp` feature, which orpo-rs's `cuda` features turn on),
//! so the LLVM compiler is never selected. This crate keeps the items cubecl-cuda names:
//! [`nvptx::ptx_version::PtxVersion`] and [`shared::lowered_features::restrict_features`]
//! (upstream code, unchanged), and a [`PlironCompiler`] whose every compilation is refused with an
//! error that says why. PATCHES.md lists what was kept and what was left out.

// cubecl-hip (burn's ROCm backend) lowers AMD kernels through LLVM only: nothing to fall back to.
#[cfg(feature = "amdgpu")]
compile_error!(
    "orpo-rs replaces cubecl-llvm with a stand-in without LLVM (vendor/cubecl-llvm, for the offline \
     CUDA build): the `amdgpu` target (burn's ROCm backend) needs the real crate; remove the \
     `cubecl-llvm` entry of the workspace's [patch.crates-io] to build it (that build downloads \
     LLVM)"
);

#[cfg(feature = "nvptx")]
pub mod nvptx;
pub mod shared;
pub mod target;

#[cfg(feature = "nvptx")]
pub use shared::NvptxModule;
pub use shared::{PlironArtifact, PlironCompiler, PlironOptions};
pub use target::LlvmTarget;
