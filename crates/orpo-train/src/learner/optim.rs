//! orpo-train's AdamW as burn's `Optimizer`, for burn-train's `Learner`.
//!
//! The update is [`crate::optim`]'s own (`torch.optim.AdamW`: f32 moments, bias correction, ε
//! added to `sqrt(v̂)`, decoupled decay `p ← p(1 − lr·wd)`), so a step through burn's
//! `ModuleOptimizer` gives the weights [`crate::optim::AdamW::step`] gives. Weight decay follows
//! the Hugging Face Trainer's groups (none on biases and norm weights) through a burn
//! `ParamGroup` on the parameter path, the same rule as [`crate::optim::is_no_decay`].
//!
//! Differences from [`crate::optim::AdamW`], by burn's design: the state lives in burn's
//! `ModuleOptimizer`, keyed by `ParamId` and saved as burnpack records by burn-train's
//! checkpointer (not `optimizer.safetensors` by path), and the step count is per parameter (as
//! in PyTorch), where `AdamW` keeps one count: the same whenever every trained parameter gets a
//! gradient each step, as in full fine-tuning and LoRA. bf16 / f16 parameters keep an f32
//! master copy in their state, as `AdamW` does.

use burn::module::ParamGroup;
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::tensor::{DType, Device, FloatDType, Tensor};

use crate::optim::{AdamWSettings, Moments, adamw_update};

/// The parameter paths the Hugging Face Trainer exempts from weight decay, as a regex for
/// burn's `ParamGroup`: `\.bias$` ≡ `ends_with(".bias")`, `norm` ≡ `contains("norm")`
/// ([`crate::optim::is_no_decay`]).
pub const NO_DECAY_PATTERN: &str = r"\.bias$|norm";

/// AdamW for one parameter group: the settings and the group's weight decay.
#[derive(Debug, Clone)]
pub struct OrpoAdamW {
    settings: AdamWSettings,
    decay: f64,
}

/// The state of one parameter: its moments, flattened to `[numel]` and kept in f32 whatever the
/// parameter's float type, the number of updates it has had, and for a bf16 / f16 parameter its
/// f32 master copy `[numel]` (updated in f32 and rounded to the parameter's type after each
/// step, as [`crate::optim::AdamW`] does).
#[derive(Debug, Clone)]
pub struct OrpoAdamWState {
    moments: Moments,
    step: u64,
    master: Option<Tensor<1>>,
}

impl Optimizer for OrpoAdamW {
    type State<const D: usize> = OrpoAdamWState;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let dims = tensor.dims();
        let numel: usize = dims.iter().product();
        let dtype = tensor.dtype();
        let keeps_master = dtype != DType::F32;
        let step = state.as_ref().map_or(0, |s| s.step) + 1;
        let (previous, master) = match state {
            Some(s) => (Some(s.moments), s.master),
            None => (None, None),
        };
        // The first step of a bf16 / f16 parameter makes its master from its value (exact:
        // bf16 and f16 are subsets of f32).
        let value = match master {
            Some(master) if keeps_master => master,
            _ => tensor.reshape([numel]).cast(FloatDType::F32),
        };
        let grad = grad.reshape([numel]).cast(FloatDType::F32);
        let (value, moments) = adamw_update(
            value,
            grad,
            previous,
            &self.settings,
            lr,
            self.decay,
            step as i32,
        );
        let master = keeps_master.then(|| value.clone());
        let value = value.reshape(dims).cast(dtype);
        (
            value,
            Some(OrpoAdamWState {
                moments,
                step,
                master,
            }),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        OrpoAdamWState {
            moments: Moments {
                exp_avg: state.moments.exp_avg.to_device(device),
                exp_avg_sq: state.moments.exp_avg_sq.to_device(device),
            },
            step: state.step,
            master: state.master.map(|m| m.to_device(device)),
        }
    }
}

impl RecordState for OrpoAdamWState {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_tensor(prefix, "exp_avg", self.moments.exp_avg.to_data());
        out.push_tensor(prefix, "exp_avg_sq", self.moments.exp_avg_sq.to_data());
        out.push_scalar(prefix, "step", self.step.into());
        if let Some(master) = &self.master {
            out.push_tensor(prefix, "master", master.to_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let tensor = |data| Tensor::<1>::from_data(data, (device, DType::F32));
        let exp_avg = tensor(src.take_tensor(prefix, "exp_avg")?);
        let exp_avg_sq = tensor(src.take_tensor(prefix, "exp_avg_sq")?);
        let step = u64::try_from(src.take_scalar(prefix, "step")?).ok()?;
        let master = src.take_tensor(prefix, "master").map(tensor);
        Some(Self {
            moments: Moments {
                exp_avg,
                exp_avg_sq,
            },
            step,
            master,
        })
    }
}

/// The `ModuleOptimizer` for burn-train's `Learner`: [`OrpoAdamW`] with `settings` for every
/// parameter, and with no weight decay on the paths of [`NO_DECAY_PATTERN`].
pub fn orpo_adamw(settings: AdamWSettings) -> ModuleOptimizer {
    let decayed = OrpoAdamW {
        decay: settings.weight_decay,
        settings: settings.clone(),
    };
    let no_decay = OrpoAdamW {
        decay: 0.0,
        settings,
    };
    let group = ParamGroup::from_regex(NO_DECAY_PATTERN).expect("a valid regex");
    ModuleOptimizer::from(decayed).with_group(group, no_decay, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::is_no_decay;

    /// The regex group and the default loop's rule agree on the paths of a Llama model, with
    /// the learner's `model.` prefix and without.
    #[test]
    fn no_decay_group_is_the_trainers_rule() {
        let group = ParamGroup::from_regex(NO_DECAY_PATTERN).unwrap();
        let id = burn::module::ParamId::new();
        for path in [
            "embed_tokens.weight",
            "layers.0.input_layernorm.gamma",
            "layers.0.post_attention_layernorm.gamma",
            "layers.3.self_attn.q_proj.weight",
            "layers.3.self_attn.q_proj.bias",
            "layers.3.mlp.down_proj.weight",
            "norm.gamma",
            "lm_head.weight",
            "layers.0.self_attn.q_proj.weight.lora.a",
            "bias_free.weight",
        ] {
            for p in [path.to_string(), format!("model.{path}")] {
                assert_eq!(group.matches(&id, Some(&p)), is_no_decay(&p), "{p}");
            }
        }
    }

    /// A state survives burn's record round trip (what burn-train's checkpointer writes).
    #[test]
    fn state_round_trips_through_a_record() {
        let device = Device::flex();
        let optim = OrpoAdamW {
            settings: AdamWSettings::default(),
            decay: 0.0,
        };
        let w = Tensor::<2>::from_floats([[1.0, -2.0], [0.5, 3.0]], &device);
        let g = Tensor::<2>::from_floats([[0.1, 0.2], [-0.3, 0.4]], &device);
        let (_, state) = optim.step(1e-3, w.clone(), g.clone(), None);
        let state = state.unwrap();
        let mut sink = StateSink::default();
        state.state_flatten("p", &mut sink);
        let mut source = StateSource::new(sink.scalars.into_iter().collect());
        for (name, data) in sink.tensors {
            source.insert_tensor(name, data);
        }
        let restored = OrpoAdamWState::state_unflatten("p", &mut source, &device).unwrap();
        assert_eq!(restored.step, 1);
        let (a, _) = optim.step(1e-3, w.clone(), g.clone(), Some(state));
        let (b, _) = optim.step(1e-3, w, g, Some(restored));
        assert_eq!(
            a.into_data().try_to_vec::<f32>().unwrap(),
            b.into_data().try_to_vec::<f32>().unwrap()
        );
    }
}
