//! LoRA runs (`use_peft: true`): which weights train, what checkpoints hold, what `final/` is.
//!
//! - [`prepare_model`] attaches fresh adapters ([`OrpoConfig::lora_config`]) and freezes every
//!   other weight, so gradients, clipping and AdamW state cover the adapters only (the
//!   optimizer keys its moments by parameter path, `layers.0.self_attn.q_proj.weight.lora.a`).
//! - A checkpoint of a LoRA run holds the adapter as PEFT writes it (`adapter_config.json`,
//!   `adapter_model.safetensors`) next to `optimizer.safetensors` and `trainer_state.json`, as
//!   TRL's do; [`restore_model`] loads it back onto the same base to resume.
//! - [`export_final`] writes `final/` according to `lora_export`: the adapter (TRL's
//!   `save_model`), the merged model, or both (`final/` and `final-merged/`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use orpo_model::SaveDtype;

use crate::checkpoint::{TokenizerFiles, export_model, write_dir_atomic};
use crate::config::{LoraExport, OrpoConfig};
use crate::model::CausalLm;

/// The model a run trains: with fresh LoRA adapters when `use_peft` is set and none are
/// attached yet (adapters the caller attached are kept, and trained even without `use_peft`).
pub fn prepare_model<M: CausalLm>(model: M, config: &OrpoConfig) -> anyhow::Result<M> {
    match config.lora_config() {
        Some(lora) if model.lora_config().is_none() => model.with_lora(&lora),
        _ => Ok(model),
    }
}

/// Writes the model part of a checkpoint into `dir`: the adapter of a LoRA model (f32), else
/// the whole model in Hugging Face layout with its weights in `dtype`.
pub fn save_model<M: CausalLm>(model: &M, dir: &Path, dtype: SaveDtype) -> anyhow::Result<()> {
    if model.lora_config().is_some() {
        model.save_adapter(dir)
    } else {
        model.save_pretrained(dir, dtype)
    }
}

/// Reads back what [`save_model`] wrote: onto `model`'s frozen base for a LoRA model, else a
/// whole model from `dir`.
pub fn restore_model<M: CausalLm>(model: M, dir: &Path, device: &Device) -> anyhow::Result<M> {
    if model.lora_config().is_some() {
        model.load_adapter(dir)
    } else {
        M::load_pretrained(dir, device)
    }
}

/// Writes the final model to `dir` (atomically, with the tokenizer files of `tokenizer`)
/// and returns the directories written. A model without adapters is written as a Hugging Face
/// model with its weights in `dtype`; a LoRA model as `export` says: the PEFT adapter (f32), the
/// merged model (in `dtype`), or the adapter in `dir` and the merged model in `<dir>-merged`.
/// Model weights are split into shards of at most `max_shard_size` bytes
/// ([`export_model`]).
pub fn export_final<M: CausalLm>(
    model: &M,
    tokenizer: Option<&TokenizerFiles>,
    dir: &Path,
    export: LoraExport,
    dtype: SaveDtype,
    max_shard_size: u64,
) -> anyhow::Result<Vec<PathBuf>> {
    if model.lora_config().is_none() || export == LoraExport::Merged {
        // `save_pretrained` of a model with adapters writes W + scale·A·B.
        export_model(model, tokenizer, dir, dtype, max_shard_size)?;
        return Ok(vec![dir.to_path_buf()]);
    }
    export_adapter(model, tokenizer, dir)?;
    let mut written = vec![dir.to_path_buf()];
    if export == LoraExport::Both {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push("-merged");
        let merged = dir.with_file_name(name);
        export_model(model, tokenizer, &merged, dtype, max_shard_size)?;
        written.push(merged);
    }
    Ok(written)
}

/// Writes the adapters of `model` (and the tokenizer files of `tokenizer`) as a PEFT
/// adapter directory at `dir`, atomically.
pub fn export_adapter<M: CausalLm>(
    model: &M,
    tokenizer: Option<&TokenizerFiles>,
    dir: &Path,
) -> anyhow::Result<()> {
    write_dir_atomic(dir, |tmp| {
        model.save_adapter(tmp)?;
        if let Some(tok) = tokenizer {
            tok.copy_into(tmp)?;
        }
        Ok(())
    })
}

/// Re-seeds the device before optimizer step `step` when the adapters use dropout, so that the
/// dropout masks of a step depend only on `seed` and the step, and a resumed run draws the
/// masks the uninterrupted one would.
pub fn seed_step<M: CausalLm>(model: &M, device: &Device, seed: u64, step: usize) {
    if model.lora_config().is_some_and(|l| l.dropout > 0.0) {
        device.seed(
            seed.wrapping_add(step as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
    }
}
