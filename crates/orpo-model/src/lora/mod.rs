//! LoRA (Hu et al. 2021) on the decoder's linear projections, as Hugging Face PEFT does it.
//!
//! Built on burn's reparameterization API (`burn::module::{Reparameterizer, LoraAdapter}`, what
//! `Module::apply_lora` uses): each adapted weight `Param` carries a burn [`LoraAdapter`] —
//! `a` `[in, r]`, `b` `[r, out]`, `scale` — and every other float parameter of the model is
//! frozen (no gradient, so no optimizer state). Two things differ from burn's stock [`Lora`]
//! reparameterizer, both to be PEFT's LoRA:
//! - **initialisation**: `A` is PEFT's `kaiming_uniform_(a=√5)`, i.e. U(−1/√in, 1/√in), `B` is
//!   zero; only the projections named in [`LoraConfig::target_modules`] get adapters, or they
//!   are loaded from a PEFT adapter directory ([`DecoderForCausalLM::load_adapter`]);
//! - **forward** ([`forward`]): `x·W + b + scale · (dropout(x)·A)·B`, PEFT's order, with
//!   `lora_dropout` on the adapter input while training. burn's `Linear::forward` would
//!   materialise `W + scale·A·B` (`Param::val`) in every step, keep that dense matrix for the
//!   backward pass and compute a dense `[in, out]` weight gradient before reducing it to `A`
//!   and `B` — as much work and almost as much memory as full fine-tuning.
//!
//! Merging ([`DecoderForCausalLM::merge_lora`]) is burn's `Module::materialize`:
//! `W ← W + scale·A·B`. [`DecoderForCausalLM::save_pretrained`] of a model with adapters writes
//! the merged weights (`Param::val`); [`DecoderForCausalLM::save_adapter`] writes a PEFT adapter
//! directory (`adapter_config.json` + `adapter_model.safetensors`, PEFT's key names and
//! `[out, in]` layout) that `peft.PeftModel.from_pretrained(base, dir)` loads.
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use orpo_model::{DecoderConfig, DecoderForCausalLM, LoraConfig};
//!
//! let json = r#"{"model_type":"llama","vocab_size":32,"hidden_size":16,"intermediate_size":32,
//!   "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2}"#;
//! let config = DecoderConfig::from_json_str(json, "config.json".as_ref()).unwrap();
//! let device = Device::default();
//! let lora = LoraConfig::new(4, 8.0).with_target_modules(&["all-linear"]).unwrap();
//! let model = DecoderForCausalLM::init(&config, &device).with_lora(&lora).unwrap();
//! assert_eq!(model.lora_config().unwrap().target_modules.len(), 7);
//! let ids = Tensor::<2, Int>::from_ints([[1, 2, 3]], &device);
//! let hidden = model.forward_hidden(ids, Tensor::ones([1, 3], &device));
//! assert_eq!(hidden.dims(), [1, 3, 16]);
//! ```
//!
//! [`Lora`]: burn::module::Lora
//! [`LoraAdapter`]: burn::module::LoraAdapter
//! [`DecoderForCausalLM::load_adapter`]: crate::DecoderForCausalLM::load_adapter
//! [`DecoderForCausalLM::merge_lora`]: crate::DecoderForCausalLM::merge_lora
//! [`DecoderForCausalLM::save_pretrained`]: crate::DecoderForCausalLM::save_pretrained
//! [`DecoderForCausalLM::save_adapter`]: crate::DecoderForCausalLM::save_adapter

mod config;
mod forward;

pub use config::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, ALL_LINEAR, DEFAULT_TARGET_MODULES, FUSED_MODULES,
    KNOWN_MODULES, LINEAR_MODULES, LoraConfig, resolve_target_modules,
};
pub use forward::{forward, forward_fused};
