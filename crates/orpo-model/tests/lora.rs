//! LoRA parity with Hugging Face PEFT on the fixtures of `scripts/make_lora_fixtures.py`
//! (a Llama with adapters on every projection; a Qwen2 with biases, adapters on q/v/down and
//! rsLoRA scaling): logits and one step's adapter gradients, merging, the PEFT adapter
//! directory round trip, freezing, and errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};
use orpo_model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use orpo_model::save::HostTensor;
use orpo_model::{DecoderConfig, DecoderForCausalLM, LoraConfig, ModelError};
use serde_json::Value;

const CASES: [&str; 2] = ["llama_all_linear", "qwen2_qv_down_rslora"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/lora")
        .join(name)
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap())
        .unwrap()
}

fn load(name: &str, device: &Device) -> DecoderForCausalLM {
    DecoderForCausalLM::from_pretrained(fixture(name).join("base"), device)
        .unwrap()
        .load_adapter(fixture(name).join("adapter"))
        .unwrap()
}

/// Input ids and mask as tensors, and as rows.
type BatchTensors = (Tensor<2, Int>, Tensor<2>, Vec<Vec<i64>>, Vec<Vec<i64>>);

fn batch(json: &Value, device: &Device) -> BatchTensors {
    let ids: Vec<Vec<i64>> = serde_json::from_value(json["input_ids"].clone()).unwrap();
    let mask: Vec<Vec<i64>> = serde_json::from_value(json["attention_mask"].clone()).unwrap();
    let (rows, cols) = (ids.len(), ids[0].len());
    let mask_f: Vec<f32> = mask.concat().iter().map(|&m| m as f32).collect();
    (
        Tensor::from_data(TensorData::new(ids.concat(), [rows, cols]), device),
        Tensor::from_data(TensorData::new(mask_f, [rows, cols]), device),
        ids,
        mask,
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
    let (ids, mask_t, _, mask) = batch(json, device);
    let got = values(model.forward_logits(ids, mask_t));
    let want: Vec<f32> = serde_json::from_value(json["logits"].clone()).unwrap();
    let cols = mask[0].len();
    let vocab = want.len() / (mask.len() * cols);
    let mut worst = 0.0f32;
    for (r, row) in mask.iter().enumerate() {
        for (t, &m) in row.iter().enumerate() {
            if m == 0 {
                continue;
            }
            for v in 0..vocab {
                let i = (r * cols + t) * vocab + v;
                worst = worst.max((got[i] - want[i]).abs());
            }
        }
    }
    worst
}

/// Mean next-token cross-entropy over the non-padding positions (the fixture's loss).
fn nll(model: &DecoderForCausalLM, json: &Value, device: &Device) -> Tensor<1> {
    let (ids, mask_t, ids_v, mask_v) = batch(json, device);
    let (rows, cols) = (ids_v.len(), ids_v[0].len());
    let logp = log_softmax(model.forward_logits(ids, mask_t), 2).slice([0..rows, 0..cols - 1]);
    let labels: Vec<i64> = ids_v.iter().flat_map(|r| r[1..].to_vec()).collect();
    let valid: Vec<f32> = mask_v
        .iter()
        .flat_map(|r| r[1..].iter().map(|&m| m as f32).collect::<Vec<_>>())
        .collect();
    let count: f32 = valid.iter().sum();
    let labels = Tensor::<3, Int>::from_data(TensorData::new(labels, [rows, cols - 1, 1]), device);
    let valid = Tensor::<2>::from_data(TensorData::new(valid, [rows, cols - 1]), device);
    let picked = logp.gather(2, labels).reshape([rows, cols - 1]);
    (picked * valid).sum().neg().div_scalar(count)
}

#[test]
fn peft_adapter_logits_match_peft() {
    let device = Device::flex();
    for name in CASES {
        let model = load(name, &device);
        let json = expected(name);
        let lora = model.lora_config().unwrap();
        assert!((lora.scaling() - json["scaling"].as_f64().unwrap()).abs() < 1e-12);
        let err = max_logit_error(&model, &json, &device);
        assert!(err <= 1e-4, "{name}: max |Δlogit| vs PEFT = {err:e}");
        // The adapters matter: the base alone is far off.
        let base =
            DecoderForCausalLM::from_pretrained(fixture(name).join("base"), &device).unwrap();
        assert!(max_logit_error(&base, &json, &device) > 1e-2, "{name}");
    }
}

#[test]
fn adapter_gradients_match_peft() {
    let device = Device::flex().autodiff();
    for name in CASES {
        let model = load(name, &device);
        let json = expected(name);
        let loss = nll(&model, &json, &device);
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        let want_loss = json["loss"].as_f64().unwrap();
        assert!(
            (loss_value - want_loss).abs() < 1e-5,
            "{name}: loss {loss_value} vs {want_loss}"
        );
        let grads = loss.backward();
        let want: BTreeMap<String, Vec<f32>> =
            serde_json::from_value(json["grads"].clone()).unwrap();
        let mut seen = 0;
        for (index, layer) in model.layers.iter().enumerate() {
            for (group, module, linear) in layer.projections() {
                let Some(adapter) = linear.weight.adapter() else {
                    continue;
                };
                assert!(
                    linear.weight.base().grad(&grads).is_none(),
                    "frozen base has a gradient"
                );
                let prefix = format!("base_model.model.model.layers.{index}.{group}.{module}");
                for (suffix, param) in [("lora_A", &adapter.a), ("lora_B", &adapter.b)] {
                    let name_key = format!("{prefix}.{suffix}.weight");
                    let grad = param.val().grad(&grads).expect("adapter gradient");
                    let got = values(grad.transpose()); // PEFT layout
                    let want = &want[&name_key];
                    let worst = got
                        .iter()
                        .zip(want)
                        .map(|(g, w)| (g - w).abs())
                        .fold(0.0f32, f32::max);
                    assert_eq!(got.len(), want.len(), "{name_key}");
                    assert!(worst <= 1e-5, "{name}: {name_key}: max |Δgrad| = {worst:e}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, want.len(), "{name}: every PEFT gradient compared");
    }
}

fn by_name(tensors: Vec<HostTensor>) -> BTreeMap<String, HostTensor> {
    tensors.into_iter().map(|t| (t.name.clone(), t)).collect()
}

#[test]
fn merged_weights_equal_base_plus_scaled_b_a() {
    let device = Device::flex();
    for name in CASES {
        let model = load(name, &device);
        let scale = model.lora_config().unwrap().scaling() as f32;
        let adapters = by_name(model.adapter_tensors().unwrap());
        let base = by_name(
            DecoderForCausalLM::from_pretrained(fixture(name).join("base"), &device)
                .unwrap()
                .hf_tensors()
                .unwrap(),
        );
        let merged_model = model.clone().merge_lora();
        assert!(merged_model.lora_config().is_none());
        let merged = by_name(merged_model.hf_tensors().unwrap());
        // save_pretrained of the adapted model writes the same merged weights.
        let via_val = by_name(model.hf_tensors().unwrap());
        let mut adapted = 0;
        for (key, m) in &merged {
            let b = &base[key];
            let prefix = format!("base_model.model.{}", key.trim_end_matches(".weight"));
            let expected: Vec<f32> = match (
                adapters.get(&format!("{prefix}.lora_A.weight")),
                adapters.get(&format!("{prefix}.lora_B.weight")),
            ) {
                (Some(a), Some(bb)) => {
                    adapted += 1;
                    // HF layout: W[out, in] + scale · B[out, r] · A[r, in].
                    let (out, r, inp) = (bb.shape[0], bb.shape[1], a.shape[1]);
                    assert_eq!(b.shape, [out, inp]);
                    (0..out * inp)
                        .map(|i| {
                            let (o, c) = (i / inp, i % inp);
                            let delta: f32 = (0..r)
                                .map(|k| bb.values[o * r + k] * a.values[k * inp + c])
                                .sum();
                            b.values[i] + scale * delta
                        })
                        .collect()
                }
                _ => b.values.clone(),
            };
            for (got, other) in [(&m.values, "merge_lora"), (&via_val[key].values, "val")] {
                let worst = got
                    .iter()
                    .zip(&expected)
                    .map(|(g, e)| (g - e).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= 1e-6,
                    "{name}: {key} ({other}): max |Δ| = {worst:e}"
                );
            }
        }
        assert_eq!(adapted * 2, adapters.len(), "{name}");
        // And the merged model computes the adapted model's logits.
        let err = max_logit_error(&merged_model, &expected(name), &device);
        assert!(err <= 1e-4, "{name}: merged model max |Δlogit| = {err:e}");
    }
}

#[test]
fn adapter_directory_round_trips() {
    let device = Device::flex();
    for name in CASES {
        let model = load(name, &device);
        let out = tempfile::tempdir().unwrap();
        model.save_adapter(out.path()).unwrap();
        for file in [ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
            assert!(out.path().join(file).is_file(), "{file}");
        }
        // Same tensors as PEFT wrote, bit for bit.
        let ours = safetensors_f32(&out.path().join(ADAPTER_WEIGHTS));
        let peft = safetensors_f32(&fixture(name).join("adapter").join(ADAPTER_WEIGHTS));
        assert_eq!(ours, peft, "{name}");
        let config = LoraConfig::from_adapter_dir(out.path()).unwrap();
        assert_eq!(&config, model.lora_config().unwrap());
        let reloaded = DecoderForCausalLM::from_pretrained(fixture(name).join("base"), &device)
            .unwrap()
            .load_adapter(out.path())
            .unwrap();
        let err = max_logit_error(&reloaded, &expected(name), &device);
        assert!(err <= 1e-4, "{name}: {err:e}");
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

/// Paths of the parameters that have a gradient.
fn params_with_grads(model: &DecoderForCausalLM, grads: &Gradients) -> BTreeSet<String> {
    struct Collect<'a> {
        grads: &'a Gradients,
        path: Vec<String>,
        found: BTreeSet<String>,
        frozen_with_grad: usize,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().grad(self.grads).is_some() {
                if !param.is_require_grad() {
                    self.frozen_with_grad += 1;
                }
                self.found.insert(self.path.join("."));
            }
        }
    }
    let mut c = Collect {
        grads,
        path: Vec::new(),
        found: BTreeSet::new(),
        frozen_with_grad: 0,
    };
    model.visit(&mut c);
    assert_eq!(c.frozen_with_grad, 0);
    c.found
}

fn tiny_config() -> DecoderConfig {
    let json = r#"{"model_type":"llama","vocab_size":40,"hidden_size":16,"intermediate_size":24,
      "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
      "tie_word_embeddings":true}"#;
    DecoderConfig::from_json_str(json, "config.json".as_ref()).unwrap()
}

#[test]
fn fresh_adapters_are_pefts_init_and_only_they_get_gradients() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let base = DecoderForCausalLM::init(&tiny_config(), &device);
    let lora = LoraConfig::new(4, 8.0)
        .with_target_modules(&["q_proj", "v_proj", "down_proj"])
        .unwrap()
        .with_dropout(0.0);
    let model = base.clone().with_lora(&lora).unwrap();
    let (trainable, total) = model.lora_parameter_counts();
    // q: 16·4 + 4·16, v: 16·4 + 4·8, down: 24·4 + 4·16, two layers.
    assert_eq!(trainable, 2 * ((64 + 64) + (64 + 32) + (96 + 64)));
    assert_eq!(total, base.num_params() + trainable);
    for layer in &model.layers {
        for (_, module, linear) in layer.projections() {
            match linear.weight.adapter() {
                Some(adapter) => {
                    assert!(lora.targets(module));
                    let d_in = linear.weight.base().dims()[0] as f32;
                    let a = values(adapter.a.val());
                    let bound = 1.0 / d_in.sqrt();
                    assert!(a.iter().all(|v| v.abs() <= bound) && a.iter().any(|v| *v != 0.0));
                    assert!(values(adapter.b.val()).iter().all(|v| *v == 0.0));
                }
                None => assert!(!lora.targets(module)),
            }
        }
    }
    // B = 0: the adapted model computes the base model's outputs.
    let ids = Tensor::<2, Int>::from_ints([[1, 5, 9, 3], [2, 7, 0, 0]], &device);
    let mask = Tensor::<2>::from_floats([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], &device);
    let before = values(base.forward_logits(ids.clone(), mask.clone()));
    let logits = model.forward_logits(ids, mask);
    let worst = values(logits.clone())
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-6, "B = 0 changes the logits by {worst:e}");
    let grads = logits.powi_scalar(2).mean().backward();
    let found = params_with_grads(&model, &grads);
    let expected: BTreeSet<String> = (0..2)
        .flat_map(|i| {
            ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]
                .into_iter()
                .flat_map(move |m| ["a", "b"].map(|f| format!("layers.{i}.{m}.weight.lora.{f}")))
        })
        .collect();
    assert_eq!(found, expected);
}

/// A copy of the first fixture's adapter directory with `edit` applied to its config.
fn edited_adapter(edit: &dyn Fn(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(CASES[0]).join("adapter");
    std::fs::copy(src.join(ADAPTER_WEIGHTS), dir.path().join(ADAPTER_WEIGHTS)).unwrap();
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(ADAPTER_CONFIG)).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(dir.path().join(ADAPTER_CONFIG), json.to_string()).unwrap();
    dir
}

#[test]
fn lora_dropout_is_active_only_when_training() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let dir = edited_adapter(&|j| j["lora_dropout"] = 0.5.into());
    let model = DecoderForCausalLM::from_pretrained(fixture(CASES[0]).join("base"), &device)
        .unwrap()
        .load_adapter(dir.path())
        .unwrap();
    assert_eq!(model.lora_config().unwrap().dropout, 0.5);
    let json = expected(CASES[0]);
    let (ids, mask, _, _) = batch(&json, &device);
    // Inference (no autodiff): no dropout, PEFT's eval-mode logits.
    let eval = model.valid();
    assert!(max_logit_error(&eval, &json, &Device::flex()) <= 1e-4);
    let t1 = values(model.forward_logits(ids.clone(), mask.clone()));
    let t2 = values(model.forward_logits(ids, mask));
    assert_ne!(t1, t2, "dropout on the adapter input while training");
}

#[test]
fn adapter_errors_name_the_file_and_key() {
    let device = Device::flex();
    let base =
        || DecoderForCausalLM::from_pretrained(fixture(CASES[0]).join("base"), &device).unwrap();
    // A rank that disagrees with the tensors: the tensor and both shapes are named.
    let dir = edited_adapter(&|j| j["r"] = 8.into());
    let err = base().load_adapter(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("lora_A.weight"), "{err}");
    let dir = edited_adapter(&|j| j["use_dora"] = true.into());
    let err = base().load_adapter(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("use_dora") && err.contains(ADAPTER_CONFIG),
        "{err}"
    );
    // Adapters for another architecture (more layers than the model): unexpected tensors.
    let two_layer_adapter = fixture(CASES[0]).join("adapter");
    let one_layer = {
        let mut c = DecoderConfig::from_file(fixture(CASES[0]).join("base/config.json")).unwrap();
        c.num_hidden_layers = 1;
        DecoderForCausalLM::init(&c, &device)
    };
    let err = one_layer
        .load_adapter(&two_layer_adapter)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layers.1.") && err.contains("unexpected"),
        "{err}"
    );
    let err = base()
        .with_lora(&LoraConfig::new(0, 8.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains('r'), "{err}");
}
