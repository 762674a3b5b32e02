//! The checkpoint policy: where a run starts (a fresh `output_dir`, the latest complete
//! checkpoint with `--resume` / `resume_from_checkpoint: true`, or a named one), what is
//! restored from a checkpoint, and what a checkpoint and `final/` hold. When to save is
//! `save_strategy` / `save_steps` ([`OrpoConfig::save_due`]); how a checkpoint is written
//! atomically is [`crate::checkpoint`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::tensor::Device;

use super::OrpoTrainer;
use crate::checkpoint::{self, TrainerState};
use crate::config::{OrpoConfig, ResumeFrom};
use crate::model::CausalLm;
use crate::optim::{AdamW, AdamWSettings};
use crate::precision::Precision;

/// Prepares `out` for a run and says which checkpoint it continues from, if any: removes what an
/// interrupted run left half written, and refuses an `out` that already holds a run unless the
/// run resumes (`resume`, the `--resume` flag, or `resume_from_checkpoint`) or
/// `overwrite_output_dir` is set.
pub(super) fn resume_dir(
    out: &Path,
    cfg: &OrpoConfig,
    resume: bool,
) -> anyhow::Result<Option<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    checkpoint::remove_partial_checkpoints(out);
    let existing = checkpoint::list_checkpoints(out);
    let has_run = !existing.is_empty() || out.join("metrics.jsonl").exists();
    // `resume_from_checkpoint: true` is `--resume`; a path names the checkpoint.
    let resume = resume
        || matches!(
            cfg.resume_from_checkpoint,
            Some(ResumeFrom::Latest(true) | ResumeFrom::Path(_))
        );
    let resume_dir = match &cfg.resume_from_checkpoint {
        Some(ResumeFrom::Path(dir)) => {
            if !dir.join(checkpoint::TRAINER_STATE).is_file() {
                bail!(
                    "resume_from_checkpoint: {} is not a checkpoint (no {})",
                    dir.display(),
                    checkpoint::TRAINER_STATE
                );
            }
            Some(dir.clone())
        }
        _ if resume => existing.last().map(|(_, dir)| dir.clone()),
        _ => None,
    };
    if has_run && !resume && !cfg.overwrite_output_dir {
        bail!(
            "{} already holds a run; pass --resume to continue it or set \
             overwrite_output_dir: true to start over",
            out.display()
        );
    }
    Ok(resume_dir)
}

impl<M: CausalLm> OrpoTrainer<M> {
    /// Continues from the checkpoint `dir`: the trainer state (data position, log history, the
    /// fp16 loss scaler), the model (or its LoRA adapter) and the optimizer, whose f32 masters'
    /// rounding becomes the model's weights (the weights the interrupted run computed with,
    /// whatever type the checkpoint's weights were written in).
    pub(super) fn restore(
        &mut self,
        dir: &Path,
        settings: AdamWSettings,
        device: &Device,
        precision: &mut Precision,
    ) -> anyhow::Result<(TrainerState, AdamW)> {
        let text = std::fs::read_to_string(dir.join(checkpoint::TRAINER_STATE))?;
        let state: TrainerState = serde_json::from_str(&text).with_context(|| {
            format!("reading {}", dir.join(checkpoint::TRAINER_STATE).display())
        })?;
        self.model = crate::lora::restore_model(self.model.clone(), dir, device)
            .with_context(|| format!("loading the model of {}", dir.display()))?;
        let optim = AdamW::load(settings, &dir.join(checkpoint::OPTIMIZER_STATE), device)?;
        self.model = optim.round_masters_into(self.model.clone());
        if let Some(scaler) = state.loss_scaler.clone() {
            precision.set_loss_scaler(scaler);
        }
        if !self.quiet {
            tracing::info!(
                "resuming from {} (step {})",
                dir.display(),
                state.global_step
            );
        }
        Ok((state, optim))
    }

    /// Writes `checkpoint-<step>/` (the model from the f32 masters of a bf16 / f16 run, the
    /// optimizer state, the tokenizer files, then `trainer_state.json`) and prunes the oldest
    /// checkpoints beyond `save_total_limit`.
    pub(super) fn save_checkpoint(
        &self,
        out: &Path,
        state: &TrainerState,
        optim: &AdamW,
    ) -> anyhow::Result<()> {
        checkpoint::write_checkpoint(out, state.global_step, |dir| {
            // From the f32 masters of a bf16 / f16 run (also kept in the optimizer state).
            let model = optim.with_masters(self.model.clone());
            crate::lora::save_model(&model, dir, self.save_dtype)?;
            optim.save(&dir.join(checkpoint::OPTIMIZER_STATE))?;
            if let Some(tok) = &self.tokenizer_files {
                tok.copy_into(dir)?;
            }
            let text = serde_json::to_string_pretty(state)?;
            crate::io::write_atomic(&dir.join(checkpoint::TRAINER_STATE), text.as_bytes())?;
            Ok(())
        })?;
        checkpoint::prune_checkpoints(out, self.config.save_total_limit);
        Ok(())
    }

    /// Writes the current model (and tokenizer files) as a Hugging Face directory, atomically,
    /// the weights in `save_dtype`; for a LoRA run, the adapter and/or the merged model as
    /// `lora_export` says ([`crate::lora::export_final`]). After a bf16 / f16 run this is the
    /// model's own bf16 / f16 weights; `final/`, which `train` writes, holds the f32 masters'.
    pub fn export(&self, dir: &Path) -> anyhow::Result<()> {
        self.export_model(&self.model, dir)
    }

    pub(super) fn export_model(&self, model: &M, dir: &Path) -> anyhow::Result<()> {
        crate::lora::export_final(
            model,
            self.tokenizer_files.as_ref(),
            dir,
            self.config.lora_export,
            self.save_dtype,
            self.config.max_shard_size.0,
        )?;
        Ok(())
    }
}
