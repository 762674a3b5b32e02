//! The compiler front (options, artifacts, the refusing [`PlironCompiler`]) and the device
//! feature narrowing cubecl-cuda calls when its LLVM backend is selected.

mod base;
#[cfg(any(feature = "amdgpu", feature = "nvptx"))]
pub mod lowered_features;

pub use base::*;
