//! The one model trait the trainer is generic over: hidden states and an output head.
//!
//! Any decoder that yields final hidden states `[B, T, H]` and a `[H, V]` output head trains
//! with ORPO; the loss applies the head in chunks. [`DecoderForCausalLM`] implements it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use orpo_model::{DecoderForCausalLM, LoraConfig, SaveDtype};

/// A causal language model the ORPO trainer can train, evaluate and save.
pub trait CausalLm: Module + Sized + Sync + 'static {
    /// Final hidden states `[B, T, H]` (after the last norm) for `input_ids` `[B, T]` and
    /// `attention_mask` `[B, T]` (1 = real token).
    fn hidden_states(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3>;

    /// The output head: weight `[H, V]` (`logits = hidden · weight`) and optional bias `[V]`.
    fn output_head(&self) -> (Tensor<2>, Option<Tensor<1>>);

    /// Vocabulary size `V` (checked against the tokenizer).
    fn vocab_size(&self) -> usize;

    /// Writes the model as a Hugging Face directory (`config.json`, `model.safetensors`), the
    /// weights in `dtype`.
    fn save_pretrained(&self, dir: &Path, dtype: SaveDtype) -> anyhow::Result<()>;

    /// [`save_pretrained`](Self::save_pretrained) with the weights split into shards of at most
    /// `max_shard_size` bytes and `model.safetensors.index.json`, as transformers'
    /// `save_pretrained(max_shard_size=...)` writes them. The default writes one file.
    fn save_pretrained_sharded(
        &self,
        dir: &Path,
        dtype: SaveDtype,
        max_shard_size: u64,
    ) -> anyhow::Result<()> {
        let _ = max_shard_size;
        self.save_pretrained(dir, dtype)
    }

    /// The soft-cap `c` of the final logits (`c · tanh(z / c)`, Gemma 2's
    /// `final_logit_softcapping`), which the loss applies to the output head's logits; `None`
    /// (the default) for raw logits.
    fn final_logit_softcap(&self) -> Option<f64> {
        None
    }

    /// The float type the model's weights were stored in when it was loaded (`dtype` /
    /// `torch_dtype` of its config.json): what `save_dtype` defaults to. `None` (the default) for
    /// a model that was never stored, which is saved in f32.
    fn stored_dtype(&self) -> Option<SaveDtype> {
        None
    }

    /// Loads what [`save_pretrained`](Self::save_pretrained) wrote, onto `device` (resume).
    fn load_pretrained(dir: &Path, device: &Device) -> anyhow::Result<Self>;

    /// Attaches fresh LoRA adapters to the projections `config` names and freezes every other
    /// weight, so that only the adapters train (`use_peft: true`). Models without LoRA support
    /// keep this default, an error.
    fn with_lora(self, config: &LoraConfig) -> anyhow::Result<Self> {
        let _ = config;
        anyhow::bail!("this model does not support LoRA (`use_peft: true`)")
    }

    /// The LoRA settings when the model trains adapters on frozen weights.
    fn lora_config(&self) -> Option<&LoraConfig> {
        None
    }

    /// Writes the adapters as a PEFT adapter directory (`adapter_config.json`,
    /// `adapter_model.safetensors`). [`save_pretrained`](Self::save_pretrained) of a model with
    /// adapters writes the merged model.
    fn save_adapter(&self, dir: &Path) -> anyhow::Result<()> {
        anyhow::bail!("{}: the model has no LoRA adapters", dir.display())
    }

    /// Replaces the adapters with those of a PEFT adapter directory, keeping the (frozen) base
    /// weights (resuming a LoRA run).
    fn load_adapter(self, dir: &Path) -> anyhow::Result<Self> {
        anyhow::bail!("{}: this model does not support LoRA", dir.display())
    }
}

impl CausalLm for DecoderForCausalLM {
    fn final_logit_softcap(&self) -> Option<f64> {
        DecoderForCausalLM::final_logit_softcap(self)
    }

    fn hidden_states(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3> {
        self.forward_hidden(input_ids, attention_mask)
    }

    fn output_head(&self) -> (Tensor<2>, Option<Tensor<1>>) {
        (self.head_weight(), None)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn save_pretrained(&self, dir: &Path, dtype: SaveDtype) -> anyhow::Result<()> {
        DecoderForCausalLM::save_pretrained(self, dir, dtype)?;
        Ok(())
    }

    fn save_pretrained_sharded(
        &self,
        dir: &Path,
        dtype: SaveDtype,
        max_shard_size: u64,
    ) -> anyhow::Result<()> {
        DecoderForCausalLM::save_pretrained_sharded(self, dir, dtype, max_shard_size)?;
        Ok(())
    }

    fn stored_dtype(&self) -> Option<SaveDtype> {
        DecoderForCausalLM::stored_dtype(self)
    }

    fn load_pretrained(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        Ok(DecoderForCausalLM::from_pretrained(dir, device)?)
    }

    fn with_lora(self, config: &LoraConfig) -> anyhow::Result<Self> {
        Ok(DecoderForCausalLM::with_lora(self, config)?)
    }

    fn lora_config(&self) -> Option<&LoraConfig> {
        DecoderForCausalLM::lora_config(self)
    }

    fn save_adapter(&self, dir: &Path) -> anyhow::Result<()> {
        Ok(DecoderForCausalLM::save_adapter(self, dir)?)
    }

    fn load_adapter(self, dir: &Path) -> anyhow::Result<Self> {
        Ok(DecoderForCausalLM::load_adapter(self, dir)?)
    }
}
