//! Saving a model as a Hugging Face directory that `AutoModelForCausalLM.from_pretrained`
//! loads unchanged: `config.json` and `model.safetensors` (tied weights omitted, as
//! transformers writes them).

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::Tensor;

use crate::adapters::fused_values;
use crate::error::{ModelError, Result};
use crate::model::DecoderForCausalLM;
pub(crate) use crate::tensor_file::HostInput;
pub use crate::tensor_file::{
    HostTensor, SaveDtype, commit_temp, temp_path, write_atomic, write_tensors,
};

impl DecoderForCausalLM {
    /// The float type the loaded checkpoint was stored in, as its `config.json` says (`dtype`,
    /// which transformers 5 writes, else `torch_dtype`); `None` when it says nothing this crate
    /// can write, and for a model made by [`init`](Self::init), whose weights were never stored.
    pub fn stored_dtype(&self) -> Option<SaveDtype> {
        ["dtype", "torch_dtype"]
            .iter()
            .find_map(|key| self.config.raw.get(*key)?.as_str())
            .and_then(SaveDtype::from_name)
    }

    /// Every parameter, named and laid out as transformers names and lays them out.
    pub fn hf_tensors(&self) -> Result<Vec<HostTensor>> {
        let mut out = Vec::new();
        let mut push = |name: String, tensor: HostInput| -> Result<()> {
            out.push(tensor.read(name)?);
            Ok(())
        };
        push(
            "model.embed_tokens.weight".into(),
            HostInput::D2(self.embed_tokens.weight.val()),
        )?;
        let quirks = &self.config.quirks;
        for (index, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{index}");
            let attn = &layer.self_attn;
            let mlp = &layer.mlp;
            if quirks.fused_projections {
                // Phi-3: rows [q; k; v] and [gate; up], as transformers stores them (merged
                // with a fused adapter's shared A, `fused_values`).
                let join = |parts: Vec<Tensor<2>>| {
                    Tensor::cat(parts.into_iter().map(|w| w.transpose()).collect(), 0)
                };
                let qkv = fused_values([&attn.q_proj, &attn.k_proj, &attn.v_proj], attn.fused_lora);
                push(
                    format!("{p}.self_attn.qkv_proj.weight"),
                    HostInput::D2(join(qkv.to_vec())),
                )?;
                let gate_up = fused_values([&mlp.gate_proj, &mlp.up_proj], mlp.fused_lora);
                push(
                    format!("{p}.mlp.gate_up_proj.weight"),
                    HostInput::D2(join(gate_up.to_vec())),
                )?;
            }
            let separate: &[(&str, &burn::nn::Linear)] = if quirks.fused_projections {
                &[
                    ("self_attn.o_proj", &attn.o_proj),
                    ("mlp.down_proj", &mlp.down_proj),
                ]
            } else {
                &[
                    ("self_attn.q_proj", &attn.q_proj),
                    ("self_attn.k_proj", &attn.k_proj),
                    ("self_attn.v_proj", &attn.v_proj),
                    ("self_attn.o_proj", &attn.o_proj),
                    ("mlp.gate_proj", &mlp.gate_proj),
                    ("mlp.up_proj", &mlp.up_proj),
                    ("mlp.down_proj", &mlp.down_proj),
                ]
            };
            for &(name, linear) in separate {
                push(
                    format!("{p}.{name}.weight"),
                    HostInput::D2(linear.weight.val().transpose()),
                )?;
                if let Some(bias) = &linear.bias {
                    push(format!("{p}.{name}.bias"), HostInput::D1(bias.val()))?;
                }
            }
            // Gemma's sandwich: our pre-MLP norm is its `pre_feedforward_layernorm`, its
            // `post_attention_layernorm` norms the attention output.
            let mut norms = vec![("input_layernorm", &layer.input_layernorm)];
            match (&layer.attn_out_norm, &layer.mlp_out_norm) {
                (Some(attn_out), Some(mlp_out)) => norms.extend([
                    ("post_attention_layernorm", attn_out),
                    ("pre_feedforward_layernorm", &layer.post_attention_layernorm),
                    ("post_feedforward_layernorm", mlp_out),
                ]),
                _ => norms.push(("post_attention_layernorm", &layer.post_attention_layernorm)),
            }
            if let (Some(q), Some(k)) = (&attn.q_norm, &attn.k_norm) {
                norms.extend([("self_attn.q_norm", q), ("self_attn.k_norm", k)]);
            }
            for (name, norm) in norms {
                push(
                    format!("{p}.{name}.weight"),
                    HostInput::D1(norm.gamma.val()),
                )?;
            }
        }
        push(
            "model.norm.weight".into(),
            HostInput::D1(self.norm.gamma.val()),
        )?;
        if let Some(head) = &self.lm_head {
            push(
                "lm_head.weight".into(),
                HostInput::D2(head.weight.val().transpose()),
            )?;
        }
        Ok(out)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed). LoRA
    /// adapters, when attached, are merged into the weights written (`W + scale·A·B`).
    ///
    /// Each file is written to a temporary name in `dir`, synced, then renamed, so an
    /// interrupted save never leaves a half-written file under the final name.
    ///
    /// Weights over 5 GB are sharded ([`save_pretrained_sharded`](Self::save_pretrained_sharded)
    /// with [`DEFAULT_MAX_SHARD_SIZE`](crate::shard::DEFAULT_MAX_SHARD_SIZE)).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>, dtype: SaveDtype) -> Result<()> {
        self.save_pretrained_sharded(dir, dtype, crate::shard::DEFAULT_MAX_SHARD_SIZE)
    }

    /// [`save_pretrained`](Self::save_pretrained) with the weights split into shards of at most
    /// `max_shard_size` bytes (a single tensor larger than that gets a shard of its own) and
    /// `model.safetensors.index.json`, as transformers' `save_pretrained(max_shard_size=...)`
    /// writes them ([`crate::shard`]); one `model.safetensors` when they fit.
    pub fn save_pretrained_sharded(
        &self,
        dir: impl AsRef<Path>,
        dtype: SaveDtype,
        max_shard_size: u64,
    ) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        crate::shard::write_sharded(dir, self.hf_tensors()?, dtype, metadata, max_shard_size)?;

        let mut config = self.config.to_json();
        if let Some(map) = config.as_object_mut() {
            map.insert("torch_dtype".into(), dtype.torch_name().into());
            map.insert("dtype".into(), dtype.torch_name().into());
        }
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
        let config_path = dir.join("config.json");
        write_atomic(&config_path, text.as_bytes()).map_err(|e| ModelError::io(&config_path, e))
    }
}
