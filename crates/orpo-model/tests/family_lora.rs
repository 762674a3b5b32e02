//! LoRA per model family (issue 24) against Hugging Face PEFT, on the fixtures of
//! `scripts/make_family_lora_fixtures.py`: a Qwen3 (q/k norms) and a Gemma 2 (sandwich norms,
//! soft-caps, sliding window, rsLoRA) with adapters on every projection, a Phi-3 (partial
//! LongRoPE) with adapters on `o_proj` and `down_proj`. PEFT's adapter directory loads and gives
//! PEFT's logits and one step's adapter gradients; the adapter we save has PEFT's tensors bit for
//! bit and its settings; the family's LoRA target names come from the family table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use orpo_model::{DecoderForCausalLM, LoraConfig, ModelError, SaveDtype};
use serde_json::Value;

const CASES: [&str; 4] = [
    "qwen3_all_linear",
    "gemma2_all_linear_rslora",
    "phi3_o_down",
    "phi3_all_linear",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/lora")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn base(name: &str, device: &Device) -> DecoderForCausalLM {
    DecoderForCausalLM::from_pretrained(fixture(name).join("base"), device).unwrap()
}

fn load(name: &str, device: &Device) -> DecoderForCausalLM {
    base(name, device)
        .load_adapter(fixture(name).join("adapter"))
        .unwrap()
}

fn rows(json: &Value, key: &str) -> Vec<Vec<i64>> {
    serde_json::from_value(json[key].clone()).unwrap()
}

fn batch(json: &Value, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let (ids, mask) = (rows(json, "input_ids"), rows(json, "attention_mask"));
    let shape = [ids.len(), ids[0].len()];
    let mask: Vec<f32> = mask.concat().iter().map(|&m| m as f32).collect();
    (
        Tensor::from_data(TensorData::new(ids.concat(), shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Largest |Δlogit| against `expected.json` over the non-padding positions.
fn max_logit_error(model: &DecoderForCausalLM, json: &Value, device: &Device) -> f32 {
    let (ids, mask_t) = batch(json, device);
    let got = values(model.forward_logits(ids, mask_t));
    let want: Vec<f32> = serde_json::from_value(json["logits"].clone()).unwrap();
    let mask = rows(json, "attention_mask");
    let cols = mask[0].len();
    let vocab = want.len() / (mask.len() * cols);
    let mut worst = 0.0f32;
    for (r, row) in mask.iter().enumerate() {
        for (t, _) in row.iter().enumerate().filter(|(_, m)| **m == 1) {
            for v in 0..vocab {
                let i = (r * cols + t) * vocab + v;
                worst = worst.max((got[i] - want[i]).abs());
            }
        }
    }
    worst
}

#[test]
fn peft_adapters_give_pefts_logits() {
    let device = Device::flex();
    for name in CASES {
        let json = read_json(&fixture(name).join("expected.json"));
        let model = load(name, &device);
        let lora = model.lora_config().unwrap();
        assert!((lora.scaling() - json["scaling"].as_f64().unwrap()).abs() < 1e-12);
        let err = max_logit_error(&model, &json, &device);
        assert!(err <= 1e-4, "{name}: max |Δlogit| vs PEFT = {err:e}");
        // The adapters matter: the base alone is far off.
        let off = max_logit_error(&base(name, &device), &json, &device);
        assert!(off > 1e-2, "{name}: base alone {off:e}");
        // Saved in transformers' layout (the merged weights; Phi-3's fused `qkv_proj` /
        // `gate_up_proj` rows joined with the shared A) and read back: the same logits.
        let out = tempfile::tempdir().unwrap();
        model.save_pretrained(out.path(), SaveDtype::F32).unwrap();
        let saved = DecoderForCausalLM::from_pretrained(out.path(), &device).unwrap();
        assert!(saved.lora_config().is_none());
        let err = max_logit_error(&saved, &json, &device);
        assert!(err <= 1e-4, "{name}: saved merged max |Δlogit| = {err:e}");
        // Merged into the weights, the same logits.
        let err = max_logit_error(&model.merge_lora(), &json, &device);
        assert!(err <= 1e-4, "{name}: merged max |Δlogit| = {err:e}");
    }
}

#[test]
fn adapter_gradients_match_pefts() {
    let device = Device::flex().autodiff();
    for name in CASES {
        let json = read_json(&fixture(name).join("expected.json"));
        let model = load(name, &device);
        // Mean next-token cross-entropy over the non-padding positions (the fixture's loss).
        let (ids, mask) = (rows(&json, "input_ids"), rows(&json, "attention_mask"));
        let (n, cols) = (ids.len(), ids[0].len());
        let (ids_t, mask_t) = batch(&json, &device);
        let logp = log_softmax(model.forward_logits(ids_t, mask_t), 2).slice([0..n, 0..cols - 1]);
        let labels: Vec<i64> = ids.iter().flat_map(|r| r[1..].to_vec()).collect();
        let valid: Vec<f32> = mask
            .iter()
            .flat_map(|r| r[1..].iter().map(|&m| m as f32).collect::<Vec<_>>())
            .collect();
        let count: f32 = valid.iter().sum();
        let labels =
            Tensor::<3, Int>::from_data(TensorData::new(labels, [n, cols - 1, 1]), &device);
        let valid = Tensor::<2>::from_data(TensorData::new(valid, [n, cols - 1]), &device);
        let loss = (logp.gather(2, labels).reshape([n, cols - 1]) * valid)
            .sum()
            .neg()
            .div_scalar(count);
        let got_loss = loss.clone().into_scalar::<f32>() as f64;
        let want_loss = json["loss"].as_f64().unwrap();
        assert!(
            (got_loss - want_loss).abs() < 1e-5,
            "{name}: loss {got_loss} vs {want_loss}"
        );
        let grads = loss.backward();
        let want: BTreeMap<String, Vec<f32>> =
            serde_json::from_value(json["grads"].clone()).unwrap();
        // Our gradients in PEFT's names and layout (`[r, in]`, `[out, r]`). A fused adapter
        // (Phi-3) is one PEFT module: the shared A's gradient (its first part's, the one the
        // forward uses) and the parts' B gradients joined by rows.
        let grad_of =
            |p: &burn::module::Param<Tensor<2>>| p.val().grad(&grads).map(|g| g.transpose());
        let mut got: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let fused = model.config.quirks.fused_projections;
        for (index, layer) in model.layers.iter().enumerate() {
            let prefix = |group: &str, module: &str| {
                format!("base_model.model.model.layers.{index}.{group}.{module}")
            };
            let (attn, mlp) = (&layer.self_attn, &layer.mlp);
            let groups: Vec<(String, Vec<&burn::nn::Linear>)> = if fused {
                vec![
                    (
                        prefix("self_attn", "qkv_proj"),
                        vec![&attn.q_proj, &attn.k_proj, &attn.v_proj],
                    ),
                    (prefix("self_attn", "o_proj"), vec![&attn.o_proj]),
                    (
                        prefix("mlp", "gate_up_proj"),
                        vec![&mlp.gate_proj, &mlp.up_proj],
                    ),
                    (prefix("mlp", "down_proj"), vec![&mlp.down_proj]),
                ]
            } else {
                layer
                    .projections()
                    .into_iter()
                    .map(|(g, m, l)| (prefix(g, m), vec![l]))
                    .collect()
            };
            for (key, parts) in groups {
                let adapters: Vec<_> = parts.iter().filter_map(|l| l.weight.adapter()).collect();
                if adapters.is_empty() {
                    continue;
                }
                assert_eq!(adapters.len(), parts.len(), "{name}: {key}");
                if parts.len() > 1 {
                    let flag = if key.ends_with("qkv_proj") {
                        attn.fused_lora
                    } else {
                        mlp.fused_lora
                    };
                    assert!(flag, "{name}: {key}: one fused adapter");
                }
                // The parts' copies of A beyond the first are not used, so never trained.
                for copy in &adapters[1..] {
                    assert!(
                        grad_of(&copy.a).is_none(),
                        "{name}: {key}: a copy of A trains"
                    );
                }
                assert!(
                    parts.iter().all(|l| l.weight.base().grad(&grads).is_none()),
                    "{name}: {key}: the frozen base has a gradient"
                );
                got.insert(
                    format!("{key}.lora_A.weight"),
                    values(grad_of(&adapters[0].a).unwrap()),
                );
                let b = Tensor::cat(adapters.iter().map(|a| grad_of(&a.b).unwrap()).collect(), 0);
                got.insert(format!("{key}.lora_B.weight"), values(b));
            }
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: PEFT's adapter tensors"
        );
        for (key, want) in &want {
            let got = &got[key];
            assert_eq!(got.len(), want.len(), "{name}: {key}");
            let scale = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            let worst = got
                .iter()
                .zip(want)
                .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
            assert!(
                worst <= 1e-5 + 1e-4 * scale,
                "{name}: {key}: max |Δgrad| = {worst:e} (max |grad| {scale:e})"
            );
        }
    }
}

fn safetensors_f32(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32);
            (name, (view.shape().to_vec(), view.data().to_vec()))
        })
        .collect()
}

/// The adapter we write is PEFT's: the same tensor names, shapes and bytes, and an
/// `adapter_config.json` with PEFT's settings (targets, rank, alpha, rsLoRA, ...).
#[test]
fn saved_adapters_are_pefts() {
    let device = Device::flex();
    for name in CASES {
        let model = load(name, &device);
        let out = tempfile::tempdir().unwrap();
        model.save_adapter(out.path()).unwrap();
        let peft_dir = fixture(name).join("adapter");
        assert_eq!(
            safetensors_f32(&out.path().join(ADAPTER_WEIGHTS)),
            safetensors_f32(&peft_dir.join(ADAPTER_WEIGHTS)),
            "{name}"
        );
        let ours = read_json(&out.path().join(ADAPTER_CONFIG));
        let peft = read_json(&peft_dir.join(ADAPTER_CONFIG));
        // PEFT matches a target name against a module path's last components: it writes
        // `all-linear` expanded to short names (Qwen3) or to full paths (Gemma 2, tied
        // embeddings); the projections they name are what must agree.
        let targets = |v: &Value| {
            let names: Vec<String> = serde_json::from_value(v["target_modules"].clone()).unwrap();
            let short: std::collections::BTreeSet<String> = names
                .iter()
                .map(|n| n.rsplit('.').next().unwrap().to_string())
                .collect();
            short
        };
        assert_eq!(targets(&ours), targets(&peft), "{name}");
        for key in [
            "peft_type",
            "task_type",
            "r",
            "lora_alpha",
            "lora_dropout",
            "bias",
            "fan_in_fan_out",
            "use_rslora",
            "use_dora",
            "modules_to_save",
        ] {
            assert_eq!(ours[key], peft[key], "{name}: {key}");
        }
        // And it loads back to PEFT's logits.
        let json = read_json(&fixture(name).join("expected.json"));
        let reloaded = base(name, &device).load_adapter(out.path()).unwrap();
        let err = max_logit_error(&reloaded, &json, &device);
        assert!(err <= 1e-4, "{name}: {err:e}");
    }
}

fn lora_error(model: DecoderForCausalLM, targets: &[&str]) -> String {
    let config = LoraConfig::new(2, 4.0)
        .with_target_modules(targets)
        .unwrap();
    match model.with_lora(&config) {
        Err(e @ ModelError::Lora { .. }) => e.to_string(),
        Err(e) => panic!("{targets:?}: other error {e}"),
        Ok(_) => panic!("{targets:?} accepted"),
    }
}

/// `all-linear` is the family's linear layers; a name the family does not have is an error
/// listing those it has; Phi-3's fused projections are refused with the reason.
#[test]
fn lora_targets_come_from_the_family_table() {
    let device = Device::flex();
    for name in ["qwen3_all_linear", "gemma2_all_linear_rslora"] {
        let all = LoraConfig::new(2, 4.0)
            .with_target_modules(&["all-linear"])
            .unwrap();
        let model = base(name, &device).with_lora(&all).unwrap();
        assert_eq!(
            model.lora_config().unwrap().target_modules,
            [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj"
            ]
        );
        let err = lora_error(base(name, &device), &["qkv_proj"]);
        assert!(
            err.contains("qkv_proj") && err.contains("q_proj, k_proj"),
            "{err}"
        );
    }
    let phi3 = || base("phi3_o_down", &device);
    let model = phi3()
        .with_lora(
            &LoraConfig::new(2, 4.0)
                .with_target_modules(&["down_proj", "o_proj"])
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        model.lora_config().unwrap().target_modules,
        ["o_proj", "down_proj"]
    );
    let err = lora_error(phi3(), &["q_proj"]);
    assert!(
        err.contains("`q_proj`")
            && err.contains("phi3")
            && err.contains("qkv_proj, o_proj, gate_up_proj, down_proj"),
        "{err}"
    );
    // all-linear is Phi-3's four layers, the fused ones with one adapter each (A shared by the
    // parts, B sliced): as many trainable parameters as PEFT's adapter file holds.
    let all = LoraConfig::new(4, 8.0)
        .with_target_modules(&["all-linear"])
        .unwrap();
    let model = phi3().with_lora(&all).unwrap();
    assert_eq!(
        model.lora_config().unwrap().target_modules,
        ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    );
    let peft = safetensors_f32(
        &fixture("phi3_all_linear")
            .join("adapter")
            .join(ADAPTER_WEIGHTS),
    );
    let peft_count: usize = peft
        .values()
        .map(|(shape, _)| shape.iter().product::<usize>())
        .sum();
    assert_eq!(model.lora_parameter_counts().0, peft_count);
    let names: Vec<String> = model
        .adapter_tensors()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut names_sorted = names.clone();
    names_sorted.sort();
    assert_eq!(names_sorted, peft.keys().cloned().collect::<Vec<_>>());
    // A typo is caught before any model is built, naming every family's names.
    let err = LoraConfig::new(2, 4.0)
        .with_target_modules(&["qkv"])
        .unwrap_err();
    assert!(
        err.contains("`qkv`") && err.contains("gate_up_proj"),
        "{err}"
    );
}
