//! Step-level checkpoints, written atomically.
//!
//! A checkpoint is a directory `checkpoint-<step>/` holding the model in Hugging Face layout,
//! `optimizer.safetensors`, the tokenizer files and `trainer_state.json` (written last). It is
//! assembled under a temporary name and renamed into place only when complete, so a crash at
//! any point leaves either the previous checkpoints or the new one, never half of one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use orpo_model::SaveDtype;
use serde::{Deserialize, Serialize};

use crate::metrics::LogEntry;
use crate::precision::LossScaler;

/// File names inside a checkpoint.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// The optimizer moments, and the f32 master weights of a bf16 / f16 run
/// ([`crate::optim::AdamW::save`]).
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// Tokenizer files copied next to the weights when they exist.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// Where training stood when a checkpoint was written: enough to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub global_step: usize,
    /// Micro-batches consumed (the data position; orders are derived from `seed` and epoch).
    pub micro_batches_done: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Total optimizer steps of the run.
    pub max_steps: usize,
    /// Everything logged so far.
    pub log_history: Vec<LogEntry>,
    /// The f16 loss scaler's state (`fp16: true` runs; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<LossScaler>,
}

/// The `checkpoint-<step>` directories of `output_dir` that are complete, oldest first.
pub fn list_checkpoints(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(output_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            let path = e.path();
            path.join(TRAINER_STATE).is_file().then_some((step, path))
        })
        .collect();
    found.sort();
    found
}

/// Whether `name` is one of the temporary names this crate writes through: a sibling
/// `.<name>.tmp-<pid>` directory of [`write_dir_atomic`] (and its `-old` / `-pruned` variants),
/// or a `<file>.tmp-<pid>` file of [`crate::io::write_atomic`].
fn is_temp_name(name: &str) -> bool {
    name.rfind(".tmp-")
        .is_some_and(|at| name[at + 5..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Removes what an interrupted run left behind in `output_dir`: temporary checkpoint and
/// export directories (`.checkpoint-<step>.tmp-<pid>`, `.final.tmp-<pid>`) and temporary files
/// (`metrics.jsonl.tmp-<pid>`, ...). Complete checkpoints are never touched.
pub fn remove_partial_checkpoints(output_dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(output_dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            if !is_temp_name(&name) {
                continue;
            }
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Builds a checkpoint in a temporary directory with `fill`, then renames it to
/// `output_dir/checkpoint-<step>`. `fill` must write `trainer_state.json` last.
pub fn write_checkpoint(
    output_dir: &Path,
    step: usize,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let final_dir = output_dir.join(format!("checkpoint-{step}"));
    write_dir_atomic(&final_dir, fill)?;
    Ok(final_dir)
}

/// Fills a temporary sibling directory `.<name>.tmp-<pid>` with `fill`, syncs it, and renames it
/// to `dir`: an interruption leaves the old `dir` or the new one, never a partial one. A `dir`
/// that already exists is first renamed aside (`.<name>.tmp-<pid>-old`, deleted afterwards), so
/// it is never seen half-deleted either. On error nothing is left behind but the old `dir`.
pub fn write_dir_atomic(
    dir: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_dir_atomic_inner(dir, fill).with_context(|| format!("writing {}", dir.display()))
}

fn write_dir_atomic_inner(
    dir: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    crate::io::test_pause("complete, not yet renamed", &tmp);
    sync_dir(&tmp);
    let old = parent.join(format!(".{name}.tmp-{}-old", std::process::id()));
    if old.exists() {
        // Left by an interrupted process that had the same id.
        let _ = std::fs::remove_dir_all(&old);
    }
    let replaced = dir.exists();
    if replaced && let Err(e) = std::fs::rename(dir, &old) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if replaced {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(e.into());
    }
    sync_dir(parent);
    if replaced {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Deletes the oldest checkpoints beyond `limit`.
pub fn prune_checkpoints(output_dir: &Path, limit: Option<usize>) {
    let Some(limit) = limit else { return };
    let found = list_checkpoints(output_dir);
    if found.len() > limit {
        for (step, path) in &found[..found.len() - limit] {
            // Renamed out of the `checkpoint-<step>` namespace first: an interruption while
            // deleting leaves a temporary name (removed on the next start), never a
            // `checkpoint-<step>` with files missing.
            let doomed = output_dir.join(format!(
                ".checkpoint-{step}.tmp-{}-pruned",
                std::process::id()
            ));
            if std::fs::rename(path, &doomed).is_ok() {
                let _ = std::fs::remove_dir_all(&doomed);
            }
        }
    }
}

/// Copies the tokenizer files that exist in `from` into `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name))?;
        }
    }
    Ok(())
}

/// The tokenizer files a saved model carries: those of `dir`, with the config's
/// `chat_template` written over the template they hold when it replaces the tokenizer's (so that
/// a checkpoint or `final/` renders prompts as the run did).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerFiles {
    /// The tokenizer's directory (a model or tokenizer folder).
    pub dir: PathBuf,
    /// The Jinja source that replaced the tokenizer's chat template, if one did.
    pub chat_template: Option<String>,
}

impl TokenizerFiles {
    /// The files of `dir`, as they are.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            chat_template: None,
        }
    }

    /// With `template` replacing the chat template of the copies.
    pub fn with_chat_template(mut self, template: Option<String>) -> Self {
        self.chat_template = template;
        self
    }

    /// Copies the files into `to`; with a replaced template, `chat_template.jinja` holds it (what
    /// transformers reads) and so does `tokenizer_config.json`'s `chat_template` key when the
    /// file has one.
    pub fn copy_into(&self, to: &Path) -> anyhow::Result<()> {
        copy_tokenizer_files(&self.dir, to)?;
        let Some(template) = &self.chat_template else {
            return Ok(());
        };
        let jinja = to.join("chat_template.jinja");
        std::fs::write(&jinja, template).with_context(|| format!("writing {}", jinja.display()))?;
        let config = to.join("tokenizer_config.json");
        if config.is_file() {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let mut value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", config.display()))?;
            if let Some(map) = value.as_object_mut()
                && map.contains_key("chat_template")
            {
                map.insert("chat_template".into(), template.clone().into());
                std::fs::write(&config, serde_json::to_string_pretty(&value)?)
                    .with_context(|| format!("writing {}", config.display()))?;
            }
        }
        Ok(())
    }
}

/// Writes `model` (and the tokenizer files of `tokenizer`) as a Hugging Face directory at
/// `dir`, the weights in `dtype` and in shards of at most `max_shard_size` bytes (one
/// `model.safetensors` when they fit; `max_shard_size`), through a temporary sibling directory
/// renamed into place: an interrupted export leaves the previous `dir` (or none), never a
/// partial one.
pub fn export_model<M: crate::CausalLm>(
    model: &M,
    tokenizer: Option<&TokenizerFiles>,
    dir: &Path,
    dtype: SaveDtype,
    max_shard_size: u64,
) -> anyhow::Result<()> {
    write_dir_atomic(dir, |tmp| {
        model.save_pretrained_sharded(tmp, dtype, max_shard_size)?;
        if let Some(tok) = tokenizer {
            tok.copy_into(tmp)?;
        }
        Ok(())
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.sync_all();
    }
}
