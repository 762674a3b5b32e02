//! AdamW exactly as PyTorch's `torch.optim.AdamW`, with the Hugging Face Trainer's parameter
//! groups (no weight decay on biases and norm weights) and global-norm gradient clipping as
//! `torch.nn.utils.clip_grad_norm_`.
//!
//! burn's own `AdamW` differs in defaults (ε = 1e-5, weight decay 1e-4), clips each tensor by its
//! own norm, and keys its state by run-time parameter ids, which do not survive a reload. This
//! one keys its state by parameter path, so a checkpoint resumes on a freshly loaded model.
//!
//! Mixed precision: a trained parameter stored in bf16 or f16 (a `bf16: true` / `fp16: true`
//! run) gets an f32 master copy here, keyed by path like the moments. The update is applied to
//! the master in f32 and the model receives the master rounded to its own type, as torch AMP,
//! DeepSpeed's bf16 optimizer and Megatron do: at fine-tuning learning rates most updates are
//! below half a bf16 ulp of the weight, and updating the bf16 weight itself rounds them away.
//! f32 parameters have no master (the parameter is its own master; nothing changes for them).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use rayon::prelude::*;

/// AdamW hyper-parameters (PyTorch names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWSettings {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε, added to `sqrt(v̂)`.
    pub epsilon: f64,
    /// Decoupled weight decay, applied as `p ← p · (1 − lr · wd)`.
    pub weight_decay: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// First and second moments of one parameter, flattened to `[numel]`.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    pub(crate) exp_avg: Tensor<1>,
    pub(crate) exp_avg_sq: Tensor<1>,
}

/// AdamW state for a whole model, keyed by parameter path (`layers.0.mlp.up_proj.weight`):
/// the moments of every trained parameter, and the f32 master copy of every trained parameter
/// that is not f32 (module docs). Memory: 8 bytes per trained parameter for the moments, 4 more
/// per bf16/f16 trained parameter for its master.
#[derive(Debug, Clone)]
pub struct AdamW {
    settings: AdamWSettings,
    /// Optimizer steps taken so far (PyTorch's per-parameter `step`, shared here).
    pub step: u64,
    moments: BTreeMap<String, Moments>,
    /// f32 master weights `[numel]` of the trained parameters stored in a narrower type.
    masters: BTreeMap<String, Tensor<1>>,
}

/// Whether the Hugging Face Trainer exempts this parameter from weight decay: biases and the
/// weights of normalisation layers.
pub fn is_no_decay(path: &str) -> bool {
    path.ends_with(".bias") || path.contains("norm")
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(settings: AdamWSettings) -> Self {
        Self {
            settings,
            step: 0,
            moments: BTreeMap::new(),
            masters: BTreeMap::new(),
        }
    }

    /// Whether any parameter has an f32 master copy (a bf16 / f16 run after its first step, or
    /// loaded from such a run's checkpoint).
    pub fn has_masters(&self) -> bool {
        !self.masters.is_empty()
    }

    /// `module` with every parameter that has a master set to the master rounded to the
    /// parameter's own type (its gradient tracking kept). After a resume this makes the model
    /// exactly what the interrupted run computed with, whatever type its checkpoint's weights
    /// were written in. Parameters without a master are unchanged.
    pub fn round_masters_into<M: Module>(&self, module: M) -> M {
        module.map(&mut MasterMapper {
            masters: &self.masters,
            path: Vec::new(),
            widen: false,
        })
    }

    /// `module` with every float parameter in f32: its master where it has one, else its own
    /// value widened (exact). What `final/` and checkpoints are written from, so that they hold
    /// the f32 weights the run trained, not their bf16 / f16 rounding; an adapter merge of a
    /// LoRA model then runs in f32 too. Meant for saving, not for training (the parameters are
    /// f32 on a device whose float type may be bf16).
    pub fn with_masters<M: Module>(&self, module: M) -> M {
        module.map(&mut MasterMapper {
            masters: &self.masters,
            path: Vec::new(),
            widen: true,
        })
    }

    /// One update of every parameter of `module` that has a gradient in `grads`, at `lr`.
    /// `grads` should already be clipped ([`clip_global_norm`]).
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: &mut GradientsParams) -> M {
        self.step += 1;
        let mut mapper = AdamWMapper {
            optim: self,
            lr,
            grads,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    /// Saves the moments, the f32 masters (`<path>.master`) and the step count as a safetensors
    /// file (written atomically).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tensors = Vec::new();
        for (name, m) in &self.moments {
            tensors.push((format!("{name}.exp_avg"), host(&m.exp_avg)));
            tensors.push((format!("{name}.exp_avg_sq"), host(&m.exp_avg_sq)));
        }
        for (name, master) in &self.masters {
            tensors.push((format!("{name}.master"), host(master)));
        }
        let meta = HashMap::from([("step".to_string(), self.step.to_string())]);
        crate::io::write_safetensors(path, &tensors, meta)
    }

    /// Loads what [`save`](Self::save) wrote; moments and masters go to `device` (as f32).
    pub fn load(
        settings: AdamWSettings,
        path: &Path,
        device: &burn::tensor::Device,
    ) -> std::io::Result<Self> {
        let (tensors, meta) = crate::io::read_safetensors(path)?;
        let step = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(path, "no `step` in metadata"))?;
        let mut avg = BTreeMap::new();
        let mut sq = BTreeMap::new();
        let mut masters = BTreeMap::new();
        for (name, values) in tensors {
            let n = values.len();
            // The moments and masters are f32 whatever the run's float type (see `step`).
            let t = Tensor::<1>::from_data(
                TensorData::new(values, [n]),
                (device, burn::tensor::DType::F32),
            );
            if let Some(p) = name.strip_suffix(".exp_avg_sq") {
                sq.insert(p.to_string(), t);
            } else if let Some(p) = name.strip_suffix(".exp_avg") {
                avg.insert(p.to_string(), t);
            } else if let Some(p) = name.strip_suffix(".master") {
                masters.insert(p.to_string(), t);
            } else {
                return Err(invalid(path, &format!("unexpected tensor `{name}`")));
            }
        }
        let mut moments = BTreeMap::new();
        for (name, exp_avg) in avg {
            let exp_avg_sq = sq
                .remove(&name)
                .ok_or_else(|| invalid(path, &format!("`{name}.exp_avg_sq` missing")))?;
            moments.insert(
                name,
                Moments {
                    exp_avg,
                    exp_avg_sq,
                },
            );
        }
        if let Some(name) = masters.keys().find(|name| !moments.contains_key(*name)) {
            return Err(invalid(
                path,
                &format!("`{name}.master` has no moments (`{name}.exp_avg`)"),
            ));
        }
        Ok(Self {
            settings,
            step,
            moments,
            masters,
        })
    }
}

fn invalid(path: &Path, message: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {message}", path.display()),
    )
}

fn host(t: &Tensor<1>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 state")
}

struct AdamWMapper<'a> {
    optim: &'a mut AdamW,
    lr: f64,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
}

impl ModuleMapper for AdamWMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let path = self.path.join(".");
        let s = &self.optim.settings;
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let require_grad = tensor.is_require_grad();
        // Kept to put back on the updated weight: `from_inner` gives the default (none).
        let checkpointing = tensor.gradient_checkpointing_strategy();
        // The update is computed in f32 and the moments kept in f32 whatever the run's float
        // type: in f16, ε = 1e-8 and the squared gradients underflow to 0 and the update turns
        // infinite. A bf16 / f16 parameter is updated through its f32 master (module docs),
        // which its first step makes from its value (exact: bf16 and f16 are subsets of f32).
        let dtype = tensor.dtype();
        let keeps_master = dtype != DType::F32;
        let value = match self.optim.masters.remove(&path) {
            Some(master) if keeps_master => master,
            _ => tensor.inner().reshape([numel]).cast(FloatDType::F32),
        };
        let grad = grad.inner().reshape([numel]).cast(FloatDType::F32);
        let t = self.optim.step as i32;
        let decay = if is_no_decay(&path) {
            0.0
        } else {
            s.weight_decay
        };
        let previous = self.optim.moments.remove(&path);
        let (value, moments) = adamw_update(value, grad, previous, s, self.lr, decay, t);
        if keeps_master {
            self.optim.masters.insert(path.clone(), value.clone());
        }
        let value = value.reshape(dims).cast(dtype);
        self.optim.moments.insert(path, moments);
        let mut value = Tensor::from_inner(value);
        if let Some(strategy) = checkpointing {
            value = value.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Writes the masters into a module: rounded to each parameter's type ([`AdamW::round_masters_into`])
/// or, with `widen`, as f32 with every other float parameter widened ([`AdamW::with_masters`]).
struct MasterMapper<'a> {
    masters: &'a BTreeMap<String, Tensor<1>>,
    path: Vec<String>,
    widen: bool,
}

impl ModuleMapper for MasterMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let master = self.masters.get(&self.path.join("."));
        if master.is_none() && (!self.widen || tensor.dtype() == DType::F32) {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let dims = tensor.dims();
        let target = if self.widen {
            FloatDType::F32
        } else {
            tensor.dtype().into()
        };
        let require_grad = tensor.is_require_grad();
        let checkpointing = tensor.gradient_checkpointing_strategy();
        let value = match master {
            Some(m) => m.clone().reshape(dims),
            None => tensor.inner(),
        };
        let mut value = Tensor::from_inner(value.cast(target));
        if let Some(strategy) = checkpointing {
            value = value.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            value = value.require_grad();
        }
        Param::from_mapped_value(id, value, mapper)
    }
}

/// One AdamW update of a flattened f32 parameter `[numel]` with its gradient: the new value and
/// moments. One host pass on the CPU backend ([`adamw_host`]), tensor ops elsewhere
/// ([`adamw_tensor`]); the same bits either way. [`AdamW::step`] and the burn-train learner's
/// optimizer (`learner::optim`) both update through it, so the two give the same weights.
pub(crate) fn adamw_update(
    value: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    s: &AdamWSettings,
    lr: f64,
    decay: f64,
    t: i32,
) -> (Tensor<1>, Moments) {
    // The host pass needs burn's CPU backend, built in by this crate's `flex` feature.
    #[cfg(feature = "flex")]
    if value.device() == burn::tensor::Device::flex() {
        return adamw_host(value, grad, previous, s, lr, decay, t);
    }
    adamw_tensor(value, grad, previous, s, lr, decay, t)
}

/// One AdamW update of a flattened f32 parameter from tensor ops (any backend): returns the new
/// value and moments. `decay` is the weight decay of this parameter's group, `t` the step.
fn adamw_tensor(
    value: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    s: &AdamWSettings,
    lr: f64,
    decay: f64,
    t: i32,
) -> (Tensor<1>, Moments) {
    let value = if decay != 0.0 {
        value.mul_scalar(1.0 - lr * decay)
    } else {
        value
    };
    let moments = match previous {
        Some(m) => Moments {
            exp_avg: m.exp_avg.mul_scalar(s.beta1) + grad.clone().mul_scalar(1.0 - s.beta1),
            exp_avg_sq: m.exp_avg_sq.mul_scalar(s.beta2) + grad.square().mul_scalar(1.0 - s.beta2),
        },
        None => Moments {
            exp_avg: grad.clone().mul_scalar(1.0 - s.beta1),
            exp_avg_sq: grad.square().mul_scalar(1.0 - s.beta2),
        },
    };
    let bias_correction1 = 1.0 - s.beta1.powi(t);
    let bias_correction2 = 1.0 - s.beta2.powi(t);
    let denom = moments
        .exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias_correction2.sqrt())
        .add_scalar(s.epsilon);
    let update = moments
        .exp_avg
        .clone()
        .div(denom)
        .mul_scalar(lr / bias_correction1);
    (value - update, moments)
}

/// [`adamw_tensor`] as one pass over host memory, for tensors on the CPU backend (`flex`):
/// the tensor path makes about a dozen passes over each parameter, most of them into fresh
/// buffers. The same f32 operations in the same order, so the same bits; a unique tensor hands
/// over its buffer, so nothing is copied.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
fn adamw_host(
    value: Tensor<1>,
    grad: Tensor<1>,
    previous: Option<Moments>,
    s: &AdamWSettings,
    lr: f64,
    decay: f64,
    t: i32,
) -> (Tensor<1>, Moments) {
    let device = value.device();
    let host = |t: Tensor<1>| {
        t.into_data()
            .try_into_vec::<f32>()
            .expect("f32 optimizer tensors")
    };
    let n = value.dims()[0];
    let mut p = host(value);
    let g = host(grad);
    // Zero moments give the first step's `g · (1 − β)` exactly (0 · β + x = x).
    let (mut m, mut v) = match previous {
        Some(moments) => (host(moments.exp_avg), host(moments.exp_avg_sq)),
        None => (vec![0f32; n], vec![0f32; n]),
    };
    // The scalars as the tensor ops convert them: computed in f64, applied in f32.
    let keep = (1.0 - lr * decay) as f32;
    let (beta1, one_minus_beta1) = (s.beta1 as f32, (1.0 - s.beta1) as f32);
    let (beta2, one_minus_beta2) = (s.beta2 as f32, (1.0 - s.beta2) as f32);
    let sqrt_correction2 = (1.0 - s.beta2.powi(t)).sqrt() as f32;
    let epsilon = s.epsilon as f32;
    let step_size = (lr / (1.0 - s.beta1.powi(t))) as f32;
    const CHUNK: usize = 64 * 1024;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .zip(g.par_chunks(CHUNK))
        .for_each(|((p, (m, v)), g)| {
            for i in 0..p.len() {
                let value = if decay != 0.0 { p[i] * keep } else { p[i] };
                m[i] = m[i] * beta1 + g[i] * one_minus_beta1;
                v[i] = v[i] * beta2 + (g[i] * g[i]) * one_minus_beta2;
                let denom = v[i].sqrt() / sqrt_correction2 + epsilon;
                p[i] = value - (m[i] / denom) * step_size;
            }
        });
    let tensor = |values: Vec<f32>| {
        Tensor::<1>::from_data(TensorData::new(values, [n]), (&device, DType::F32))
    };
    let moments = Moments {
        exp_avg: tensor(m),
        exp_avg_sq: tensor(v),
    };
    (tensor(p), moments)
}

/// The global L2 norm of all gradients of `module`, then every gradient scaled by
/// `max_norm / (norm + 1e-6)` when that is below 1 (PyTorch's `clip_grad_norm_`).
/// Returns the norm before clipping; `max_norm <= 0` only measures.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut squares: Option<Tensor<1>> = None;
    let mut collector = NormCollector {
        grads,
        squares: &mut squares,
    };
    module.visit(&mut collector);
    let norm = squares
        .map_or(0.0, |s| s.into_scalar::<f32>() as f64)
        .sqrt();
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let mut scaler = GradScaler { grads, coef };
            module.visit(&mut scaler);
        }
    }
    norm
}

struct NormCollector<'a> {
    grads: &'a GradientsParams,
    squares: &'a mut Option<Tensor<1>>,
}

impl ModuleVisitor for NormCollector<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let sq = grad.square().sum();
            *self.squares = Some(match self.squares.take() {
                Some(acc) => acc + sq,
                None => sq,
            });
        }
    }
}

struct GradScaler<'a> {
    grads: &'a mut GradientsParams,
    coef: f64,
}

impl ModuleVisitor for GradScaler<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, grad.mul_scalar(self.coef));
        }
    }
}

/// Adds `other` into `acc`, parameter by parameter (gradient accumulation).
pub fn accumulate<M: Module>(module: &M, acc: &mut GradientsParams, mut other: GradientsParams) {
    struct Adder<'a> {
        acc: &'a mut GradientsParams,
        other: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Adder<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.other.remove::<D>(param.id) {
                let sum = match self.acc.remove::<D>(param.id) {
                    Some(a) => a + g,
                    None => g,
                };
                self.acc.register(param.id, sum);
            }
        }
    }
    module.visit(&mut Adder {
        acc,
        other: &mut other,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Tiny {
        w: Param<Tensor<1>>,
    }

    /// `n` weights of value 1 in `dtype`, with the f32 gradient `g` each step.
    fn tiny_run(dtype: DType, steps: usize, n: usize) -> (Tiny, AdamW) {
        let device = Device::flex();
        let w = Tensor::<1>::from_data(TensorData::new(vec![1f32; n], [n]), (&device, dtype));
        let mut module = Tiny {
            w: Param::from_tensor(w),
        };
        let mut optim = AdamW::new(AdamWSettings::default());
        for _ in 0..steps {
            let mut grads = GradientsParams::new();
            let g = Tensor::<1>::from_data(TensorData::new(vec![1e-3f32; n], [n]), &device);
            grads.register(module.w.id, g.cast(FloatDType::from(dtype)));
            module = optim.step(1e-5, module, &mut grads);
        }
        (module, optim)
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.cast(FloatDType::F32)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// A bf16 parameter trains through its f32 master: 500 steps of lr 1e-5 on a weight of 1.0
    /// (each update ≈ 1e-5, far below half a bf16 ulp of 1, 2^-9) move the master exactly as
    /// they move an f32 parameter, bit for bit, and the bf16 weight is the master's rounding
    /// (without the master it would stay 1.0). The master survives save and load, and
    /// `round_masters_into` / `with_masters` give the rounded and the f32 weights.
    #[test]
    fn bf16_parameter_trains_through_an_f32_master() {
        let (f32_module, f32_optim) = tiny_run(DType::F32, 500, 3);
        assert!(!f32_optim.has_masters(), "f32 parameters have no master");
        let (bf16_module, optim) = tiny_run(DType::BF16, 500, 3);
        assert_eq!(bf16_module.w.val().dtype(), DType::BF16);
        let expected = values(f32_module.w.val());
        assert!(expected[0] < 0.996, "the f32 weight moved: {}", expected[0]);
        let master = values(optim.with_masters(bf16_module.clone()).w.val());
        assert_eq!(master, expected, "the master is the f32 run's weight");
        let rounded: Vec<f32> = expected
            .iter()
            .map(|&x| {
                Tensor::<1>::from_data(TensorData::new(vec![x], [1]), &Device::flex())
                    .cast(FloatDType::BF16)
                    .cast(FloatDType::F32)
                    .into_scalar::<f32>()
            })
            .collect();
        assert_eq!(values(bf16_module.w.val()), rounded);
        assert!(rounded[0] < 1.0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        optim.save(&path).unwrap();
        let loaded = AdamW::load(AdamWSettings::default(), &path, &Device::flex()).unwrap();
        assert!(loaded.has_masters());
        // A model whose weights lost the masters' rounding gets it back.
        let (fresh, _) = tiny_run(DType::BF16, 0, 3);
        assert_eq!(values(loaded.round_masters_into(fresh).w.val()), rounded);
        let master = values(loaded.with_masters(bf16_module).w.val());
        assert_eq!(master, expected);
    }

    /// The host-memory update is the tensor-op update, bit for bit, over three steps, with and
    /// without weight decay (moments start from none, as on the first step).
    #[test]
    fn host_update_equals_the_tensor_update_bitwise() {
        let device = Device::flex();
        let n = 150_000; // several rayon chunks
        let tensor = |seed: u32, scale: f32| {
            let values: Vec<f32> = (0..n as u32)
                .map(|i| {
                    let x = i.wrapping_mul(2_654_435_761).wrapping_add(seed * 40_503);
                    ((x % 20_011) as f32 / 10_005.5 - 1.0) * scale
                })
                .collect();
            Tensor::<1>::from_data(TensorData::new(values, [n]), &device)
        };
        let bits = |t: &Tensor<1>| -> Vec<u32> {
            let values = t.to_data().try_into_vec::<f32>().unwrap();
            values.iter().map(|x| x.to_bits()).collect()
        };
        let settings = AdamWSettings {
            weight_decay: 0.01,
            ..AdamWSettings::default()
        };
        for decay in [0.0, settings.weight_decay] {
            let (mut host_value, mut tensor_value) = (tensor(1, 0.5), tensor(1, 0.5));
            let (mut host_moments, mut tensor_moments) = (None, None);
            for t in 1..=3 {
                let grad = tensor(10 + t as u32, 1e-3);
                let (v, m) = adamw_host(
                    host_value,
                    grad.clone(),
                    host_moments,
                    &settings,
                    1e-3,
                    decay,
                    t,
                );
                (host_value, host_moments) = (v, Some(m));
                let (v, m) = adamw_tensor(
                    tensor_value,
                    grad,
                    tensor_moments,
                    &settings,
                    1e-3,
                    decay,
                    t,
                );
                (tensor_value, tensor_moments) = (v, Some(m));
                assert_eq!(
                    bits(&host_value),
                    bits(&tensor_value),
                    "value, step {t}, decay {decay}"
                );
                let (a, b) = (
                    host_moments.as_ref().unwrap(),
                    tensor_moments.as_ref().unwrap(),
                );
                assert_eq!(
                    bits(&a.exp_avg_sq),
                    bits(&b.exp_avg_sq),
                    "exp_avg_sq, step {t}"
                );
                let (x, y) = (bits(&a.exp_avg), bits(&b.exp_avg));
                // Equal up to the sign of zero (0 · β + g(1 − β) against g(1 − β) on step 1).
                let same = x
                    .iter()
                    .zip(&y)
                    .all(|(x, y)| x == y || (x | y) & 0x7fff_ffff == 0);
                assert!(same, "exp_avg, step {t}, decay {decay}");
            }
        }
    }
}
