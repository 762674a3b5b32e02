//! GGUF (version 3) export for llama.cpp and the loaders that read its files (Ollama, LM Studio,
//! transformers' `gguf_file=`), and a reader of those files.
//!
//! The layout follows llama.cpp's `convert_hf_to_gguf.py`:
//! - metadata: `general.architecture` (`llama` for Llama and Mistral, `qwen2` for Qwen2), the
//!   `{arch}.*` hyper-parameters, `general.file_type`, and `tokenizer.ggml.*` read from
//!   `tokenizer.json` / `tokenizer_config.json` (byte-level BPE as model `gpt2`);
//! - tensor names `token_embd`, `blk.N.attn_q`, ..., `output_norm`, `output` (omitted when the
//!   head is tied to the embedding, which llama.cpp then reuses);
//! - for `llama`, the rows of `attn_q` / `attn_k` (and their biases) are permuted per head from
//!   transformers' rotate-half RoPE layout to GGML's interleaved-pairs layout;
//! - one-dimensional tensors (norms, biases) stay f32; matrices are f16, bf16 or Q8_0 (blocks of
//!   32 values along a row: an f16 scale `d = max|x| / 127` and 32 `i8` values `round(x / d)`);
//!   a matrix whose rows are not a multiple of 32 long falls back to f16, as the converter does.
//!
//! GGUF stores a tensor's dimensions innermost first: a Hugging Face `[rows, cols]` matrix is
//! `ne = [cols, rows]` with the same row-major bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value as Json;

use crate::config::{DecoderConfig, Quirks, RopeScaling};
use crate::error::{ModelError, Result};
use crate::model::DecoderForCausalLM;
use crate::tensor_file::{HostTensor, commit_temp, temp_path};
use crate::weights::WeightSource;

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
/// `general.alignment`'s default: every tensor's data starts at a multiple of it.
const ALIGNMENT: usize = 32;
/// Values per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 `i8`.
const Q8_0_BYTES: usize = 2 + Q8_0_BLOCK;

/// The weight type of an exported GGUF file (`orpo export --format gguf --dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GgufType {
    /// Every tensor in f32 (lossless).
    F32,
    /// Matrices in IEEE half precision, vectors in f32 (llama.cpp's default `--outtype f16`).
    #[default]
    F16,
    /// Matrices in bfloat16, vectors in f32.
    Bf16,
    /// Matrices in Q8_0 (8.5 bits per weight), vectors in f32.
    Q8_0,
}

impl GgufType {
    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
            GgufType::Bf16 => 32,
        }
    }

    /// The name `orpo export --dtype` takes.
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F32 => "f32",
            GgufType::F16 => "f16",
            GgufType::Bf16 => "bf16",
            GgufType::Q8_0 => "q8_0",
        }
    }
}

impl std::str::FromStr for GgufType {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(GgufType::F32),
            "f16" | "fp16" | "float16" => Ok(GgufType::F16),
            "bf16" | "bfloat16" => Ok(GgufType::Bf16),
            "q8_0" | "q8" => Ok(GgufType::Q8_0),
            _ => Err(format!(
                "`{name}` is not a GGUF weight type: expected f16, q8_0, bf16 or f32"
            )),
        }
    }
}

/// GGML's tensor types that this module writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit floats.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of 32: f16 scale, 32 × i8.
    Q8_0,
}

impl GgmlType {
    /// The type id in a GGUF tensor header.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
            GgmlType::Bf16 => 30,
        }
    }

    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            8 => GgmlType::Q8_0,
            30 => GgmlType::Bf16,
            _ => return None,
        })
    }

    /// Bytes taken by `n` values (`n` a multiple of 32 for Q8_0).
    fn bytes(self, n: usize) -> usize {
        match self {
            GgmlType::F32 => 4 * n,
            GgmlType::F16 | GgmlType::Bf16 => 2 * n,
            GgmlType::Q8_0 => n / Q8_0_BLOCK * Q8_0_BYTES,
        }
    }
}

/// A metadata value (the GGUF value types this module writes; the reader keeps the rest as
/// numbers or lists of them).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `UINT8`..`UINT64` (type ids 0, 2, 4, 10).
    Uint(u64),
    /// `INT8`..`INT64` (type ids 1, 3, 5, 11).
    Int(i64),
    /// `FLOAT32` / `FLOAT64` (6, 12).
    Float(f64),
    /// `BOOL` (7).
    Bool(bool),
    /// `STRING` (8).
    Str(String),
    /// `ARRAY` (9) of one element type.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::Uint(v) => Some(v),
            GgufValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// What [`write_gguf`] writes for one metadata entry: a value and its GGUF type.
enum Meta {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

impl Meta {
    fn encode(&self, out: &mut Vec<u8>) {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        match self {
            Meta::U32(v) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Meta::Bool(v) => {
                out.extend_from_slice(&7u32.to_le_bytes());
                out.push(u8::from(*v));
            }
            Meta::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                string(out, s);
            }
            Meta::StrArray(items) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for s in items {
                    string(out, s);
                }
            }
            Meta::I32Array(items) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&5u32.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

/// The llama.cpp architecture a model type is written as, and whether q/k rows are permuted.
fn gguf_arch(config: &DecoderConfig) -> Result<(&'static str, bool)> {
    match config.model_type.as_str() {
        // llama.cpp converts Mistral (without sliding-window metadata) as `llama`.
        "llama" | "mistral" => Ok(("llama", true)),
        "qwen2" => Ok(("qwen2", false)),
        other => Err(ModelError::Unsupported {
            path: PathBuf::from("config.json"),
            what: "model_type for GGUF export",
            found: other.to_string(),
            supported: "llama, mistral, qwen2",
        }),
    }
}

/// llama.cpp's name for a Hugging Face tensor name (`None` for names it has no place for).
fn gguf_name(hf: &str) -> Option<String> {
    let (stem, suffix) = hf.rsplit_once('.')?;
    let base = match stem {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => {
            let rest = stem.strip_prefix("model.layers.")?;
            let (layer, module) = rest.split_once('.')?;
            let module = match module {
                "input_layernorm" => "attn_norm",
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.o_proj" => "attn_output",
                "post_attention_layernorm" => "ffn_norm",
                "mlp.gate_proj" => "ffn_gate",
                "mlp.up_proj" => "ffn_up",
                "mlp.down_proj" => "ffn_down",
                _ => return None,
            };
            format!("blk.{layer}.{module}")
        }
    };
    Some(format!("{base}.{suffix}"))
}

/// The head count a q or k tensor is permuted with (`None` for every other tensor).
fn permute_heads(config: &DecoderConfig, hf: &str) -> Option<usize> {
    if hf.contains(".self_attn.q_proj.") {
        Some(config.num_attention_heads)
    } else if hf.contains(".self_attn.k_proj.") {
        Some(config.num_key_value_heads)
    } else {
        None
    }
}

/// convert_hf_to_gguf's `LlamaModel.permute`: within each head, the rows of the two rotary
/// halves `[h, 2, d/2]` are interleaved into pairs `[h, d/2, 2]`. `values` is `[rows, cols]`
/// row-major (`cols = 1` for a bias); `inverse` undoes it.
fn permute_rows(values: &[f32], rows: usize, heads: usize, inverse: bool) -> Vec<f32> {
    let cols = values.len() / rows;
    let half = rows / heads / 2;
    let mut out = vec![0.0f32; values.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let hf_row = h * 2 * half + i * half + j;
                let gguf_row = h * 2 * half + j * 2 + i;
                let (from, to) = if inverse {
                    (gguf_row, hf_row)
                } else {
                    (hf_row, gguf_row)
                };
                out[to * cols..(to + 1) * cols]
                    .copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// Q8_0-quantises `values` (length a multiple of 32) as gguf-py's `quantize_blocks` does, in f32:
/// `d = max|x| / 127`, `q = round_half_away(x · (1/d))` (0 where `d = 0`), `d` stored as f16.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * Q8_0_BYTES);
    for block in values.chunks_exact(Q8_0_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// The f32 values of Q8_0 blocks: `d · q`.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q8_0_BYTES * Q8_0_BLOCK);
    for block in bytes.chunks_exact(Q8_0_BYTES) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
    }
    out
}

/// The GGML type a tensor of `shape` is written in for `ty`.
fn tensor_type(shape: &[usize], ty: GgufType) -> GgmlType {
    if shape.len() < 2 {
        return GgmlType::F32;
    }
    match ty {
        GgufType::F32 => GgmlType::F32,
        GgufType::F16 => GgmlType::F16,
        GgufType::Bf16 => GgmlType::Bf16,
        // As convert_hf_to_gguf: rows that do not split into blocks of 32 fall back to f16.
        GgufType::Q8_0 if shape[shape.len() - 1].is_multiple_of(Q8_0_BLOCK) => GgmlType::Q8_0,
        GgufType::Q8_0 => GgmlType::F16,
    }
}

fn encode(values: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlType::Bf16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlType::Q8_0 => quantize_q8_0(values),
    }
}

fn decode(bytes: &[u8], ty: GgmlType) -> Vec<f32> {
    match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Bf16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => dequantize_q8_0(bytes),
    }
}

fn gguf_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Gguf {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl DecoderForCausalLM {
    /// Writes the model (LoRA adapters merged, as [`hf_tensors`](Self::hf_tensors) reads them)
    /// as one GGUF file at `path`, with the tokenizer of
    /// `tokenizer_dir` (`tokenizer.json`, and `tokenizer_config.json` for the special tokens
    /// and chat template). See [`write_gguf`].
    pub fn save_gguf(&self, path: &Path, tokenizer_dir: &Path, ty: GgufType) -> Result<()> {
        write_gguf(&self.config, self.hf_tensors()?, tokenizer_dir, path, ty)
    }
}

/// Writes `tensors` (Hugging Face names and layout, as
/// [`DecoderForCausalLM::hf_tensors`] returns them) of a model with `config` as a GGUF v3 file.
///
/// Refused with an error naming the reason: model types other than llama, mistral and qwen2,
/// family quirks (a sliding window, say: [`Quirks`] other than the default), rotary scaling (llama.cpp keeps Llama 3.1's in a `rope_freqs` tensor not written here), and
/// tokenizers other than byte-level BPE.
pub fn write_gguf(
    config: &DecoderConfig,
    tensors: Vec<HostTensor>,
    tokenizer_dir: &Path,
    path: &Path,
    ty: GgufType,
) -> Result<()> {
    let (arch, permute) = gguf_arch(config)?;
    // A Mistral with a sliding window (or any family quirk) would load in llama.cpp as plain
    // Llama and compute something else: refuse rather than write a file that looks right.
    if config.quirks != Quirks::default() {
        return Err(gguf_error(
            path,
            format!(
                "the model has settings the `{arch}` GGUF metadata written here cannot carry \
                 ({:?}); only plain {arch} decoders are exported",
                config.quirks
            ),
        ));
    }
    if config.rope_scaling != RopeScaling::None {
        return Err(ModelError::Unsupported {
            path: PathBuf::from("config.json"),
            what: "rope_scaling for GGUF export",
            found: format!("{:?}", config.rope_scaling),
            supported: "none (plain RoPE)",
        });
    }
    let mut meta: Vec<(String, Meta)> = Vec::new();
    let mut put = |key: &str, value: Meta| meta.push((key.to_string(), value));
    put("general.architecture", Meta::Str(arch.into()));
    put("general.type", Meta::Str("model".into()));
    let name = config
        .raw
        .get("_name_or_path")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
        .unwrap_or_else(|| config.model_type.clone());
    put("general.name", Meta::Str(name));
    let c = config;
    let a = |k: &str| format!("{arch}.{k}");
    put(
        &a("context_length"),
        Meta::U32(c.max_position_embeddings as u32),
    );
    put(&a("embedding_length"), Meta::U32(c.hidden_size as u32));
    put(&a("block_count"), Meta::U32(c.num_hidden_layers as u32));
    put(
        &a("feed_forward_length"),
        Meta::U32(c.intermediate_size as u32),
    );
    put(&a("rope.freq_base"), Meta::F32(c.rope_theta as f32));
    put(
        &a("attention.head_count"),
        Meta::U32(c.num_attention_heads as u32),
    );
    put(
        &a("attention.head_count_kv"),
        Meta::U32(c.num_key_value_heads as u32),
    );
    put(
        &a("attention.layer_norm_rms_epsilon"),
        Meta::F32(c.rms_norm_eps as f32),
    );
    if c.head_dim * c.num_attention_heads != c.hidden_size {
        put(&a("attention.key_length"), Meta::U32(c.head_dim as u32));
        put(&a("attention.value_length"), Meta::U32(c.head_dim as u32));
    }
    put("general.file_type", Meta::U32(ty.file_type()));
    if arch == "llama" {
        put(&a("vocab_size"), Meta::U32(c.vocab_size as u32));
        put(&a("rope.dimension_count"), Meta::U32(c.head_dim as u32));
    }
    put("general.quantization_version", Meta::U32(2));
    for (key, value) in tokenizer_metadata(config, tokenizer_dir)? {
        meta.push((key, value));
    }

    // Tensors: names, types and bytes, in the model's order.
    let mut infos: Vec<(String, Vec<usize>, GgmlType, Vec<u8>)> = Vec::new();
    for t in tensors {
        if config.tie_word_embeddings && t.name == "lm_head.weight" {
            continue;
        }
        let Some(name) = gguf_name(&t.name) else {
            return Err(gguf_error(
                path,
                format!("tensor `{}` has no llama.cpp name", t.name),
            ));
        };
        let values = match permute.then(|| permute_heads(config, &t.name)).flatten() {
            Some(heads) => permute_rows(&t.values, t.shape[0], heads, false),
            None => t.values,
        };
        let ggml = tensor_type(&t.shape, ty);
        let bytes = encode(&values, ggml);
        infos.push((name, t.shape, ggml, bytes));
    }

    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(infos.len() as u64).to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (key, value) in &meta {
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        value.encode(&mut out);
    }
    let mut offset = 0usize;
    for (name, shape, ggml, bytes) in &infos {
        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for dim in shape.iter().rev() {
            out.extend_from_slice(&(*dim as u64).to_le_bytes());
        }
        out.extend_from_slice(&ggml.id().to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += bytes.len().next_multiple_of(ALIGNMENT);
    }
    out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    for (_, _, _, bytes) in &infos {
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    }

    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&out));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::io(path, e));
    }
    commit_temp(&tmp, path).map_err(|e| ModelError::io(path, e))
}

/// llama.cpp's `tokenizer.ggml.pre` for a `tokenizer.json` pre-tokenizer it knows by shape
/// (it picks the splitting regex); `default` otherwise.
fn pre_tokenizer_name(pre: &Json) -> &'static str {
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let kind = |v: &Json| {
        v.get("type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let byte_level_regex = |v: &Json| {
        kind(v) == "ByteLevel" && v.get("use_regex").and_then(Json::as_bool) == Some(true)
    };
    let split_regex = |v: &Json| {
        (kind(v) == "Split")
            .then(|| v.pointer("/pattern/Regex").and_then(Json::as_str))
            .flatten()
            .map(str::to_string)
    };
    if byte_level_regex(pre) {
        return "gpt-2";
    }
    let parts: Vec<&Json> = pre
        .get("pretokenizers")
        .and_then(Json::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    match parts.as_slice() {
        // SmolLM / SmolLM2: single digits, then GPT-2's regex.
        [digits, bl]
            if kind(digits) == "Digits"
                && digits.get("individual_digits").and_then(Json::as_bool) == Some(true)
                && byte_level_regex(bl) =>
        {
            "smollm"
        }
        [split, bl] if kind(bl) == "ByteLevel" => match split_regex(split).as_deref() {
            Some(QWEN2) => "qwen2",
            Some(LLAMA3) => "llama-bpe",
            _ => "default",
        },
        _ => "default",
    }
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| gguf_error(path, format!("invalid JSON: {e}")))
}

/// `tokenizer.ggml.*` entries from `tokenizer.json` (and `tokenizer_config.json` when present),
/// as convert_hf_to_gguf's `_set_vocab_gpt2` and `SpecialVocab` write them: tokens in id order,
/// padded to the model's vocabulary with unused `[PAD{i}]` entries; added special tokens are
/// control tokens, other added tokens user-defined.
fn tokenizer_metadata(config: &DecoderConfig, dir: &Path) -> Result<Vec<(String, Meta)>> {
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(gguf_error(
            &tok_path,
            "GGUF export needs the model's tokenizer.json (llama.cpp reads the vocabulary from \
             the GGUF file); pass the directory that holds it",
        ));
    }
    let tok = read_json(&tok_path)?;
    let model = tok.get("model").cloned().unwrap_or(Json::Null);
    let model_type = model.get("type").and_then(Json::as_str).unwrap_or("?");
    let byte_fallback = model.get("byte_fallback").and_then(Json::as_bool) == Some(true);
    if model_type != "BPE" || byte_fallback {
        return Err(gguf_error(
            &tok_path,
            format!(
                "GGUF export writes byte-level BPE tokenizers (llama.cpp model `gpt2`); this \
                 tokenizer is `{model_type}`{}: convert it with llama.cpp's \
                 convert_hf_to_gguf.py, which reads sentencepiece models",
                if byte_fallback {
                    " with byte_fallback (sentencepiece)"
                } else {
                    ""
                }
            ),
        ));
    }
    let mut by_id: BTreeMap<usize, String> = BTreeMap::new();
    if let Some(vocab) = model.get("vocab").and_then(Json::as_object) {
        for (token, id) in vocab {
            if let Some(id) = id.as_u64() {
                by_id.insert(id as usize, token.clone());
            }
        }
    }
    let mut specials = BTreeSet::new();
    let mut user_defined = BTreeSet::new();
    for added in tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            added.get("id").and_then(Json::as_u64),
            added.get("content").and_then(Json::as_str),
        ) else {
            continue;
        };
        by_id.insert(id as usize, content.to_string());
        if added.get("special").and_then(Json::as_bool) == Some(true) {
            specials.insert(id as usize);
        } else {
            user_defined.insert(id as usize);
        }
    }
    let vocab_size = config.vocab_size;
    if let Some((&max, token)) = by_id.last_key_value()
        && max >= vocab_size
    {
        return Err(gguf_error(
            &tok_path,
            format!("token `{token}` has id {max}, beyond the model's vocab_size {vocab_size}"),
        ));
    }
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for id in 0..vocab_size {
        match by_id.get(&id) {
            Some(token) => {
                tokens.push(token.clone());
                types.push(if specials.contains(&id) {
                    3 // CONTROL
                } else if user_defined.contains(&id) {
                    4 // USER_DEFINED
                } else {
                    1 // NORMAL
                });
            }
            None => {
                tokens.push(format!("[PAD{id}]"));
                types.push(5); // UNUSED
            }
        }
    }
    let merges: Vec<String> = model
        .get("merges")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Json::String(s) => Some(s.clone()),
            Json::Array(pair) => {
                let parts: Option<Vec<&str>> = pair.iter().map(Json::as_str).collect();
                parts.map(|p| p.join(" "))
            }
            _ => None,
        })
        .collect();
    let pre = tok
        .get("pre_tokenizer")
        .map(pre_tokenizer_name)
        .unwrap_or("default");

    let mut meta = vec![
        ("tokenizer.ggml.model".to_string(), Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), Meta::Str(pre.into())),
        (
            "tokenizer.ggml.tokens".to_string(),
            Meta::StrArray(tokens.clone()),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            Meta::I32Array(types),
        ),
        ("tokenizer.ggml.merges".to_string(), Meta::StrArray(merges)),
    ];
    // Special tokens: tokenizer_config.json's token strings, else config.json's ids.
    let tok_config_path = dir.join("tokenizer_config.json");
    let tok_config = if tok_config_path.is_file() {
        read_json(&tok_config_path)?
    } else {
        Json::Null
    };
    let id_of = |key: &str| -> Option<u32> {
        let entry = tok_config.get(key)?;
        let text = entry
            .as_str()
            .or_else(|| entry.get("content").and_then(Json::as_str))?;
        tokens.iter().position(|t| t == text).map(|i| i as u32)
    };
    let specials = [
        ("bos", id_of("bos_token").or(config.bos_token_id)),
        (
            "eos",
            id_of("eos_token").or(config.eos_token_ids.first().copied()),
        ),
        ("unknown", id_of("unk_token")),
        ("padding", id_of("pad_token").or(config.pad_token_id)),
    ];
    for (name, id) in specials {
        if let Some(id) = id {
            meta.push((format!("tokenizer.ggml.{name}_token_id"), Meta::U32(id)));
        }
    }
    for key in ["add_bos_token", "add_eos_token"] {
        if let Some(flag) = tok_config.get(key).and_then(Json::as_bool) {
            meta.push((format!("tokenizer.ggml.{key}"), Meta::Bool(flag)));
        }
    }
    if let Some(template) = tok_config.get("chat_template").and_then(Json::as_str) {
        meta.push(("tokenizer.chat_template".into(), Meta::Str(template.into())));
    }
    Ok(meta)
}

/// One tensor's header in a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    /// llama.cpp's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in Hugging Face order (outermost first, the reverse of GGUF's `ne`).
    pub shape: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data in the file.
    pub start: usize,
}

/// A GGUF file read into memory: metadata in file order and tensor headers.
pub struct GgufFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Key → value, in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensor headers, in file order.
    pub tensors: Vec<GgufTensorInfo>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(gguf_error(
                self.path,
                format!("truncated at byte {} (wanted {n} more)", self.pos),
            ));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| {
                gguf_error(
                    self.path,
                    format!("length {n} at byte {} is past the end", self.pos),
                )
            })
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        let at = self.pos;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| gguf_error(self.path, format!("string at byte {at} is not UTF-8")))
    }
    fn value(&mut self, ty: u32) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::Uint(u64::from(self.take(1)?[0])),
            1 => GgufValue::Int(i64::from(self.take(1)?[0] as i8)),
            2 => GgufValue::Uint(u64::from(u16::from_le_bytes(
                self.take(2)?.try_into().expect("2"),
            ))),
            3 => GgufValue::Int(i64::from(i16::from_le_bytes(
                self.take(2)?.try_into().expect("2"),
            ))),
            4 => GgufValue::Uint(u64::from(self.u32()?)),
            5 => GgufValue::Int(i64::from(self.u32()? as i32)),
            6 => GgufValue::Float(f64::from(f32::from_bits(self.u32()?))),
            7 => GgufValue::Bool(self.take(1)?[0] != 0),
            8 => GgufValue::Str(self.string()?),
            9 => {
                let elem = self.u32()?;
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(elem)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::Uint(self.u64()?),
            11 => GgufValue::Int(self.u64()? as i64),
            12 => GgufValue::Float(f64::from_bits(self.u64()?)),
            other => {
                return Err(gguf_error(
                    self.path,
                    format!("unknown metadata type {other} at byte {}", self.pos),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Reads and parses `path` (any GGUF v2/v3 file; tensor types other than F32, F16, BF16 and
    /// Q8_0 are an error naming the tensor).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let mut c = Cursor {
            bytes: &bytes,
            pos: 0,
            path,
        };
        if c.take(4)? != MAGIC {
            return Err(gguf_error(path, "not a GGUF file (no `GGUF` magic)"));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(gguf_error(
                path,
                format!("GGUF version {version} (2 or 3 are read)"),
            ));
        }
        let n_tensors = c.len()?;
        let n_meta = c.len()?;
        let mut metadata = Vec::with_capacity(n_meta);
        for _ in 0..n_meta {
            let key = c.string()?;
            let ty = c.u32()?;
            metadata.push((key, c.value(ty)?));
        }
        let alignment = metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .map_or(ALIGNMENT, |a| a as usize);
        let mut raw = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()? as usize;
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(c.len()?);
            }
            let ty = c.u32()?;
            let offset = c.len()?;
            let ggml_type = GgmlType::from_id(ty).ok_or_else(|| {
                gguf_error(
                    path,
                    format!("tensor `{name}` has GGML type {ty} (read: F32, F16, BF16, Q8_0)"),
                )
            })?;
            ne.reverse();
            raw.push((name, ne, ggml_type, offset));
        }
        let data_start = c.pos.next_multiple_of(alignment.max(1));
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, shape, ggml_type, offset) in raw {
            let start = data_start + offset;
            let n: usize = shape.iter().product();
            if start + ggml_type.bytes(n) > bytes.len() {
                return Err(gguf_error(
                    path,
                    format!("tensor `{name}` runs past the end of the file"),
                ));
            }
            tensors.push(GgufTensorInfo {
                name,
                shape,
                ggml_type,
                start,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            metadata,
            tensors,
        })
    }

    /// The metadata value of `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The header of tensor `name` (llama.cpp naming).
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The values of tensor `name` dequantised to f32, row-major in its [`GgufTensorInfo::shape`].
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| gguf_error(&self.path, format!("no tensor `{name}`")))?;
        let n: usize = info.shape.iter().product();
        let bytes = &self.bytes[info.start..info.start + info.ggml_type.bytes(n)];
        Ok(decode(bytes, info.ggml_type))
    }
}

/// A GGUF file this module wrote, read back as a [`WeightSource`] for a model of `config`:
/// Hugging Face names map to llama.cpp's, q/k rows are un-permuted, values dequantised.
pub struct GgufCheckpoint {
    file: GgufFile,
    config: DecoderConfig,
    device: Device,
}

impl GgufCheckpoint {
    /// Opens `path` for a model with `config` on `device`.
    pub fn open(path: impl AsRef<Path>, config: &DecoderConfig, device: &Device) -> Result<Self> {
        let file = GgufFile::read(path)?;
        gguf_arch(config)?;
        Ok(Self {
            file,
            config: config.clone(),
            device: device.clone(),
        })
    }

    fn values(&self, hf: &str, shape: &[usize]) -> Result<Vec<f32>> {
        // A tied head reads the embedding, as llama.cpp does when `output.weight` is absent.
        let name = gguf_name(hf)
            .ok_or_else(|| gguf_error(&self.file.path, format!("no llama.cpp name for `{hf}`")))?;
        let name = if name == "output.weight" && self.file.tensor_info(&name).is_none() {
            "token_embd.weight".to_string()
        } else {
            name
        };
        let info = self
            .file
            .tensor_info(&name)
            .ok_or_else(|| ModelError::MissingTensor {
                dir: self.file.path.clone(),
                name: name.clone(),
                expected: shape.to_vec(),
            })?;
        if info.shape != shape {
            return Err(ModelError::ShapeMismatch {
                path: self.file.path.clone(),
                name,
                found: info.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        let values = self.file.tensor_f32(&name)?;
        let (_, permute) = gguf_arch(&self.config)?;
        Ok(
            match permute.then(|| permute_heads(&self.config, hf)).flatten() {
                Some(heads) => permute_rows(&values, shape[0], heads, true),
                None => values,
            },
        )
    }
}

impl WeightSource for GgufCheckpoint {
    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.values(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_convert_hf_to_gguf() {
        // numpy: w.reshape(n_head, 2, d // n_head // 2, cols).swapaxes(1, 2).reshape(w.shape)
        // for 2 heads of 4 rows, 1 column: rows [0 1 2 3 | 4 5 6 7] -> [0 2 1 3 | 4 6 5 7].
        let w: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let p = permute_rows(&w, 8, 2, false);
        assert_eq!(p, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert_eq!(permute_rows(&p, 8, 2, true), w);
        // Two columns move with their row.
        let w2: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(
            permute_rows(&w2, 4, 1, false),
            [0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]
        );
    }

    #[test]
    fn q8_0_round_trip_is_within_half_a_step() {
        let values: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) / 7.0)
            .collect();
        let bytes = quantize_q8_0(&values);
        assert_eq!(bytes.len(), 2 * 34);
        let back = dequantize_q8_0(&bytes);
        for (block_in, block_out) in values.chunks(32).zip(back.chunks(32)) {
            let amax = block_in.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let d16 = half::f16::from_f32(d).to_f32();
            for (a, b) in block_in.iter().zip(block_out) {
                // Half a step, plus up to 127 times the f16 rounding of the scale.
                let bound = d * 0.5 + 127.0 * (d16 - d).abs() + 1e-6;
                assert!((a - b).abs() <= bound, "{a} -> {b} (bound {bound})");
            }
        }
        // An all-zero block has scale 0 and decodes to zeros.
        assert!(
            dequantize_q8_0(&quantize_q8_0(&[0.0; 32]))
                .iter()
                .all(|v| *v == 0.0)
        );
    }

    #[test]
    fn names_follow_llama_cpp() {
        for (hf, gguf) in [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("model.layers.3.self_attn.q_proj.bias", "blk.3.attn_q.bias"),
            (
                "model.layers.0.self_attn.o_proj.weight",
                "blk.0.attn_output.weight",
            ),
            (
                "model.layers.1.post_attention_layernorm.weight",
                "blk.1.ffn_norm.weight",
            ),
            (
                "model.layers.1.mlp.down_proj.weight",
                "blk.1.ffn_down.weight",
            ),
            ("model.norm.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
        ] {
            assert_eq!(gguf_name(hf).as_deref(), Some(gguf), "{hf}");
        }
        assert_eq!(
            gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"),
            None
        );
    }
}
