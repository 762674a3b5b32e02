//! Upstream `src/shared/base.rs`: the same option, module and artifact types, and a
//! [`PlironCompiler`] that refuses to compile. The lowering through pliron and LLVM is left out:
//! it is what needs the downloaded LLVM, and orpo-rs's `cuda` build never selects it.

#[cfg(feature = "nvptx")]
use crate::nvptx::ptx_version::PtxVersion;
use crate::target::LlvmTarget;
#[cfg(feature = "nvptx")]
use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::{Compiler, ir::amd::GfxArch, prelude::KernelDefinition};
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::{
    compiler::CompilationError, config::compilation::F16Evaluation, kernel::BufferIOAttr,
};

/// The LLVM kernel compiler's handle. In this stand-in every [`Compiler::compile`] call fails
/// with [`CompilationError::Generic`], naming the kernel and how to get a build that has LLVM.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// Minimum CPU buffer alignment, including view offsets. Must be a power of two.
    /// `None` makes no alignment promise.
    pub cpu_buffer_alignment: Option<u32>,
    /// AMDGPU architecture, or `None` for other targets.
    pub arch: Option<GfxArch>,
    /// CPU f16 evaluation precision.
    pub f16_evaluation: F16Evaluation,
    /// NVPTX architecture, or `None` for other targets.
    #[cfg(feature = "nvptx")]
    pub sm_arch: Option<SmArch>,
    /// PTX version to emit, or `None` for the oldest the architecture accepts.
    #[cfg(feature = "nvptx")]
    pub ptx_version: Option<PtxVersion>,
    /// Pass scalars and static metadata in the kernel parameter block.
    /// The host must use the same layout.
    pub grid_constants: bool,
}

/// Compiled PTX module (upstream's fields; this stand-in never produces one, but cubecl-cuda
/// reads them in its LLVM path).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX assembly.
    pub ptx: Vec<core::ffi::c_char>,
    /// Kernel entry point symbol.
    pub entrypoint: String,
    /// IR for logging and cache keys.
    pub ir: String,
    /// Shared memory required per launch, in bytes.
    pub shared_memory_size: usize,
    /// Buffer access modes in binding order.
    pub io: Vec<BufferIOAttr>,
}

/// Compiled kernel artifact. Upstream also has `Jit(PlironEngine)` (the CPU runtime's LLVM JIT)
/// and `AmdGpuCode`; both need LLVM, and cubecl-cuda matches only `NvptxCode`.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    NvptxCode(NvptxModule),
}

impl core::fmt::Display for PlironArtifact {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlironArtifact::NvptxCode(module) => write!(f, "{}", module.ir),
        }
    }
}

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;

    type CompilationOptions = PlironOptions;

    fn buffer_io(repr: &Self::Representation) -> Option<Vec<BufferIOAttr>> {
        match repr {
            PlironArtifact::NvptxCode(module) => Some(module.io.clone()),
        }
    }

    fn compile(
        &mut self,
        kernel: KernelDefinition,
        _compilation_options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic {
            reason: refusal(self.target, &kernel.settings.kernel_name),
            backtrace: BackTrace::capture(),
        })
    }

    fn extension(&self) -> &'static str {
        match self.target {
            LlvmTarget::Cpu => "plir",
            #[cfg(feature = "amdgpu")]
            LlvmTarget::AmdGpu => "ll",
            #[cfg(feature = "nvptx")]
            LlvmTarget::Nvptx => "ll",
        }
    }

    fn lang_tag(&self) -> &'static str {
        match self.target {
            LlvmTarget::Cpu => "mlir",
            #[cfg(feature = "amdgpu")]
            LlvmTarget::AmdGpu => "llvm",
            #[cfg(feature = "nvptx")]
            LlvmTarget::Nvptx => "llvm",
        }
    }
}

/// Why a kernel cannot be compiled here, and what to do instead.
fn refusal(target: LlvmTarget, kernel_name: &str) -> String {
    format!(
        "kernel '{kernel_name}' cannot be compiled for the {target:?} target: this build of orpo-rs \
         replaces cubecl-llvm with a stand-in without LLVM (vendor/cubecl-llvm) and compiles CUDA \
         kernels through CUDA C++ and NVRTC (cubecl-cuda's `cpp` feature, which orpo-rs's `cuda` \
         feature enables). Build with that feature, or remove the `cubecl-llvm` entry of the \
         workspace's [patch.crates-io] for the LLVM compiler (its build downloads LLVM)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal names the kernel and both ways out, so an LLVM selection that slipped through
    /// (cubecl-cuda without `cpp`) is diagnosable from the message alone.
    #[test]
    fn the_refusal_names_the_kernel_and_the_fix() {
        let message = refusal(LlvmTarget::Cpu, "matmul_f32");
        assert!(message.contains("'matmul_f32'"), "{message}");
        assert!(message.contains("`cpp` feature"), "{message}");
        assert!(message.contains("[patch.crates-io]"), "{message}");
    }
}
