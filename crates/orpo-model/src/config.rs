//! The model configuration, read from a Hugging Face `config.json`.
//!
//! One struct covers the Llama family as transformers defines it: `llama` (Llama 2/3, SmolLM2),
//! `mistral` and `qwen2` (Qwen2/2.5, which add q/k/v biases). The original JSON is kept so that
//! saving writes back every key we do not interpret.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{ModelError, Result};

const SUPPORTED_ACTIVATIONS: &str = "silu";
const SUPPORTED_ROPE_TYPES: &str = "default, llama3, linear, longrope";

/// Frequency scaling of the rotary embedding (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE: `inv_freq[i] = theta^(-2i/d)`.
    None,
    /// Llama 3.1's piecewise scaling of low and medium frequencies.
    Llama3 {
        /// Divides the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
    /// Position interpolation: every frequency divided by `factor` (Gemma 3's global layers).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Phi-3 / Phi-4-mini's LongRoPE: `inv_freq[i] = 1 / (ext[i] · θ^(2i/d))` with `ext` the
    /// short factors while the sequence (cache included) is at most
    /// `original_max_position_embeddings` long and the long factors beyond, and cos/sin scaled
    /// by `attention_factor` (transformers' `_compute_longrope_parameters` and
    /// `longrope_frequency_update`).
    LongRope {
        /// Per-frequency divisors for short sequences (`rotary_dim / 2` of them).
        short_factor: Vec<f64>,
        /// Per-frequency divisors beyond the original context.
        long_factor: Vec<f64>,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
        /// Multiplies cos and sin: given, or `sqrt(1 + ln f / ln original)` with
        /// `f = max_position_embeddings / original` (1 when `f ≤ 1`).
        attention_factor: f64,
    },
}

/// The MLP's gate activation (`hidden_act` / `hidden_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// `silu(gate) · up` (SwiGLU: Llama, Mistral, Qwen, Phi-3).
    #[default]
    Silu,
    /// `gelu_tanh(gate) · up` (GeGLU with the tanh approximation: Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// What a family changes in the common decoder, as data. [`Quirks::default`] is the Llama
/// decoder; each family's parser (`crate::family`) sets what differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Quirks {
    /// The MLP's activation.
    pub activation: Activation,
    /// Added to every RMSNorm weight: 1 for Gemma (`x̂ · (1 + w)`, weights stored around 0), 0
    /// otherwise.
    pub norm_weight_offset: f64,
    /// Multiplies the embeddings (Gemma: `√hidden_size`, in the weights' dtype).
    pub embedding_scale: Option<f64>,
    /// Gemma's sandwich norms: the attention and MLP outputs are normed before the residual
    /// add (`post_attention_layernorm`, `post_feedforward_layernorm`; the MLP's input norm is
    /// then `pre_feedforward_layernorm`).
    pub sandwich_norms: bool,
    /// Per-head RMSNorm of queries and keys before RoPE (`q_norm`, `k_norm`: Gemma 3, Qwen3).
    pub qk_norm: bool,
    /// `cap · tanh(s / cap)` on the attention scores (Gemma 2's `attn_logit_softcapping`).
    pub attn_logit_softcap: Option<f64>,
    /// `cap · tanh(z / cap)` on the output logits (Gemma 2's `final_logit_softcapping`).
    pub final_logit_softcap: Option<f64>,
    /// The attention's score scale when not `head_dim^-½` (Gemma: `query_pre_attn_scalar^-½`).
    pub query_scale: Option<f64>,
    /// Per layer: `Some(w)` when the layer attends to the last `w` positions only (a query at
    /// `i` sees keys `j` with `i − w < j ≤ i`, transformers' sliding window); empty: every
    /// layer is global.
    pub layer_windows: Vec<Option<usize>>,
    /// Per layer: whether the layer rotates queries and keys (SmolLM3's `no_rope_layers`, 1 =
    /// RoPE, 0 = none: NoPE layers attend by content alone); empty: every layer rotates.
    pub rope_layers: Vec<bool>,
    /// Gemma 3: the RoPE of the sliding-window layers (base, scaling); the global layers use
    /// `rope_theta` / `rope_scaling`.
    pub local_rope: Option<(f64, RopeScaling)>,
    /// The share of each head's width that RoPE rotates (Phi-4-mini: 0.75): the first
    /// `head_dim · factor` dimensions, the rest pass through.
    pub partial_rotary_factor: f64,
    /// Phi-3: q, k, v stored as one `qkv_proj` and gate, up as one `gate_up_proj` (split on load,
    /// joined on save).
    pub fused_projections: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            activation: Activation::Silu,
            norm_weight_offset: 0.0,
            embedding_scale: None,
            sandwich_norms: false,
            qk_norm: false,
            attn_logit_softcap: None,
            final_logit_softcap: None,
            query_scale: None,
            layer_windows: Vec::new(),
            rope_layers: Vec::new(),
            local_rope: None,
            partial_rotary_factor: 1.0,
            fused_projections: false,
        }
    }
}

/// The hyper-parameters of the decoder, whatever its family: the Llama decoder's, and the
/// family's [`Quirks`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// `llama`, `mistral` or `qwen2`.
    pub model_type: String,
    /// Vocabulary size `V`: rows of the embedding and of the output head.
    pub vocab_size: usize,
    /// Model width `H`.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Width of one head (defaults to `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Base of the rotary frequencies.
    pub rope_theta: f64,
    /// Rotary frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Longest context the model was configured for.
    pub max_position_embeddings: usize,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v projections (always true for qwen2).
    pub qkv_bias: bool,
    /// Bias on the attention output projection (llama's `attention_bias`).
    pub o_bias: bool,
    /// Biases on the MLP projections (llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Std of the normal initialisation of a fresh model (`initializer_range`).
    pub initializer_range: f64,
    /// Beginning-of-sequence token id, when the config has one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (a list in Llama 3 configs).
    pub eos_token_ids: Vec<u32>,
    /// Padding token id, when the config has one.
    pub pad_token_id: Option<u32>,
    /// What the family changes in the decoder ([`Quirks`]).
    pub quirks: Quirks,
    /// The JSON this config was read from, written back on save.
    pub raw: Map<String, Value>,
}

impl DecoderConfig {
    /// Reads `config.json` (or a directory holding it).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path = path.join("config.json");
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        Self::from_json_str(&text, &path)
    }

    /// Parses the JSON text of a `config.json`; `path` only labels errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let Value::Object(raw) = value else {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: "top level is not a JSON object".into(),
            });
        };
        Self::from_map(raw, path)
    }

    /// Reads the decoder every family shares, the Llama way (`llama`, `mistral`, `qwen2`; a
    /// family module reads its own keys on top: [`DecoderConfig::from_map`] picks).
    pub(crate) fn from_base_map(raw: Map<String, Value>, path: &Path) -> Result<Self> {
        let keys = Keys { raw: &raw, path };
        let model_type = keys.string("model_type")?;
        let hidden_act = keys
            .opt_string("hidden_act")?
            .unwrap_or_else(|| "silu".into());
        if hidden_act != "silu" {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                what: "hidden_act",
                found: hidden_act,
                supported: SUPPORTED_ACTIVATIONS,
            });
        }
        let hidden_size = keys.usize("hidden_size")?;
        let num_attention_heads = keys.usize("num_attention_heads")?;
        let num_key_value_heads = keys
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 {
            return Err(keys.invalid("num_attention_heads", "must be positive"));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(keys.invalid(
                "num_key_value_heads",
                &format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = keys
            .opt_usize("head_dim")?
            .unwrap_or(hidden_size / num_attention_heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(keys.invalid("head_dim", "must be a positive even number"));
        }
        // transformers v5 moves theta and scaling into `rope_parameters`.
        let rope_parameters = raw.get("rope_parameters").and_then(Value::as_object);
        let rope_theta = match keys.opt_f64("rope_theta")? {
            Some(theta) => theta,
            None => rope_parameters
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or(10_000.0),
        };
        let scaling_source = match raw.get("rope_scaling") {
            Some(Value::Object(map)) => Some(map),
            _ => rope_parameters,
        };
        let rope_scaling = parse_rope_scaling(scaling_source, path)?;
        let is_qwen2 = model_type == "qwen2";
        let model_type_for_windows = model_type.clone();
        let attention_bias = keys.opt_bool("attention_bias")?.unwrap_or(false);
        let tie_default = false;
        Ok(Self {
            vocab_size: keys.usize("vocab_size")?,
            intermediate_size: keys.usize("intermediate_size")?,
            num_hidden_layers: keys.usize("num_hidden_layers")?,
            rms_norm_eps: keys.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            max_position_embeddings: keys.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: keys.opt_bool("tie_word_embeddings")?.unwrap_or(tie_default),
            qkv_bias: is_qwen2 || attention_bias,
            o_bias: !is_qwen2 && attention_bias,
            mlp_bias: keys.opt_bool("mlp_bias")?.unwrap_or(false),
            initializer_range: keys.opt_f64("initializer_range")?.unwrap_or(0.02),
            bos_token_id: keys
                .opt_token("bos_token_id")?
                .and_then(|v| v.first().copied()),
            eos_token_ids: keys.opt_token("eos_token_id")?.unwrap_or_default(),
            pad_token_id: keys
                .opt_token("pad_token_id")?
                .and_then(|v| v.first().copied()),
            model_type,
            hidden_size,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rope_scaling,
            quirks: Quirks {
                layer_windows: mistral_windows(&keys, &model_type_for_windows)?,
                ..Quirks::default()
            },
            raw,
        })
    }

    /// The keys of `config.json` every family shares: the original keys with ours updated.
    pub(crate) fn shared_json(&self) -> Map<String, Value> {
        let mut map = self.raw.clone();
        let mut set = |k: &str, v: Value| {
            map.insert(k.to_string(), v);
        };
        set("model_type", self.model_type.clone().into());
        set("vocab_size", self.vocab_size.into());
        set("hidden_size", self.hidden_size.into());
        set("intermediate_size", self.intermediate_size.into());
        set("num_hidden_layers", self.num_hidden_layers.into());
        set("num_attention_heads", self.num_attention_heads.into());
        set("num_key_value_heads", self.num_key_value_heads.into());
        set("head_dim", self.head_dim.into());
        set("rms_norm_eps", self.rms_norm_eps.into());
        set(
            "max_position_embeddings",
            self.max_position_embeddings.into(),
        );
        set("tie_word_embeddings", self.tie_word_embeddings.into());
        map
    }

    /// `config.json` of a base decoder (`llama`, `mistral`, `qwen2`) from [`Self::shared_json`].
    pub(crate) fn base_to_json(&self, mut map: Map<String, Value>) -> Value {
        map.insert("hidden_act".into(), "silu".into());
        if !map.contains_key("rope_parameters") {
            map.insert("rope_theta".into(), self.rope_theta.into());
        }
        if !map.contains_key("architectures") {
            let arch = match self.model_type.as_str() {
                "mistral" => "MistralForCausalLM",
                "qwen2" => "Qwen2ForCausalLM",
                _ => "LlamaForCausalLM",
            };
            map.insert("architectures".into(), Value::Array(vec![arch.into()]));
        }
        Value::Object(map)
    }

    /// Number of query heads sharing one key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Width of the rotated part of each head: `head_dim · partial_rotary_factor` (transformers'
    /// `int(...)`), all of it unless the family rotates part of it.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim as f64 * self.quirks.partial_rotary_factor) as usize
    }

    /// The rotary inverse frequencies `[rotary_dim / 2]` of the global layers, in f32 as
    /// transformers computes them (LongRoPE: the short factors; [`Self::rope_long_inv_freq`]).
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        rope_inv_freq(
            self.rope_theta,
            &self.rope_scaling,
            self.rotary_dim(),
            false,
        )
    }

    /// LongRoPE's long-factor frequencies, used while the sequence exceeds the original context.
    pub fn rope_long_inv_freq(&self) -> Option<Vec<f32>> {
        matches!(self.rope_scaling, RopeScaling::LongRope { .. })
            .then(|| rope_inv_freq(self.rope_theta, &self.rope_scaling, self.rotary_dim(), true))
    }

    /// Gemma 3's frequencies for the sliding-window layers.
    pub fn rope_local_inv_freq(&self) -> Option<Vec<f32>> {
        let (theta, scaling) = self.quirks.local_rope.as_ref()?;
        Some(rope_inv_freq(*theta, scaling, self.rotary_dim(), false))
    }
}

/// Mistral's `sliding_window` on every layer (transformers' `MistralModel` takes the
/// sliding-window mask for all layers when the key is set; null or absent: global attention).
/// Other model types read here attend globally.
fn mistral_windows(keys: &Keys, model_type: &str) -> Result<Vec<Option<usize>>> {
    if model_type != "mistral" {
        return Ok(Vec::new());
    }
    let layers = keys.usize("num_hidden_layers")?;
    Ok(match keys.opt_usize("sliding_window")? {
        Some(0) => return Err(keys.invalid("sliding_window", "must be positive or null")),
        Some(window) => vec![Some(window); layers],
        None => Vec::new(),
    })
}

/// `[dim / 2]` inverse frequencies for base `theta` under `scaling`, in f32 as transformers
/// computes them; `long` picks LongRoPE's long factors.
pub fn rope_inv_freq(theta: f64, scaling: &RopeScaling, dim: usize, long: bool) -> Vec<f32> {
    let base = theta as f32;
    let plain: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    match scaling {
        RopeScaling::None => plain,
        RopeScaling::Linear { factor } => plain.into_iter().map(|f| f / *factor as f32).collect(),
        RopeScaling::LongRope {
            short_factor,
            long_factor,
            ..
        } => {
            let ext = if long { long_factor } else { short_factor };
            (0..dim)
                .step_by(2)
                .zip(ext)
                .map(|(i, e)| 1.0 / (*e as f32 * base.powf(i as f32 / dim as f32)))
                .collect()
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let (factor, low, high) = (
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
            );
            let old_len = *original_max_position_embeddings as f32;
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            plain
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    let is_medium = (high_freq_wavelen..=low_freq_wavelen).contains(&wavelen);
                    if is_medium {
                        let smooth = (old_len / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

pub(crate) fn parse_rope_scaling(
    map: Option<&Map<String, Value>>,
    path: &Path,
) -> Result<RopeScaling> {
    let Some(map) = map else {
        return Ok(RopeScaling::None);
    };
    let rope_type = map
        .get("rope_type")
        .or_else(|| map.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let number = |key: &str| -> Result<f64> {
        map.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                message: format!("rope_scaling.{key}: missing or not a number"),
            })
    };
    match rope_type {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: number("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")? as usize,
        }),
        other => Err(ModelError::Unsupported {
            path: path.to_path_buf(),
            what: "rope_scaling.rope_type",
            found: other.to_string(),
            supported: SUPPORTED_ROPE_TYPES,
        }),
    }
}

/// Typed access to the keys of a `config.json`, with errors that name the key.
pub(crate) struct Keys<'a> {
    pub(crate) raw: &'a Map<String, Value>,
    pub(crate) path: &'a Path,
}

impl Keys<'_> {
    pub(crate) fn invalid(&self, key: &str, message: &str) -> ModelError {
        ModelError::Config {
            path: PathBuf::from(self.path),
            message: format!("key `{key}`: {message}"),
        }
    }
    pub(crate) fn present(&self, key: &str) -> Option<&Value> {
        self.raw.get(key).filter(|v| !v.is_null())
    }
    pub(crate) fn string(&self, key: &str) -> Result<String> {
        self.opt_string(key)?
            .ok_or_else(|| self.invalid(key, "missing"))
    }
    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.invalid(key, "expected a string")),
        }
    }
    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| self.invalid(key, "missing"))
    }
    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.invalid(key, "expected a non-negative integer")),
        }
    }
    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "expected a number")),
        }
    }
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "expected true or false")),
        }
    }
    /// A token id or a list of them.
    pub(crate) fn opt_token(&self, key: &str) -> Result<Option<Vec<u32>>> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().map(|n| n as u32))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "expected token ids")),
            Some(v) => v
                .as_u64()
                .map(|n| Some(vec![n as u32]))
                .ok_or_else(|| self.invalid(key, "expected a token id")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<DecoderConfig> {
        DecoderConfig::from_json_str(json, Path::new("config.json"))
    }

    const SMOL: &str = r#"{"model_type":"llama","vocab_size":49152,"hidden_size":576,
        "intermediate_size":1536,"num_hidden_layers":30,"num_attention_heads":9,
        "num_key_value_heads":3,"rms_norm_eps":1e-5,"rope_theta":100000,
        "max_position_embeddings":8192,"tie_word_embeddings":true,"bos_token_id":0,"eos_token_id":0}"#;

    #[test]
    fn reads_smollm2_shape() {
        let c = parse(SMOL).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.kv_groups(), 3);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![0]);
        assert!(!c.qkv_bias);
    }

    #[test]
    fn qwen2_has_qkv_bias_only() {
        let c = parse(&SMOL.replace("\"llama\"", "\"qwen2\"")).unwrap();
        assert!(c.qkv_bias && !c.o_bias);
    }

    #[test]
    fn unsupported_model_type_lists_supported() {
        let err = parse(&SMOL.replace("\"llama\"", "\"gpt2\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpt2") && err.contains("llama, mistral, qwen2"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_activation_and_rope_are_errors() {
        let err = parse(&SMOL.replace(
            "\"eos_token_id\":0",
            "\"eos_token_id\":0,\"hidden_act\":\"gelu\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("hidden_act") && err.contains("silu"), "{err}");
        let err = parse(&SMOL.replace(
            "\"eos_token_id\":0",
            "\"eos_token_id\":0,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0}",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("yarn") && err.contains("llama3"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse(&SMOL.replace("\"hidden_size\":576", "\"hidden_size\":\"576\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let c = parse(&SMOL.replace(
            "\"eos_token_id\":0",
            "\"eos_token_id\":[1,2],\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\
             \"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}",
        ))
        .unwrap();
        let plain = DecoderConfig {
            rope_scaling: RopeScaling::None,
            ..c.clone()
        }
        .rope_inv_freq();
        let scaled = c.rope_inv_freq();
        assert_eq!(scaled[0], plain[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() < 1e-12);
        assert_eq!(c.eos_token_ids, vec![1, 2]);
    }
}
