//! The Llama-family decoder: embedding, decoder layers, final norm, output head.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::{Device, Int, Tensor};

use crate::attention::{Attention, LayerCache};
use crate::config::{DecoderConfig, RopeScaling};
use crate::error::Result;
use crate::fused::rms_norm_offset;
use crate::lora::LoraConfig;
use crate::mlp::Mlp;
use crate::rope::{RopeTables, rope_tables, rope_tables_scaled};
use crate::weights::{RandomInit, SafetensorsCheckpoint, WeightSource};

/// Added to attention scores where a query may not look: large enough that its softmax weight
/// is exactly zero in f32 and bf16, finite so that a row with nothing to attend to (a left pad)
/// does not turn into NaN.
const MASKED_SCORE: f32 = -1.0e9;
/// The same in f16, whose largest finite value is 65504 (-1e9 would be -inf there, and
/// `0 × -inf` NaN): still exactly zero after the softmax's shift.
const MASKED_SCORE_F16: f32 = -3.0e4;

/// One pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`; with Gemma's
/// sandwich norms `x + norm(attn(norm(x)))`, then `x + norm(mlp(norm(x)))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP (Hugging Face's `post_attention_layernorm` for Llama, Gemma's
    /// `pre_feedforward_layernorm`).
    pub post_attention_layernorm: RmsNorm,
    /// SwiGLU (or GeGLU) MLP.
    pub mlp: Mlp,
    /// Gemma: norm of the attention output before the residual add (Hugging Face's
    /// `post_attention_layernorm` there).
    pub attn_out_norm: Option<RmsNorm>,
    /// Gemma: norm of the MLP output before the residual add (`post_feedforward_layernorm`).
    pub mlp_out_norm: Option<RmsNorm>,
    /// Added to every norm weight of the layer (Gemma: 1).
    #[module(skip)]
    pub norm_weight_offset: f64,
    /// The layer's sliding window (`None`: global attention).
    #[module(skip)]
    pub window: Option<usize>,
    /// Whether the layer takes the local RoPE tables (Gemma 3's sliding-window layers).
    #[module(skip)]
    pub local_rope: bool,
}

impl DecoderLayer {
    /// `[B, T, H]` → `[B, T, H]`.
    ///
    /// The sub-blocks work on all positions as one `[B·T, H]` matrix (see [`Mlp::forward`]).
    /// The norms are applied to that matrix, not reshaped after: the projections that read a
    /// norm's output then take it straight from the norm, so that under autodiff they get it
    /// recomputed for their backward instead of keeping it ([`crate::fused`]).
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask_bias: Tensor<4>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        let [batch, seq, width] = x.dims();
        let rows = |t: Tensor<3>| t.reshape([batch * seq, width]);
        let offset = self.norm_weight_offset;
        let out_norm = |norm: &Option<RmsNorm>, h: Tensor<2>| match norm {
            Some(norm) => rms_norm_offset(norm, h, offset),
            None => h,
        };
        let h = self.self_attn.forward(
            rms_norm_offset(&self.input_layernorm, rows(x.clone()), offset),
            batch,
            rope,
            mask_bias,
            cache,
        );
        let x = x + out_norm(&self.attn_out_norm, h).reshape([batch, seq, width]);
        let h = self.mlp.forward(rms_norm_offset(
            &self.post_attention_layernorm,
            rows(x.clone()),
            offset,
        ));
        x + out_norm(&self.mlp_out_norm, h).reshape([batch, seq, width])
    }
}

/// The decoder-only causal language model every family of [`crate::family::FAMILIES`] is: the
/// Llama decoder with what a family changes ([`Quirks`](crate::config::Quirks)) as data.
///
/// [`forward_hidden`](Self::forward_hidden) returns the final hidden states; the output head is
/// applied separately ([`head_weight`](Self::head_weight)) so that a loss can apply it in chunks
/// without ever holding `[B, T, V]` logits.
#[derive(Module, Debug)]
pub struct DecoderForCausalLM {
    /// Token embedding `[V, H]`.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    /// Untied output head `[H, V]`; `None` when it is tied to the embedding.
    pub lm_head: Option<Linear>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: DecoderConfig,
    /// The LoRA settings when adapters are attached ([`with_lora`](Self::with_lora)).
    #[module(skip)]
    pub lora: Option<LoraConfig>,
    /// Rotary inverse frequencies `[rotary_dim / 2]`.
    #[module(skip)]
    rope_inv_freq: Vec<f32>,
    /// LongRoPE's long-factor frequencies (beyond the original context).
    #[module(skip)]
    rope_long_inv_freq: Option<Vec<f32>>,
    /// Gemma 3's frequencies of the sliding-window layers.
    #[module(skip)]
    rope_local_inv_freq: Option<Vec<f32>>,
}

/// Key/value caches of all layers, for incremental decoding.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// One cache per decoder layer.
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DecoderForCausalLM {
    /// A freshly initialised model (normal(0, `initializer_range`) weights), seeded by the
    /// device's RNG (`device.seed(..)`).
    pub fn init(config: &DecoderConfig, device: &Device) -> Self {
        let mut source = RandomInit::new(device, config.initializer_range);
        let mut model =
            Self::build(config, &mut source).expect("random initialisation cannot fail");
        // The weights were drawn, never stored: a `dtype` copied into the config from a
        // published checkpoint says nothing about them ([`stored_dtype`](Self::stored_dtype)).
        for key in ["dtype", "torch_dtype"] {
            model.config.raw.remove(key);
        }
        model
    }

    /// Loads `config.json` and the safetensors weights of a Hugging Face model directory.
    ///
    /// A missing, unexpected or mis-shaped tensor is an error naming the tensor (and both
    /// shapes). Weights stored as f32, bf16, f16 or f64 load into the device's float type.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = DecoderConfig::from_file(dir.join("config.json"))?;
        let mut checkpoint = SafetensorsCheckpoint::open(dir, device)?;
        let model = Self::build(&config, &mut checkpoint)?;
        if config.tie_word_embeddings && checkpoint.contains("lm_head.weight") {
            // Some exporters write the tied head anyway; it is the embedding.
            checkpoint.skip("lm_head.weight");
        }
        checkpoint.finish()?;
        Ok(model)
    }

    /// Builds the model, asking `source` for every tensor by its Hugging Face name.
    pub fn build(config: &DecoderConfig, source: &mut impl WeightSource) -> Result<Self> {
        let c = config;
        let (h, v, i) = (c.hidden_size, c.vocab_size, c.intermediate_size);
        let q_out = c.num_attention_heads * c.head_dim;
        let kv_out = c.num_key_value_heads * c.head_dim;
        let q = &c.quirks;
        let offset = q.norm_weight_offset;
        let embed_tokens = Embedding {
            weight: Param::from_tensor(source.tensor("model.embed_tokens.weight", [v, h])?),
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for layer in 0..c.num_hidden_layers {
            let p = format!("model.layers.{layer}");
            let ([q_proj, k_proj, v_proj], [gate_proj, up_proj]) = if q.fused_projections {
                // Phi-3: `qkv_proj` rows [q; k; v], `gate_up_proj` rows [gate; up].
                let [qp, kp, vp] = split_linear(
                    source,
                    &format!("{p}.self_attn.qkv_proj"),
                    h,
                    [q_out, kv_out, kv_out],
                )?;
                let [gp, up] = split_linear(source, &format!("{p}.mlp.gate_up_proj"), h, [i, i])?;
                ([qp, kp, vp], [gp, up])
            } else {
                let mut linear = |name: &str, d_out: usize, bias: bool| {
                    linear(source, &format!("{p}.{name}"), h, d_out, bias)
                };
                (
                    [
                        linear("self_attn.q_proj", q_out, c.qkv_bias)?,
                        linear("self_attn.k_proj", kv_out, c.qkv_bias)?,
                        linear("self_attn.v_proj", kv_out, c.qkv_bias)?,
                    ],
                    [
                        linear("mlp.gate_proj", i, c.mlp_bias)?,
                        linear("mlp.up_proj", i, c.mlp_bias)?,
                    ],
                )
            };
            let mut norm = |name: &str, dim: usize| {
                load_rms_norm(source, &format!("{p}.{name}"), dim, c.rms_norm_eps)
            };
            let (q_norm, k_norm) = if q.qk_norm {
                (
                    Some(norm("self_attn.q_norm", c.head_dim)?),
                    Some(norm("self_attn.k_norm", c.head_dim)?),
                )
            } else {
                (None, None)
            };
            let input_layernorm = norm("input_layernorm", h)?;
            // Gemma's sandwich: its `post_attention_layernorm` norms the attention output and
            // `pre_feedforward_layernorm` is the MLP's input norm.
            let (attn_out_norm, pre_mlp, mlp_out_norm) = if q.sandwich_norms {
                (
                    Some(norm("post_attention_layernorm", h)?),
                    norm("pre_feedforward_layernorm", h)?,
                    Some(norm("post_feedforward_layernorm", h)?),
                )
            } else {
                (None, norm("post_attention_layernorm", h)?, None)
            };
            let self_attn = Attention {
                q_proj,
                k_proj,
                v_proj,
                o_proj: linear(source, &format!("{p}.self_attn.o_proj"), q_out, h, c.o_bias)?,
                num_heads: c.num_attention_heads,
                num_kv_heads: c.num_key_value_heads,
                head_dim: c.head_dim,
                lora_dropout: 0.0,
                fused_lora: false,
                q_norm,
                k_norm,
                norm_weight_offset: offset,
                query_scale: q.query_scale,
                softcap: q.attn_logit_softcap,
                use_rope: q.rope_layers.get(layer).copied().unwrap_or(true),
            };
            let mlp = Mlp {
                gate_proj,
                up_proj,
                down_proj: linear(source, &format!("{p}.mlp.down_proj"), i, h, c.mlp_bias)?,
                lora_dropout: 0.0,
                fused_lora: false,
                activation: q.activation,
            };
            let window = q.layer_windows.get(layer).copied().flatten();
            layers.push(DecoderLayer {
                input_layernorm,
                self_attn,
                post_attention_layernorm: pre_mlp,
                mlp,
                attn_out_norm,
                mlp_out_norm,
                norm_weight_offset: offset,
                window,
                local_rope: q.local_rope.is_some() && window.is_some(),
            });
        }
        let norm = load_rms_norm(source, "model.norm", h, c.rms_norm_eps)?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(linear(source, "lm_head", h, v, false)?)
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            config: config.clone(),
            lora: None,
            rope_inv_freq: config.rope_inv_freq(),
            rope_long_inv_freq: config.rope_long_inv_freq(),
            rope_local_inv_freq: config.rope_local_inv_freq(),
        })
    }

    /// Final hidden states `[B, T, H]` (after the last norm) of `input_ids` `[B, T]`.
    ///
    /// `attention_mask` `[B, T]` holds 1 for real tokens and 0 for padding (left or right);
    /// positions are `0..T` for every row, as transformers uses when no `position_ids` are
    /// given (and as TRL trains).
    pub fn forward_hidden(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
    ) -> Tensor<3> {
        self.forward_with_cache(input_ids, attention_mask, None)
    }

    /// Like [`forward_hidden`](Self::forward_hidden), continuing from `cache` when given:
    /// `attention_mask` then covers the cached positions too (`[B, S_past + T]`), and the new
    /// keys and values are appended to the cache.
    pub fn forward_with_cache(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let device = input_ids.device();
        let [_, seq] = input_ids.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(cache) = cache.as_mut()
            && cache.layers.is_empty()
        {
            cache.layers = vec![LayerCache::default(); self.layers.len()];
        }
        // LongRoPE picks its factors by the whole length, cache included (transformers'
        // `longrope_frequency_update`: max position + 1 against the original context).
        let (inv_freq, attention_factor) = match &self.config.rope_scaling {
            RopeScaling::LongRope {
                original_max_position_embeddings,
                attention_factor,
                ..
            } => {
                let long = past + seq > *original_max_position_embeddings;
                let freq = match (&self.rope_long_inv_freq, long) {
                    (Some(f), true) => f,
                    _ => &self.rope_inv_freq,
                };
                (freq, *attention_factor as f32)
            }
            _ => (&self.rope_inv_freq, 1.0),
        };
        let rope = rope_tables_scaled(inv_freq, past, seq, attention_factor, &device);
        let local_rope = self
            .rope_local_inv_freq
            .as_ref()
            .map(|f| rope_tables(f, past, seq, &device));
        let mut windows: Vec<(usize, Tensor<4>)> = Vec::new();
        for w in self.layers.iter().filter_map(|l| l.window) {
            if !windows.iter().any(|(v, _)| *v == w) {
                let bias = attention_bias_windowed(attention_mask.clone(), past, seq, Some(w));
                windows.push((w, bias));
            }
        }
        let mask_bias = attention_bias(attention_mask, past, seq);
        let mut x = self.embed_tokens.forward(input_ids);
        if let Some(scale) = self.config.quirks.embedding_scale {
            // transformers: `embed * embed_scale.to(weight.dtype)`.
            x = x.mul_scalar(scale as f32);
        }
        for (index, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[index]);
            let tables = match (&local_rope, layer.local_rope) {
                (Some(local), true) => local,
                _ => &rope,
            };
            let bias = match layer.window {
                Some(w) => windows
                    .iter()
                    .find(|(v, _)| *v == w)
                    .expect("built above")
                    .1
                    .clone(),
                None => mask_bias.clone(),
            };
            x = layer.forward(x, tables, bias, layer_cache);
        }
        rms_norm_offset(&self.norm, x, self.config.quirks.norm_weight_offset)
    }

    /// The output head as a `[H, V]` matrix: `logits = hidden · head_weight`.
    pub fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.embed_tokens.weight.val().transpose(),
        }
    }

    /// The final logit soft-cap `c` (Gemma 2): logits are `c · tanh((h · head_weight) / c)`.
    /// A loss that applies [`head_weight`](Self::head_weight) itself must apply it too.
    pub fn final_logit_softcap(&self) -> Option<f64> {
        self.config.quirks.final_logit_softcap
    }

    /// Logits `[B, T, V]` from hidden states `[B, T, H]` (soft-capped where the family caps).
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = hidden.matmul(self.head_weight().unsqueeze::<3>());
        match self.final_logit_softcap() {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }

    /// Convenience: logits `[B, T, V]` of a batch. Holds the full logits: for training, apply
    /// the head in chunks instead.
    pub fn forward_logits(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
    ) -> Tensor<3> {
        self.logits(self.forward_hidden(input_ids, attention_mask))
    }
}

/// The additive attention bias `[B, 1, T, S]` (`S = past + T`): 0 where query `t` (absolute
/// position `past + t`) may attend key `s` (causal and not padding), [`MASKED_SCORE`] elsewhere
/// ([`MASKED_SCORE_F16`] in f16).
pub fn attention_bias(attention_mask: Tensor<2>, past: usize, seq: usize) -> Tensor<4> {
    let device = attention_mask.device();
    let [batch, total] = attention_mask.dims();
    assert_eq!(
        total,
        past + seq,
        "attention_mask must cover cached and new positions"
    );
    let causal: Tensor<2> = Tensor::ones([seq, total], &device).tril(past as i64);
    let keys = attention_mask.reshape([batch, 1, 1, total]);
    let allowed = causal.reshape([1, 1, seq, total]) * keys;
    let masked = if allowed.dtype() == burn::tensor::DType::F16 {
        MASKED_SCORE_F16
    } else {
        MASKED_SCORE
    };
    (allowed.neg() + 1.0).mul_scalar(masked)
}

/// [`attention_bias`] that also masks keys at or beyond `window` positions behind the query
/// (transformers' sliding window: query `i` sees key `j` when `i − window < j ≤ i`, in absolute
/// positions, the cache included).
pub fn attention_bias_windowed(
    attention_mask: Tensor<2>,
    past: usize,
    seq: usize,
    window: Option<usize>,
) -> Tensor<4> {
    let Some(window) = window else {
        return attention_bias(attention_mask, past, seq);
    };
    let device = attention_mask.device();
    let [batch, total] = attention_mask.dims();
    assert_eq!(
        total,
        past + seq,
        "attention_mask must cover cached and new positions"
    );
    let mut allowed = vec![0f32; seq * total];
    for t in 0..seq {
        let query = past + t;
        for key in (query + 1).saturating_sub(window)..=query {
            allowed[t * total + key] = 1.0;
        }
    }
    let causal = Tensor::<2>::from_data(
        burn::tensor::TensorData::new(allowed, [seq, total]),
        (&device, attention_mask.dtype()),
    );
    let keys = attention_mask.reshape([batch, 1, 1, total]);
    let allowed = causal.reshape([1, 1, seq, total]) * keys;
    let masked = if allowed.dtype() == burn::tensor::DType::F16 {
        MASKED_SCORE_F16
    } else {
        MASKED_SCORE
    };
    (allowed.neg() + 1.0).mul_scalar(masked)
}

/// Linear layers stored as one fused Hugging Face tensor `[Σ outs, d_in]` (Phi-3's `qkv_proj`,
/// `gate_up_proj`; no bias), split by rows.
fn split_linear<const N: usize>(
    source: &mut impl WeightSource,
    name: &str,
    d_in: usize,
    outs: [usize; N],
) -> Result<[Linear; N]> {
    let total: usize = outs.iter().sum();
    let fused = source.tensor(&format!("{name}.weight"), [total, d_in])?;
    let mut start = 0;
    Ok(outs.map(|out| {
        let part = fused.clone().narrow(0, start, out).transpose();
        start += out;
        Linear {
            weight: Param::from_tensor(part),
            bias: None,
        }
    }))
}

fn linear(
    source: &mut impl WeightSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
) -> Result<Linear> {
    // Hugging Face stores `[out, in]`; burn's row layout multiplies by `[in, out]`.
    let weight = source
        .tensor(&format!("{name}.weight"), [d_out, d_in])?
        .transpose();
    let bias = if bias {
        Some(Param::from_tensor(
            source.tensor(&format!("{name}.bias"), [d_out])?,
        ))
    } else {
        None
    };
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias,
    })
}

fn load_rms_norm(
    source: &mut impl WeightSource,
    name: &str,
    dim: usize,
    eps: f64,
) -> Result<RmsNorm> {
    Ok(RmsNorm {
        gamma: Param::from_tensor(source.tensor(&format!("{name}.weight"), [dim])?),
        epsilon: eps,
    })
}
