//! Gemma 3 text (`Gemma3ForCausalLM`, `model_type` `gemma3_text`; transformers'
//! `modeling_gemma3.py`).
//!
//! Gemma 2's decoder (GeGLU, `1 + w` norms, scaled embeddings, sandwich norms,
//! `query_pre_attn_scalar`) with per-head `q_norm`/`k_norm` before RoPE, local and global
//! layers with their own RoPE (the local ones: base `rope_local_base_freq`, default 1e4, no
//! scaling; the global ones: `rope_theta`, default 1e6, and `rope_scaling`, e.g. linear ×8), and
//! the local (sliding-window) layers chosen by `layer_types` or by `sliding_window_pattern`
//! (default 6: five local layers, then a global one). The attention takes no soft-cap:
//! transformers' Gemma 3 attention ignores `attn_logit_softcapping`; the final logit soft-cap
//! applies when set (null in the released models). transformers 5 writes the RoPE as
//! `rope_parameters: {full_attention: {...}, sliding_attention: {...}}`; both forms are read.

use serde_json::Value;

use crate::config::{Activation, DecoderConfig, Keys, Quirks, RopeScaling, parse_rope_scaling};
use crate::error::Result;

/// `config.json`'s `model_type`.
pub const MODEL_TYPE: &str = "gemma3_text";
/// `config.json`'s `architectures[0]`.
pub const ARCHITECTURE: &str = "Gemma3ForCausalLM";

/// Sets Gemma 3's quirks on `config` (its shared keys already read).
pub(crate) fn apply(config: &mut DecoderConfig, keys: &Keys) -> Result<()> {
    super::gelu_tanh(keys)?;
    if keys.opt_bool("use_bidirectional_attention")? == Some(true) {
        return Err(keys.invalid(
            "use_bidirectional_attention",
            "only causal attention is supported",
        ));
    }
    let window = keys.opt_usize("sliding_window")?.unwrap_or(4096);
    let pattern = keys
        .opt_usize("sliding_window_pattern")?
        .unwrap_or(6)
        .max(1);
    let layers = config.num_hidden_layers;
    let nested = keys
        .raw
        .get("rope_parameters")
        .and_then(Value::as_object)
        .filter(|p| p.contains_key("full_attention") || p.contains_key("sliding_attention"));
    let (global, local) = match nested {
        Some(p) => {
            let read = |kind: &str, default_theta: f64| -> Result<(f64, RopeScaling)> {
                let map = p.get(kind).and_then(Value::as_object);
                let theta = map
                    .and_then(|m| m.get("rope_theta"))
                    .and_then(Value::as_f64)
                    .unwrap_or(default_theta);
                Ok((theta, parse_rope_scaling(map, keys.path)?))
            };
            (
                read("full_attention", 1e6)?,
                read("sliding_attention", 1e4)?,
            )
        }
        None => {
            let scaling = match keys.raw.get("rope_scaling") {
                Some(Value::Object(map)) => parse_rope_scaling(Some(map), keys.path)?,
                _ => RopeScaling::None,
            };
            let local_theta = keys.opt_f64("rope_local_base_freq")?.unwrap_or(1e4);
            (
                (super::rope_theta(keys, 1e6)?, scaling),
                (local_theta, RopeScaling::None),
            )
        }
    };
    for (_, scaling) in [&global, &local] {
        if matches!(scaling, RopeScaling::LongRope { .. }) {
            return Err(keys.invalid("rope_scaling", "LongRoPE is Phi-3's, not Gemma 3's"));
        }
    }
    (config.rope_theta, config.rope_scaling) = global;
    config.quirks = Quirks {
        activation: Activation::GeluTanh,
        norm_weight_offset: 1.0,
        embedding_scale: Some((config.hidden_size as f64).sqrt()),
        sandwich_norms: true,
        qk_norm: true,
        attn_logit_softcap: None,
        final_logit_softcap: super::softcap(keys, "final_logit_softcapping", None)?,
        query_scale: Some(
            keys.opt_f64("query_pre_attn_scalar")?
                .unwrap_or(256.0)
                .powf(-0.5),
        ),
        layer_windows: super::layer_windows(keys, layers, window, |i| (i + 1) % pattern != 0)?,
        local_rope: Some(local),
        ..Quirks::default()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{DecoderConfig, RopeScaling};

    /// The keys of google/gemma-3-4b-it's text config that matter here (as a text-only
    /// `config.json`).
    const GEMMA3: &str = r#"{"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text",
        "head_dim":256,"hidden_activation":"gelu_pytorch_tanh","hidden_size":2560,
        "intermediate_size":10240,"num_attention_heads":8,"num_hidden_layers":34,
        "num_key_value_heads":4,"query_pre_attn_scalar":256,"rms_norm_eps":1e-06,
        "rope_local_base_freq":10000.0,"rope_scaling":{"factor":8.0,"rope_type":"linear"},
        "rope_theta":1000000.0,"sliding_window":1024,"sliding_window_pattern":6,
        "final_logit_softcapping":null,"attn_logit_softcapping":null,"vocab_size":262208}"#;

    #[test]
    fn reads_the_hub_form_five_local_then_one_global() {
        let c = DecoderConfig::from_json_str(GEMMA3, "config.json".as_ref()).unwrap();
        let q = &c.quirks;
        let windows = &q.layer_windows;
        assert_eq!(windows.len(), 34);
        assert!(windows[..5].iter().all(|w| *w == Some(1024)) && windows[5].is_none());
        assert!(windows[6].is_some() && windows[11].is_none());
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!(q.local_rope, Some((1e4, RopeScaling::None)));
        assert!(q.qk_norm && q.final_logit_softcap.is_none() && q.attn_logit_softcap.is_none());
        // The global frequencies are the local ones' base 1e6 divided by 8.
        let global = c.rope_inv_freq();
        assert_eq!(global[0], 1.0 / 8.0);
    }

    #[test]
    fn reads_transformers_5_form() {
        let json = r#"{"model_type":"gemma3_text","hidden_size":32,"intermediate_size":48,
            "num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"num_hidden_layers":3,
            "vocab_size":64,"sliding_window":4,
            "layer_types":["sliding_attention","full_attention","sliding_attention"],
            "rope_parameters":{"full_attention":{"rope_type":"default","rope_theta":500.0},
                               "sliding_attention":{"rope_type":"default","rope_theta":50.0}}}"#;
        let c = DecoderConfig::from_json_str(json, "config.json".as_ref()).unwrap();
        assert_eq!(c.quirks.layer_windows, vec![Some(4), None, Some(4)]);
        assert_eq!(c.rope_theta, 500.0);
        assert_eq!(c.quirks.local_rope, Some((50.0, RopeScaling::None)));
    }
}
