//! burn → safetensors → transformers round trip, burn side.
//!
//! Initialises a random model from a `config.json`, saves it in Hugging Face layout to OUT, and
//! writes the logits burn computes for a fixed batch to OUT/burn_logits.json. Then
//! `python scripts/check_roundtrip.py OUT` loads OUT with transformers and compares.
//!
//! cargo run -p orpo-model --example export_random -- tests/fixtures/model/llama_tied_gqa/config.json /tmp/rt

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::{DecoderConfig, DecoderForCausalLM, SaveDtype};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (config_path, out) = match args.as_slice() {
        [_, config, out, ..] => (config.clone(), std::path::PathBuf::from(out)),
        _ => {
            eprintln!("usage: export_random CONFIG_JSON OUT_DIR");
            std::process::exit(2);
        }
    };
    let device = Device::flex();
    device.seed(42);
    let mut config = DecoderConfig::from_file(&config_path).expect("config");
    config.initializer_range = 0.2; // large weights: differences would show
    let model = DecoderForCausalLM::init(&config, &device);
    model.save_pretrained(&out, SaveDtype::F32).expect("save");

    let (rows, cols) = (2, 10);
    let ids: Vec<i64> = (0..rows * cols)
        .map(|i| (3 + i * 7 % (config.vocab_size - 3)) as i64)
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
        "shape": [rows, cols, config.vocab_size],
    });
    std::fs::write(out.join("burn_logits.json"), json.to_string()).expect("write");
    println!("wrote {}", out.display());
}
