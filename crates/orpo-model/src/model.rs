//! The Llama-family decoder: embedding, decoder layers, final norm, output head.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::{Device, Int, Tensor};

use crate::attention::{Attention, LayerCache};
use crate::config::LlamaConfig;
use crate::error::Result;
use crate::fused::rms_norm;
use crate::lora::LoraConfig;
use crate::mlp::Mlp;
use crate::rope::{RopeTables, rope_tables};
use crate::weights::{RandomInit, SafetensorsCheckpoint, WeightSource};

/// Added to attention scores where a query may not look: large enough that its softmax weight
/// is exactly zero in f32 and bf16, finite so that a row with nothing to attend to (a left pad)
/// does not turn into NaN.
const MASKED_SCORE: f32 = -1.0e9;
/// The same in f16, whose largest finite value is 65504 (-1e9 would be -inf there, and
/// `0 × -inf` NaN): still exactly zero after the softmax's shift.
const MASKED_SCORE_F16: f32 = -3.0e4;

/// One pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// SwiGLU MLP.
    pub mlp: Mlp,
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
        let h = self.self_attn.forward(
            rms_norm(&self.input_layernorm, rows(x.clone())),
            batch,
            rope,
            mask_bias,
            cache,
        );
        let x = x + h.reshape([batch, seq, width]);
        let h = self
            .mlp
            .forward(rms_norm(&self.post_attention_layernorm, rows(x.clone())));
        x + h.reshape([batch, seq, width])
    }
}

/// A decoder-only causal language model of the Llama family (Llama, Mistral, Qwen2, SmolLM2).
///
/// [`forward_hidden`](Self::forward_hidden) returns the final hidden states; the output head is
/// applied separately ([`head_weight`](Self::head_weight)) so that a loss can apply it in chunks
/// without ever holding `[B, T, V]` logits.
#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
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
    pub config: LlamaConfig,
    /// The LoRA settings when adapters are attached ([`with_lora`](Self::with_lora)).
    #[module(skip)]
    pub lora: Option<LoraConfig>,
    /// Rotary inverse frequencies `[head_dim / 2]`.
    #[module(skip)]
    rope_inv_freq: Vec<f32>,
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

impl LlamaForCausalLM {
    /// A freshly initialised model (normal(0, `initializer_range`) weights), seeded by the
    /// device's RNG (`device.seed(..)`).
    pub fn init(config: &LlamaConfig, device: &Device) -> Self {
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
        let config = LlamaConfig::from_file(dir.join("config.json"))?;
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
    pub fn build(config: &LlamaConfig, source: &mut impl WeightSource) -> Result<Self> {
        let c = config;
        let (h, v, i) = (c.hidden_size, c.vocab_size, c.intermediate_size);
        let q_out = c.num_attention_heads * c.head_dim;
        let kv_out = c.num_key_value_heads * c.head_dim;
        let embed_tokens = Embedding {
            weight: Param::from_tensor(source.tensor("model.embed_tokens.weight", [v, h])?),
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for layer in 0..c.num_hidden_layers {
            let p = format!("model.layers.{layer}");
            let mut linear = |name: &str, d_in: usize, d_out: usize, bias: bool| {
                linear(source, &format!("{p}.{name}"), d_in, d_out, bias)
            };
            let self_attn = Attention {
                q_proj: linear("self_attn.q_proj", h, q_out, c.qkv_bias)?,
                k_proj: linear("self_attn.k_proj", h, kv_out, c.qkv_bias)?,
                v_proj: linear("self_attn.v_proj", h, kv_out, c.qkv_bias)?,
                o_proj: linear("self_attn.o_proj", q_out, h, c.o_bias)?,
                num_heads: c.num_attention_heads,
                num_kv_heads: c.num_key_value_heads,
                head_dim: c.head_dim,
                lora_dropout: 0.0,
            };
            let mlp = Mlp {
                gate_proj: linear("mlp.gate_proj", h, i, c.mlp_bias)?,
                up_proj: linear("mlp.up_proj", h, i, c.mlp_bias)?,
                down_proj: linear("mlp.down_proj", i, h, c.mlp_bias)?,
                lora_dropout: 0.0,
            };
            layers.push(DecoderLayer {
                input_layernorm: load_rms_norm(
                    source,
                    &format!("{p}.input_layernorm"),
                    h,
                    c.rms_norm_eps,
                )?,
                self_attn,
                post_attention_layernorm: load_rms_norm(
                    source,
                    &format!("{p}.post_attention_layernorm"),
                    h,
                    c.rms_norm_eps,
                )?,
                mlp,
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
        let rope = rope_tables(&self.rope_inv_freq, past, seq, &device);
        let mask_bias = attention_bias(attention_mask, past, seq);
        let mut x = self.embed_tokens.forward(input_ids);
        for (index, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[index]);
            x = layer.forward(x, &rope, mask_bias.clone(), layer_cache);
        }
        rms_norm(&self.norm, x)
    }

    /// The output head as a `[H, V]` matrix: `logits = hidden · head_weight`.
    pub fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.embed_tokens.weight.val().transpose(),
        }
    }

    /// Logits `[B, T, V]` from hidden states `[B, T, H]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        hidden.matmul(self.head_weight().unsqueeze::<3>())
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
