//! Gemma 2 (`Gemma2ForCausalLM`, transformers' `modeling_gemma2.py`).
//!
//! GeGLU MLP with the tanh GELU; RMSNorm as `x̂ · (1 + w)`; embeddings times `√hidden_size`;
//! sandwich norms (attention and MLP outputs normed before the residual add); attention scores
//! scaled by `query_pre_attn_scalar^-½` and soft-capped `c · tanh(s / c)`
//! (`attn_logit_softcapping`, default 50); final logits soft-capped (`final_logit_softcapping`,
//! default 30); sliding-window attention (`sliding_window`, default 4096) on the layers
//! `layer_types` names, or on every even layer (0, 2, ...) as transformers defaults.

use crate::config::{Activation, DecoderConfig, Keys, Quirks, RopeScaling};
use crate::error::Result;

/// `config.json`'s `model_type`.
pub const MODEL_TYPE: &str = "gemma2";
/// `config.json`'s `architectures[0]`.
pub const ARCHITECTURE: &str = "Gemma2ForCausalLM";

/// Sets Gemma 2's quirks on `config` (its shared keys already read).
pub(crate) fn apply(config: &mut DecoderConfig, keys: &Keys) -> Result<()> {
    super::gelu_tanh(keys)?;
    if keys.opt_bool("use_bidirectional_attention")? == Some(true) {
        return Err(keys.invalid(
            "use_bidirectional_attention",
            "only causal attention is supported",
        ));
    }
    let window = keys.opt_usize("sliding_window")?.unwrap_or(4096);
    let layers = config.num_hidden_layers;
    config.rope_theta = super::rope_theta(keys, 10_000.0)?;
    config.rope_scaling = RopeScaling::None;
    config.quirks = Quirks {
        activation: Activation::GeluTanh,
        norm_weight_offset: 1.0,
        embedding_scale: Some((config.hidden_size as f64).sqrt()),
        sandwich_norms: true,
        qk_norm: false,
        attn_logit_softcap: super::softcap(keys, "attn_logit_softcapping", Some(50.0))?,
        final_logit_softcap: super::softcap(keys, "final_logit_softcapping", Some(30.0))?,
        query_scale: Some(
            keys.opt_f64("query_pre_attn_scalar")?
                .unwrap_or(256.0)
                .powf(-0.5),
        ),
        layer_windows: super::layer_windows(keys, layers, window, |i| (i + 1) % 2 != 0)?,
        ..Quirks::default()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::DecoderConfig;

    /// The keys of google/gemma-2-2b's `config.json` that matter here.
    const GEMMA2_2B: &str = r#"{"architectures":["Gemma2ForCausalLM"],"model_type":"gemma2",
        "attn_logit_softcapping":50.0,"final_logit_softcapping":30.0,"head_dim":256,
        "hidden_act":"gelu_pytorch_tanh","hidden_activation":"gelu_pytorch_tanh",
        "hidden_size":2304,"intermediate_size":9216,"num_attention_heads":8,
        "num_hidden_layers":26,"num_key_value_heads":4,"query_pre_attn_scalar":256,
        "rms_norm_eps":1e-06,"rope_theta":10000.0,"sliding_window":4096,"vocab_size":256000,
        "bos_token_id":2,"eos_token_id":1,"pad_token_id":0}"#;

    #[test]
    fn reads_gemma2_2b() {
        let c = DecoderConfig::from_json_str(GEMMA2_2B, "config.json".as_ref()).unwrap();
        let q = &c.quirks;
        assert_eq!((c.head_dim, c.kv_groups()), (256, 2));
        assert!(c.tie_word_embeddings, "Gemma ties by default");
        assert_eq!(q.attn_logit_softcap, Some(50.0));
        assert_eq!(q.final_logit_softcap, Some(30.0));
        assert_eq!(q.query_scale, Some(1.0 / 16.0));
        assert_eq!(q.layer_windows.len(), 26);
        assert_eq!(&q.layer_windows[..3], &[Some(4096), None, Some(4096)]);
        assert_eq!(q.embedding_scale, Some(2304f64.sqrt()));
        // Written back with the family's own keys.
        let json = c.to_json();
        assert_eq!(json["hidden_activation"], "gelu_pytorch_tanh");
        assert_eq!(json["architectures"][0], "Gemma2ForCausalLM");
    }

    #[test]
    fn other_activation_is_an_error_naming_the_supported_one() {
        let json = GEMMA2_2B.replace(
            r#""hidden_activation":"gelu_pytorch_tanh""#,
            r#""hidden_activation":"relu""#,
        );
        let err = DecoderConfig::from_json_str(&json, "config.json".as_ref())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("relu") && err.contains("gelu_pytorch_tanh"),
            "{err}"
        );
    }
}
