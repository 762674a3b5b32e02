//! Qwen3 (`Qwen3ForCausalLM`, transformers' `modeling_qwen3.py`).
//!
//! The Llama decoder with a per-head RMSNorm of queries and keys (`q_norm`, `k_norm`, weights
//! `[head_dim]`, before RoPE), `head_dim` from the config (not `hidden / heads`: Qwen3-0.6B has
//! 16 heads of 128 on a hidden size of 1024), and biases only where `attention_bias` says (none
//! in the released models, unlike Qwen2's q/k/v biases). Sliding-window attention applies only
//! with `use_sliding_window`, on the layers `layer_types` names or else on the layers from
//! `max_window_layers` (default 28) on, as transformers' `Qwen3Config` derives them.

use crate::config::{DecoderConfig, Keys};
use crate::error::Result;

/// `config.json`'s `model_type`.
pub const MODEL_TYPE: &str = "qwen3";
/// `config.json`'s `architectures[0]`.
pub const ARCHITECTURE: &str = "Qwen3ForCausalLM";

/// Sets Qwen3's quirks on `config` (its Llama-spelled keys already read).
pub(crate) fn apply(config: &mut DecoderConfig, keys: &Keys) -> Result<()> {
    config.quirks.qk_norm = true;
    if keys.opt_bool("use_sliding_window")? == Some(true)
        && let Some(window) = keys.opt_usize("sliding_window")?
    {
        if window == 0 {
            return Err(keys.invalid("sliding_window", "must be positive or null"));
        }
        let first = keys.opt_usize("max_window_layers")?.unwrap_or(28);
        config.quirks.layer_windows =
            super::layer_windows(keys, config.num_hidden_layers, window, |i| i >= first)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::DecoderConfig;

    /// The keys of Qwen/Qwen3-0.6B's `config.json` that matter here.
    const QWEN3: &str = r#"{"architectures":["Qwen3ForCausalLM"],"attention_bias":false,
        "head_dim":128,"hidden_act":"silu","hidden_size":1024,"intermediate_size":3072,
        "max_position_embeddings":40960,"max_window_layers":28,"model_type":"qwen3",
        "num_attention_heads":16,"num_hidden_layers":28,"num_key_value_heads":8,
        "rms_norm_eps":1e-06,"rope_scaling":null,"rope_theta":1000000,"sliding_window":null,
        "tie_word_embeddings":true,"use_sliding_window":false,"vocab_size":151936}"#;

    #[test]
    fn reads_qwen3_0_6b() {
        let c = DecoderConfig::from_json_str(QWEN3, "config.json".as_ref()).unwrap();
        assert_eq!(c.model_type, "qwen3");
        assert_eq!(
            (c.head_dim, c.hidden_size, c.num_attention_heads),
            (128, 1024, 16)
        );
        assert!(c.quirks.qk_norm);
        assert!(!c.qkv_bias && !c.o_bias && !c.mlp_bias);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.rope_theta, 1e6);
        assert!(c.quirks.layer_windows.is_empty());
        assert_eq!(c.to_json()["architectures"][0], "Qwen3ForCausalLM");
    }

    #[test]
    fn sliding_window_only_with_use_sliding_window() {
        let on = QWEN3
            .replace(r#""sliding_window":null"#, r#""sliding_window":64"#)
            .replace(
                r#""use_sliding_window":false"#,
                r#""use_sliding_window":true"#,
            )
            .replace(r#""max_window_layers":28"#, r#""max_window_layers":20"#);
        let c = DecoderConfig::from_json_str(&on, "config.json".as_ref()).unwrap();
        let w = &c.quirks.layer_windows;
        assert!(w[..20].iter().all(Option::is_none));
        assert!(w[20..].iter().all(|w| *w == Some(64)));
        let off = QWEN3.replace(r#""sliding_window":null"#, r#""sliding_window":64"#);
        let c = DecoderConfig::from_json_str(&off, "config.json".as_ref()).unwrap();
        assert!(c.quirks.layer_windows.is_empty());
    }
}
