//! Phi-3 / Phi-4-mini (`Phi3ForCausalLM`, transformers' `modeling_phi3.py`).
//!
//! The Llama decoder with q, k, v stored as one `qkv_proj` (`[q; k; v]` rows) and gate, up as
//! one `gate_up_proj` (`[gate; up]` rows), split on load and joined on save; RoPE on the first
//! `partial_rotary_factor · head_dim` dimensions of each head (Phi-4-mini: 0.75); LongRoPE
//! (`rope_scaling` type `longrope`, also spelled `su` or `yarn` in older configs, which
//! transformers reads as LongRoPE for Phi-3) with short and long factors chosen by the sequence
//! length against `original_max_position_embeddings` and cos/sin scaled by the attention
//! factor; and a sliding window on every layer when `sliding_window` is set (Phi-3-mini: 2047).

use serde_json::Value;

use crate::config::{Activation, DecoderConfig, Keys, Quirks, RopeScaling};
use crate::error::{ModelError, Result};

/// `config.json`'s `model_type`.
pub const MODEL_TYPE: &str = "phi3";
/// `config.json`'s `architectures[0]`.
pub const ARCHITECTURE: &str = "Phi3ForCausalLM";

/// PEFT's LoRA target names of a Phi-3 layer (what `all-linear` covers): the projections as
/// stored, fused ones included. The decoder holds `qkv_proj` and `gate_up_proj` split; an
/// adapter on one is PEFT's single LoRA on the fused weight, its `A` shared by the parts
/// ([`crate::lora::forward_fused`]).
pub const LORA_TARGETS: [&str; 4] = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];

/// Sets Phi-3's quirks on `config` (its shared keys already read).
pub(crate) fn apply(config: &mut DecoderConfig, keys: &Keys) -> Result<()> {
    let act = keys
        .opt_string("hidden_act")?
        .unwrap_or_else(|| "silu".into());
    if act != "silu" {
        return Err(ModelError::Unsupported {
            path: keys.path.to_path_buf(),
            what: "hidden_act",
            found: act,
            supported: "silu",
        });
    }
    // `rope_scaling` (the Hub's form) or transformers 5's flat `rope_parameters`.
    let rope = match keys.raw.get("rope_scaling") {
        Some(Value::Object(map)) => Some(map),
        _ => keys.raw.get("rope_parameters").and_then(Value::as_object),
    };
    let partial = match keys.opt_f64("partial_rotary_factor")? {
        Some(p) => p,
        None => rope
            .and_then(|r| r.get("partial_rotary_factor"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0),
    };
    if !(partial > 0.0 && partial <= 1.0) {
        return Err(keys.invalid("partial_rotary_factor", "must be in (0, 1]"));
    }
    config.quirks = Quirks {
        activation: Activation::Silu,
        partial_rotary_factor: partial,
        fused_projections: true,
        layer_windows: match keys.opt_usize("sliding_window")? {
            Some(w) => vec![Some(w); config.num_hidden_layers],
            None => Vec::new(),
        },
        ..Quirks::default()
    };
    let rotary_dim = config.rotary_dim();
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
        return Err(keys.invalid(
            "partial_rotary_factor",
            &format!("rotates {rotary_dim} dimensions of a head: must be a positive even number"),
        ));
    }
    config.rope_theta = super::rope_theta(keys, 10_000.0)?;
    let rope_type = rope
        .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
        .and_then(Value::as_str)
        .unwrap_or("default");
    config.rope_scaling = match rope_type {
        "default" => RopeScaling::None,
        "longrope" | "su" | "yarn" => {
            let rope = rope.expect("a rope type comes from a rope map");
            let factors = |key: &str| -> Result<Vec<f64>> {
                let list = rope
                    .get(key)
                    .and_then(Value::as_array)
                    .and_then(|l| l.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| {
                        keys.invalid(
                            &format!("rope_scaling.{key}"),
                            "missing or not a list of numbers",
                        )
                    })?;
                if list.len() != rotary_dim / 2 {
                    return Err(keys.invalid(
                        &format!("rope_scaling.{key}"),
                        &format!(
                            "has {} factors, the rotary width {rotary_dim} needs {}",
                            list.len(),
                            rotary_dim / 2
                        ),
                    ));
                }
                Ok(list)
            };
            // The top-level key wins, as in transformers' `standardize_rope_params`.
            let original = match keys.opt_usize("original_max_position_embeddings")? {
                Some(o) => o,
                None => rope
                    .get("original_max_position_embeddings")
                    .and_then(Value::as_u64)
                    .map_or(config.max_position_embeddings, |o| o as usize),
            };
            let factor = rope
                .get("factor")
                .and_then(Value::as_f64)
                .unwrap_or(config.max_position_embeddings as f64 / original as f64);
            let attention_factor = match rope.get("attention_factor").and_then(Value::as_f64) {
                Some(a) => a,
                None if factor <= 1.0 => 1.0,
                None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
            };
            RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max_position_embeddings: original,
                attention_factor,
            }
        }
        other => {
            return Err(ModelError::Unsupported {
                path: keys.path.to_path_buf(),
                what: "rope_scaling.rope_type",
                found: other.to_string(),
                supported: "default, longrope",
            });
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{DecoderConfig, RopeScaling};

    /// microsoft/Phi-4-mini-instruct's shape (factor lists shortened to the rotary width of a
    /// 16-wide head: 0.75 · 16 / 2 = 6).
    const PHI4_MINI: &str = r#"{"architectures":["Phi3ForCausalLM"],"model_type":"phi3",
        "hidden_act":"silu","hidden_size":32,"intermediate_size":64,"num_attention_heads":2,
        "num_hidden_layers":2,"num_key_value_heads":1,"max_position_embeddings":131072,
        "original_max_position_embeddings":4096,"partial_rotary_factor":0.75,
        "rope_theta":10000.0,"sliding_window":262144,"tie_word_embeddings":true,
        "vocab_size":200064,"rope_scaling":{"type":"longrope",
        "short_factor":[1,1,1,1,1,1],"long_factor":[1,2,3,4,5,6]}}"#;

    #[test]
    fn reads_phi4_mini() {
        let c = DecoderConfig::from_json_str(PHI4_MINI, "config.json".as_ref()).unwrap();
        assert_eq!((c.head_dim, c.rotary_dim()), (16, 12));
        let RopeScaling::LongRope {
            original_max_position_embeddings,
            attention_factor,
            ..
        } = c.rope_scaling
        else {
            panic!("{:?}", c.rope_scaling)
        };
        assert_eq!(original_max_position_embeddings, 4096);
        let want = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt();
        assert!((attention_factor - want).abs() < 1e-12);
        let long = c.rope_long_inv_freq().unwrap();
        let short = c.rope_inv_freq();
        assert_eq!(short.len(), 6);
        assert!((long[5] * 6.0 - short[5]).abs() < 1e-9);
        assert_eq!(c.quirks.layer_windows, vec![Some(262144); 2]);
        assert!(c.quirks.fused_projections);
    }

    #[test]
    fn wrong_factor_count_names_the_key() {
        let json = PHI4_MINI.replace("[1,2,3,4,5,6]", "[1,2,3]");
        let err = DecoderConfig::from_json_str(&json, "config.json".as_ref())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("long_factor") && err.contains("needs 6"),
            "{err}"
        );
    }
}
