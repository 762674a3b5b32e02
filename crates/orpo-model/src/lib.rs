//! Llama-family decoders (Llama 2/3, Mistral, Qwen2/2.5, SmolLM2) on burn, read from and
//! written to Hugging Face checkpoints.
//!
//! - [`DecoderConfig`] reads a Hugging Face `config.json` (`model_type` llama, mistral, qwen2).
//! - [`DecoderForCausalLM`] is the decoder. Its forward pass returns the final hidden states
//!   `[B, T, H]`; the output head ([`DecoderForCausalLM::head_weight`], `[H, V]`) is applied by
//!   the caller, so a loss can do it in chunks.
//! - Weights load from `model.safetensors` or a sharded index, in f32, bf16 or f16, and save
//!   back in the layout transformers loads ([`DecoderForCausalLM::save_pretrained`]).
//! - [`GenerationConfig`] drives KV-cached generation.
//! - [`LoraConfig`] and [`DecoderForCausalLM::with_lora`]: LoRA adapters on frozen weights (burn's
//!   reparameterization, PEFT's initialisation and forward), merged or saved as a PEFT adapter
//!   directory ([`lora`]).
//!
//! The crate names no backend: pass any burn [`Device`](burn::tensor::Device).
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use orpo_model::{DecoderConfig, DecoderForCausalLM};
//!
//! let json = r#"{"model_type":"llama","vocab_size":32,"hidden_size":16,"intermediate_size":32,
//!   "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2}"#;
//! let config = DecoderConfig::from_json_str(json, "config.json".as_ref()).unwrap();
//! let device = Device::default();
//! let model = DecoderForCausalLM::init(&config, &device);
//! let ids = Tensor::<2, Int>::from_ints([[1, 2, 3]], &device);
//! let hidden = model.forward_hidden(ids, Tensor::ones([1, 3], &device));
//! assert_eq!(hidden.dims(), [1, 3, 16]);
//! ```

pub mod adapters;
pub mod attention;
pub mod config;
pub mod error;
pub mod family;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod lora;
pub mod mlp;
pub mod model;
pub mod rope;
pub mod save;
pub mod shard;
pub mod tensor_file;
pub mod weights;

pub use config::{DecoderConfig, RopeScaling};
pub use error::{ModelError, Result};
pub use generate::GenerationConfig;
pub use lora::LoraConfig;
pub use model::{DecoderForCausalLM, KvCache};
pub use save::SaveDtype;
pub use weights::{RandomInit, SafetensorsCheckpoint, WeightSource};

/// The decoder's name before it served every family ([`DecoderForCausalLM`]).
pub type LlamaForCausalLM = DecoderForCausalLM;
/// The decoder description's name before it served every family ([`DecoderConfig`]).
pub type LlamaConfig = DecoderConfig;
