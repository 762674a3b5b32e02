//! SmolLM3 (`SmolLM3ForCausalLM`, transformers' `modeling_smollm3.py`).
//!
//! The Llama decoder with NoPE layers: `no_rope_layers[i]` is 1 where layer `i` rotates
//! queries and keys and 0 where it does not (no positional signal but the causal mask); without
//! the key, every `no_rope_layer_interval`-th layer (default 4: layers 3, 7, ...) is NoPE, as
//! `SmolLM3Config` derives it. Sliding-window attention applies only with `use_sliding_window`
//! and a `sliding_window`, on the layers `layer_types` names or else on the NoPE layers.
//! Embeddings are tied unless the config says otherwise.

use serde_json::Value;

use crate::config::{DecoderConfig, Keys};
use crate::error::Result;

/// `config.json`'s `model_type`.
pub const MODEL_TYPE: &str = "smollm3";
/// `config.json`'s `architectures[0]`.
pub const ARCHITECTURE: &str = "SmolLM3ForCausalLM";

/// Sets SmolLM3's quirks on `config` (its Llama-spelled keys already read).
pub(crate) fn apply(config: &mut DecoderConfig, keys: &Keys) -> Result<()> {
    let layers = config.num_hidden_layers;
    let rope_layers: Vec<bool> = match keys.raw.get("no_rope_layers") {
        None | Some(Value::Null) => {
            let interval = keys.opt_usize("no_rope_layer_interval")?.unwrap_or(4);
            if interval == 0 {
                return Err(keys.invalid("no_rope_layer_interval", "must be positive"));
            }
            (0..layers).map(|i| (i + 1) % interval != 0).collect()
        }
        Some(Value::Array(flags)) => {
            if flags.len() != layers {
                return Err(keys.invalid(
                    "no_rope_layers",
                    &format!("has {} entries for {layers} layers", flags.len()),
                ));
            }
            flags
                .iter()
                .map(|f| match f.as_u64() {
                    Some(1) => Ok(true),
                    Some(0) => Ok(false),
                    _ => Err(keys.invalid(
                        "no_rope_layers",
                        &format!("{f}: expected 1 (RoPE) or 0 (no RoPE)"),
                    )),
                })
                .collect::<Result<_>>()?
        }
        Some(_) => return Err(keys.invalid("no_rope_layers", "expected a list of 0/1")),
    };
    if keys.opt_bool("use_sliding_window")? == Some(true)
        && let Some(window) = keys.opt_usize("sliding_window")?
    {
        if window == 0 {
            return Err(keys.invalid("sliding_window", "must be positive or null"));
        }
        config.quirks.layer_windows =
            super::layer_windows(keys, layers, window, |i| !rope_layers[i])?;
    }
    config.quirks.rope_layers = rope_layers;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::DecoderConfig;

    /// The keys of HuggingFaceTB/SmolLM3-3B's `config.json` that matter here (its
    /// `no_rope_layers` shortened to 8 layers).
    const SMOLLM3: &str = r#"{"architectures":["SmolLM3ForCausalLM"],"attention_bias":false,
        "hidden_act":"silu","hidden_size":2048,"intermediate_size":11008,"mlp_bias":false,
        "model_type":"smollm3","no_rope_layer_interval":4,
        "no_rope_layers":[1,1,1,0,1,1,1,0],"num_attention_heads":16,"num_hidden_layers":8,
        "num_key_value_heads":4,"rms_norm_eps":1e-06,"rope_theta":5000000.0,
        "sliding_window":null,"use_sliding_window":false,"vocab_size":128256}"#;

    #[test]
    fn reads_no_rope_layers_and_ties_by_default() {
        let c = DecoderConfig::from_json_str(SMOLLM3, "config.json".as_ref()).unwrap();
        let expected = [true, true, true, false, true, true, true, false];
        assert_eq!(c.quirks.rope_layers, expected);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.rope_theta, 5e6);
        assert_eq!(c.to_json()["architectures"][0], "SmolLM3ForCausalLM");
        // Without the list: every 4th layer is NoPE.
        let derived = SMOLLM3.replace(r#""no_rope_layers":[1,1,1,0,1,1,1,0],"#, "");
        let c = DecoderConfig::from_json_str(&derived, "config.json".as_ref()).unwrap();
        assert_eq!(c.quirks.rope_layers, expected);
    }

    #[test]
    fn a_bad_flag_names_the_key() {
        let bad = SMOLLM3.replace("[1,1,1,0,1,1,1,0]", "[1,1,1,2,1,1,1,0]");
        let err = DecoderConfig::from_json_str(&bad, "config.json".as_ref()).unwrap_err();
        assert!(err.to_string().contains("no_rope_layers"), "{err}");
    }
}
