//! `generate_during_eval: true`: greedy completions of a few held-out prompts at every
//! evaluation, appended to `<output_dir>/samples.jsonl` (TRL logs the same prompt / policy
//! completion table to Weights & Biases).
//!
//! Which prompts: the first `per_device_eval_batch_size` pairs of the evaluation split, the same
//! ones at every evaluation so that rows of different steps compare (TRL draws one random eval
//! batch of that size). How long: greedy (argmax) decoding, stopping after the tokenizer's EOS,
//! with at most `max_completion_length` new tokens when that key is set, and never past
//! `max_length` tokens of prompt + completion (TRL generates up to `max_length`). One row per
//! prompt: `{"step", "index", "prompt", "chosen", "completion"}`, the texts decoded from the
//! tokenized pair (`prompt` with the chat template's special tokens, `chosen` and `completion`
//! without them).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use orpo_data::{PreferenceTokenizer, TokenizedPair};
use serde::{Deserialize, Serialize};

use crate::config::OrpoConfig;
use crate::model::CausalLm;

/// The file the rows go to, in `output_dir`.
pub const SAMPLES_FILE: &str = "samples.jsonl";

/// One generated sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRow {
    /// The optimizer step after which the model generated.
    pub step: usize,
    /// The pair's index in the evaluation split.
    pub index: usize,
    /// The prompt as the model saw it (chat template applied).
    pub prompt: String,
    /// The preferred completion of the pair.
    pub chosen: String,
    /// The model's greedy completion.
    pub completion: String,
}

/// How many new tokens a prompt of `prompt_len` tokens may get (see the module docs).
pub fn max_new_tokens(config: &OrpoConfig, prompt_len: usize) -> usize {
    let room = config.max_length.saturating_sub(prompt_len);
    config.max_completion_length.map_or(room, |m| m.min(room))
}

/// Greedy continuation of `prompt`: up to `max_new_tokens` argmax tokens, stopping after any
/// of `eos` (included). Works for any [`CausalLm`] by running the whole sequence again for each
/// token (`O(n²)`, no KV cache), which the sample's few short prompts afford.
pub fn greedy_completion<M: CausalLm>(
    model: &M,
    prompt: &[u32],
    max_new_tokens: usize,
    eos: &[u32],
) -> Vec<u32> {
    let (weight, bias) = model.output_head();
    let device = weight.device();
    let mut sequence = prompt.to_vec();
    for _ in 0..max_new_tokens {
        let t = sequence.len();
        let ids: Vec<i64> = sequence.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, t]), &device);
        let mask = Tensor::<2>::ones([1, t], &device);
        // [1, T, H] → the last position's [1, H] → logits [1, V].
        let hidden = model.hidden_states(ids, mask);
        let [_, _, h] = hidden.dims();
        let mut logits = hidden
            .narrow(1, t - 1, 1)
            .reshape([1, h])
            .matmul(weight.clone());
        if let Some(bias) = &bias {
            logits = logits + bias.clone().unsqueeze::<2>();
        }
        let values = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        let next = argmax(&values);
        sequence.push(next);
        if eos.contains(&next) {
            break;
        }
    }
    sequence.split_off(prompt.len())
}

/// The first index of the largest value (as `torch.argmax`).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// The rows of one evaluation after `step`: greedy completions of the first
/// `per_device_eval_batch_size` pairs of `pairs` by `model` (an inference model: no autodiff).
pub fn generate_samples<M: CausalLm>(
    model: &M,
    pairs: &[TokenizedPair],
    tokenizer: &PreferenceTokenizer,
    config: &OrpoConfig,
    step: usize,
) -> anyhow::Result<Vec<SampleRow>> {
    let eos: Vec<u32> = tokenizer.eos_id().into_iter().collect();
    let decode = |ids: &[u32], skip_special: bool| {
        tokenizer
            .inner()
            .decode(ids, skip_special)
            .map_err(|e| anyhow::anyhow!("decoding a sample: {e}"))
    };
    pairs
        .iter()
        .take(config.per_device_eval_batch_size)
        .map(|pair| {
            let prompt = &pair.chosen_ids[..pair.chosen_prompt_len];
            let new = max_new_tokens(config, prompt.len());
            let completion = greedy_completion(model, prompt, new, &eos);
            Ok(SampleRow {
                step,
                index: pair.index,
                prompt: decode(prompt, false)?,
                chosen: decode(pair.chosen_completion(), true)?,
                completion: decode(&completion, true)?,
            })
        })
        .collect()
}

/// Appends rows to `<output_dir>/samples.jsonl`.
pub struct SamplesWriter {
    path: PathBuf,
}

impl SamplesWriter {
    /// Writes into `output_dir`; a fresh run starts the file empty, a resumed one keeps the rows
    /// of steps up to `keep_through_step` (those of steps after the checkpoint are dropped, as
    /// `metrics.jsonl` drops its lines).
    pub fn create(output_dir: &Path, keep_through_step: usize) -> anyhow::Result<Self> {
        let path = output_dir.join(SAMPLES_FILE);
        let kept = match read_samples(&path) {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.step <= keep_through_step)
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut text = String::new();
        for row in &kept {
            text.push_str(&serde_json::to_string(row)?);
            text.push('\n');
        }
        crate::io::write_atomic(&path, text.as_bytes())?;
        Ok(Self { path })
    }

    /// Appends `rows` (flushed at once).
    pub fn append(&self, rows: &[SampleRow]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        let mut text = String::new();
        for row in rows {
            text.push_str(&serde_json::to_string(row)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.flush()?;
        tracing::debug!("{}: {} sample rows", self.path.display(), rows.len());
        Ok(())
    }
}

/// Reads a `samples.jsonl`; errors name the file and line.
pub fn read_samples(path: &Path) -> anyhow::Result<Vec<SampleRow>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
