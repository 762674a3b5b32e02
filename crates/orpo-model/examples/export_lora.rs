//! burn LoRA → PEFT adapter directory → Python `peft`, burn side.
//!
//! Loads the base model BASE_DIR, attaches adapters (`r` 4, `lora_alpha` 8 on every projection
//! unless TARGETS says otherwise, e.g. `q_proj,v_proj,down_proj`), randomises both factors (a
//! fresh `B` is zero, which would make the check vacuous), and writes
//! - OUT/adapter/: the PEFT adapter directory ([`DecoderForCausalLM::save_adapter`]),
//! - OUT/merged/: the merged model ([`DecoderForCausalLM::merge_lora`] + `save_pretrained`),
//! - OUT/burn_logits.json: burn's logits of base + adapter for a fixed batch.
//!
//! Then `python scripts/check_peft_export.py OUT BASE_DIR` loads OUT/adapter with
//! `peft.PeftModel.from_pretrained` onto BASE_DIR, and OUT/merged with transformers, and
//! compares both with burn's logits.
//!
//! cargo run -p orpo-model --example export_lora -- tests/fixtures/model/llama_tied_gqa /tmp/peft
//!
//! [`DecoderForCausalLM::save_adapter`]: orpo_model::DecoderForCausalLM::save_adapter
//! [`DecoderForCausalLM::merge_lora`]: orpo_model::DecoderForCausalLM::merge_lora

use std::path::PathBuf;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use orpo_model::{DecoderForCausalLM, LoraConfig, SaveDtype};

/// Replaces every adapter factor with normal(0, std) values.
struct RandomFactors {
    path: Vec<String>,
    std: f64,
}

impl ModuleMapper for RandomFactors {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.iter().any(|p| p == "lora") {
            let std = self.std;
            param.map(|t| t.random_like(Distribution::Normal(0.0, std)))
        } else {
            param
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, out, targets) = match args.as_slice() {
        [_, base, out, rest @ ..] => (
            PathBuf::from(base),
            PathBuf::from(out),
            rest.first().cloned().unwrap_or_else(|| "all-linear".into()),
        ),
        _ => {
            eprintln!("usage: export_lora BASE_DIR OUT_DIR [TARGETS]");
            std::process::exit(2);
        }
    };
    let device = Device::flex();
    device.seed(7);
    let names: Vec<&str> = targets.split(',').collect();
    let lora = LoraConfig {
        base_model_name_or_path: Some(base.display().to_string()),
        ..LoraConfig::new(4, 8.0)
            .with_target_modules(&names)
            .expect("targets")
    };
    let model = DecoderForCausalLM::from_pretrained(&base, &device)
        .expect("base model")
        .with_lora(&lora)
        .expect("LoRA")
        .map(&mut RandomFactors {
            path: Vec::new(),
            std: 0.3,
        });
    model
        .save_adapter(out.join("adapter"))
        .expect("save adapter");
    model
        .clone()
        .merge_lora()
        .save_pretrained(out.join("merged"), SaveDtype::F32)
        .expect("save merged");

    let vocab = model.config.vocab_size;
    let (rows, cols) = (2, 10);
    let ids: Vec<i64> = (0..rows * cols)
        .map(|i| (3 + i * 7 % (vocab - 3)) as i64)
        .collect();
    let mut mask = vec![1.0f32; rows * cols];
    mask[cols + 7..].iter_mut().for_each(|m| *m = 0.0); // second row right-padded
    let logits = model.forward_logits(
        Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [rows, cols]), &device),
        Tensor::from_data(TensorData::new(mask.clone(), [rows, cols]), &device),
    );
    let values = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let json = serde_json::json!({
        "input_ids": ids.chunks(cols).collect::<Vec<_>>(),
        "attention_mask": mask.chunks(cols).collect::<Vec<_>>(),
        "logits": values,
        "shape": [rows, cols, vocab],
        "targets": model.lora_config().unwrap().target_modules,
    });
    std::fs::write(out.join("burn_logits.json"), json.to_string()).expect("write");
    println!("wrote {}", out.display());
}
