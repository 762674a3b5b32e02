//! Grouped-query causal self-attention with an optional key/value cache.

use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::fused::rms_norm_offset;
use crate::lora;
use crate::rope::{RopeTables, apply_partial_rope};

/// Cached keys and values of one layer, each `[B, kv_heads, S_past, head_dim]` (after RoPE).
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    /// Keys seen so far.
    pub keys: Option<Tensor<4>>,
    /// Values seen so far.
    pub values: Option<Tensor<4>>,
}

impl LayerCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Multi-head attention where `num_heads / num_kv_heads` query heads share a key/value head.
#[derive(Module, Debug)]
pub struct Attention {
    /// `[H, heads · head_dim]`, stored `[in, out]`.
    pub q_proj: Linear,
    /// `[H, kv_heads · head_dim]`.
    pub k_proj: Linear,
    /// `[H, kv_heads · head_dim]`.
    pub v_proj: Linear,
    /// `[heads · head_dim, H]`.
    pub o_proj: Linear,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Dropout on the input of LoRA adapters while training (0 without adapters).
    #[module(skip)]
    pub lora_dropout: f64,
    /// Whether q, k and v carry one fused adapter (Phi-3's `qkv_proj`): `q_proj`'s `A` serves
    /// all three ([`lora::forward_fused`]).
    #[module(skip)]
    pub fused_lora: bool,
    /// Per-head RMSNorm `[head_dim]` of the queries before RoPE (Gemma 3's `q_norm`).
    pub q_norm: Option<RmsNorm>,
    /// Per-head RMSNorm `[head_dim]` of the keys before RoPE (Gemma 3's `k_norm`).
    pub k_norm: Option<RmsNorm>,
    /// Added to the q/k norm weights (Gemma: 1, `x̂ · (1 + w)`).
    #[module(skip)]
    pub norm_weight_offset: f64,
    /// The score scale when not `head_dim^-½` (Gemma: `query_pre_attn_scalar^-½`).
    #[module(skip)]
    pub query_scale: Option<f64>,
    /// `cap · tanh(s / cap)` on the scaled scores before the mask (Gemma 2).
    #[module(skip)]
    pub softcap: Option<f64>,
    /// Whether queries and keys are rotated (false on SmolLM3's NoPE layers).
    #[module(skip)]
    pub use_rope: bool,
}

impl Attention {
    /// `rows` `[B·T, H]` (the positions of `batch` sequences as one matrix, as
    /// [`crate::mlp::Mlp::forward`] takes them) → `[B·T, H]`.
    ///
    /// `mask_bias` `[B, 1, T, S]` is added to the scores (0 where attending is allowed, a large
    /// negative number elsewhere), `S = S_past + T`. With a cache, the new keys and values are
    /// appended to it.
    pub fn forward(
        &self,
        rows: Tensor<2>,
        batch: usize,
        rope: &RopeTables,
        mask_bias: Tensor<4>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<2> {
        let seq = rows.dims()[0] / batch;
        let p = self.lora_dropout;
        // One call for q, k and v: a fused LoRA (Phi-3's `qkv_proj`) shares its `A` between them.
        let [q, k, v] = lora::forward_fused(
            [&self.q_proj, &self.k_proj, &self.v_proj],
            rows.clone(),
            p,
            self.fused_lora,
        );
        let project_heads = |x: Tensor<2>, heads: usize, norm: Option<&RmsNorm>| {
            let x = x.reshape([batch, seq, heads, self.head_dim]);
            let x = match norm {
                Some(norm) => rms_norm_offset(norm, x, self.norm_weight_offset),
                None => x,
            };
            x.swap_dims(1, 2)
        };
        let q = project_heads(q, self.num_heads, self.q_norm.as_ref());
        let k = project_heads(k, self.num_kv_heads, self.k_norm.as_ref());
        let v = project_heads(v, self.num_kv_heads, None);
        // The 1/√d scale goes on q `[B, heads, T, d]` rather than on the scores
        // `[B, heads, T, S]`: the same product (exactly so for a power-of-two d), one full pass
        // over the largest activation fewer, forward and backward.
        let scale = self
            .query_scale
            .unwrap_or_else(|| (self.head_dim as f64).powf(-0.5));
        let (q, mut k) = if self.use_rope {
            (
                apply_partial_rope(q, rope, scale),
                apply_partial_rope(k, rope, 1.0),
            )
        } else {
            // A NoPE layer (SmolLM3): positions reach it only through the causal mask.
            (q.mul_scalar(scale), k)
        };
        let mut v = v;
        if let Some(cache) = cache {
            if let (Some(past_k), Some(past_v)) = (cache.keys.take(), cache.values.take()) {
                k = Tensor::cat(vec![past_k, k], 2);
                v = Tensor::cat(vec![past_v, v], 2);
            }
            cache.keys = Some(k.clone());
            cache.values = Some(v.clone());
        }
        // Flex's attention takes grouped keys and values as they are, soft-capped (Gemma 2) or
        // not (its fused backward sums their gradients over each group): no repeated copies to
        // make, keep and reduce. Other backends get them repeated for each query head.
        let (k, v) = match crate::fused::runs_fused(&q) {
            true => (k, v),
            false => (self.repeat_kv(k), self.repeat_kv(v)),
        };
        // softmax(q kᵀ + mask) v as one op: backends fuse it (flex: per-head tiles), and under
        // autodiff the patched burn-autodiff recomputes the [B, heads, T, S] weights in backward
        // instead of keeping them (vendor/burn-autodiff/PATCHES.md). The bias already masks the
        // future; `is_causal` (query i sees keys ≤ i + S − T, the cache included) also lets
        // flex skip those scores, about half of the attention's work, forward and backward.
        let options = AttentionModuleOptions {
            scale: Some(1.0),
            softcap: self.softcap,
            is_causal: true,
        };
        let out = attention(q, k, v, None, Some(mask_bias), options); // [B, heads, T, head_dim]
        let out = out
            .swap_dims(1, 2)
            .reshape([batch * seq, self.num_heads * self.head_dim]);
        lora::forward(&self.o_proj, out, p)
    }

    /// `[B, kv_heads, S, d]` → `[B, heads, S, d]`, each kv head repeated for its query group.
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let groups = self.num_heads / self.num_kv_heads;
        if groups == 1 {
            return x;
        }
        let [batch, kv_heads, seq, dim] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([batch, kv_heads, groups, seq, dim])
            .reshape([batch, kv_heads * groups, seq, dim])
    }
}
