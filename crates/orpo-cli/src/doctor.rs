//! `orpo doctor`, and the check that runs before any command opens a CUDA device.
//!
//! burn's CUDA backend (cubecl-cuda) finds what it needs at run time and panics on its device
//! thread when something is missing: the driver (`libcuda.so.1`), a device, NVRTC (which
//! compiles every kernel from CUDA C++) or the CUDA headers those kernels include. Through our
//! panic hook that reads as `internal error`, followed by a second one when the caller's channel
//! to the dead thread closes. So the binary asks first, by loading the same libraries under the
//! same names cudarc will (cudarc's own `is_culib_present`), calling `cuInit` and
//! `cuDeviceGetCount`, and looking for the headers where cubecl-cuda will, and turns the first
//! thing missing into one message that says what to install.

use std::path::{Path, PathBuf};

/// The headers cubecl-cuda's kernels include that only the CUDA toolkit provides (NVRTC's
/// built-ins do not cover them): half and bfloat16 arithmetic, fp8 conversions, tensor cores.
/// cubecl-cuda passes `<CUDA root>/include` to NVRTC.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const KERNEL_HEADERS: [&str; 4] = ["cuda_fp16.h", "cuda_bf16.h", "cuda_fp8.h", "mma.h"];

/// The oldest NVRTC we accept: the CUDA 12 headers and `sm_90` (Hopper) need it.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const MIN_NVRTC: (i32, i32) = (12, 0);

/// What to do when the driver is missing, said once for every message that needs it.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const INSTALL_DRIVER: &str = "install the NVIDIA driver (it provides libcuda.so.1; `nvidia-smi` \
     lists the GPUs it sees), or train on another backend (--device cpu or wgpu)";

/// The CUDA root cubecl-cuda compiles against, found its way (`cubecl_cuda::install::cuda_path`
/// reimplemented for any environment): `CUDA_PATH`, else `/usr/local/cuda`, `/opt/cuda`, or
/// `/usr` when `/usr/bin/nvcc` exists.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn cuda_root(cuda_path: Option<&str>, exists: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(path) = cuda_path {
        return Some(PathBuf::from(path));
    }
    ["/usr/local/cuda", "/opt/cuda"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| exists(p))
        .or_else(|| exists(Path::new("/usr/bin/nvcc")).then(|| PathBuf::from("/usr")))
}

/// The include directory NVRTC will get, or what to install when the headers are not there.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn check_headers(
    cuda_path: Option<&str>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let install = "install the CUDA toolkit's headers (NVIDIA's `cuda-toolkit-12-*` packages, \
                   or a `nvidia/cuda:12.*-devel` image), or set CUDA_PATH to a directory whose \
                   include/ holds them";
    let Some(root) = cuda_root(cuda_path, exists) else {
        return Err(format!(
            "the CUDA headers are missing: CUDA_PATH is not set and none of /usr/local/cuda, \
             /opt/cuda, /usr/bin/nvcc exists (NVRTC compiles every kernel against \
             {}); {install}",
            KERNEL_HEADERS.join(", ")
        ));
    };
    let include = root.join("include");
    let missing: Vec<&str> = KERNEL_HEADERS
        .into_iter()
        .filter(|h| !exists(&include.join(h)))
        .collect();
    if missing.is_empty() {
        Ok(include)
    } else {
        Err(format!(
            "the CUDA headers are missing: {} not in {}{}; {install}",
            missing.join(", "),
            include.display(),
            if cuda_path.is_some() {
                " (from CUDA_PATH)"
            } else {
                ""
            }
        ))
    }
}

/// `12.4` from NVRTC's `(12, 4)` or the driver's `12040`.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn cuda_version(driver: i32) -> String {
    format!("{}.{}", driver / 1000, (driver % 1000) / 10)
}

/// Why an NVRTC of version `nvrtc` cannot serve a driver of CUDA version `driver`
/// (`cuDriverGetVersion`), if it cannot: too old for our kernels, or newer than the driver,
/// which then refuses the PTX it writes (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn nvrtc_problem(nvrtc: (i32, i32), driver: i32) -> Option<String> {
    let (major, minor) = nvrtc;
    if nvrtc < MIN_NVRTC {
        return Some(format!(
            "NVRTC {major}.{minor} is too old: the CUDA backend needs NVRTC ≥ {}.{} \
             (e.g. `pip install nvidia-cuda-nvrtc-cu12` and its nvidia/cuda_nvrtc/lib on \
             LD_LIBRARY_PATH)",
            MIN_NVRTC.0, MIN_NVRTC.1
        ));
    }
    if major * 1000 + minor * 10 > driver {
        let supported = cuda_version(driver);
        let wheel = if driver / 1000 == 12 {
            format!(", e.g. `pip install \"nvidia-cuda-nvrtc-cu12=={supported}.*\"`")
        } else {
            String::new()
        };
        return Some(format!(
            "NVRTC {major}.{minor} is newer than the driver's CUDA {supported}: the driver cannot \
             load the PTX it writes; install an NVRTC no newer than {supported}{wheel}, or \
             update the driver"
        ));
    }
    None
}

/// `device`: the CUDA device index a `--device` spec names (`cuda` is 0), `None` for other
/// backends.
pub fn cuda_index(spec: &str) -> Option<usize> {
    let spec = spec.trim().to_ascii_lowercase();
    match spec.split_once(':') {
        None if spec == "cuda" => Some(0),
        Some(("cuda", index)) => index.parse().ok(),
        _ => None,
    }
}

/// Checks that every CUDA device among `specs` (`--device` / `--devices` values) can run, before
/// burn opens one: the first thing missing is the error, naming it and what to install.
/// Specs of other backends are not looked at.
pub fn preflight(specs: &[&str]) -> anyhow::Result<()> {
    let indices: Vec<usize> = specs.iter().filter_map(|s| cuda_index(s)).collect();
    if indices.is_empty() {
        return Ok(());
    }
    #[cfg(feature = "cuda")]
    {
        let report = cuda::probe();
        report.ready_for(&indices).map_err(|e| anyhow::anyhow!(e))
    }
    #[cfg(not(feature = "cuda"))]
    {
        // `parse_device` already refused CUDA specs in a build without CUDA.
        Ok(())
    }
}

/// `orpo doctor`: prints the backends compiled in and, with CUDA, the driver, the devices
/// (name, memory, compute capability), NVRTC, the headers and NCCL. Fails (exit 1) when CUDA
/// is compiled in but `device_spec`'s device (cuda:0 for a non-CUDA spec) could not run.
pub fn doctor(device_spec: &str) -> anyhow::Result<()> {
    println!(
        "backends compiled in: {}",
        crate::device::compiled_backends().join(", ")
    );
    #[cfg(feature = "cuda")]
    {
        let report = cuda::probe();
        print!("{}", report.describe());
        let index = cuda_index(device_spec).unwrap_or(0);
        report.ready_for(&[index]).map_err(|e| anyhow::anyhow!(e))?;
        println!("ready: --device cuda:{index}");
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device_spec;
        println!(
            "CUDA: not compiled in (build with `--features cuda`; docs/backends.md says what \
             the GPU machine needs)"
        );
    }
    Ok(())
}

#[cfg(feature = "cuda")]
mod cuda {
    //! The probe itself: dlopen and driver calls through cudarc, whose library names and
    //! bindings are the ones cubecl-cuda will use.

    use super::*;
    use cudarc::driver::result as driver;
    use cudarc::driver::sys::{CUdevice_attribute, CUresult};
    use std::fmt::Write;

    /// One GPU as the driver describes it.
    pub struct Gpu {
        pub name: String,
        pub memory_bytes: usize,
        pub compute_capability: (i32, i32),
    }

    /// The driver and its devices.
    pub struct Driver {
        /// `cuDriverGetVersion`: the newest CUDA the driver supports, 12.8 as 12080.
        pub version: i32,
        pub gpus: Vec<Gpu>,
    }

    /// Everything `orpo doctor` reports; each part the answer or what is wrong.
    pub struct Report {
        pub driver: Result<Driver, String>,
        pub nvrtc: Result<(i32, i32), String>,
        pub headers: Result<PathBuf, String>,
        /// NCCL's version code (2.21.5 is 22105).
        pub nccl: Result<i32, String>,
    }

    pub fn probe() -> Report {
        Report {
            driver: probe_driver(),
            nvrtc: probe_nvrtc(),
            headers: check_headers(std::env::var("CUDA_PATH").ok().as_deref(), &|p| p.exists()),
            nccl: probe_nccl(),
        }
    }

    /// The Linux names cudarc tries for `lib` (it also tries Windows-style `lib64_NN` names,
    /// left out of the message).
    fn lib_names(lib: &str) -> String {
        cudarc::get_lib_name_candidates(lib)
            .into_iter()
            .filter(|name| !name.contains("32") && !name.contains("64"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn probe_driver() -> Result<Driver, String> {
        // SAFETY: only tries to `dlopen` each candidate name of the driver library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(format!(
                "no CUDA driver: libcuda.so.1 could not be loaded (none of {} is on the library \
                 path); {INSTALL_DRIVER}",
                lib_names("cuda")
            ));
        }
        if let Err(e) = driver::init() {
            return Err(if e.0 == CUresult::CUDA_ERROR_NO_DEVICE {
                format!(
                    "no CUDA device found: the driver is installed but cuInit reports \
                     CUDA_ERROR_NO_DEVICE (CUDA_VISIBLE_DEVICES={}); check `nvidia-smi`",
                    std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "unset".into())
                )
            } else {
                format!(
                    "the CUDA driver does not initialise (cuInit: {e}); check `nvidia-smi`, and \
                     that the driver's kernel module and libcuda.so.1 are the same version"
                )
            });
        }
        let count = driver::device::get_count().map_err(|e| format!("cuDeviceGetCount: {e}"))?;
        let mut version = 0;
        // SAFETY: `cuDriverGetVersion` writes one int into `version`, which outlives the call.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }
            .result()
            .map_err(|e| format!("cuDriverGetVersion: {e}"))?;
        let gpus = (0..count)
            .map(|i| {
                let dev = driver::device::get(i).map_err(|e| format!("cuDeviceGet({i}): {e}"))?;
                let name = driver::device::get_name(dev)
                    .map_err(|e| format!("cuDeviceGetName({i}): {e}"))?;
                // SAFETY: `dev` came from `cuDeviceGet`.
                let (memory_bytes, major, minor) = unsafe {
                    (
                        driver::device::total_mem(dev),
                        driver::device::get_attribute(
                            dev,
                            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                        ),
                        driver::device::get_attribute(
                            dev,
                            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                        ),
                    )
                };
                let query =
                    |what: &str, e: cudarc::driver::DriverError| format!("{what} of cuda:{i}: {e}");
                Ok(Gpu {
                    name,
                    memory_bytes: memory_bytes.map_err(|e| query("memory", e))?,
                    compute_capability: (
                        major.map_err(|e| query("compute capability", e))?,
                        minor.map_err(|e| query("compute capability", e))?,
                    ),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Driver { version, gpus })
    }

    fn probe_nvrtc() -> Result<(i32, i32), String> {
        // SAFETY: only tries to `dlopen` each candidate name of NVRTC.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(format!(
                "NVRTC is missing: none of {} could be loaded (NVRTC compiles every CUDA kernel \
                 at run time); install the CUDA toolkit's NVRTC ≥ 12 (no newer than the \
                 driver's CUDA), or the PyPI wheel (`nvidia-cuda-nvrtc-cu12` for CUDA 12, \
                 `nvidia-cuda-nvrtc` for 13) with its lib directory on LD_LIBRARY_PATH",
                lib_names("nvrtc")
            ));
        }
        let (mut major, mut minor) = (0, 0);
        // SAFETY: `nvrtcVersion` writes two ints, which outlive the call.
        unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
            .result()
            .map_err(|e| format!("nvrtcVersion: {e:?}"))?;
        Ok((major, minor))
    }

    fn probe_nccl() -> Result<i32, String> {
        // SAFETY: only tries to `dlopen` each candidate name of NCCL.
        if !unsafe { cudarc::nccl::sys::is_culib_present() } {
            return Err(
                "not found (libnccl.so); needed only to sum gradients over several GPUs with \
                 NCCL (without it they are copied to the first GPU): install NCCL, e.g. \
                 `pip install nvidia-nccl-cu12` and link libnccl.so to its \
                 nvidia/nccl/lib/libnccl.so.2, on LD_LIBRARY_PATH"
                    .into(),
            );
        }
        cudarc::nccl::result::get_nccl_version().map_err(|e| format!("ncclGetVersion: {e:?}"))
    }

    impl Report {
        /// `Ok` when devices `indices` can run kernels: a driver with those devices, a usable
        /// NVRTC and the headers. NCCL is not needed (the trainer falls back and says so).
        pub fn ready_for(&self, indices: &[usize]) -> Result<(), String> {
            let driver = self.driver.as_ref().map_err(Clone::clone)?;
            if driver.gpus.is_empty() {
                return Err(
                    "no CUDA device found: cuDeviceGetCount reports 0 devices; check \
                            `nvidia-smi` and CUDA_VISIBLE_DEVICES"
                        .into(),
                );
            }
            if let Some(&i) = indices.iter().find(|&&i| i >= driver.gpus.len()) {
                return Err(format!(
                    "--device cuda:{i}: this machine has {} CUDA device(s), cuda:0 to cuda:{}",
                    driver.gpus.len(),
                    driver.gpus.len() - 1
                ));
            }
            let nvrtc = *self.nvrtc.as_ref().map_err(Clone::clone)?;
            if let Some(problem) = nvrtc_problem(nvrtc, driver.version) {
                return Err(problem);
            }
            self.headers.as_ref().map_err(Clone::clone)?;
            Ok(())
        }

        /// The report as `orpo doctor` prints it, one line per part.
        pub fn describe(&self) -> String {
            let mut out = String::new();
            match &self.driver {
                Ok(d) => {
                    let _ = writeln!(
                        out,
                        "CUDA driver: supports CUDA {}, {} device(s)",
                        cuda_version(d.version),
                        d.gpus.len()
                    );
                    for (i, g) in d.gpus.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "  cuda:{i}: {}, {:.1} GiB, compute capability {}.{}",
                            g.name,
                            g.memory_bytes as f64 / (1u64 << 30) as f64,
                            g.compute_capability.0,
                            g.compute_capability.1
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "CUDA driver: {e}");
                }
            }
            match (&self.nvrtc, &self.driver) {
                (Ok((major, minor)), driver) => {
                    let problem = driver
                        .as_ref()
                        .ok()
                        .and_then(|d| nvrtc_problem((*major, *minor), d.version));
                    let _ = writeln!(
                        out,
                        "NVRTC: {major}.{minor}{}",
                        problem.map(|p| format!(" ({p})")).unwrap_or_default()
                    );
                }
                (Err(e), _) => {
                    let _ = writeln!(out, "NVRTC: {e}");
                }
            }
            match &self.headers {
                Ok(include) => {
                    let _ = writeln!(out, "CUDA headers: {}", include.display());
                }
                Err(e) => {
                    let _ = writeln!(out, "CUDA headers: {e}");
                }
            }
            match &self.nccl {
                Ok(code) => {
                    let _ = writeln!(
                        out,
                        "NCCL: {}.{}.{} (several GPUs sum gradients with its all-reduce)",
                        code / 10000,
                        (code % 10000) / 100,
                        code % 100
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "NCCL: {e}");
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fs(paths: &[&str]) -> impl Fn(&Path) -> bool {
        let set: HashSet<PathBuf> = paths.iter().map(PathBuf::from).collect();
        move |p| set.contains(p)
    }

    #[test]
    fn cuda_specs_name_their_index() {
        assert_eq!(cuda_index("cuda"), Some(0));
        assert_eq!(cuda_index(" CUDA:3 "), Some(3));
        assert_eq!(cuda_index("cpu"), None);
        assert_eq!(cuda_index("wgpu"), None);
        assert_eq!(cuda_index("cudax"), None);
    }

    /// cubecl-cuda's search order: CUDA_PATH wins, then /usr/local/cuda, /opt/cuda, /usr.
    #[test]
    fn the_cuda_root_is_found_as_cubecl_cuda_finds_it() {
        let all = fs(&["/usr/local/cuda", "/opt/cuda", "/usr/bin/nvcc"]);
        assert_eq!(
            cuda_root(Some("/x"), &all),
            Some(PathBuf::from("/x")),
            "CUDA_PATH first"
        );
        assert_eq!(cuda_root(None, &all), Some("/usr/local/cuda".into()));
        assert_eq!(
            cuda_root(None, &fs(&["/opt/cuda"])),
            Some("/opt/cuda".into())
        );
        assert_eq!(
            cuda_root(None, &fs(&["/usr/bin/nvcc"])),
            Some("/usr".into())
        );
        assert_eq!(cuda_root(None, &fs(&[])), None);
    }

    #[test]
    fn missing_headers_are_named_with_what_to_install() {
        let e = check_headers(None, &fs(&[])).unwrap_err();
        assert!(e.contains("CUDA_PATH is not set"), "{e}");
        assert!(
            e.contains("/usr/local/cuda") && e.contains("/opt/cuda"),
            "{e}"
        );
        assert!(e.contains("install the CUDA toolkit"), "{e}");

        let some = fs(&[
            "/usr/local/cuda",
            "/usr/local/cuda/include/cuda_fp16.h",
            "/usr/local/cuda/include/mma.h",
        ]);
        let e = check_headers(None, &some).unwrap_err();
        assert!(
            e.contains("cuda_bf16.h, cuda_fp8.h not in /usr/local/cuda/include"),
            "{e}"
        );

        let e = check_headers(Some("/wheel"), &fs(&[])).unwrap_err();
        assert!(e.contains("/wheel/include (from CUDA_PATH)"), "{e}");
    }

    #[test]
    fn complete_headers_give_the_include_directory() {
        let mut paths = vec!["/opt/cuda".to_string()];
        paths.extend(
            KERNEL_HEADERS
                .iter()
                .map(|h| format!("/opt/cuda/include/{h}")),
        );
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(
            check_headers(None, &fs(&paths)),
            Ok(PathBuf::from("/opt/cuda/include"))
        );
    }

    /// NVRTC must be at least 12.0 and no newer than the driver's CUDA version.
    #[test]
    fn nvrtc_must_fit_the_driver() {
        assert_eq!(nvrtc_problem((12, 4), 12040), None);
        assert_eq!(nvrtc_problem((12, 4), 12080), None);
        let newer = nvrtc_problem((12, 8), 12040).unwrap();
        assert!(
            newer.contains("newer than the driver's CUDA 12.4"),
            "{newer}"
        );
        assert!(newer.contains("nvidia-cuda-nvrtc-cu12==12.4.*"), "{newer}");
        let old = nvrtc_problem((11, 8), 12040).unwrap();
        assert!(old.contains("NVRTC 11.8 is too old"), "{old}");
    }

    #[test]
    fn driver_versions_read_as_cuda_versions() {
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12020), "12.2");
    }

    /// Without CUDA specs nothing is probed, in every build.
    #[test]
    fn other_backends_pass_the_preflight() {
        assert!(preflight(&["cpu", "wgpu"]).is_ok());
        assert!(preflight(&[]).is_ok());
    }
}
