//! The one model trait the trainer is generic over: hidden states and an output head.
//!
//! Any decoder that yields final hidden states `[B, T, H]` and a `[H, V]` output head trains
//! with ORPO; the loss applies the head in chunks. [`LlamaForCausalLM`] implements it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use orpo_model::{LlamaForCausalLM, SaveDtype};

/// A causal language model the ORPO trainer can train, evaluate and save.
pub trait CausalLm: Module + Sized + 'static {
    /// Final hidden states `[B, T, H]` (after the last norm) for `input_ids` `[B, T]` and
    /// `attention_mask` `[B, T]` (1 = real token).
    fn hidden_states(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3>;

    /// The output head: weight `[H, V]` (`logits = hidden · weight`) and optional bias `[V]`.
    fn output_head(&self) -> (Tensor<2>, Option<Tensor<1>>);

    /// Vocabulary size `V` (checked against the tokenizer).
    fn vocab_size(&self) -> usize;

    /// Writes the model as a Hugging Face directory (`config.json`, `model.safetensors`).
    fn save_pretrained(&self, dir: &Path) -> anyhow::Result<()>;

    /// Loads what [`save_pretrained`](Self::save_pretrained) wrote, onto `device` (resume).
    fn load_pretrained(dir: &Path, device: &Device) -> anyhow::Result<Self>;
}

impl CausalLm for LlamaForCausalLM {
    fn hidden_states(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3> {
        self.forward_hidden(input_ids, attention_mask)
    }

    fn output_head(&self) -> (Tensor<2>, Option<Tensor<1>>) {
        (self.head_weight(), None)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn save_pretrained(&self, dir: &Path) -> anyhow::Result<()> {
        LlamaForCausalLM::save_pretrained(self, dir, SaveDtype::F32)?;
        Ok(())
    }

    fn load_pretrained(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        Ok(LlamaForCausalLM::from_pretrained(dir, device)?)
    }
}
